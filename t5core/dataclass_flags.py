"""absl flags made from a dataclass's fields, and the one check of option values against their
metadata (choices, `Bound`s, and the other options an option has an effect only with):
docs/architecture.md, "Flags from dataclasses"."""

from __future__ import annotations

import dataclasses
import functools
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
_KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


# Beyond this a float is infinite in float32, the dtype a training step computes in.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class Bound:
    """The range a number must lie in: from `low` (excluded when `low_open`) up to `high`
    (included only when `high_closed`); `whole` numbers only when set. NaN and infinities lie
    outside every bound; `low=-math.inf`: any finite number."""
    low: float
    low_open: bool = False
    high: float | None = None
    whole: bool = False
    high_closed: bool = False

    def problem(self, value) -> str | None:
        """'must be ... (got value)' when `value` lies outside, else None."""
        ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
            and math.isfinite(value) and (self.high is None or value < self.high or (
                self.high_closed and value == self.high)) \
            and (value > self.low if self.low_open else value >= self.low) \
            and (not self.whole or value == int(value))
        if ok:
            return None
        low = f"> {self.low}" if self.low_open else f">= {self.low}"
        if self.high is not None:
            text = (f"in {'(' if self.low_open else '['}{self.low}, {self.high}"
                    f"{']' if self.high_closed else ')'}")
        elif self.whole:
            text = low if isinstance(value, int) else f"a whole number {low}"
        else:
            text = "a finite number" + (f" {low}" if math.isfinite(self.low) else "")
        return f"must be {text} (got {value!r})"


COUNT = Bound(1, whole=True)        # sizes and step counts of at least one
STEPS = Bound(0, whole=True)        # counts that may be 0 (0: off, or none)
NONNEGATIVE = Bound(0)              # coefficients and rates, 0 for off
POSITIVE = Bound(0, low_open=True)  # learning rates, thresholds
FRACTION = Bound(0, high=1)         # probabilities: dropout, label smoothing, momentum
# Sequence lengths in tokens: each sizes padded arrays before any model runs, so a length a file
# recorded is held below where such an array would exhaust memory.
LENGTH = Bound(1, high=1 << 16, whole=True)
# Seeds: NumPy's and Optuna's random states take no other.
SEED = Bound(0, high=2**32, whole=True)
FINITE = Bound(-math.inf)           # any finite number, e.g. beam search's length-penalty exponent


def _is_set(value) -> bool:
    """Whether an option's value turns it on: anything but None, "", 0 and False."""
    return value is not None and value != "" and value is not False and value != 0


@dataclasses.dataclass(frozen=True)
class OnlyWith:
    """Where an option has an effect: `flag` (or, for a tuple, any one of them) set to one of
    `values`; with no `values`, set at all (not None, "", 0 or False). Declared in `option(...,
    only_with=...)` or `declare_only_with`; an option set where it fails is refused, or, where
    it is harmless (`refuse=False`, e.g. --no_png without PNGs to draw), a note."""
    flag: str | tuple[str, ...]
    values: tuple = ()
    refuse: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return (self.flag,) if isinstance(self.flag, str) else tuple(self.flag)

    def holds(self, value_of) -> bool:
        """Whether the condition holds; `value_of(name)`: the value of the option `name`."""
        return any(value_of(name) in self.values if self.values else _is_set(value_of(name))
                   for name in self.names)

    def describe(self) -> str:
        if self.values:
            return " or ".join(f"--{name}={value}" for name in self.names for value in self.values)
        return " or ".join(f"--{name}" for name in self.names)


@dataclasses.dataclass(frozen=True)
class OnlyWithout(OnlyWith):
    """Where an option has an effect: `flag` (each one, for a tuple) not set (None, "", 0 or
    False), e.g. --input_file, which --input overrides."""

    def holds(self, value_of) -> bool:
        return not any(_is_set(value_of(name)) for name in self.names)


def _conditions(only_with) -> tuple[OnlyWith, ...]:
    return (only_with,) if isinstance(only_with, OnlyWith) else tuple(only_with or ())


