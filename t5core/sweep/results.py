"""A sweep's outputs: the results table (CSV + JSONL), TensorBoard HParams, the named best trial.

Everything here is rewritten from the sweep's record (study.py) after each trial, atomically, so
the files are always complete, even if the sweep is killed while writing.
HParams summaries are written with TensorBoard's own protos and event writer (no TensorFlow):
the experiment (domains, metrics) in sweep_dir, one session per finished trial in its model_dir,
whose `eval` run holds the metrics; `tensorboard --logdir <sweep_dir>` shows the dashboard.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import shutil
import socket
import tempfile
import time

from t5core import model_dir as run_files

RESULTS_CSV = "results.csv"
RESULTS_JSONL = "results.jsonl"
BEST_INFO = "best.json"
BEST_LINK = "best_trial"  # sweep_dir/best_trial -> trials/<best trial id>

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: str, text: str) -> None:
    """Write via a temporary file in the same folder and rename: readers see old or new, whole."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for everyone to read
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def table_rows(trials, param_names, objective):
    metric_names = sorted({k for t in trials for k in (t.get("metrics") or {})} - {objective})
    header = (["trial", "status", objective] + list(param_names)
              + ["step", "seconds"] + metric_names + ["error"])
    rows = []
    for t in trials:
        metrics = t.get("metrics") or {}
        error = (t.get("error") or "").strip().splitlines()
        rows.append([t["id"], t["status"], t.get("value")]
                    + [t["params"].get(n) for n in param_names]
                    + [t.get("step"), round(t["seconds"], 1) if t.get("seconds") else None]
                    + [metrics.get(m) for m in metric_names]
                    + [error[-1][:200] if error else ""])
    return header, rows


def write_tables(sweep_dir: str, trials, param_names, objective) -> None:
    header, rows = table_rows(trials, param_names, objective)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([[_fmt(v) if isinstance(v, float) else ("" if v is None else v)
                       for v in row] for row in rows])
    atomic_write(os.path.join(sweep_dir, RESULTS_CSV), buf.getvalue())
    lines = [json.dumps({k: t.get(k) for k in ("id", "status", "value", "params", "step",
                                                "metrics", "seconds", "attempts", "error",
                                                "pruned_at", "retry_of", "model_dir")})
             for t in trials]
    atomic_write(os.path.join(sweep_dir, RESULTS_JSONL), "\n".join(lines) + "\n")


def markdown_table(trials, param_names, objective, best_id=None) -> str:
    header, rows = table_rows(trials, param_names, objective)
    keep = [i for i, h in enumerate(header) if h != "error" or any(r[i] for r in rows)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |",
             "|" + "---|" * len(keep)]
    for row in rows:
        cells = [_fmt(row[i]) for i in keep]
        if row[0] == best_id:
            cells[0] = f"**{cells[0]}** (best)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- TensorBoard HParams ------------------------------------------------------------------------
def _hparam(param):
    from tensorboard.plugins.hparams import summary_v2 as hp

    if param.kind == "choice":
        return hp.HParam(param.name, hp.Discrete(list(param.values)))
    if param.kind == "int":
        return hp.HParam(param.name, hp.IntInterval(int(param.low), int(param.high)))
    return hp.HParam(param.name, hp.RealInterval(float(param.low), float(param.high)))


