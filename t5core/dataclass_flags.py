"""absl flags made from a dataclass's fields, and the one check of option values against their
metadata (choices and `Bound`s): docs/architecture.md, "Flags from dataclasses"."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Sequence

import numpy as np
from absl import flags


# The choices of a flag that is on, off, or decided by the program (e.g. --jit_compile).
AUTO_BOOL = ("auto", "true", "false")

_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}


# Beyond this a float is infinite in float32, the dtype a training step computes in.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class Bound:
    """The range a number must lie in: from `low` (excluded when `low_open`) up to, not including,
    `high`; `whole` numbers only when set. NaN and infinities lie outside every bound."""
    low: float
    low_open: bool = False
    high: float | None = None
    whole: bool = False

    def problem(self, value) -> str | None:
        """'must be ... (got value)' when `value` lies outside, else None."""
        ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
            and math.isfinite(value) and (self.high is None or value < self.high) \
            and (value > self.low if self.low_open else value >= self.low) \
            and (not self.whole or value == int(value))
        if ok:
            return None
        low = f"> {self.low}" if self.low_open else f">= {self.low}"
        if self.high is not None:
            text = f"in {'(' if self.low_open else '['}{self.low}, {self.high})"
        elif self.whole:
            text = low if isinstance(value, int) else f"a whole number {low}"
        else:
            text = f"a finite number {low}"
        return f"must be {text} (got {value!r})"


COUNT = Bound(1, whole=True)        # sizes and step counts of at least one
STEPS = Bound(0, whole=True)        # counts that may be 0 (0: off, or none)
NONNEGATIVE = Bound(0)              # coefficients and rates, 0 for off
POSITIVE = Bound(0, low_open=True)  # learning rates, thresholds
FRACTION = Bound(0, high=1)         # probabilities: dropout, label smoothing, momentum


def check_bound(name: str, value, bound: Bound, error: type[Exception] = ValueError) -> None:
    """Raises `error` ("name must be ...") when `value` (None: not given, allowed) lies outside
    `bound`: library entry points called with Python values check them here."""
    problem = None if value is None else bound.problem(value)
    if problem:
        raise error(f"{name} {problem}")


def option(default: Any, help: str, choices: Sequence[str] | None = None,
           flag: bool = True, bound: Bound | None = None) -> Any:
    """A `dataclasses.field` whose metadata makes its flag: `choices` (a str field's enum),
    `flag=False` (no flag), `bound` (a number's range; None allowed when optional)."""
    metadata = {"help": help, "flag": flag}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if bound is not None:
        metadata["bound"] = bound
    return dataclasses.field(default=default, metadata=metadata)


def field_problems(options) -> list[str]:
    """One line per field of `options` breaking its `choices`, `bound` or float32's range, e.g.
    ["--n must be >= 1 (got 0)"]; nested dataclasses check themselves."""
    found = []
    for field in dataclasses.fields(options):
        choices, bound = field.metadata.get("choices"), field.metadata.get("bound")
        value = getattr(options, field.name)
        if choices is not None and value not in choices:
            shown = ", ".join(c if c else '""' for c in choices)
            found.append(f"--{field.name} must be one of {shown} (got {value!r})")
        elif isinstance(value, float) and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
            # Finite in Python but not in the step: every weight would be NaN after one update.
            found.append(f"--{field.name}={value} is not finite in float32 (|x| must be below "
                         f"{_FLOAT32_MAX:.3g})")
        elif bound is not None and value is not None and bound.problem(value):
            found.append(f"--{field.name} {bound.problem(value)}")
    return found



def auto_bool(value: str) -> bool | None:
    """True or False for "true" or "false"; None for "auto" (the program decides)."""
    if value not in AUTO_BOOL:
        raise ValueError(f"expected one of {', '.join(AUTO_BOOL)}, got {value!r}")
    return None if value == "auto" else value == "true"


def _flag_fields(cls) -> list[tuple[dataclasses.Field, type]]:
    """[(field, its type)] of the fields of `cls` that have flags, nested dataclasses included."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        kind = _plain_type(hints[field.name])
        if not field.metadata.get("flag", True):
            continue
        if dataclasses.is_dataclass(kind):
            found += _flag_fields(kind)
        else:
            found.append((field, kind))
    return found


def _plain_type(hint) -> type:
    """int for `int` and for `int | None`; the hint unchanged otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return hint


def define_flags(cls, flag_values: flags.FlagValues = flags.FLAGS,
                 module_name: str | None = None,
                 unset: typing.Mapping[str, str] | None = None) -> list[str]:
    """Defines a flag for each field of the dataclass `cls` (see the module docstring).

    Args:
      cls: the dataclass.
      flag_values: default: absl's global FLAGS.
      module_name: the module --helpfull lists them under; None: this one.
      unset: when given, only these fields get a flag, defaulting to None (the program takes
        the value from elsewhere), its help noting the field it maps to.

    Returns:
      The names of the flags defined.

    Raises:
      TypeError: a field of a type no flag can hold, or without help or default.
    """
    names = []
    for field, kind in _flag_fields(cls):
        if unset is not None and field.name not in unset:
            continue
        help_text = field.metadata.get("help")
        if not help_text:
            raise TypeError(f"{cls.__name__}.{field.name} has no help text in its metadata")
        if field.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name} has no default for its flag")
        default = field.default if unset is None else None
        if unset is not None:
            help_text = f"{help_text} {unset[field.name]}"
        choices = field.metadata.get("choices")
        if choices is not None:
            flags.DEFINE_enum(field.name, default, list(choices), help_text,
                              flag_values=flag_values, module_name=module_name)
        elif kind in _DEFINE:
            _DEFINE[kind](field.name, default, help_text, flag_values=flag_values,
                          module_name=module_name)
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: no flag type for {kind!r}")
        names.append(field.name)
    return names


def from_flags(cls, flag_values: flags.FlagValues = flags.FLAGS):
    """An instance of `cls` from the flags `define_flags` made (nested dataclasses too); fields
    without flags keep their defaults."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        kind = _plain_type(hints[field.name])
        if dataclasses.is_dataclass(kind):
            values[field.name] = from_flags(kind, flag_values)
        elif field.metadata.get("flag", True):
            values[field.name] = flag_values[field.name].value
    return cls(**values)