def ignored_problem(name: str, value, only_with, value_of, refuse: bool = True) -> str | None:
    """'--name=value has no effect ...' when the option `name`, given `value`, has no effect
    because one of its `only_with` conditions (those that refuse, or with `refuse=False` those
    that note) fails; `value_of(other)`: another option's value. None when it acts."""
    for condition in _conditions(only_with):
        if condition.refuse != refuse or condition.holds(value_of):
            continue
        shown = ", ".join(f"--{n}={value_of(n)!r}" for n in condition.names)
        which = "with" if isinstance(condition, OnlyWithout) else "without"
        return f"--{name}={value!r} has no effect {which} {condition.describe()} (here {shown})"
    return None


def check_bound(name: str, value, bound: Bound, error: type[Exception] = ValueError) -> None:
    """Raises `error` ("name must be ...") when `value` (None: not given, allowed) lies outside
    `bound`: library entry points called with Python values check them here."""
    problem = None if value is None else bound.problem(value)
    if problem:
        raise error(f"{name} {problem}")


def option(default: Any, help: str, choices: Sequence[str] | None = None,
           flag: bool = True, bound: Bound | None = None,
           only_with: OnlyWith | Sequence[OnlyWith] = ()) -> Any:
    """A `dataclasses.field` whose metadata makes its flag: `choices` (a str field's enum),
    `flag=False` (no flag), `bound` (a number's range; None allowed when optional), `only_with`
    (conditions on other options without which this one has no effect: a non-default value is
    refused there)."""
    metadata = {"help": help, "flag": flag}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if bound is not None:
        metadata["bound"] = bound
    if only_with:
        metadata["only_with"] = _conditions(only_with)
    return dataclasses.field(default=default, metadata=metadata)


def _values(options) -> dict[str, Any]:
    """{field name: value} of `options` and the dataclasses nested in it."""
    found = {}
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        found.update(_values(value) if dataclasses.is_dataclass(value) else {field.name: value})
    return found


def _value_problem(name: str, metadata: typing.Mapping, value) -> str | None:
    """'name must be ...' when `value` breaks the `choices`, `bound` (of a field's `metadata`) or
    float32's range."""
    choices, bound = metadata.get("choices"), metadata.get("bound")
    if choices is not None and value not in choices:
        shown = ", ".join(c if c else '""' for c in choices)
        return f"{name} must be one of {shown} (got {value!r})"
    if isinstance(value, float) and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
        # Finite in Python but not in the step: every weight would be NaN after one update.
        return (f"{name}={value} is not finite in float32 (|x| must be below "
                f"{_FLOAT32_MAX:.3g})")
    if bound is not None and value is not None and bound.problem(value):
        return f"{name} {bound.problem(value)}"
    return None


def field_problems(options) -> list[str]:
    """One line per field of `options` breaking its `choices`, `bound` or float32's range, or
    other than its default where an `only_with` condition fails (e.g. --lora_rank=4 without
    --peft=lora), e.g. ["--n must be >= 1 (got 0)"]; nested dataclasses check themselves, but a
    condition may name their fields."""
    found = []
    values = _values(options)
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        problem = _value_problem(f"--{field.name}", field.metadata, value)
        if problem:
            found.append(problem)
        elif "only_with" in field.metadata and value != field.default:
            problem = ignored_problem(field.name, value, field.metadata["only_with"], values.get)
            found += [problem] if problem else []
    return found


def value_problems(cls, values: typing.Mapping[str, Any], prefix: str = "--") -> list[str]:
    """One line per value of `values` (by field name of `cls` or a dataclass nested in it; other
    names are not checked) that its field would refuse: a value of another type (an int for a
    float field allowed), or one breaking the field's `choices`, `bound` or float32's range. For
    values an option takes from elsewhere than its flag: a file a run recorded, a flag defined
    without its default (`define_flags(unset=...)`). Each line names the value `prefix` + name."""
    found = []
    for field, kind in _flag_fields(cls):
        if field.name not in values:
            continue
        value = values[field.name]
        optional = field.default is None
        typed = (value is None and optional) or (
            isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))) or (
            kind is float and isinstance(value, int) and not isinstance(value, bool))
        name = prefix + field.name
        problem = (None if typed else f"{name} must be {_KIND_NAMES.get(kind, kind.__name__)} "
                   f"(got {value!r})") or _value_problem(name, field.metadata, value)
        if problem:
            found.append(problem)
    return found


