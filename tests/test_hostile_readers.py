"""Every reader of a file a user or another program hands t5core, against every kind of hostile
file in that file's place: a table of readers x kinds (the rules: docs/architecture.md, Reads).

The rules, for every reader and kind:
  * something that is not a regular file (a FIFO, a device, a directory, a link that loops or
    points nowhere) is one t5core error naming the file, without blocking or reading forever;
  * a JSON file is strict UTF-8 JSON: too deep, too many digits, NaN/Infinity, a key given twice
    or bytes that are not UTF-8 are one t5core error naming the file, never a bare
    RecursionError or ValueError, never a silently kept last value.

A new reader joins the table with the name of the file it reads and the call that reads it; a
new kind of hostile file joins KINDS (or JSON_KINDS) and is tried on every reader.
"""

import contextlib
import json
import os
import pathlib
import re
import shutil
import threading
import time
import tracemalloc

import h5py
import numpy as np
import pytest
import tensorflow as tf
from hostile_files import set_declared_dims, write_tf_bundle

from t5core import file_reads
from t5core import model_dir as md
from t5core.checkpoints import detect_format, t5x_zarr, untrusted
from t5core.checkpoints.gin_config import parse_gin
from t5core.checkpoints.hf_bin import HFBinReader
from t5core.checkpoints.hf_h5 import H5Reader
from t5core.checkpoints.safetensors_io import SafetensorsReader
from t5core.checkpoints.t5x import T5XReader
from t5core.checkpoints.tf_checkpoint import TFCheckpointReader
from t5core.config import T5Config
from t5core.data.fingerprint import fingerprint
from t5core.data.sources import jsonl_objects, read_lines, tsv_rows
from t5core.errors import CheckpointError, ConfigError, ModelDirError, T5CoreError
from t5core.sweep.evals import read_evals
from t5core.sweep.results import log_tail, trainer_results
from t5core.sweep.space import load_space
from t5core.sweep.study import check_journal
from t5core.tokenizer import load_tokenizer
from t5core.tokenizer.sentencepiece_vocab import Tokenizer
from t5core.training import train_log

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
RUN = FIXTURES / "interrupted_run"
VOCAB = FIXTURES / "t5_vocab"


def _in_run(name):
    """A reader of `name` inside a copy of a real run directory (the other files intact)."""
    def setup(tmp):
        run = tmp / "run"
        shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("LOCK", "best"))
        if name == "spiece.model":  # the run names its tokenizer file
            record = json.loads((run / "run.json").read_text())
            (run / "run.json").write_text(json.dumps({**record, "tokenizer": name}))
        else:
            (run / name).unlink()
        return run / name
    return setup


def _alone(name):
    def setup(tmp):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        return tmp / name
    return setup


