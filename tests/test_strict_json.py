"""Every JSON file t5core writes is strict JSON (RFC 8259): one serialiser,
t5core.file_writes.json_text, writes them all, so jq, JSON.parse, Go and serde read them.

An AST scan fails when a module calls json.dump/json.dumps itself (a file written past the rule),
and a run whose metric is NaN and whose loss was once infinite writes only files a strict parser
reads.
"""

from __future__ import annotations

import ast
import json
import math
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core import file_writes
from t5core.commands import evaluate
from t5core.data.pairs import batched
from t5core.sweep import evals
from t5core.training.run import run
from t5core.training.trainer import TrainConfig, Trainer
from test_seams import QUIET, options

PACKAGE = pathlib.Path(t5core.__file__).parent

# json.dumps used in memory only (a comparison key, a round trip, a check, a README cell), never
# for a file, as (module path, enclosing function).
IN_MEMORY = {
    ("file_writes.py", "json_text"),  # the serialiser itself
    ("file_reads.py", "_lone_surrogate"),  # can this JSON's text be encoded again?
    ("data/templates/reference.py", "_shown"),  # a default shown in the README's table
    ("sweep/runner.py", "identity"),  # tuples to lists, as the journal reads them back
    ("sweep/space.py", "fail"),  # (inside choice_values) a repeated value
    ("sweep/study.py", "_key"),  # a dict key for parameters
}


# json.loads outside the one strict parser (file_reads.parse_json), as (module, function).
IN_MEMORY_READS = {
    ("file_reads.py", "parse_json"),  # the parser itself
    ("sweep/runner.py", "identity"),  # reads back what json.dumps just wrote
}


def json_calls(source: str, filename: str, calls=("dump", "dumps")) -> list[tuple[int, str]]:
    """(line, enclosing function) of each json.dump/json.dumps call (or other `calls`) in
    `source` (and of each `from json import ...` of them, which would hide such calls from this
    scan)."""
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom) and child.module == "json" \
                    and {a.name for a in child.names} & set(calls):
                found.append((child.lineno, function))
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) \
                    and child.func.attr in calls \
                    and isinstance(child.func.value, ast.Name) and child.func.value.id == "json":
                found.append((child.lineno, function))
            visit(child, function)

    visit(ast.parse(source, filename), "<module>")
    return found


def calls_outside(calls, allowed) -> list[str]:
    """'module:line (in function)' of each json `calls` in t5core not in `allowed`."""
    outside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for line, function in json_calls(path.read_text(encoding="utf-8"), str(path), calls):
            if (module, function) not in allowed:
                outside.append(f"{module}:{line} (in {function})")
    return outside


def test_only_json_text_serialises_json_in_t5core():
    outside = calls_outside(("dump", "dumps"), IN_MEMORY)
    assert not outside, ("json.dump(s) outside file_writes.json_text; write JSON files through "
                         "file_writes.json_text/write_json (strict JSON): " + ", ".join(outside))


def test_only_parse_json_reads_json_in_t5core():
    # Every JSON text t5core reads is another's file: one parser refuses the same faults
    # (duplicate keys, NaN, too deep, too many digits) everywhere and names the source.
    outside = calls_outside(("load", "loads"), IN_MEMORY_READS)
    assert not outside, ("json.load(s) outside file_reads.parse_json; read JSON through "
                         "file_reads.parse_json/read_json: " + ", ".join(outside))


def test_the_scan_finds_a_json_dump_in_any_function():
    source = ("import json\ndef save(f, r):\n    json.dump(r, f)\nx = json.dumps(1)\n"
              "from json import dumps as text\n")
    assert json_calls(source, "m.py") == [(3, "save"), (4, "<module>"), (5, "<module>")]


def _refuse(constant):
    raise ValueError(f"{constant} is not JSON (RFC 8259)")


def strict_loads(text: str):
    return json.loads(text, parse_constant=_refuse)


