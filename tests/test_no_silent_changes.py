"""No silent changes to what a run trains on: over-long rows are counted and reported (or
refused), and a resume notices that its data files changed."""

import json
import os

import pytest

from t5core import model_dir
from t5core.data.fingerprint import changes, fingerprint
from t5core.errors import DataError
from t5core.training.run import RunOptions, run
from t5core.training.trainer import TrainConfig

TINY = {"model_type": "t5", "vocab_size": 384, "d_model": 16, "d_kv": 4, "num_heads": 2,
        "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "dropout_rate": 0.0,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
SHORT = [{"inputs": f"row {i}", "targets": "ok"} for i in range(8)]
LONG = {"inputs": "x" * 40, "targets": "ok"}  # 41 byte tokens with its EOS


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def options(tmp_path, train_steps=2, **kw):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    train = TrainConfig(model_dir=str(tmp_path / "run"), train_steps=train_steps, batch_size=4,
                        inputs_length=16, targets_length=8, eval_every=0, eval_steps=1,
                        save_every=0, log_every=1, progress_bar=False, peak_flops=1e11,
                        optimizer="adamw", learning_rate=1e-3)
    return RunOptions(model=str(config), eval_examples=0, train=train, **kw)


def test_overlong_rows_are_cut_counted_and_reported(tmp_path):
    path = write_rows(tmp_path / "train.jsonl", [*SHORT, LONG, LONG])
    lines = []
    run(options(tmp_path, train_file=path), log=lines.append)
    assert any(line.startswith("--overlong=cut: rows longer than") for line in lines)
    report = [line for line in lines if "inputs longer than 16 tokens" in line]
    assert report and "(the longest 41), cut to their lengths" in report[0]
    assert int(report[0].split()[0]) >= 2


def test_overlong_error_stops_with_one_line(tmp_path):
    path = write_rows(tmp_path / "train.jsonl", [*SHORT, LONG])
    with pytest.raises(DataError, match=r"--overlong=error: a row is longer than its length "
                                        r"\(inputs: more than 16 tokens\)"):
        run(options(tmp_path, train_file=path, overlong="error"), log=lambda *a: None)


def test_a_resume_with_changed_data_says_so_and_the_flag_chooses(tmp_path):
    path = tmp_path / "train.jsonl"
    write_rows(path, SHORT)
    run(options(tmp_path, train_file=str(path)), log=lambda *a: None)
    recorded = model_dir.read_run(str(tmp_path / "run")).data_files
    assert recorded["train_file"]["size"] == os.path.getsize(path)
    write_rows(path, SHORT + [{"inputs": "a new row", "targets": "new"}])
    with pytest.raises(DataError, match="the data changed since the checkpoint.*--train_file"):
        run(options(tmp_path, train_steps=4, train_file=str(path)), log=lambda *a: None)
    lines = []
    trainer = run(options(tmp_path, train_steps=4, train_file=str(path),
                          data_changed="restart_epoch"), log=lines.append)
    assert trainer.step == 4
    assert any("the data starts again from its beginning" in line for line in lines)
    # The new data is recorded: the next resume compares against it.
    assert model_dir.read_run(str(tmp_path / "run")).data_files["train_file"]["size"] == \
        os.path.getsize(path)


def test_fingerprint_changes_by_content_not_by_time_alone(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_bytes(b"a" * (3 << 20))
    before = fingerprint(str(path))
    os.utime(path, ns=(1, 1))
    assert changes({"f": before}, {"f": fingerprint(str(path))}) == ([], [f"--f {path}"])
    path.write_bytes(b"a" * (3 << 20) + b"b")  # appended
    assert changes({"f": before}, {"f": fingerprint(str(path))})[0]
    path.write_bytes(b"b" + b"a" * ((3 << 20) - 1))  # same size, first byte edited
    assert changes({"f": before}, {"f": fingerprint(str(path))})[0]