# reader: (where its file goes, the call that reads it)
READERS = {
    "run.json": (_in_run("run.json"), lambda p: md.read_run(str(p.parent))),
    "config.json of a run": (_in_run("config.json"), lambda p: md.read_config(str(p.parent))),
    "T5Config.from_json": (_alone("config.json"), lambda p: T5Config.from_json(str(p))),
    "checkpoint state": (_in_run("checkpoint"),
                         lambda p: file_reads.checkpoint_state_paths(str(p.parent))),
    "train log": (_in_run("train_log.jsonl"), lambda p: train_log.read(str(p))),
    "tokenizer of a run": (_in_run("spiece.model"), lambda p: md.find_tokenizer(str(p.parent))
                           and load_tokenizer(md.find_tokenizer(str(p.parent)))),
    "tokenizer.json": (_alone("tokenizer.json"), lambda p: load_tokenizer(str(p))),
    "spiece.model": (_alone("spiece.model"), lambda p: load_tokenizer(str(p))),
    "shard index": (_alone("model.safetensors.index.json"),
                    lambda p: untrusted.read_weight_map(str(p))),
    "model.safetensors": (_alone("model.safetensors"), lambda p: SafetensorsReader(str(p.parent))),
    "pytorch_model.bin": (_alone("pytorch_model.bin"), lambda p: HFBinReader(str(p.parent))),
    "tf_model.h5": (_alone("tf_model.h5"), lambda p: H5Reader(str(p))),
    "T5X checkpoint": (_alone("checkpoint_1/checkpoint"), lambda p: T5XReader(str(p.parent))),
    "zarr .zarray": (_alone(".zarray"), lambda p: t5x_zarr._read_zarray(str(p), "spec")),
    "gin file": (_alone("config.gin"), lambda p: parse_gin([str(p)])),
    "text data": (_alone("data.txt"), lambda p: read_lines(str(p))),
    "gzipped data": (_alone("data.txt.gz"), lambda p: read_lines(str(p))),
    "TSV data": (_alone("data.tsv"), lambda p: tsv_rows(str(p))),
    "JSONL data": (_alone("data.jsonl"), lambda p: jsonl_objects(str(p))),
    "data fingerprint": (_alone("data.txt"), lambda p: fingerprint(str(p))),
    "sweep space": (_alone("space.json"), lambda p: load_space(str(p))),
    "sweep journal": (_alone("journal.log"), lambda p: check_journal(str(p), repair=False)),
    "sweep evaluations": (_in_run("train_log.jsonl"), lambda p: read_evals(str(p.parent))),
}
JSON_READERS = ["run.json", "config.json of a run", "T5Config.from_json", "tokenizer.json",
                "shard index", "zarr .zarray", "JSONL data", "sweep space"]


def _fifo(path):
    os.mkfifo(path)


def _device(path):
    # /dev/null, not /dev/zero: a reader that regresses fails here instead of filling memory.
    os.symlink("/dev/null", path)


def _directory(path):
    path.mkdir()
    (path / "inside").write_text("{}")


def _link_loop(path):
    os.symlink(path.name, path)


def _dangling_link(path):
    os.symlink(path.parent / "nowhere", path)


KINDS = {"FIFO": _fifo, "device": _device, "directory": _directory, "link loop": _link_loop,
         "dangling link": _dangling_link}

JSON_KINDS = {
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "an integer of 5,000 digits": b'{"vocab_size": ' + b"9" * 5_000 + b"}\n",
    "an integer of 400 digits": b'{"d_model": ' + b"9" * 400 + b"}\n",  # converts; overflows
    "NaN": b'{"d_model": NaN}\n',
    "Infinity": b'{"d_model": -Infinity}\n',
    "a key given twice": b'{"d_model": 8, "d_model": 16}\n',
    "Latin-1 bytes": b'{"tokenizer": "caf\xe9"}\n',
}


@contextlib.contextmanager
def unblocking(fifo):
    """A reader that blocks on `fifo` (waiting for a writer) is released after a few seconds, so
    a regression fails the test instead of hanging the suite."""
    done = threading.Event()

    def writer():
        while not done.wait(5):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # no reader is blocked on it (ENXIO), or it is gone

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _refused(reader, tmp_path, make):
    place, read = READERS[reader]
    odd = tmp_path / "数据 新\n行"  # messages must name files of any name
    odd.mkdir()
    path = place(odd)
    make(path)
    start = time.monotonic()
    with unblocking(path):
        with pytest.raises(T5CoreError) as caught:
            read(path)
    assert time.monotonic() - start < 5, f"{reader} waited on the file before refusing it"
    return path, str(caught.value)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_what_is_not_a_regular_file_is_refused_naming_it(tmp_path, reader, kind):
    path, message = _refused(reader, tmp_path, KINDS[kind])
    assert path.name in message, message


@pytest.mark.parametrize("reader, kind", [
    (reader, kind) for reader in JSON_READERS for kind in sorted(JSON_KINDS)
    # a data row keeps each number as its text: no integer is converted
    if not (reader == "JSONL data" and kind.startswith("an integer of"))])
