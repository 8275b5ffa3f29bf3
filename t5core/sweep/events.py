"""A trial's evaluation metrics, read from what the trainer writes into its model_dir.

Two sources, in order of preference:
1. `model_dir/train_log.jsonl`, which the Trainer appends to at every step and evaluation
   ({"step": N, "eval/<metric>": value, ...} for evaluations): float64, readable while the trial
   runs, and a resumed run appends again from its checkpoint's step, so the last record of a
   step wins. A line still being written is skipped.
2. The TensorBoard event files under `model_dir/eval/` (float32), for training scripts that write
   no train_log.jsonl. They are read with a small TFRecord reader that also tolerates a record
   still being written and needs no TensorFlow; when a run was resumed the same step can occur
   in several event files, and the later file wins.
`model_dir/results.json`, written once at the end of a run, names the best checkpoint.
"""

from __future__ import annotations

import glob
import json
import os
import struct

RESULTS_FILE = "results.json"
TRAIN_LOG = "train_log.jsonl"


def _records(path: str):
    """Payloads of a TFRecord file; stops quietly at a truncated (still being written) record."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        end = pos + 12 + length + 4  # length, its crc, payload, payload crc
        if end > len(data):
            return
        yield data[pos + 12:pos + 12 + length]
        pos = end


def read_scalars(log_dir: str) -> dict[int, dict[str, float]]:
    """{step: {tag: value}} of the scalar summaries in the event files of one run directory."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util

    out: dict[int, dict[str, float]] = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")),
                       key=lambda p: (os.path.getmtime(p), p)):
        for payload in _records(path):
            event = event_pb2.Event()
            try:
                event.ParseFromString(payload)
            except Exception:  # noqa: BLE001 - a corrupt record ends what can be read
                break
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    number = float(value.simple_value)
                elif kind == "tensor":
                    array = tensor_util.make_ndarray(value.tensor)
                    if array.size != 1 or array.dtype.kind not in "fiu":
                        continue  # text summaries (predictions) and the like
                    number = float(array.reshape(()))
                else:
                    continue
                out.setdefault(int(event.step), {})[value.tag] = number
    return out


def read_train_log(model_dir: str) -> dict[int, dict[str, float]] | None:
    """{step: {metric: value}} of the evaluation records in train_log.jsonl; None if no file."""
    path = os.path.join(model_dir, TRAIN_LOG)
    if not os.path.exists(path):
        return None
    evals: dict[int, dict[str, float]] = {}
    with open(path, errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the line being written right now
            metrics = {k[len("eval/"):]: float(v) for k, v in record.items()
                       if k.startswith("eval/") and isinstance(v, (int, float))}
            if metrics and "step" in record:
                evals[int(record["step"])] = metrics
    return evals


def read_results(model_dir: str) -> dict | None:
    """The trainer's end-of-run summary (step, last eval, best value, best checkpoint)."""
    path = os.path.join(model_dir, RESULTS_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        return None


def read_evals(model_dir: str) -> tuple[dict, str]:
    """({step: {metric: value}}, source) for a trial's model_dir; empty when nothing yet."""
    evals = read_train_log(model_dir)
    if evals:
        return evals, TRAIN_LOG
    eval_dir = os.path.join(model_dir, "eval")
    if os.path.isdir(eval_dir):
        return read_scalars(eval_dir), "eval event files"
    return {}, "nothing"


def best_so_far(evals: dict, metric: str, direction: str) -> list[tuple[int, float]]:
    """[(step, best value of `metric` at or before step)] in step order."""
    out, best = [], None
    for step in sorted(evals):
        if metric not in evals[step]:
            continue
        v = evals[step][metric]
        if best is None or (v < best if direction == "min" else v > best):
            best = v
        out.append((step, best))
    return out


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
