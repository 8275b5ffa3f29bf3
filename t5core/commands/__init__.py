"""t5core's command-line programs, one module each: its flags (`define_flags`), the work, and
`main` (see `t5core.cli.command`).

    t5core-train     t5core.commands.train               scripts/train.py
    t5core-generate  t5core.commands.generate            scripts/generate.py
    t5core-evaluate  t5core.commands.evaluate            scripts/evaluate.py
    t5core-export    t5core.commands.export              scripts/export.py
    t5core-convert   t5core.commands.convert_checkpoint  scripts/convert_checkpoint.py
    t5core-inspect   t5core.commands.inspect_model       scripts/inspect_model.py
    t5core-sweep     t5core.commands.sweep               scripts/sweep.py

The entry points (setup.py), the scripts and `python -m t5core.commands.<name>` run the same
`main`; `main(["--flag=value", ...])` runs a program in the calling process.
"""

from t5core import quiet_start

# TensorFlow's start-up chatter drowns a program's own lines; --verbose shows it.
quiet_start.install()
