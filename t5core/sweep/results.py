"""A sweep's outputs: the results table (CSV + JSONL), TensorBoard HParams, the named best trial,
rewritten atomically after each trial; `tensorboard --logdir <sweep_dir>` shows the HParams."""

from __future__ import annotations

import csv
import errno
import glob
import io
import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from t5core import file_writes
from t5core import model_dir as run_files
from t5core.errors import T5CoreError
from t5core.file_reads import open_file, read_json

RESULTS_CSV = "results.csv"
RESULTS_JSONL = "results.jsonl"
BEST_INFO = "best.json"
BEST_LINK = "best_trial"  # sweep_dir/best_trial -> trials/<best trial id>
# What os.symlink raises on a file system without symbolic links (FAT, some network mounts).
_NO_SYMLINKS = {errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def _fmt(value, exact=False) -> str:
    # The CSV is data (float(cell) gives back results.jsonl's value); the markdown is for reading.
    if isinstance(value, float) and not exact:
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
    csv.writer(buf).writerows([header] + [[_fmt(v, exact=True) for v in row] for row in rows])
    file_writes.write_text(os.path.join(sweep_dir, RESULTS_CSV), buf.getvalue())
    keys = ("id", "status", "value", "params", "step", "metrics", "seconds", "attempts", "error",
            "pruned_at", "retry_of", "model_dir")
    lines = [file_writes.json_text({k: t.get(k) for k in keys}) for t in trials]
    file_writes.write_text(os.path.join(sweep_dir, RESULTS_JSONL), "\n".join(lines) + "\n")


def markdown_table(trials, param_names, objective, best_id=None) -> str:
    header, rows = table_rows(trials, param_names, objective)
    keep = [i for i, h in enumerate(header) if h != "error" or any(r[i] for r in rows)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    for row in rows:
        cells = [_fmt(row[i]) for i in keep]
        if row[0] == best_id:
            cells[0] = f"**{cells[0]}** (best)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _hparam(param):
    if param.kind == "choice":
        return hp.HParam(param.name, hp.Discrete(list(param.values)))
    if param.kind == "int":
        return hp.HParam(param.name, hp.IntInterval(int(param.low), int(param.high)))
    return hp.HParam(param.name, hp.RealInterval(float(param.low), float(param.high)))


def _summaries(folder: str, write) -> None:
    file_writes.make_dirs(folder)
    writer = tf.summary.create_file_writer(folder)
    with writer.as_default():
        write()
    writer.close()


def write_hparams_experiment(sweep_dir: str, space, objective: str, metrics) -> None:
    """Once per sweep_dir: the HParams experiment (searched flags and their domains, metrics)."""
    if glob.glob(os.path.join(sweep_dir, "events.out.tfevents.*")):
        return
    names = [objective] + [m for m in metrics if m != objective]
    _summaries(sweep_dir, lambda: hp.hparams_config(
        hparams=[_hparam(p) for p in space.params],
        metrics=[hp.Metric("sweep/objective", display_name=f"{objective} (objective)")]
        + [hp.Metric(m, group="eval", display_name=f"eval {m}") for m in names]))


def write_hparams_session(trial: dict, objective: str) -> None:
    """Once per finished trial: its flags as an HParams session, its objective as a scalar."""
    marker = run_files.path(trial["model_dir"], run_files.HPARAMS_MARKER)
    if os.path.exists(marker) or trial.get("value") is None:
        return

    def write():
        hp.hparams(trial["params"], trial_id=trial["id"])
        tf.summary.scalar("sweep/objective", float(trial["value"]),
                          step=int(trial.get("step") or 0))

    _summaries(trial["model_dir"], write)
    file_writes.write_text(marker, objective + "\n")


def trainer_results(model_dir: str) -> dict:
    """The trainer's results.json ({} if it wrote none, or none that reads as an object)."""
    try:
        value = read_json(run_files.path(model_dir, run_files.RESULTS), nonfinite=True)
    except T5CoreError:  # absent, not a regular file, not JSON
        return {}
    return value if isinstance(value, dict) else {}


def log_tail(model_dir: str, lines: int = 12) -> str:
    """The last lines of a trial's log worth showing with its error."""
    path = run_files.path(model_dir, run_files.TRIAL_LOG)
    if not os.path.exists(path):
        return "(no log)"
    try:
        with open_file(path) as f:
            tail = f.read().decode("utf-8", errors="replace").splitlines()[-200:]
    except T5CoreError as err:  # not a regular file: say so where the log would be
        return f"(no log: {err})"
    # The error is usually the last line; keep a few before it for context.
    useful = [line for line in tail if line.strip() and not line.startswith(("I0000", "W0000"))]
    return "\n".join(useful[-lines:])


def is_published(sweep_dir: str, trial: dict) -> bool:
    """Whether best.json names `trial`, and best_trial points at it where best.json says so."""
    try:
        info = read_json(os.path.join(sweep_dir, BEST_INFO))
    except T5CoreError:  # absent or torn: publish again
        return False
    if not isinstance(info, dict) or info.get("trial") != trial["id"]:
        return False
    link = os.path.join(sweep_dir, BEST_LINK)
    target = os.path.relpath(trial["model_dir"], sweep_dir)
    return info.get("best_trial_link") is None or (
        os.path.islink(link) and os.readlink(link) == target)


def publish_best(sweep_dir: str, trial: dict, objective: str, direction: str) -> dict:
    """best.json, and sweep_dir/best_trial -> trials/<id> (a relative link)."""
    target = os.path.relpath(trial["model_dir"], sweep_dir)
    link = os.path.join(sweep_dir, BEST_LINK)
    checkpoint = trainer_results(trial["model_dir"]).get("best_checkpoint")
    info = {"trial": trial["id"], "objective": objective, "direction": direction,
            "value": trial["value"], "step": trial.get("step"), "params": trial["params"],
            "metrics": trial.get("metrics"), "model_dir": target,
            "checkpoint": os.path.relpath(checkpoint, sweep_dir) if checkpoint else None,
            "best_trial_link": BEST_LINK, "command": trial.get("command")}
    try:
        file_writes.replace_link(link, target)
    except OSError as err:
        # The link left would name the previous best: it goes, whatever the failure.
        if os.path.islink(link):
            file_writes.remove(link, inside=sweep_dir)
        if err.errno not in _NO_SYMLINKS:  # e.g. a full disk: best.json stays as it was
            raise file_writes.write_failed(
                link, err, f"{BEST_LINK} was removed; {BEST_INFO} is as it was") from None
        info["best_trial_link"] = None  # best.json alone names the trial
    file_writes.write_json(os.path.join(sweep_dir, BEST_INFO), info, indent=2)
    return info


def delete_checkpoints(model_dir: str) -> None:
    """For --keep_checkpoints=best: frees a trial's checkpoints, keeps its logs and events."""
    pattern = run_files.path(model_dir, run_files.CHECKPOINT_PREFIX + "-*")
    for path in glob.glob(pattern) + [run_files.path(model_dir, run_files.CHECKPOINT_STATE),
                                      run_files.path(model_dir, run_files.BEST)]:
        if os.path.lexists(path):
            file_writes.remove(path, inside=model_dir)
