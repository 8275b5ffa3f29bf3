"""Runs `scripts/train.py` against bad flags, bad data rows and faults, and prints what each did.

Not a test: the evidence behind BUILD_NOTES.md's "Hostile inputs: runs" table. Each case is a real
process on a tiny configuration; a case prints its exit status and the last line of its output
(or what the fault left behind). Run it on any checkout, e.g. the commit before a fix:

    python tests/make_hostile_runs_table.py [--root=CHECKOUT] [--only=SUBSTRING] > cases.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

BASE = ["--train_steps=3", "--save_every=0", "--eval_every=0", "--eval_examples=4",
        "--log_every=1", "--batch_size=4", "--progress_bar=false", "--inputs_length=16",
        "--targets_length=8", "--warmup_steps=0", "--peak_flops=1e11"]

FLAG_CASES = [
    ["--learning_rate=-1"], ["--learning_rate=0"], ["--learning_rate=nan"],
    ["--batch_size=0"], ["--batch_size=-4"], ["--inputs_length=0"], ["--targets_length=0"],
    ["--grad_accum_steps=0"], ["--grad_accum_steps=3"], ["--train_steps=0"],
    ["--label_smoothing=1.5"], ["--label_smoothing=-0.1"], ["--z_loss=-1"], ["--z_loss=inf"],
    ["--dropout_rate=1.0"], ["--dropout_rate=-0.5"], ["--weight_decay=-0.1"],
    ["--clip_norm=-1"], ["--warmup_steps=-1"], ["--schedule=cosine", "--warmup_steps=50"],
    ["--eval_examples=-1"], ["--keep_checkpoints=0"], ["--save_every=-1"],
    ["--log_every=0"], ["--seed=-1"], ["--loss_normalization=bogus"],
    ["--loss_normalization=constant:0"], ["--peft=lora", "--lora_rank=0"],
    ["--peft=lora", "--lora_alpha=-1"], ["--peft=prompt", "--prompt_length=0"],
    ["--peft=top_n", "--peft_top_n=0"], ["--num_cpu_devices=0"], ["--peak_flops=-1"],
    ["--eval_steps=-1"], ["--early_stopping_patience=-1"],
]

GOOD_ROW = {"inputs": "reverse: abc", "targets": "cba"}


def _jsonl(*bad_lines: str) -> str:
    """Five good rows, then the bad ones, then five good rows."""
    good = [json.dumps(GOOD_ROW)] * 5
    return "\n".join(good + list(bad_lines) + good) + "\n"


DATA_CASES = {
    "targets null": ("jsonl", _jsonl('{"inputs": "x", "targets": null}')),
    "targets object": ("jsonl", _jsonl('{"inputs": "x", "targets": {"a": 1}}')),
    "targets list": ("jsonl", _jsonl('{"inputs": "x", "targets": ["a", "b"]}')),
    "targets number 3": ("jsonl", _jsonl('{"inputs": "x", "targets": 3}')),
    "targets true": ("jsonl", _jsonl('{"inputs": "x", "targets": true}')),
    "targets NaN": ("jsonl", _jsonl('{"inputs": "x", "targets": NaN}')),
    "targets field missing": ("jsonl", _jsonl('{"inputs": "x"}')),
    "a line that is a JSON list": ("jsonl", _jsonl('["x", "y"]')),
    "duplicate key": ("jsonl", _jsonl('{"inputs": "x", "targets": "a", "targets": "b"}')),
    "non-UTF-8 bytes": ("jsonl", _jsonl('{"inputs": "caf\udce9", "targets": "y"}')),
    "blank lines inside": ("jsonl", _jsonl("", "   ")),
    "UTF-8 byte-order mark": ("jsonl", "\ufeff" + _jsonl()),
    "TSV: too few cells": ("tsv", "inputs\ttargets\n" + "a b\tc\n" * 5 + "only one\n"),
    "TSV: BOM before the header": ("tsv", "\ufeffinputs\ttargets\n" + "a b\tc\n" * 8),
    "template classification: label null": (
        "jsonl-cls", "\n".join(['{"sentence": "good", "label": 1}'] * 5
                               + ['{"sentence": "bad", "label": null}']) + "\n"),
    "template ner: tokens null": (
        "jsonl-ner", "\n".join(['{"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}'] * 5
                               + ['{"tokens": null, "tags": ["O"]}']) + "\n"),
    "template ner: tags a number": (
        "jsonl-ner", "\n".join(['{"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}'] * 5
                               + ['{"tokens": ["x"], "tags": 5}']) + "\n"),
    "template qa: answers a number": (
        "jsonl-qa", "\n".join(['{"question": "q?", "context": "c a", "answers": ["a"]}'] * 5
                              + ['{"question": "q?", "context": "c", "answers": 5}']) + "\n"),
    "template qa: answers null": (
        "jsonl-qa", "\n".join(['{"question": "q?", "context": "c a", "answers": ["a"]}'] * 5
                              + ['{"question": "q?", "context": "c", "answers": null}']) + "\n"),
    "template dialogue: a turn null": (
        "jsonl-dlg", "\n".join(['{"turns": ["hi", "hello", "bye"], "response": "ciao"}'] * 5
                               + ['{"turns": ["hi", null], "response": "r"}']) + "\n"),
}
DATA_FLAGS = {
    "jsonl": [], "tsv": [],
    "jsonl-cls": ["--template=classification",
                  '--template_args={"label_words": ["negative", "positive"]}'],
    "jsonl-ner": ["--template=ner"],
    "jsonl-qa": ["--template=qa"],
    "jsonl-dlg": ["--template=dialogue"],
}


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)


def _train(model_dir, *flags, base=BASE):
    return [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
            f"--model_dir={model_dir}", *base, *flags]


def _last_line(text: str) -> str:
    # (t5core.cli follows an error line with a hint about --verbose: skip the hint)
    lines = [x for x in text.strip().splitlines()
             if x.strip() and not x.startswith("(run with --verbose")]
    return lines[-1][:300] if lines else ""


def _run(cmd, timeout=600):
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
    return {"rc": proc.returncode, "seconds": round(time.time() - start, 1),
            "last": _last_line(proc.stdout + proc.stderr if proc.returncode else proc.stdout),
            "traceback": "Traceback (most recent call last)" in proc.stderr}


def _log_steps(model_dir):
    steps, bad = [], 0
    path = os.path.join(model_dir, "train_log.jsonl")
    if not os.path.exists(path):
        return steps, bad
    with open(path, errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if "loss" in record:
                steps.append(record["step"])
    return steps, bad


def _latest_checkpoint_step(model_dir):
    path = os.path.join(model_dir, "checkpoint")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        first = f.readline()
    return int(first.rsplit("-", 1)[1].strip().strip('"'))


def _wait_for_step(model_dir, step, process, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        steps, _ = _log_steps(model_dir)
        if steps and max(steps) >= step:
            return True
        time.sleep(0.05)
    return False


LONG = ["--train_steps=400", "--save_every=100", "--eval_every=0", "--eval_examples=4",
        "--log_every=1", "--batch_size=4", "--progress_bar=false", "--inputs_length=16",
        "--targets_length=8", "--warmup_steps=0", "--peak_flops=1e11"]


def case_two_trainers(tmp):
    model_dir = os.path.join(tmp, "shared")
    # Long enough that the first is still training when the second has started up.
    flags = ["--train_steps=1500", "--save_every=500"] + LONG[2:]
    first = subprocess.Popen(_train(model_dir, base=flags), env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    _wait_for_step(model_dir, 2, first)
    second = _run(_train(model_dir, base=flags))
    out, err = first.communicate(timeout=1200)
    steps, _ = _log_steps(model_dir)
    return {"rc": [first.returncode, second["rc"]], "second_last": second["last"],
            "logged_steps": len(steps), "distinct_steps": len(set(steps))}


def case_signal(tmp, sig):
    model_dir = os.path.join(tmp, f"sig{sig}")
    # As in a terminal: a background job (this harness, maybe) ignores SIGINT, and so would
    # its children.
    process = subprocess.Popen(_train(model_dir, base=LONG), env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_step(model_dir, 12, process)
    process.send_signal(sig)
    out, err = process.communicate(timeout=600)
    steps, _ = _log_steps(model_dir)
    saved = _latest_checkpoint_step(model_dir)
    return {"rc": process.returncode, "last": _last_line(out + err if process.returncode else out),
            "traceback": "Traceback" in err, "last_logged_step": max(steps),
            "checkpoint_step": saved, "steps_lost": max(steps) - (saved or 0)}


def case_temp_dir(tmp):
    model_dir = os.path.join(tmp, "temp")
    os.makedirs(os.path.join(model_dir, "ckpt-7_temp"))
    with open(os.path.join(model_dir, "ckpt-7_temp", "part-00000-of-00001.data-00000-of-00001"),
              "wb") as f:
        f.write(b"\0" * 1000)
    os.makedirs(os.path.join(model_dir, "notes_temp"))  # not TF's naming: must stay
    result = _run(_train(model_dir))
    result["ckpt-7_temp left"] = os.path.exists(os.path.join(model_dir, "ckpt-7_temp"))
    result["notes_temp left"] = os.path.exists(os.path.join(model_dir, "notes_temp"))
    return result


def case_torn_log(tmp, where):
    model_dir = os.path.join(tmp, f"torn_{where}")
    first = _run(_train(model_dir, "--save_every=3"))
    path = os.path.join(model_dir, "train_log.jsonl")
    with open(path, "rb") as f:
        data = f.read()
    if where == "last":
        data = data[:-9]  # a kill in the middle of the last record
    else:  # an earlier torn record: the run that tore it went on appending (as before the fix)
        lines = data.split(b"\n")
        lines[1] = lines[1][:12]
        data = b"\n".join(lines)
    with open(path, "wb") as f:
        f.write(data)
    result = _run(_train(model_dir, "--train_steps=6", "--save_every=3", "--eval_every=3"))
    steps, bad = _log_steps(model_dir)
    result.update(first_rc=first["rc"], logged_steps=sorted(set(steps)), unreadable_lines=bad)
    return result


def case_torn_tail_then_append(tmp):
    """A torn tail followed by more appends (a resumed run): is the next record merged into it?"""
    model_dir = os.path.join(tmp, "torn_tail_append")
    _run(_train(model_dir, "--save_every=3"))
    path = os.path.join(model_dir, "train_log.jsonl")
    with open(path, "ab") as f:
        f.write(b'{"step": 4, "lo')  # a kill mid-write of the record after the checkpoint
    result = _run(_train(model_dir, "--train_steps=6", "--save_every=3"))
    steps, bad = _log_steps(model_dir)
    result.update(logged_steps=sorted(set(steps)), unreadable_lines=bad)
    return result


def case_stale_lock(tmp):
    model_dir = os.path.join(tmp, "stale")
    process = subprocess.Popen(_train(model_dir, base=LONG), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_step(model_dir, 103, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = _run(_train(model_dir, base=["--train_steps=106"] + LONG[1:]))
    steps, _ = _log_steps(model_dir)
    result.update(resumed=min(s for s in steps[-3:]) == 104 if steps else False,
                  last_logged=max(steps) if steps else None)
    return result


def case_kill_during_saves(tmp, kills=10):
    """kill -9 at random moments of a run that saves every step, then the same command."""
    import random

    import numpy as np

    rng = random.Random(0)
    flags = ["--train_steps=120", "--save_every=1", "--keep_checkpoints=3", "--dropout_rate=0.1"]
    reference = os.path.join(tmp, "saves_reference")
    _run(_train(reference, *flags, base=LONG[2:]))
    model_dir = os.path.join(tmp, "saves_killed")
    temp_dirs_seen, resumed_at = 0, []
    for _ in range(kills):
        process = subprocess.Popen(_train(model_dir, *flags, base=LONG[2:]), env=_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        steps, _ = _log_steps(model_dir)
        _wait_for_step(model_dir, (max(steps) if steps else 0) + rng.randint(3, 8), process)
        # The trainer logs a step, then saves it: kill within a few ms of a new log line.
        log, size = os.path.join(model_dir, "train_log.jsonl"), None
        while process.poll() is None:
            now = os.path.getsize(log)
            if size is not None and now != size:
                break
            size = now
            time.sleep(0.001)
        # Measured here: a save starts writing ckpt-N_temp ~0.45 s after the line, for ~0.12 s,
        # then rewrites `checkpoint`; the next line comes at ~0.65 s.
        time.sleep(rng.uniform(0.2, 0.7))
        process.send_signal(signal.SIGKILL)
        out = process.communicate()[0]
        resumed_at += [line for line in out.splitlines() if line.startswith("Resumed from")]
        temp_dirs_seen += sum(name.endswith("_temp") for name in os.listdir(model_dir))
    final = _run(_train(model_dir, *flags, base=LONG[2:]))
    import tensorflow as tf

    readable = all(tf.train.load_checkpoint(os.path.join(model_dir, name[:-len(".index")]))
                   for name in os.listdir(model_dir) if name.endswith(".index"))

    def losses(directory):
        by_step = {}
        with open(os.path.join(directory, "train_log.jsonl")) as f:
            for line in f:
                record = json.loads(line)
                if "loss" in record:
                    by_step[record["step"]] = record["loss"]
        return [by_step[s] for s in range(1, 121)]

    return {"rc": final["rc"], "kills": kills, "resumes": len(resumed_at),
            "temp_dirs_left_by_kills": temp_dirs_seen,
            "temp_dirs_at_end": [n for n in os.listdir(model_dir) if n.endswith("_temp")],
            "checkpoints_readable": readable,
            "losses_identical": bool(np.array_equal(losses(model_dir), losses(reference)))}


def main():
    global ROOT
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    ROOT = os.path.abspath(args.root)
    tmp = tempfile.mkdtemp(prefix="hostile_runs_")
    cases = []
    for flags in FLAG_CASES:
        cases.append((" ".join(flags), lambda flags=flags: _run(
            _train(os.path.join(tmp, "flags_" + str(abs(hash(tuple(flags))))), *flags))))
    for name, (kind, text) in DATA_CASES.items():
        def data_case(kind=kind, text=text, name=name):
            suffix = ".tsv" if kind == "tsv" else ".jsonl"
            path = os.path.join(tmp, name.replace(" ", "_").replace(":", "") + suffix)
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(text)
            return _run(_train(path + ".run", f"--train_file={path}", *DATA_FLAGS[kind]))
        cases.append((name, data_case))
    cases += [
        ("two trainers on one --model_dir", lambda: case_two_trainers(tmp)),
        ("SIGTERM during training", lambda: case_signal(tmp, signal.SIGTERM)),
        ("SIGINT during training", lambda: case_signal(tmp, signal.SIGINT)),
        ("ckpt-7_temp left by a killed save", lambda: case_temp_dir(tmp)),
        ("torn last line of train_log.jsonl", lambda: case_torn_log(tmp, "last")),
        ("torn earlier line of train_log.jsonl", lambda: case_torn_log(tmp, "earlier")),
        ("torn tail, then a resumed run appends", lambda: case_torn_tail_then_append(tmp)),
        ("kill -9 of a trainer, then the same command", lambda: case_stale_lock(tmp)),
        ("kill -9 during checkpoint saves, 10 times", lambda: case_kill_during_saves(tmp)),
    ]
    for name, fn in cases:
        if args.only and args.only not in name:
            continue
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 - a harness failure is a result too
            result = {"harness_error": repr(err)}
        print(json.dumps({"case": name, **result}), flush=True)


ROOT = ""

if __name__ == "__main__":
    main()