def _write_summary(log_dir: str, summary_pb, step: int = 0) -> None:
    """One event file with one summary, framed by TensorBoard's RecordWriter (its
    EventFileWriter would go through tf.io.gfile, importing TensorFlow into the sweep)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}"
                                 f".{os.getpid()}.sweep")
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        writer.write(event_pb2.Event(wall_time=time.time(),
                                     file_version="brain.Event:2").SerializeToString())
        writer.write(event_pb2.Event(wall_time=time.time(), step=step,
                                     summary=summary_pb).SerializeToString())


def write_hparams_experiment(sweep_dir: str, space, objective: str, metrics) -> None:
    """Once per sweep_dir: the HParams experiment (searched flags and their domains, metrics)."""
    if glob.glob(os.path.join(sweep_dir, "events.out.tfevents.*")):
        return
    from tensorboard.plugins.hparams import summary_v2 as hp

    names = [objective] + [m for m in metrics if m != objective]
    pb = hp.hparams_config_pb(
        hparams=[_hparam(p) for p in space.params],
        metrics=[hp.Metric("sweep/objective", display_name=f"{objective} (objective)")]
        + [hp.Metric(m, group="eval", display_name=f"eval {m}") for m in names])
    _write_summary(sweep_dir, pb)


def write_hparams_session(trial: dict, objective: str) -> None:
    """Once per finished trial: its flags as an HParams session, its objective as a scalar."""
    model_dir = trial["model_dir"]
    marker = run_files.path(model_dir, run_files.HPARAMS_MARKER)
    if os.path.exists(marker) or trial.get("value") is None:
        return
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.plugins.scalar import summary_v2 as scalar

    _write_summary(model_dir, hp.hparams_pb(trial["params"], trial_id=trial["id"]))
    _write_summary(model_dir, scalar.scalar_pb("sweep/objective", float(trial["value"])),
                   step=int(trial.get("step") or 0))
    atomic_write(marker, objective + "\n")


# -- the best trial ------------------------------------------------------------------------------
def trainer_results(model_dir: str) -> dict:
    """The trainer's results.json ({} if it wrote none, or none that reads as an object)."""
    try:
        with open(run_files.path(model_dir, run_files.RESULTS)) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _best_checkpoint(model_dir: str) -> str | None:
    """The best checkpoint that the trainer's results.json names (None if it wrote none)."""
    return trainer_results(model_dir).get("best_checkpoint")


def published_best(sweep_dir: str) -> str | None:
    """The id of the trial that best.json names, if any."""
    try:
        with open(os.path.join(sweep_dir, BEST_INFO)) as f:
            return json.load(f).get("trial")
    except (OSError, ValueError):
        return None


def publish_best(sweep_dir: str, trial: dict, objective: str, direction: str) -> dict:
    """best.json + sweep_dir/best_trial -> trials/<id> (relative link; a copy if links fail)."""
    link = os.path.join(sweep_dir, BEST_LINK)
    target = os.path.relpath(trial["model_dir"], sweep_dir)
    checkpoint = _best_checkpoint(trial["model_dir"])
    info = {"trial": trial["id"], "objective": objective, "direction": direction,
            "value": trial["value"], "step": trial.get("step"), "params": trial["params"],
            "metrics": trial.get("metrics"), "model_dir": target,
            "checkpoint": os.path.relpath(checkpoint, sweep_dir) if checkpoint else None,
            "best_trial_link": BEST_LINK, "command": trial.get("command")}
    tmp_link = link + ".tmp"
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    try:
        os.symlink(target, tmp_link)
        if os.path.isdir(link) and not os.path.islink(link):
            shutil.rmtree(link)
        os.replace(tmp_link, link)
    except OSError:  # no symlinks here: keep a copy of the checkpoint folder instead
        if os.path.lexists(link):
            shutil.rmtree(link) if os.path.isdir(link) and not os.path.islink(link) \
                else os.unlink(link)
        shutil.copytree(trial["model_dir"], link)
    atomic_write(os.path.join(sweep_dir, BEST_INFO), json.dumps(info, indent=2) + "\n")
    return info


def delete_checkpoints(model_dir: str) -> None:
    """For --keep_checkpoints=best: frees a trial's checkpoints, keeps its logs and events."""
    checkpoints = run_files.path(model_dir, run_files.CHECKPOINT_PREFIX + "-*")
    for path in glob.glob(checkpoints) + [run_files.path(model_dir, run_files.CHECKPOINT_STATE)]:
        if os.path.exists(path):
            os.unlink(path)
    best = run_files.path(model_dir, run_files.BEST)
    if os.path.isdir(best):
        shutil.rmtree(best)
