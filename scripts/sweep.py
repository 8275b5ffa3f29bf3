"""Hyper-parameter sweep over scripts/train.py flags; each trial a training run of its own.

Flags after `--` are passed to every trial unchanged. Rerun the same command to resume a killed
sweep: finished trials are kept, interrupted ones run again.

Examples:
  python scripts/sweep.py --sweep_dir=runs/sweep_lr --method=grid --objective=eval_loss \
      --space='{"learning_rate": [1e-3, 3e-3], "warmup_steps": [0, 50]}' \
      -- --train_steps=300 --eval_every=100
  python scripts/sweep.py --sweep_dir=runs/sweep_tpe --method=bayesian --max_trials=20 \
      --space=space.yaml --objective=accuracy --parallel=2 --median_stopping \
      -- --train_steps=1000 --eval_every=200
"""

import os
import sys

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from t5core import cli  # noqa: E402

FLAGS = flags.FLAGS
_DEFAULT_TRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")

flags.DEFINE_string("space", None, "Search space: a .json/.yaml file or inline JSON, "
                    "{flag: [values] | {type: choice|uniform|log_uniform|int, ...}}.")
flags.DEFINE_enum("method", "random", ["grid", "random", "bayesian"], "Search method "
                  "(bayesian: Optuna's TPE sampler after --startup_trials random trials).")
flags.DEFINE_string("objective", None, "Validation metric to optimise (e.g. accuracy, "
                    "eval_loss; 'eval/' prefix optional).")
flags.DEFINE_enum("direction", "auto", ["auto", "max", "min"], "auto: min for *loss* metrics.")
flags.DEFINE_enum("objective_reduce", "best", ["best", "last"], "A trial's value: its best "
                  "evaluation (the one its best/ checkpoint holds) or its last.")
flags.DEFINE_integer("max_trials", 0, "Trial budget (grid: 0 = the whole grid).")
flags.DEFINE_integer("trial_steps", 0, "Shorthand for --train_steps of every trial.")
flags.DEFINE_string("sweep_dir", "runs/sweep", "The sweep's record (journal.log), results and "
                    "one model_dir per trial.")
flags.DEFINE_integer("parallel", 1, "Trials run at once (a GPU each, or a share of the CPU "
                     "cores).")
flags.DEFINE_string("gpus", "auto", "GPU ids for the trials (comma-separated), 'none', or "
                    "auto (CUDA_VISIBLE_DEVICES / nvidia-smi).")
flags.DEFINE_bool("median_stopping", False, "Stop a trial whose best objective so far is worse "
                  "than the completed trials' median at the same step (Optuna's MedianPruner; "
                  "needs --eval_every).")
flags.DEFINE_integer("median_min_trials", 3, "Completed trials before the median rule acts.")
flags.DEFINE_integer("median_grace_evals", 1, "Evaluations a trial gets before it can be "
                     "stopped.")
flags.DEFINE_integer("startup_trials", 5, "bayesian: random trials before the model proposes.")
flags.DEFINE_integer("seed", 0, "Seed of the random and bayesian proposals.")
flags.DEFINE_float("trial_timeout", 0.0, "Fail a trial running longer than this (seconds; 0: "
                   "no limit).")
flags.DEFINE_bool("retry_failed", False, "On resume, run failed trials again.")
flags.DEFINE_enum("keep_checkpoints", "all", ["all", "best"], "best: delete the checkpoints of "
                  "every trial but the best (logs and events stay).")
flags.DEFINE_enum("validate", "auto", ["auto", "dry", "none"], "How the objective is checked "
                  "before the sweep: auto (known for the embedded tasks, else a one-step dry "
                  "run), dry, none.")
flags.DEFINE_string("train_script", _DEFAULT_TRAIN, "The training script each trial runs.")
flags.DEFINE_float("poll_seconds", 2.0, "How often running trials are checked.")
flags.mark_flags_as_required(["space", "objective"])


def main(argv):
    from t5core.sweep import Sweep, prepare
    from t5core.sweep.study import optuna

    logging = optuna().logging  # (its absence is reported with the command that installs it)
    logging.set_verbosity(logging.WARNING)  # the sweep logs each trial itself
    train_args = argv[1:]
    if FLAGS.trial_steps:
        if any(a.lstrip("-").startswith("train_steps") for a in train_args):
            raise app.UsageError("give --trial_steps or --train_steps after '--', not both")
        train_args = [f"--train_steps={FLAGS.trial_steps}"] + train_args
    gpus = None if FLAGS.gpus == "auto" else (
        [] if FLAGS.gpus in ("", "none") else [g.strip() for g in FLAGS.gpus.split(",")])
    config = prepare(
        FLAGS.sweep_dir, FLAGS.space, FLAGS.objective, FLAGS.train_script, train_args,
        direction=FLAGS.direction, validate=FLAGS.validate, method=FLAGS.method,
        max_trials=FLAGS.max_trials, reduce=FLAGS.objective_reduce, seed=FLAGS.seed,
        startup_trials=FLAGS.startup_trials, parallel=FLAGS.parallel, gpus=gpus,
        median_stopping=FLAGS.median_stopping, median_min_trials=FLAGS.median_min_trials,
        median_grace_evals=FLAGS.median_grace_evals, trial_timeout=FLAGS.trial_timeout,
        retry_failed=FLAGS.retry_failed, keep_checkpoints=FLAGS.keep_checkpoints,
        poll_seconds=FLAGS.poll_seconds)
    try:
        best = Sweep(config).run()
    except KeyboardInterrupt as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 130
    return 0 if best is not None else 1


if __name__ == "__main__":
    cli.run(main)