def test_json_files_are_strict_and_faults_name_the_file(tmp_path, reader, kind):
    path, message = _refused(reader, tmp_path, lambda p: p.write_bytes(JSON_KINDS[kind]))
    assert path.name in message, message


@pytest.mark.parametrize("reader", ["config.json of a run", "shard index", "zarr .zarray"])
def test_a_byte_order_mark_is_not_an_error(tmp_path, reader):
    place, read = READERS[reader]
    path = place(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf{}")
    with pytest.raises(T5CoreError) as caught:  # the empty object lacks fields, nothing else
        read(path)
    assert "JSON" not in str(caught.value).split(str(path))[-1].split(":")[1]


def test_the_train_log_keeps_the_nan_loss_it_wrote_itself(tmp_path):
    log = tmp_path / "train_log.jsonl"
    train_log.append(str(log), {"step": 1, "loss": float("nan")})
    assert train_log.read(str(log))[0]["step"] == 1


def test_a_whole_file_past_its_budget_is_refused_before_it_is_held(tmp_path, monkeypatch):
    monkeypatch.setitem(file_reads.BUDGETS, "whole_file_bytes", 100)
    path = tmp_path / "config.json"
    path.write_bytes(b" " * 101 + b"{}")
    with pytest.raises(T5CoreError, match=r"config\.json: more than 100 bytes"):
        T5Config.from_json(str(path))


def test_reading_a_small_file_whole_holds_about_what_it_holds_not_the_budget(tmp_path):
    # The budget is a ceiling, not a size to allocate: read(n) allocates n bytes up front.
    path = tmp_path / "model.safetensors.index.json"
    path.write_bytes(b'{"weight_map": {}}')
    tracemalloc.start()
    try:
        assert file_reads.read_json(str(path)) == {"weight_map": {}}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak:,} bytes held to read an 18-byte file"


def test_a_tf_checkpoint_declaring_more_than_its_data_holds_is_refused_before_reading(tmp_path):
    variable = tf.Variable(np.zeros((1, 1, 1, 1, 1, 1), np.float32))
    prefix = tf.train.Checkpoint(v=variable).write(str(tmp_path / "ckpt"))
    set_declared_dims(prefix + ".index", [1] * 6, [127] * 6)  # 16 TB of float32
    reader = TFCheckpointReader(prefix)
    name = next(n for n in reader.shapes if n.startswith("v/"))
    assert reader.shapes[name] == (127,) * 6  # TF reads the index and believes it
    with pytest.raises(CheckpointError, match=r"ckpt: the index declares v/.*data shards hold"):
        reader.validate([name])
    with pytest.raises(CheckpointError, match=rf"ckpt: could not read tensor {name}"):
        reader.read(name)


def test_a_tf_string_tensor_declaring_more_than_its_data_holds_is_refused_before_reading(
        tmp_path):
    prefix = str(tmp_path / "ckpt")
    write_tf_bundle(prefix, [("words", 7, [1 << 24], 1 << 24)], b"\0" * 16)  # 7: DT_STRING
    with pytest.raises(CheckpointError, match=r"ckpt: the index declares words .* 16,777,216 "
                                              r"bytes.*hold 16 bytes"):
        TFCheckpointReader(prefix).validate(["words"])


# What TensorFlow's reader takes from an index and aborts the process on (a C++ CHECK), or,
# for a dtype, raises a bare TypeError on: (dtype enum, shape, the refusal).
TF_INDEX_FAULTS = {
    "negative dimension": (1, [-5, 2], r"shape \[-5, 2\] holds something other than sizes"),
    "elements past int64": (1, [1 << 40, 1 << 40], r"more bytes than int64 counts"),
    "300 dimensions": (1, [1] * 300, r"300 dimensions"),
    "unknown dtype": (999, [2, 2], r"dtype 999 is not a TensorFlow dtype"),
}


