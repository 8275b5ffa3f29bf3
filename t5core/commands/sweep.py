"""Hyper-parameter sweep over scripts/train.py flags; each trial a training run of its own.

Flags after `--` are passed to every trial unchanged. Rerun the same command to resume a killed
sweep: finished trials are kept, interrupted ones run again.

Examples:
  t5core-sweep --sweep_dir=runs/sweep_lr --method=grid --objective=eval_loss \\
      --space='{"learning_rate": [1e-3, 3e-3], "warmup_steps": [0, 50]}' \\
      -- --train_steps=300 --eval_every=100
  python scripts/sweep.py --sweep_dir=runs/sweep_tpe --method=bayesian --max_trials=20 \\
      --space=space.yaml --objective=accuracy --parallel=2 --median_stopping \\
      -- --train_steps=1000 --eval_every=200
"""

import dataclasses
import os
import sys

from absl import app, flags

from t5core import cli, dataclass_flags
from t5core.model_dir import METRIC_MODES
from t5core.sweep import Sweep, prepare
from t5core.sweep.runner import SweepConfig
from t5core.sweep.study import optuna


def default_train_script() -> str:
    """scripts/train.py of the source tree this package is in (an editable install), else the
    installed train command's own file (it runs as a script too)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    in_tree = os.path.join(os.path.dirname(package), "scripts", "train.py")
    if os.path.exists(in_tree):
        return in_tree
    return os.path.join(package, "commands", "train.py")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("space", None, "Search space: a .json/.yaml file or inline JSON, "
                        "{flag: [values] | {type: choice|uniform|log_uniform|int, ...}}.",
                        required=True, **fv)
    flags.DEFINE_string("objective", None, "Validation metric to optimise (e.g. accuracy, "
                        "eval_loss; 'eval/' prefix optional).", required=True, **fv)
    flags.DEFINE_enum("direction", "auto", list(METRIC_MODES), "auto: min for *loss* metrics.",
                      **fv)
    dataclass_flags.define_number("trial_steps", 0, "Shorthand for --train_steps of every trial "
                                  "(0: none).", dataclass_flags.STEPS, flag_values)
    flags.DEFINE_string("sweep_dir", "runs/sweep", "The sweep's record (journal.log), results "
                        "and one model_dir per trial.", **fv)
    flags.DEFINE_string("gpus", "auto", "GPU ids for the trials (comma-separated), 'none', or "
                        "auto (CUDA_VISIBLE_DEVICES / nvidia-smi).", **fv)
    flags.DEFINE_enum("validate", "auto", ["auto", "dry", "none"], "How the objective is "
                      "checked before the sweep: auto (known for the embedded tasks, else a "
                      "one-step dry run), dry, none.", **fv)
    flags.DEFINE_string("train_script", default_train_script(), "The training script each "
                        "trial runs (it takes scripts/train.py's flags).", **fv)
    dataclass_flags.define_flags(SweepConfig, flag_values, module_name=__name__)
    cli.mark_outputs(flag_values, folders=("sweep_dir",))


def sweep(args: flags.FlagValues, train_args) -> int:
    logging = optuna().logging  # (its absence is reported with the command that installs it)
    logging.set_verbosity(logging.WARNING)  # the sweep logs each trial itself
    train_args = list(train_args)
    if args.trial_steps:
        if any(a.lstrip("-").startswith("train_steps") for a in train_args):
            raise app.UsageError("give --trial_steps or --train_steps after '--', not both")
        train_args = [f"--train_steps={args.trial_steps}"] + train_args
    gpus = None if args.gpus == "auto" else (
        [] if args.gpus in ("", "none") else [g.strip() for g in args.gpus.split(",")])
    options = {f.name: args[f.name].value for f in dataclasses.fields(SweepConfig)
               if f.metadata.get("flag")}
    config = prepare(args.sweep_dir, args.space, args.objective, args.train_script, train_args,
                     direction=args.direction, validate=args.validate, gpus=gpus, **options)
    try:
        best = Sweep(config).run()
    except KeyboardInterrupt as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 130
    return 0 if best is not None else 1


def main(argv=None):
    """`t5core-sweep`; see `t5core.cli.command` for `argv` (after `--`: every trial's flags)."""
    return cli.command(define_flags, sweep, argv, doc=__doc__, takes_arguments=True)


if __name__ == "__main__":
    main()
