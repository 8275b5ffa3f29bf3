"""Strict name-rule tables: every source tensor mapped or skipped, every variable assigned.

Each checkpoint format is a table of rules, tried in order: a regular expression over the
source tensor's name, the model variable it fills (a template over the match's groups) and a
transform. Loading first plans the whole mapping from names and shapes alone; any unmapped source
tensor, unassigned model variable, duplicate or shape mismatch is reported together, before a
single value is read.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Mapping

import numpy as np


class CheckpointMismatchError(ValueError):
    """The checkpoint and the model disagree; the message lists every offender."""


def identity(array):
    return array


def transpose(array):
    return np.transpose(array)


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str  # full-match regex over the source name
    target: str | None  # model variable path template ("encoder/block_{0}/..."); None: skip
    transform: Callable = identity
    reason: str = ""  # why a skipped tensor is skipped
    only_if_target_exists: bool = False  # e.g. lm_head in a tied model: skip when absent

    def match(self, name):
        return re.fullmatch(self.pattern, name)


def skip(pattern: str, reason: str) -> Rule:
    return Rule(pattern, None, reason=reason)


def transformed_shape(transform, shape):
    """The shape a transform gives, found on a zero-size stand-in (no data is touched)."""
    if transform is identity:
        return tuple(shape)
    probe = np.lib.stride_tricks.as_strided(np.zeros((), np.float32), shape=tuple(shape),
                                            strides=(0,) * len(shape))
    return tuple(transform(probe).shape)


@dataclasses.dataclass
class Plan:
    assignments: list  # (source name, variable path, transform)
    skipped: list  # (source name, reason)


def plan_mapping(source_shapes: Mapping[str, tuple], rules: Iterable[Rule],
                 variable_shapes: Mapping[str, tuple], source: str = "checkpoint") -> Plan:
    """Matches source names to model variables; raises CheckpointMismatchError listing all misses."""
    rules = list(rules)
    assignments, skipped, unmapped, shape_errors, missing_targets = [], [], [], [], []
    filled: dict[str, str] = {}
    duplicates = []
    for name in sorted(source_shapes):
        for rule in rules:
            m = rule.match(name)
            if not m:
                continue
            if rule.target is None:
                skipped.append((name, rule.reason))
                break
            target = rule.target.format(*m.groups())
            if target not in variable_shapes:
                if rule.only_if_target_exists:
                    skipped.append((name, f"the model has no {target}"))
                else:
                    missing_targets.append(f"{name} -> {target}")
                break
            if target in filled:
                duplicates.append(f"{target} <- {filled[target]} and {name}")
                break
            want = tuple(variable_shapes[target])
            got = transformed_shape(rule.transform, source_shapes[name])
            if got != want:
                shape_errors.append(f"{name} {tuple(source_shapes[name])} -> {target}: "
                                    f"gives {got}, the model needs {want}")
            filled[target] = name
            assignments.append((name, target, rule.transform))
            break
        else:
            unmapped.append(f"{name} {tuple(source_shapes[name])}")
    unassigned = sorted(set(variable_shapes) - set(filled))
    problems = []
    if shape_errors:
        problems.append("shape mismatches:\n  " + "\n  ".join(shape_errors))
    if unmapped:
        problems.append("tensors no rule maps (unknown or extra):\n  " + "\n  ".join(unmapped))
    if missing_targets:
        problems.append("tensors for variables this model does not have (config mismatch?):\n  "
                        + "\n  ".join(missing_targets))
    if duplicates:
        problems.append("variables filled twice:\n  " + "\n  ".join(duplicates))
    if unassigned:
        problems.append("model variables the checkpoint does not provide (missing tensors):\n  "
                        + "\n  ".join(unassigned))
    if problems:
        raise CheckpointMismatchError(f"{source} does not fit the model:\n" + "\n".join(problems))
    return Plan(assignments, skipped)