def test_json_text_is_strict_json():
    value = {"nan": math.nan, "inf": -math.inf, "np": np.float32("nan"), "ok": np.float32(0.5),
             "int": np.int64(3), "array": np.array([[1.0, np.inf]]), "tuple": (1, np.bool_(True)),
             np.int64(7): "numpy key", "path": "run_\udcff", "zh": "中文"}
    for settings in ({}, {"ensure_ascii": False, "indent": 2}):
        text = file_writes.json_text(value, **settings)
        text.encode("utf-8")  # no lone surrogate left
        assert strict_loads(text) == {
            "nan": None, "inf": None, "np": None, "ok": 0.5, "int": 3, "array": [[1.0, None]],
            "tuple": [1, True], "7": "numpy key", "path": "run_\\udcff", "zh": "中文"}


def test_a_null_evaluation_reads_as_non_finite(tmp_path):
    (tmp_path / "train_log.jsonl").write_text(
        file_writes.json_text({"step": 2, "eval/pearson": math.nan, "eval/loss": 1.5}) + "\n")
    (metrics,) = evals.read_evals(str(tmp_path)).values()
    assert math.isnan(metrics["pearson"]) and metrics["loss"] == 1.5


def test_a_run_with_a_nan_metric_and_a_skipped_loss_writes_strict_json(tmp_path):
    config = TrainConfig(model_dir=str(tmp_path / "run"), train_steps=3, batch_size=4,
                         inputs_length=6, targets_length=4, log_every=1, save_every=0,
                         eval_every=3, progress_bar=False, learning_rate=1e-3, optimizer="adamw",
                         skip_nonfinite=True, peak_flops=1e11, best_metric="pearson")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 32, (16, 6)).astype(np.int32)
    data = batched({"encoder_input_tokens": tokens, "decoder_target_tokens": tokens[:, :4],
                    "decoder_input_tokens": tokens[:, :4],
                    "decoder_loss_weights": np.ones((16, 4), np.float32)}, 4, seed=1)
    model_config = t5core.T5Config(vocab_size=32, d_model=8, d_kv=4, num_heads=2, d_ff=16,
                                   num_layers=1, num_decoder_layers=1, dropout_rate=0.0)
    trainer = Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"),
                      lambda: t5core.T5Model(model_config), data,
                      evaluator=lambda model: ({"pearson": math.nan}, []), log=lambda *a: None)
    original, calls = trainer.train_step, []

    def poisoned(batch):  # the second step's loss is infinite: skipped
        calls.append(1)
        if len(calls) == 2:
            batch = dict(batch, decoder_loss_weights=batch["decoder_loss_weights"] * np.inf)
        return original(batch)

    trainer.train_step = poisoned
    trainer.train()
    written = sorted(p for p in pathlib.Path(config.model_dir).rglob("*.json*") if p.is_file())
    names = {p.name for p in written}
    assert {"results.json", "train_log.jsonl"} <= names
    records = []
    for path in written:
        text = path.read_bytes().decode("utf-8")
        lines = text.splitlines() if path.suffix == ".jsonl" else [text]
        records += [strict_loads(line) for line in lines if line.strip()]
    assert any(r.get("loss", 0) is None for r in records)  # the skipped step
    assert any("eval/pearson" in r and r["eval/pearson"] is None for r in records)
    with pytest.raises(ValueError):  # (the parser above is strict)
        strict_loads('{"loss": NaN}')


def test_an_evaluate_report_with_a_nan_metric_is_strict_json(tmp_path):
    """pearson over constant (here unparsable) predictions is NaN: the report says null."""
    run(options(tmp_path, "run", metrics="pearson"), **QUIET)
    report = tmp_path / "report.json"
    evaluate.main(["--checkpoint", str(tmp_path / "run"), "--eval_file",
                   str(tmp_path / "train.jsonl"), "--max_examples", "2",
                   "--report_file", str(report)])
    assert strict_loads(report.read_text(encoding="utf-8"))["metrics"]["pearson"] is None
    for path in (tmp_path / "run").glob("*.json"):  # run.json, config.json, results.json
        strict_loads(path.read_text(encoding="utf-8"))