@pytest.mark.parametrize("fault", sorted(TF_INDEX_FAULTS))
def test_a_tf_index_tensorflow_cannot_take_is_refused_on_every_way_in(tmp_path, fault):
    dtype, shape, why = TF_INDEX_FAULTS[fault]
    prefix = str(tmp_path / "model.ckpt-0")
    write_tf_bundle(prefix, [("shared/embedding", dtype, shape, 16)], b"\0" * 16)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-0"\n')
    named = rf"model\.ckpt-0\.index: .*'shared/embedding': .*{why}"
    with pytest.raises(CheckpointError, match=named):
        detect_format(str(tmp_path))
    with pytest.raises(CheckpointError, match=named):
        TFCheckpointReader(prefix)
    with pytest.raises(ModelDirError, match=named):
        md.saved_settings(prefix)


def test_tf_indexes_tensorflow_writes_pass_the_index_check(tmp_path):
    """TF2's object checkpoints, a TF1 Saver's (with a partitioned variable's slices) and
    Mesh-TF's (Snappy-compressed blocks) read as TensorFlow reads them."""
    prefixes = [str(FIXTURES / "mtf_tiny_t5_index" / "model.ckpt-0"), tf.train.Checkpoint(
        v=tf.Variable(np.zeros((3, 4), np.float32)), s=tf.Variable("text"),
        n=tf.Variable(np.int64(5))).write(str(tmp_path / "tf2" / "ckpt"))]
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        tf.compat.v1.get_variable("a", [5, 6])
        tf.compat.v1.get_variable("b", [4], partitioner=tf.compat.v1.fixed_size_partitioner(2))
        session.run(tf.compat.v1.global_variables_initializer())
        prefixes.append(tf.compat.v1.train.Saver().save(session, str(tmp_path / "v1" / "model")))
    for prefix in prefixes:
        assert TFCheckpointReader(prefix).shapes == {
            name: tuple(shape) for name, shape in tf.train.list_variables(prefix)}, prefix


@pytest.mark.parametrize("kind", ["never written", "gzip"])
def test_an_h5_dataset_the_file_does_not_hold_is_refused_before_reading(tmp_path, kind):
    path = tmp_path / "tf_model.h5"
    name = "shared/tf_t5for_conditional_generation/shared/embeddings:0"
    with h5py.File(path, "w") as f:
        if kind == "gzip":
            f.create_dataset(name, data=np.ones(1 << 16, np.float32), compression="gzip")
        else:  # HDF5 would give 256 MiB of its fill value
            f.create_dataset(name, shape=(1 << 26,), dtype="f4", fillvalue=1.0)
    with pytest.raises(CheckpointError, match=rf"tf_model\.h5: datasets not stored whole.*"
                                              rf"{re.escape(name)} \((chunked|0 bytes of "
                                              r"268,435,456)\)"):
        H5Reader(str(path))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_sweeps_reports_of_a_trial_neither_hang_nor_raise(tmp_path, kind):
    """A trial's results.json and log are read to report on it: what is not a regular file
    reads as no results and no log, in bounded time."""
    for name, read, empty in ((md.RESULTS, trainer_results, {}),
                              (md.TRIAL_LOG, log_tail, "(no log")):
        path = tmp_path / kind.replace(" ", "_") / name
        path.parent.mkdir(exist_ok=True)
        KINDS[kind](path)
        start = time.monotonic()
        with unblocking(path):
            found = read(str(path.parent))
        assert time.monotonic() - start < 5
        assert found == empty or str(found).startswith(str(empty)), found


@pytest.mark.parametrize("include", ["/etc/passwd", "../secret.gin", "link.gin", 5])
def test_a_gin_include_is_read_only_inside_the_including_files_folder(tmp_path, include):
    (tmp_path / "secret.gin").write_text("network.T5Config.emb_dim = 7\n")
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    os.symlink(tmp_path / "secret.gin", folder / "link.gin")
    gin = folder / "config.gin"
    gin.write_text(f"include {include!r}\nnetwork.T5Config.num_heads = 2\n")
    missing = []
    bindings = parse_gin([str(gin)], missing)
    assert "network.T5Config.emb_dim" not in bindings and len(missing) == 1
    assert "not read" in missing[0], missing


