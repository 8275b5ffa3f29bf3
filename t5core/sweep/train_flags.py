"""What the trial script accepts: its flag table, and checks of a sweep against it.

The table comes from `python train.py --helpxml` in a subprocess rather than from importing the
script: the sweep process then stays free of TensorFlow and of the script's absl flag registry
(which would clash with the sweep's own), and any absl script can be swept, including the small
fake trainer the tests use.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Mapping, Sequence

from t5core.errors import FlagError
from t5core.model_dir import EVAL_RECORD_PREFIX, lower_is_better
from t5core.sweep.space import SearchSpace, SearchSpaceError

# Flags of absl/TF/keras themselves, listed by --helpxml but not the script's own.
_FRAMEWORK_MODULES = ("absl.", "tensorflow", "tensorboard", "keras", "tf_keras")
# Flags the sweep sets for every trial, so neither the space nor the fixed flags may.
SWEEP_OWNED = ("model_dir",)
# Flags that choose where the data comes from; none of them set means the embedded task set.
DATA_SOURCE_FLAGS = ("task", "mixture", "train_file")
# Metrics of the embedded default task set (t5core.data.trainer_inputs.embedded_inputs: the decoded
# "accuracy") plus the validation loss and token accuracy every Trainer evaluation writes.
# tests/test_sweep.py checks this against the event files of a real run.
EMBEDDED_TASK_METRICS = ("accuracy", "eval_loss", "eval_token_accuracy")


@dataclasses.dataclass(frozen=True)
class FlagInfo:
    name: str
    type: str  # absl's: "int", "float", "bool", "string", "string enum", "multi_string", ...
    default: str | None
    enum_values: tuple[str, ...] = ()


def read_flags(train_script: str, python: str = sys.executable, timeout: float = 300) -> dict:
    """{name: FlagInfo} of the script's own flags, from its --helpxml."""
    if not os.path.exists(train_script):
        raise FileNotFoundError(f"--train_script={train_script} does not exist")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([python, train_script, "--helpxml"], capture_output=True, text=True,
                          env=env, timeout=timeout)
    start = proc.stdout.find("<?xml")
    if start < 0:
        raise FlagError(f"--train_script={train_script}: its --helpxml printed no flag table "
                        f"(exit code {proc.returncode}):\n{proc.stderr[-2000:]}")
    return parse_helpxml(proc.stdout[start:])


def parse_helpxml(xml_text: str) -> dict:
    flags = {}
    for node in ET.fromstring(xml_text).iter("flag"):
        module = node.findtext("file") or ""
        if module.startswith(_FRAMEWORK_MODULES):
            continue
        name = node.findtext("name")
        flags[name] = FlagInfo(name, node.findtext("type") or "string", node.findtext("default"),
                               tuple(e.text for e in node.findall("enum_value")))
    return flags


def _unknown(name: str, flags: Mapping, where: str) -> SearchSpaceError:
    close = difflib.get_close_matches(name, list(flags), n=3)
    hint = f" Did you mean {', '.join('--' + c for c in close)}?" if close else ""
    return SearchSpaceError(f"{where}: --{name} is not a flag of the training script.{hint}")


def check_value(info: FlagInfo, value, where: str) -> None:
    """Raises if `value` cannot be passed as --name=value to this flag."""
    t = info.type
    ok = True
    if t == "bool":
        ok = isinstance(value, bool)
    elif t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif t.endswith("enum"):
        ok = isinstance(value, str) and value in info.enum_values
    elif t.startswith("multi") or t.endswith("list"):
        raise SearchSpaceError(f"{where}: --{info.name} is a list flag ({t}); sweeping list flags "
                               "is not supported")
    elif t == "string":
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if not ok:
        allowed = f" (one of {', '.join(info.enum_values)})" if info.enum_values else ""
        raise SearchSpaceError(f"{where}: {value!r} is not a valid value for --{info.name}, a "
                               f"{t} flag{allowed}")


