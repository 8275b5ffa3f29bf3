"""t5core's command-line programs, one module each: its flags (`define_flags`), one call of the
library, and `main` (see `t5core.cli.command`). The entry point (`t5core-<name>`, setup.py), the
script (scripts/<module>.py) and `python -m t5core.commands.<module>` run the same `main`;
`main(["--flag=value", ...])` runs a program in the calling process.
"""

from t5core import quiet_start

# TensorFlow's start-up chatter drowns a program's own lines; --verbose shows it.
quiet_start.install()
