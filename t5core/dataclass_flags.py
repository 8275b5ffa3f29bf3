"""absl flags made from a dataclass's fields, so a program's options and the Python API share one
source: the field's name, type and default, and the help text and choices in its metadata.

    @dataclasses.dataclass
    class Options:
        peft: str = option("none", "Parameter-efficient training method.", choices=PEFT_METHODS)
        lora_rank: int = option(8, "--peft=lora: rank r.")

    define_flags(Options)                  # --peft (an enum flag), --lora_rank (an integer flag)
    options = from_flags(Options)          # after absl parsed the command line

Types: bool, int, float, str (an enum flag when the field has choices) and `X | None` of them.
A field whose type is itself a dataclass (with a default_factory) contributes its own fields'
flags; a field made with `option(..., flag=False)` gets none (it keeps its dataclass default, or
the value the caller computes from other flags).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Sequence

from absl import flags

# The choices of a flag that is on, off, or decided by the program (e.g. --jit_compile).
AUTO_BOOL = ("auto", "true", "false")

_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}


def option(default: Any, help: str, choices: Sequence[str] | None = None,
           flag: bool = True) -> Any:
    """A dataclass field with a default and the metadata its flag is made from.

    Args:
      default: the field's default, which is also the flag's.
      help: the flag's help text.
      choices: the allowed values of a str field (the flag is then an enum flag).
      flag: False for a field that no flag sets directly.

    Returns:
      A `dataclasses.field`.
    """
    metadata = {"help": help, "flag": flag}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


def choice_problems(options) -> list[str]:
    """One line per field of the dataclass instance `options` whose value is not one of its
    `choices` (nested dataclasses are left to their own checks).

    Args:
      options: a dataclass instance whose fields were made with `option(..., choices=...)`.

    Returns:
      ["--name must be one of a, b, c (got 'x')", ...], empty when every value is allowed.
    """
    problems = []
    for field in dataclasses.fields(options):
        choices = field.metadata.get("choices")
        value = getattr(options, field.name)
        if choices is not None and value not in choices:
            shown = ", ".join(c if c else '""' for c in choices)
            problems.append(f"--{field.name} must be one of {shown} (got {value!r})")
    return problems


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
        if dataclasses.is_dataclass(kind):
            found += _flag_fields(kind)
        elif field.metadata.get("flag", True):
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
                 module_name: str | None = None) -> list[str]:
    """Defines a flag for each field of the dataclass `cls` (see the module docstring).

    Args:
      cls: the dataclass.
      flag_values: where the flags are defined (absl's global FLAGS by default).
      module_name: the module --helpfull lists them under (the program's, typically); None:
        this one.

    Returns:
      The names of the flags defined.

    Raises:
      TypeError: a field of a type no flag can hold, without help text, or two fields (one of
        them nested) of the same name.
    """
    names = []
    for field, kind in _flag_fields(cls):
        help_text = field.metadata.get("help")
        if not help_text:
            raise TypeError(f"{cls.__name__}.{field.name} has no help text in its metadata")
        if field.name in names:
            raise TypeError(f"{cls.__name__}: two fields named {field.name!r} want a flag")
        if field.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name} has no default for its flag")
        choices = field.metadata.get("choices")
        if choices is not None:
            flags.DEFINE_enum(field.name, field.default, list(choices), help_text,
                              flag_values=flag_values, module_name=module_name)
        elif kind in _DEFINE:
            _DEFINE[kind](field.name, field.default, help_text, flag_values=flag_values,
                          module_name=module_name)
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: no flag type for {kind!r}")
        names.append(field.name)
    return names


def from_flags(cls, flag_values: flags.FlagValues = flags.FLAGS):
    """An instance of `cls` holding the parsed values of the flags `define_flags` made for it.

    Args:
      cls: the dataclass given to `define_flags`.
      flag_values: the parsed flags.

    Returns:
      `cls(...)`, nested dataclasses built the same way; fields without flags keep their defaults.
    """
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        kind = _plain_type(hints[field.name])
        if dataclasses.is_dataclass(kind):
            values[field.name] = from_flags(kind, flag_values)
        elif field.metadata.get("flag", True):
            values[field.name] = flag_values[field.name].value
    return cls(**values)