def check_space(space: SearchSpace, flags: Mapping, fixed: Mapping) -> None:
    """The space against the flag table and the fixed (passed-through) flags."""
    for p in space.params:
        if p.name not in flags:
            raise _unknown(p.name, flags, "search space")
        if p.name in SWEEP_OWNED:
            raise SearchSpaceError(f"search space: --{p.name} is set by the sweep for each trial "
                                   "and cannot be searched")
        if p.name in fixed:
            raise SearchSpaceError(
                f"--{p.name} is both searched (in the space) and fixed (passed to every trial as "
                f"--{p.name}={fixed[p.name]}): remove one of them")
        info = flags[p.name]
        where = f"search space {p.name}"
        if p.kind == "choice":
            for v in p.values:
                check_value(info, v, where)
        elif p.kind == "int":
            if info.type not in ("int", "float"):
                raise SearchSpaceError(f"{where}: an int range for --{p.name}, a {info.type} flag")
        else:
            if info.type != "float":
                hint = " (use type: int for integer flags)" if info.type == "int" else ""
                raise SearchSpaceError(f"{where}: a {p.kind} range gives real numbers but "
                                       f"--{p.name} is a {info.type} flag{hint}")


def parse_fixed_flags(args: Sequence[str], flags: Mapping) -> dict:
    """['--a=1', '--nob', '--c', '2'] -> {'a': '1', 'b': 'false', 'c': '2'}, checked by name."""
    fixed, i = {}, 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            raise SearchSpaceError(f"train flags: unexpected argument {arg!r} (expected "
                                   "--name=value)")
        body = arg.lstrip("-")
        if "=" in body:
            name, value = body.split("=", 1)
        else:
            name, value = body, None
        if value is None:
            if name in flags and flags[name].type == "bool":
                value = "true"
            elif name.startswith("no") and name[2:] in flags and flags[name[2:]].type == "bool":
                name, value = name[2:], "false"
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                if name not in flags:
                    raise _unknown(name, flags, "train flags")
                raise SearchSpaceError(f"train flags: --{name} needs a value")
        if name not in flags:
            raise _unknown(name, flags, "train flags")
        if name in SWEEP_OWNED:
            raise SearchSpaceError(f"train flags: --{name} is set by the sweep (each trial gets "
                                   "sweep_dir/trials/<trial>); do not pass it")
        if name in fixed and fixed[name] != value:
            raise SearchSpaceError(f"train flags: --{name} given twice ({fixed[name]} and {value})")
        _check_fixed_value(flags[name], value)
        fixed[name] = value
        i += 1
    return fixed


def _check_fixed_value(info: FlagInfo, text: str) -> None:
    where = f"train flags: --{info.name}={text}"
    try:
        if info.type == "int":
            int(text)
        elif info.type == "float":
            float(text)
    except ValueError:
        raise SearchSpaceError(f"{where}: not a valid {info.type}") from None
    if info.type == "bool" and text.lower() not in ("true", "false", "1", "0"):
        raise SearchSpaceError(f"{where}: not true/false")
    if info.type.endswith("enum") and text not in info.enum_values:
        raise SearchSpaceError(f"{where}: must be one of {', '.join(info.enum_values)}")


def format_flag(name: str, value) -> str:
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no{name}"
    if isinstance(value, float):
        return f"--{name}={value!r}"
    return f"--{name}={value}"


def uses_embedded_task(space: SearchSpace, fixed: Mapping) -> bool:
    return not any(fixed.get(n) for n in DATA_SOURCE_FLAGS) and not any(
        n in space.names for n in DATA_SOURCE_FLAGS)


def normalize_metric(name: str) -> str:
    """'eval/accuracy' (the trainer history's key) and 'accuracy' (the event tag) are the same."""
    return name.removeprefix(EVAL_RECORD_PREFIX)


def default_direction(metric: str) -> str:
    """The direction in which the trainer keeps its best checkpoint for `metric`."""
    return "min" if lower_is_better(metric) else "max"


def check_objective(objective: str, direction: str, available: Sequence[str] | None,
                    source: str, trainer_rule: bool = True) -> None:
    if available is not None and objective not in available:
        close = difflib.get_close_matches(objective, list(available), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SearchSpaceError(f"--objective={objective!r} is not a metric {source} produces "
                               f"(it produces {', '.join(sorted(available))}).{hint}")
    if trainer_rule and direction != default_direction(objective):
        raise SearchSpaceError(
            f"--direction={direction} for {objective!r} contradicts the trainer, which keeps the "
            f"{'lowest' if default_direction(objective) == 'min' else 'highest'} {objective} as "
            "its best checkpoint (lowest only for metrics named *loss*); the sweep's best trial "
            "and the trial's best checkpoint would disagree")
