"""Search spaces over the trainer's flags: parameter kinds, their Optuna distributions, the grid.

A space is a mapping from a `scripts/train.py` flag name to what is searched for it, read from
JSON or YAML:

    learning_rate: {type: log_uniform, low: 1.0e-4, high: 1.0e-2}
    warmup_steps: [0, 50, 100]                         # a list is shorthand for a choice
    dropout_rate: {type: uniform, low: 0.0, high: 0.3}
    batch_size: {type: choice, values: [16, 32, 64]}
    num_layers: {type: int, low: 2, high: 6}            # inclusive; add `log: true` for log spacing

Grid search needs every parameter to have a finite set of values (choices or int ranges); random
and bayesian search sample all kinds, through Optuna's samplers (`SearchSpace.suggest`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from typing import Any, Mapping

from t5core.errors import T5CoreError, UserFileNotFoundError
from t5core.file_reads import parse_json, read_bytes

class SearchSpaceError(T5CoreError, ValueError):
    """The search space is empty, malformed or contradicts the trainer's flags."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched flag. `values` for choices; `low`/`high` (inclusive) for ranges."""
    name: str
    kind: str
    values: tuple = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False  # int ranges sampled log-uniformly

    @property
    def is_finite(self) -> bool:
        return self.kind in ("choice", "int")

    def grid_values(self) -> list:
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        raise SearchSpaceError(
            f"grid search needs a finite set of values for {self.name!r}, which is a "
            f"{self.kind} range [{self.low}, {self.high}]: give it as a list of values, or use "
            "--method=random or --method=bayesian")

    def corners(self) -> list:
        """The values that bound what trials get: every choice, or a range's two ends."""
        return list(self.values) if self.kind == "choice" else [self.low, self.high]

    def suggest(self, trial):
        """This flag's value for an Optuna trial: its sampler's draw, or the value enqueued."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.values))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high),
                                   log=self.kind == "log_uniform")

    def to_dict(self) -> dict:
        if self.kind == "choice":
            return {"type": "choice", "values": list(self.values)}
        d = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        return d


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def to_dict(self) -> dict:
        return {p.name: p.to_dict() for p in self.params}

    def axes(self) -> dict:
        """{flag: its values}: the grid, as Optuna's GridSampler takes it."""
        return {p.name: p.grid_values() for p in self.params}

    def grid(self, values=Param.grid_values, limit: int | None = None) -> list[dict]:
        """Up to `limit` combinations of each parameter's `values` (its grid values, or
        `Param.corners`: what bounds the trials), the last parameter varying fastest."""
        combos = itertools.product(*(values(p) for p in self.params))
        return [dict(zip(self.names, c)) for c in itertools.islice(combos, limit)]

    def grid_size(self) -> int:
        return math.prod(len(p.grid_values()) for p in self.params)

    @property
    def is_finite(self) -> bool:
        return all(p.is_finite for p in self.params)

    def suggest(self, trial) -> dict:
        """{flag: value} for an Optuna trial, in the order of the space."""
        return {p.name: p.suggest(trial) for p in self.params}


# Each kind of parameter and the keys its entry may have.
KINDS = {"choice": {"type", "values"}, "uniform": {"type", "low", "high"},
         "log_uniform": {"type", "low", "high"}, "int": {"type", "low", "high", "log"}}


def parse_param(name: str, spec: Any, where: str = "search space") -> Param:
    """One entry of a space file -> Param, with a clear error for each kind of mistake."""
    def fail(message):
        raise SearchSpaceError(f"{where}: {message}")

    if isinstance(spec, (list, tuple)):
        spec = {"type": "choice", "values": list(spec)}
    if not isinstance(spec, Mapping):
        fail(f"{name!r} must be a list of values or a mapping with a 'type' ({', '.join(KINDS)}); "
             f"got {spec!r}. To fix a flag for every trial, pass it after '--' instead of "
             "searching it.")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in KINDS:
        fail(f"{name}.type must be one of {', '.join(KINDS)} (got {kind!r})")
    extra = sorted(set(spec) - KINDS[kind])
    if extra:
        fail(f"{name} ({kind}) has unknown keys {extra}; allowed: {sorted(KINDS[kind])}")
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, (list, tuple)) or not values:
            fail(f"{name} has no values to choose from")
        for v in values:
            if not isinstance(v, (str, int, float, bool)):
                fail(f"{name} value {v!r} is not a string, number or bool")
        if len(set(map(json.dumps, values))) != len(values):
            fail(f"{name} lists a value twice: {list(values)}")
        return Param(name, "choice", values=tuple(values))
    for key in ("low", "high"):
        value = spec.get(key)
        if key not in spec:
            fail(f"{name} ({kind}) needs '{key}'")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            fail(f"{name}.{key} must be a finite number (got {value!r})")
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if kind == "int":
        if int(low) != low or int(high) != high:
            fail(f"{name} is an int range but low/high are {low}/{high}")
        low, high = int(low), int(high)
        if low > high:
            fail(f"{name} has low {low} > high {high}")
    elif not low < high:
        fail(f"{name} has low {low} >= high {high} (an empty range; to fix the value, pass the "
             "flag after '--')")
    if (kind == "log_uniform" or log) and low <= 0:
        fail(f"{name} is log-scaled, so low must be > 0 (got {low})")
    return Param(name, kind, low=low, high=high, log=log)


def parse_space(spec: Mapping, where: str = "search space") -> SearchSpace:
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(f"{where}: expected a mapping of flag name -> values or "
                               f"distribution, got {type(spec).__name__}")
    if not spec:
        raise SearchSpaceError(f"{where} is empty: nothing to search. Give at least one flag, e.g. "
                               '{"learning_rate": {"type": "log_uniform", "low": 1e-4, '
                               '"high": 1e-2}}')
    params = []
    for name, entry in spec.items():
        if not isinstance(name, str) or not name:
            raise SearchSpaceError(f"{where}: flag names must be non-empty strings (got {name!r})")
        params.append(parse_param(name.lstrip("-"), entry, where))
    names = [p.name for p in params]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SearchSpaceError(f"{where}: {dupes} given twice")
    return SearchSpace(tuple(params))


def load_space(text_or_path: str) -> SearchSpace:
    """--space: a .json/.yaml/.yml file, or inline JSON."""
    source = text_or_path.strip()
    if not source:
        raise SearchSpaceError("--space is empty: give a JSON/YAML file or inline JSON")
    if source.startswith("{"):
        where, text = "--space (inline JSON)", source
    elif not os.path.exists(source):
        raise UserFileNotFoundError(f"--space={source}: no such file (give a .json/.yaml file or "
                                    "inline JSON starting with '{')")
    else:
        where, text = source, read_bytes(source, SearchSpaceError)
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise SearchSpaceError(f"{source}: not UTF-8 (byte {text[e.start]:#04x} at offset "
                                   f"{e.start})") from None
    if where.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise SearchSpaceError(f"{source}: a YAML space needs PyYAML: pip install "
                                   "t5core[sweep] (or give the space as JSON)") from None
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SearchSpaceError(f"{source}: not valid YAML: {e}") from None
        except RecursionError:
            raise SearchSpaceError(f"{source}: YAML nested too deeply to read") from None
    else:
        spec = parse_json(text, where, SearchSpaceError)
    return parse_space(spec if spec is not None else {}, where)
