"""Hyper-parameter search over `scripts/train.py` flags, on Optuna: grid, random and TPE, resumable.

    from t5core.sweep import prepare, Sweep
    config = prepare("runs/sweep", '{"learning_rate": {"type": "log_uniform", "low": 1e-4, '
                     '"high": 1e-2}}', objective="accuracy", train_script="scripts/train.py",
                     train_args=["--train_steps=300"], method="random", max_trials=8)
    best = Sweep(config).run()

`scripts/sweep.py` is the command-line front end. Optuna (`pip install t5core[sweep]`) is imported
only when a sweep runs, so this package imports without it.
"""

from t5core.sweep.prepare import prepare
from t5core.sweep.runner import Sweep, SweepConfig
from t5core.sweep.space import SearchSpace, SearchSpaceError, load_space, parse_space
from t5core.sweep.study import MissingExtraError, SweepStateError, load_state

__all__ = ["prepare", "Sweep", "SweepConfig", "SweepStateError", "load_state", "SearchSpace",
           "SearchSpaceError", "load_space", "parse_space", "MissingExtraError"]