# The attribute of an absl Flag holding its `OnlyWith` conditions (see declare_only_with).
_ONLY_WITH = "t5core_only_with"


def declare_only_with(flag_values: flags.FlagValues,
                      table: typing.Mapping[str, OnlyWith | Sequence[OnlyWith]]) -> None:
    """Declares, for a program's absl flags, {flag name: the conditions without which it has no
    effect}; `flag_problems` refuses such a flag given on the command line."""
    for name, only_with in table.items():
        for condition in _conditions(only_with):
            for other in condition.names:
                if other not in flag_values:
                    raise KeyError(f"--{name} is declared only with --{other}, which is no flag")
        setattr(flag_values[name], _ONLY_WITH, _conditions(only_with))


def declared_only_with(flag_values: flags.FlagValues) -> dict[str, tuple[OnlyWith, ...]]:
    """{flag name: its conditions} of the flags `declare_only_with` (or `define_flags`, from the
    fields' metadata) declared."""
    return {name: getattr(flag_values[name], _ONLY_WITH) for name in flag_values
            if getattr(flag_values[name], _ONLY_WITH, ())}


def flag_problems(flag_values: flags.FlagValues, refuse: bool = True) -> list[str]:
    """One line per flag given on the command line where it has no effect (see
    `declare_only_with`): with `refuse`, those to refuse, else the harmless ones to note. The
    programs check this once, before any work (`t5core.cli.command`)."""
    found = []
    for name, only_with in declared_only_with(flag_values).items():
        if flag_values[name].present:
            problem = ignored_problem(name, flag_values[name].value, only_with,
                                      lambda other: flag_values[other].value, refuse)
            found += [problem] if problem else []
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
        # Unset flags take their value from elsewhere: the conditions are that program's.
        if unset is None and "only_with" in field.metadata:
            setattr(flag_values[field.name], _ONLY_WITH, field.metadata["only_with"])
        # A program of the whole dataclass checks its bounds with its other fields once the
        # flags make it (`field_problems`: a FlagError, with its traceback under --verbose);
        # unset flags are checked at parsing, as no dataclass check sees what they are given.
        if unset is None and "bound" in field.metadata:
            setattr(flag_values[field.name], _BOUND, field.metadata["bound"])
        elif "bound" in field.metadata:
            bound_flag(flag_values, field.name, field.metadata["bound"])
        names.append(field.name)
    return names


# The attribute of an absl Flag holding its `Bound` (see bound_flag).
_BOUND = "t5core_bound"


def _check_flag(name: str, bound: Bound, value) -> bool:
    problem = _value_problem(f"--{name}", {"bound": bound}, value)
    if problem:
        raise flags.ValidationError(problem)
    return True


def bound_flag(flag_values: flags.FlagValues, name: str, bound: Bound) -> None:
    """Refuses, at parsing, a value of the number flag `name` outside `bound` (None: not given),
    so that a program ends it in one `error:` line before any work."""
    setattr(flag_values[name], _BOUND, bound)
    flags.register_validator(name, functools.partial(_check_flag, name, bound),
                             flag_values=flag_values)


def flag_bound(flag: flags.Flag) -> Bound | None:
    """The `Bound` `bound_flag` gave `flag`; None: none."""
    return getattr(flag, _BOUND, None)


def flag_problem(flag: flags.Flag) -> str | None:
    """What the check of `bound_flag` says of `flag`'s value (None: nothing, or no bound)."""
    bound = flag_bound(flag)
    return bound and _value_problem(f"--{flag.name}", {"bound": bound}, flag.value)


def define_number(name: str, default, help: str, bound: Bound,
                  flag_values: flags.FlagValues) -> None:
    """An integer flag (a float one where `bound` is not `whole`) checked against `bound` at
    parsing: every number flag a program defines by hand is made here."""
    define = flags.DEFINE_integer if bound.whole else flags.DEFINE_float
    define(name, default, help, flag_values=flag_values)
    bound_flag(flag_values, name, bound)


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
