"""What a trial may be given: scripts/train.py's flags, from the dataclasses they are made of.

Flags are parsed by absl into `RunOptions` exactly as train.py parses them, and every trial's
options go through `RunOptions.check`, the trainer's own check: the sweep refuses what train.py
refuses, and nothing else.
"""

from __future__ import annotations

import difflib

from absl import flags

from t5core.commands.train import define_flags
from t5core.dataclass_flags import flag_problem, from_flags
from t5core.errors import FlagError
from t5core.model_dir import lower_is_better
from t5core.sweep.space import Param, SearchSpace, SearchSpaceError
from t5core.training.run import RunOptions

# Flags the sweep sets for every trial, so neither the space nor the fixed flags may.
SWEEP_OWNED = ("model_dir",)
# Flags that choose where the data comes from; none of them set means the embedded task set.
DATA_SOURCE_FLAGS = ("task", "mixture", "train_file")
# Metrics of the embedded default task set (the decoded "accuracy") plus the validation loss and
# token accuracy every Trainer evaluation writes; tests/test_sweep.py checks them on a real run.
EMBEDDED_TASK_METRICS = ("accuracy", "eval_loss", "eval_token_accuracy")
# Trials whose options are checked before the sweep starts (the corners of the space).
CHECKED_TRIALS = 1024


def flag_table() -> flags.FlagValues:
    """train.py's flags, unparsed (a fresh set each time: absl keeps what it parsed)."""
    table = flags.FlagValues()
    define_flags(table)
    return table


def text(value) -> str:
    """A value as --name=<text> passes it (absl reads true/false for bools)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def flag_arg(name: str, value) -> str:
    return f"--{name}={text(value)}"


def _check_name(name: str, table, where: str) -> None:
    """A flag a trial may be given: train.py has it, and the sweep does not set it."""
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f" Did you mean {', '.join('--' + c for c in close)}?" if close else ""
        raise SearchSpaceError(f"{where}: --{name} is not a flag of the training script.{hint}")
    if name in SWEEP_OWNED:
        raise SearchSpaceError(f"{where}: --{name} is set by the sweep for each trial (each "
                               "gets sweep_dir/trials/<trial>); do not pass or search it")


def _parse(table, name: str, argv: list[str], value, where: str) -> None:
    """absl parses `argv` (one flag, given `value`) into `table`; a bad value in one line."""
    try:
        table(["train", *argv])
    except flags.Error:
        flag = table[name]
        choices = getattr(flag.parser, "enum_values", None)
        # A value absl parsed but the flag's bound refused is left in the flag.
        detail = flag_problem(flag) or (f"one of {', '.join(choices)}" if choices
                                        else f"not a valid {flag.flag_type()}")
        raise SearchSpaceError(f"{where}: {value!r} is not a valid value for --{name} "
                               f"({detail})") from None


def parse_fixed_flags(args) -> dict:
    """['--a=1', '--nob', '--c', '2'] -> {'a': '1', 'b': 'false', 'c': '2'}, parsed by absl."""
    table, fixed, args, i = flag_table(), {}, list(args), 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            raise SearchSpaceError(f"train flags: unexpected argument {arg!r} (expected "
                                   "--name=value)")
        name = arg.lstrip("-").split("=", 1)[0]
        if name not in table and name.startswith("no") and name[2:] in table:
            name = name[2:]
        _check_name(name, table, "train flags")
        argv, given = [arg], arg.split("=", 1)[-1]
        if "=" not in arg and not table[name].boolean:
            if i + 1 >= len(args):
                raise SearchSpaceError(f"train flags: --{name} needs a value")
            argv, given, i = [arg, args[i + 1]], args[i + 1], i + 1
        _parse(table, name, argv, given, "train flags")
        value = text(table[name].value)
        if fixed.get(name, value) != value:
            raise SearchSpaceError(f"train flags: --{name} given twice ({fixed[name]} and {value})")
        fixed[name] = value
        i += 1
    return fixed


def check_space(space: SearchSpace, fixed: dict) -> None:
    """Each searched flag exists, is not fixed too, and takes each of its values."""
    table = flag_table()
    for p in space.params:
        _check_name(p.name, table, "search space")
        if p.name in fixed:
            raise SearchSpaceError(
                f"--{p.name} is both searched (in the space) and fixed (passed to every trial as "
                f"--{p.name}={fixed[p.name]}): remove one of them")
        kind = table[p.name].flag_type()
        if p.kind in ("uniform", "log_uniform") and kind != "float":
            hint = " (use type: int for integer flags)" if kind == "int" else ""
            raise SearchSpaceError(f"search space {p.name}: a {p.kind} range gives real numbers "
                                   f"but --{p.name} is a {kind} flag{hint}")
        for value in p.corners():
            _parse(table, p.name, [flag_arg(p.name, value)], value, f"search space {p.name}")


def trial_options(args) -> RunOptions:
    """The RunOptions train.py makes of a trial's arguments."""
    table = flag_table()
    table(["train", *args])
    return from_flags(RunOptions, table)


def check_trials(space: SearchSpace, fixed: dict, median_stopping: bool) -> None:
    """The trainer's own check (RunOptions.check) on the corners of the space, and what the
    median-stopping rule needs of every trial."""
    for corner in space.grid(Param.corners, CHECKED_TRIALS):
        args = [flag_arg(k, v) for k, v in {**fixed, **corner}.items()]
        options = trial_options(args)
        where = f"the trial flags {' '.join(args)}"
        try:
            options.check()
        except FlagError as err:
            raise SearchSpaceError(f"{where}: {err}") from None
        every, steps = options.train.eval_every, options.train.train_steps
        if median_stopping and not 0 < every < steps:
            raise SearchSpaceError(
                f"{where}: --median_stopping compares intermediate evaluations: pass "
                f"--eval_every=N (0 < N < --train_steps) to the trials (got {every})")


def uses_embedded_task(space: SearchSpace, fixed: dict) -> bool:
    return not any(fixed.get(n) for n in DATA_SOURCE_FLAGS) and not any(
        n in space.names for n in DATA_SOURCE_FLAGS)


def default_direction(metric: str) -> str:
    """The direction in which the trainer keeps its best checkpoint for `metric`."""
    return "min" if lower_is_better(metric) else "max"


def check_objective(objective: str, direction: str, available, source: str) -> None:
    if available is not None and objective not in available:
        close = difflib.get_close_matches(objective, list(available), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SearchSpaceError(f"--objective={objective!r} is not a metric {source} produces "
                               f"(it produces {', '.join(sorted(available))}).{hint}")
    if direction != default_direction(objective):
        raise SearchSpaceError(
            f"--direction={direction} for {objective!r} contradicts the trainer, which keeps the "
            f"{'lowest' if default_direction(objective) == 'min' else 'highest'} {objective} as "
            "its best checkpoint (lowest only for metrics named *loss*); the sweep's best trial "
            "and the trial's best checkpoint would disagree")