@pytest.mark.parametrize("value", ["9" * 400, "9" * 5_000, "0x" + "f" * 5_000, "-0x" + "f" * 40])
def test_a_gin_integer_past_any_size_is_named_not_carried_on(tmp_path, value):
    path = tmp_path / "config.gin"
    path.write_text(f"network.T5Config.emb_dim = {value}\nnetwork.T5Config.num_heads = 8\n")
    with pytest.raises(ConfigError, match=r"config\.gin: the integer .* is out of range"):
        parse_gin([str(path)])
    path.write_text("a.b = 0x10\nc.d = deadbeef\ne.f = -12\n")
    assert parse_gin([str(path)]) == {"a.b": 16, "c.d": "deadbeef", "e.f": -12}


@pytest.mark.parametrize("number", ["9" * 5_000, "101", "0100"])
def test_a_sentinel_numbered_out_of_order_is_named_however_long_its_number(tmp_path, number):
    spec = json.loads((FIXTURES / "t5_vocab" / "tokenizer.json").read_text(encoding="utf-8"))
    next_id = max(t["id"] for t in spec["added_tokens"]) + 1
    spec["added_tokens"].append({"id": next_id, "content": f"<extra_id_{number}>",
                                 "single_word": False, "lstrip": False, "rstrip": False,
                                 "normalized": False, "special": True})
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tokenizer\.json: .*not numbered 0\.\.N-1"):
        load_tokenizer(str(path))


def test_a_value_shown_in_a_message_is_short_whatever_it_is():
    assert file_reads.shown(-10 ** 5000) == "<an integer of 16610 bits>"
    assert len(file_reads.shown(["x" * 10_000] * 1_000)) < 1_000


def test_gin_includes_that_loop_or_chain_without_end_stop(tmp_path):
    (tmp_path / "self.gin").write_text("include './self.gin'\nx.y = 1\n")
    assert parse_gin([str(tmp_path / "self.gin")]) == {"x.y": 1}
    for i in range(150):
        (tmp_path / f"{i}.gin").write_text(f"include '{i + 1}.gin'\n")
    with pytest.raises(T5CoreError, match=r"0\.gin: more than 100 gin files"):
        parse_gin([str(tmp_path / "0.gin")])


def test_a_spiece_model_with_a_piece_that_is_not_utf8_is_named(tmp_path):
    data = (VOCAB / "spiece.model").read_bytes()
    piece = "▁the".encode()
    assert piece in data
    path = tmp_path / "spiece.model"
    path.write_bytes(data.replace(piece, b"\xff" + piece[1:], 1))
    with pytest.raises(T5CoreError, match=r"spiece\.model: a piece is not UTF-8"):
        load_tokenizer(str(path))


def test_a_tokenizer_json_without_added_tokens_encodes_in_python_and_in_graph():
    spec = json.loads((FIXTURES / "hf_tiny_random_t5" / "tokenizer.json").read_text())
    spec["added_tokens"] = None
    tokenizer = Tokenizer(model_proto=json.dumps(spec).encode())
    ids = tokenizer.encode("hello <extra_id_0>")
    assert ids and tokenizer.decode(ids) == "hello <extra_id_0>"
    assert tokenizer.in_graph().tokenize(["hello <extra_id_0>"]).to_list() == [ids]


def test_a_damaged_spiece_model_is_named_with_or_without_the_dummy_prefix(tmp_path):
    path = tmp_path / "spiece.model"
    path.write_bytes(b"\x0a\xff\xff\xff\xff\x0f")
    for options in ({}, {"add_prefix_space": False}):
        with pytest.raises(T5CoreError, match=r"not a SentencePiece model.*spiece\.model"):
            Tokenizer(str(path), **options)
