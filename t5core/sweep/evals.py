"""A trial's evaluations, read from the `train_log.jsonl` that its trainer appends to.

The trainer appends one record per evaluation, {"step": N, "eval/<metric>": value, ...}, so the
file can be read while the trial runs; a line still being written is skipped. A resumed run
appends again from its checkpoint's step, so the last record of a step wins.
"""

from __future__ import annotations

import math

from t5core import model_dir
from t5core.errors import ModelDirError
from t5core.file_reads import is_int, open_file, parse_json, present


def read_evals(directory: str) -> dict[int, dict[str, float]] | None:
    """{step: {metric: value}} of a model_dir's evaluations; None when it has no train_log."""
    path = model_dir.path(directory, model_dir.TRAIN_LOG)
    if not present(path):
        return None
    evals: dict[int, dict[str, float]] = {}
    with open_file(path, ModelDirError) as f:
        for line in f:
            try:
                record = parse_json(line, path, ValueError, nonfinite=True)
            except ValueError:
                continue  # the line being written right now, or a damaged one
            if not isinstance(record, dict):
                continue
            prefix = model_dir.EVAL_RECORD_PREFIX
            # null is how strict JSON writes a non-finite value (file_writes.json_text): it stays
            # NaN here, so the trial fails for its objective rather than for a missing one.
            metrics = {k.removeprefix(prefix): math.nan if v is None else float(v)
                       for k, v in record.items()
                       if k.startswith(prefix) and (v is None or isinstance(v, (int, float)))}
            if metrics and is_int(record.get("step")):
                evals[record["step"]] = metrics
    return evals


def pick(evals: dict, metric: str, direction: str, reduce: str = "best"):
    """(step, metrics at that step) of the best (or last) evaluation with `metric`; None if none."""
    steps = [s for s in sorted(evals) if metric in evals[s]]
    if not steps:
        return None
    if reduce == "last":
        step = steps[-1]
    else:
        sign = 1 if direction == "min" else -1
        # Ties go to the earliest step, as in the trainer (it saves only on strict improvement).
        step = min(steps, key=lambda s: (sign * evals[s][metric], s))
    return step, dict(evals[step])
