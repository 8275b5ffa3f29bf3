"""Strict name-rule tables: every source tensor mapped or skipped, every variable assigned."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from t5core.errors import CheckpointError


class CheckpointMismatchError(CheckpointError):
    """The checkpoint and the model disagree; the message lists every offender."""


class Transform:
    """A named array transform that also says what it does to a shape (no data touched)."""

    def __init__(self, name: str, fn: Callable, shape_fn: Callable):
        self.name, self._fn, self._shape_fn = name, fn, shape_fn

    def __call__(self, array):
        return self._fn(array)

    def output_shape(self, shape) -> tuple:
        return tuple(self._shape_fn(tuple(shape)))

    def __repr__(self):
        return f"Transform({self.name})"


identity = Transform("identity", lambda a: a, lambda s: s)
transpose = Transform("transpose", np.transpose, lambda s: s[::-1])


def _merge_trailing(shape):
    return (shape[0], int(np.prod(shape[1:], dtype=np.int64))) if len(shape) > 2 else shape


def _merge_leading(shape):
    return (int(np.prod(shape[:-1], dtype=np.int64)), shape[-1]) if len(shape) > 2 else shape


# T5X may keep attention kernels split by head: q/k/v `[d_model, heads, d_kv]`, out
# `[heads, d_kv, d_model]`. Heads are the major axis of t5core's `heads * d_kv` columns, exactly as
# a row-major reshape orders them, so merging is a reshape. 2-D kernels pass unchanged.
merge_heads_out = Transform("merge_heads_out", lambda a: a.reshape(_merge_trailing(a.shape)),
                            _merge_trailing)
merge_heads_in = Transform("merge_heads_in", lambda a: a.reshape(_merge_leading(a.shape)),
                           _merge_leading)


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str  # full-match regex over the source name
    # The model variable: a path template over the match's groups ("encoder/block_{0}/..."), a
    # function of the match, or None to skip.
    target: str | Callable | None
    transform: Transform = identity
    reason: str = ""  # why a skipped tensor is skipped
    only_if_target_exists: bool = False  # e.g. lm_head in a tied model: skip when absent
    # A skipped copy (or an absent target of only_if_target_exists) must equal this variable.
    equals: str | None = None

    def match(self, name):
        return re.fullmatch(self.pattern, name)


def skip(pattern: str, reason: str, equals: str | None = None) -> Rule:
    return Rule(pattern, None, reason=reason, equals=equals)


@dataclasses.dataclass
class Plan:
    assignments: list  # (source name, variable path, transform)
    skipped: list  # (source name, reason)
    checks: list = dataclasses.field(default_factory=list)  # (source name, variable path)


def _normalise_groups(groups):
    # Mesh-TF numbers blocks "block_007"; t5core paths use "block_7".
    return [str(int(g)) if g is not None and g.isdigit() else g for g in groups]


def plan_mapping(source_shapes: Mapping[str, tuple], rules: Iterable[Rule],
                 variable_shapes: Mapping[str, tuple], source: str = "checkpoint") -> Plan:
    """Matches source names to model variables; raises CheckpointMismatchError listing all misses."""
    rules = list(rules)
    assignments, skipped, checks = [], [], []
    unmapped, shape_errors, missing_targets, duplicates = [], [], [], []
    filled: dict[str, str] = {}
    for name in sorted(source_shapes):
        shape = tuple(source_shapes[name])
        for rule in rules:
            m = rule.match(name)
            if not m:
                continue
            if rule.target is None:
                target = None
            elif callable(rule.target):
                target = rule.target(m)
            else:
                target = rule.target.format(*_normalise_groups(m.groups()))
            if target is None or (target not in variable_shapes and rule.only_if_target_exists):
                reason = rule.reason or f"the model has no {target}"
                skipped.append((name, reason))
                if rule.equals is not None:
                    want = tuple(variable_shapes.get(rule.equals, ()))
                    if rule.equals not in variable_shapes:
                        missing_targets.append(f"{name} (a copy of {rule.equals}, absent)")
                    elif shape != want:
                        shape_errors.append(f"{name} {shape}: a copy of {rule.equals}, which "
                                            f"is {want}")
                    else:
                        checks.append((name, rule.equals))
                break
            if target not in variable_shapes:
                missing_targets.append(f"{name} {shape} -> {target}")
                break
            if target in filled:
                duplicates.append(f"{target} <- {filled[target]} and {name}")
                break
            want = tuple(variable_shapes[target])
            got = rule.transform.output_shape(shape)
            if got != want:
                shape_errors.append(f"{name} {shape} -> {target}: gives {got}, the model "
                                    f"needs {want}")
            filled[target] = name
            assignments.append((name, target, rule.transform))
            break
        else:
            unmapped.append(f"{name} {shape}")
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
    return Plan(assignments, skipped, checks)
