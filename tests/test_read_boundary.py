"""The trust boundary for reads (docs/security.md, t5core/file_reads.py): one test per finding.

Each builds the hostile input of a finding (a file naming something outside its folder, a size
that would allocate gigabytes, a field of the wrong type) and checks that t5core refuses it with
its own one-line error, before anything outside is read or anything large is allocated.
"""

import gzip
import json
import os
import pathlib
import shutil
import tracemalloc

import h5py
import numpy as np
import pytest

from t5core import file_reads, locking
from t5core import model_dir as md
from t5core.checkpoints import load_pretrained
from t5core.checkpoints.hf_h5 import H5Reader
from t5core.checkpoints.tf_checkpoint import checkpoint_prefix
from t5core.data.sources import jsonl_objects, read_lines
from t5core.errors import CheckpointError, DataError, FlagError, ModelDirError, T5CoreError
from t5core.file_reads import UnsafeCheckpointError
from t5core.locking import DirectoryLock, describe
from t5core.tokenizer.hf_tokenizer_json import HFUnigramFile
from t5core.training.trainer import TrainConfig

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
RUN = FIXTURES / "interrupted_run"
H5 = FIXTURES / "hf_tiny_random_t5" / "tf_model.h5"
TOKENIZER = FIXTURES / "hf_tiny_random_t5" / "tokenizer.json"


def _secret(tmp_path, data=b"root:x:0:0:root:/root:/bin/bash\n" * 8):
    secret = tmp_path / "secret"
    secret.write_bytes(data)
    return secret


def _run_copy(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("LOCK", "best"))
    return run


# ----------------------------------------------------------------------------- h5


def _h5_with(tmp_path, add):
    """The fixture's tf_model.h5 with one more member, made by `add(h5file, secret)`."""
    path = tmp_path / "tf_model.h5"
    shutil.copyfile(H5, path)
    secret = _secret(tmp_path, np.arange(64, dtype=np.float32).tobytes())
    with h5py.File(path, "a") as f:
        add(f, str(secret))
    return path


def _external_storage(f, secret):
    f["shared"].create_dataset("stolen:0", shape=(64,), dtype="f4", external=[(secret, 0, 256)])


def _virtual(f, secret):
    other = secret + ".h5"
    with h5py.File(other, "w") as g:
        g["x"] = np.arange(4, dtype=np.float32)
    layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
    layout[:] = h5py.VirtualSource(other, "x", shape=(4,))
    f["shared"].create_virtual_dataset("stolen:0", layout)


def _soft_link(f, secret):
    del secret
    f["shared"]["alias:0"] = h5py.SoftLink("/shared")


def _external_link(f, secret):
    f["shared"]["stolen:0"] = h5py.ExternalLink(secret + ".h5", "/x")


@pytest.mark.parametrize("add", [_external_storage, _virtual, _soft_link, _external_link],
                         ids=["external storage", "virtual dataset", "soft link", "external link"])
def test_h5_that_reads_other_files_is_refused(tmp_path, add):
    path = _h5_with(tmp_path, add)
    with pytest.raises(UnsafeCheckpointError, match=r"tf_model\.h5: refers to data outside"):
        H5Reader(str(path))


def test_the_h5_fixture_itself_still_reads():
    reader = H5Reader(str(H5))
    assert reader.shapes


# ----------------------------------------------------------------------------- run.json


@pytest.mark.parametrize("name", ["../secret", "/etc/passwd", "link.json"])
def test_run_json_tokenizer_outside_the_model_dir_is_refused(tmp_path, name):
    run = _run_copy(tmp_path)
    secret = _secret(tmp_path)
    os.symlink(secret, run / "link.json")
    record = json.loads((run / "run.json").read_text())
    record["tokenizer"] = name
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(ModelDirError, match="outside the model_dir"):
        md.find_tokenizer(str(run))


@pytest.mark.parametrize("field, value", [("lora_rank", "8"), ("prompt_length", -1),
                                          ("labels", "a,b"), ("peft", 3), ("lora_alpha", None)])
def test_run_json_fields_of_the_wrong_type_are_named(tmp_path, field, value):
    run = _run_copy(tmp_path)
    record = json.loads((run / "run.json").read_text())
    record[field] = value
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(ModelDirError, match=f"run.json: field '{field}' must be"):
        md.read_run(str(run))


# ----------------------------------------------------------------------------- TF state file


@pytest.mark.parametrize("where", ["absolute", "relative", "link"])
def test_checkpoint_state_naming_checkpoints_outside_the_model_dir_is_refused(tmp_path, where):
    run = _run_copy(tmp_path)
    other = tmp_path / "other"
    shutil.copytree(RUN, other, ignore=shutil.ignore_patterns("LOCK", "best"))
    name = {"absolute": str(other / "ckpt-3"), "relative": "../other/ckpt-3",
            "link": "ckpt-9"}[where]
    if where == "link":
        os.symlink(other / "ckpt-3.index", run / "ckpt-9.index")
    (run / "checkpoint").write_text(f'model_checkpoint_path: "{name}"\n'
                                    f'all_model_checkpoint_paths: "{name}"\n')
    with pytest.raises(ModelDirError, match="outside"):
        file_reads.latest_checkpoint(str(run))
    with pytest.raises(ModelDirError, match="outside"):
        checkpoint_prefix(str(run))


def test_checkpoint_state_inside_the_model_dir_resolves(tmp_path):
    run = _run_copy(tmp_path)
    assert file_reads.checkpoint_state_paths(str(run)) == [str(run / "ckpt-3")]
    assert file_reads.latest_checkpoint(str(run)) == str(run / "ckpt-3")


def test_checkpoint_state_that_does_not_parse_is_named(tmp_path):
    run = _run_copy(tmp_path)
    (run / "checkpoint").write_text("model_checkpoint_path: [[[\n")
    with pytest.raises(ModelDirError, match="checkpoint: not a TensorFlow checkpoint state"):
        file_reads.latest_checkpoint(str(run))


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("field, value", [("lora_rank", 50000), ("prompt_length", 4_000_000),
                                          ("labels", [f"l{i}" for i in range(300_000)])])
def test_run_json_sizes_beyond_the_checkpoint_are_refused_before_building(tmp_path, field,
                                                                          value):
    run = _run_copy(tmp_path)
    record = json.loads((run / "run.json").read_text())
    record[field] = value
    if field == "prompt_length":
        record["model_class"] = "PromptTunedT5"
    if field == "labels":
        record.update(model_class="T5EncoderClassifier", head="classifier")
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"describe a model of at least .* values in all"):
        load_pretrained(str(run))


def test_config_sizes_beyond_the_budget_are_refused(tmp_path):
    from t5core.config import T5Config
    from t5core.errors import ConfigError

    config = json.loads((RUN / "config.json").read_text())
    config["d_model"] = 10**9
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="over the budget"):
        T5Config.from_json(str(path))


# ----------------------------------------------------------------------------- data files


def test_gz_bomb_line_is_a_data_error_naming_file_and_line(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    line_bytes = file_reads.BUDGETS["line_bytes"]
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b'{"inputs": "a", "targets": "b"}\n')
        block = b"a" * (1 << 20)
        for _ in range(line_bytes // len(block) + 4):  # one line past the budget
            f.write(block)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb\.jsonl\.gz:2: line longer than"):
            jsonl_objects(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * line_bytes  # the line is refused while it grows, not once held whole


def test_gz_and_plain_lines_read_as_before(tmp_path):
    text = "\ufeffone\r\ntwo\n\nthree"
    plain, packed = tmp_path / "a.txt", tmp_path / "a.txt.gz"
    plain.write_bytes(text.encode())
    with gzip.open(packed, "wb") as f:
        f.write(text.encode()[:5])
    with gzip.open(packed, "ab") as f:  # a second gzip member, as `cat a.gz b.gz` makes
        f.write(text.encode()[5:])
    assert read_lines(str(plain)) == read_lines(str(packed)) == ["one", "two", "", "three"]


def test_a_gz_of_many_empty_lines_is_charged_what_its_lines_cost_held(tmp_path, monkeypatch):
    # 200,000 empty lines: 200 KB of bytes, but each line held as a str costs tens of bytes more.
    path = tmp_path / "lines.tsv.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"a\n" * 200_000)
    budget = 200_000 * file_reads.LINE_COST  # the bytes alone fit; the lines held do not
    monkeypatch.setitem(file_reads.BUDGETS, "data_file_bytes", budget)
    with pytest.raises(DataError, match=f"more than {budget:,} bytes held as lines"):
        read_lines(str(path))
    monkeypatch.setitem(file_reads.BUDGETS, "data_file_bytes", 2 * budget)
    tracemalloc.start()
    assert len(read_lines(str(path))) == 200_000
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * budget  # held once, as text: within what the budget charged


def test_truncated_gz_is_a_data_error(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": "b"}\n' * 1000)[:-20])
    with pytest.raises(DataError, match="cut.jsonl.gz: not a valid gzip file"):
        read_lines(str(path))


# ----------------------------------------------------------------------------- one-line errors


def _tokenizer_with(change):
    spec = json.loads(TOKENIZER.read_text())
    change(spec)
    return json.dumps(spec).encode()


def _nested(depth):
    return "[" * depth + "]" * depth


# The kinds that ended in AttributeError, TypeError, binascii.Error or RecursionError.
_TOKENIZER_DAMAGE = {
    "added token null": lambda s: s["added_tokens"].__setitem__(0, None),
    "added tokens an object": lambda s: s.__setitem__("added_tokens", {"a": 1}),
    "pre-tokenizer step null": lambda s: s.__setitem__(
        "pre_tokenizer", {"type": "Sequence", "pretokenizers": [None]}),
    "pre-tokenizer steps a number": lambda s: s.__setitem__(
        "pre_tokenizer", {"type": "Sequence", "pretokenizers": 5}),
    "normalizer a list": lambda s: s.__setitem__("normalizer", [1]),
    "charsmap not base64": lambda s: s["normalizer"].__setitem__("precompiled_charsmap", "abc"),
    "charsmap a number": lambda s: s["normalizer"].__setitem__("precompiled_charsmap", 5),
    "unk_id a boolean": lambda s: s["model"].__setitem__("unk_id", True),
    "vocab entry a string": lambda s: s["model"]["vocab"].__setitem__(5, "piece"),
    "vocab score a string": lambda s: s["model"]["vocab"][300].__setitem__(1, "x"),
    "vocab score beyond float32": lambda s: s["model"]["vocab"][300].__setitem__(1, 1e300),
    "vocab piece a lone surrogate": lambda s: s["model"]["vocab"].__setitem__(5, ["\ud800", 0]),
    "decoder a string": lambda s: s.__setitem__("decoder", "Metaspace"),
    "model a list": lambda s: s.__setitem__("model", []),
    "whole file a list": lambda s: (s.clear(), s.__setitem__("x", 1)),
}


@pytest.mark.parametrize("kind", sorted(_TOKENIZER_DAMAGE))
def test_tokenizer_json_fields_of_the_wrong_type_are_one_line_errors(kind):
    data = _tokenizer_with(_TOKENIZER_DAMAGE[kind])
    with pytest.raises(T5CoreError, match="tokenizer.json: "):
        HFUnigramFile(data, "tokenizer.json")


def test_tokenizer_json_nested_too_deeply_is_one_line_error():
    with pytest.raises(T5CoreError, match="tokenizer.json: JSON nested too deeply"):
        HFUnigramFile(_nested(100_000).encode(), "tokenizer.json")


@pytest.mark.parametrize("record", [
    {"pid": "x", "host": 5, "started": "yesterday", "command": ["python"]},
    {"started": 1e300}, {"started": float("nan")}, [1, 2], "text", {"pid": True}])
def test_lock_record_with_wrong_fields_is_described(tmp_path, record):
    """A holder's record is described in words whatever its fields; a file that is no record
    t5core wrote is refused in one line and left as it was (file_writes' rule), never truncated."""
    lock_file = tmp_path / "LOCK"
    lock_file.write_text(json.dumps(record))
    fd = os.open(lock_file, os.O_RDONLY)
    try:
        assert isinstance(describe(locking._read_record(fd)), str)
    finally:
        os.close(fd)
    lock = DirectoryLock(str(tmp_path), "LOCK", ModelDirError)
    try:
        previous = lock.acquire()
        assert isinstance(describe(previous), str)
    except T5CoreError as err:
        assert "LOCK holds something other than a lock record" in str(err)
        assert lock_file.read_text() == json.dumps(record)
    finally:
        lock.release()


def test_model_dir_that_is_a_regular_file_is_a_flag_error(tmp_path):
    path = tmp_path / "runs"
    path.write_text("not a directory")
    with pytest.raises(FlagError, match=r"--model_dir=.*runs is a file, not a directory"):
        TrainConfig(model_dir=str(path)).check()


def test_trainer_refuses_a_state_file_naming_another_runs_checkpoints(tmp_path):
    import tensorflow as tf

    from t5core.config import T5Config
    from t5core.model import T5Model
    from t5core.training.trainer import Trainer

    run = _run_copy(tmp_path)
    other = tmp_path / "other"
    shutil.copytree(RUN, other, ignore=shutil.ignore_patterns("LOCK", "best"))
    before = sorted(os.listdir(other))
    (run / "checkpoint").write_text(f'model_checkpoint_path: "{other / "ckpt-3"}"\n'
                                    f'all_model_checkpoint_paths: "{other / "ckpt-3"}"\n')
    config = T5Config.from_json(str(RUN / "config.json"))
    tokens = np.full((8, 4), 2, np.int32)
    data = tf.data.Dataset.from_tensors({
        "encoder_input_tokens": tokens, "decoder_target_tokens": tokens,
        "decoder_input_tokens": tokens, "decoder_loss_weights": np.ones((8, 4), np.float32),
    }).repeat()
    settings = TrainConfig(model_dir=str(run), train_steps=1, batch_size=8, inputs_length=4,
                           targets_length=4, keep_checkpoints=1, progress_bar=False)
    with pytest.raises(ModelDirError, match="outside"):
        Trainer(settings, tf.distribute.get_strategy(), lambda: T5Model(config), data,
                log=lambda *a: None)
    assert sorted(os.listdir(other)) == before


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, b"[1, 2]",
                                     b'{"model_class": 5}'])
def test_run_description_that_is_not_a_json_object_is_named(tmp_path, content):
    run = _run_copy(tmp_path)
    (run / md.RUN).write_bytes(content)
    with pytest.raises(ModelDirError, match=md.RUN):
        md.read_run(str(run))


@pytest.mark.parametrize("extra, name", [
    ({"settings": ["{}", "{}"]}, "settings"),
    ({"settings": 7}, "settings"),
    ({"data_batch_size": [1, 2]}, "data_batch_size"),
    ({"data_batch_size": float("nan")}, "data_batch_size"),
])
def test_a_checkpoint_s_recorded_settings_of_another_type_are_named(tmp_path, extra, name):
    import tensorflow as tf

    variables = {key: tf.Variable(value) for key, value in extra.items()}
    checkpoint = tf.train.Checkpoint(optimizer=tf.train.Checkpoint(step=tf.Variable(1)),
                                     **variables)
    checkpoint.save(str(tmp_path / "ckpt"))
    with pytest.raises(ModelDirError, match=f"ckpt-1: its '{name}' is not"):
        md.check_resume_settings(str(tmp_path), {"batch_size": 8})


# -- text that is no character -------------------------------------------------------------------


def test_half_a_utf16_pair_is_refused_wherever_text_comes_in(tmp_path, monkeypatch):
    """A lone surrogate (a JSON \\ud800 escape without its other half, or a byte that was not
    UTF-8 in an argument or on stdin, which Python keeps as \\udcXX) is no character: no
    tokenizer, tensor or output file can encode it. Every JSON reader (data rows,
    --template_args, configs), both vocabularies and generate's stdin refuse it in one line."""
    import io
    import sys
    import types

    from t5core.commands.generate import read_inputs
    from t5core.tokenizer import ByteTokenizer, Tokenizer

    for text in ('{"prefix": "x\\ud800:"}', '{"a": "\\udc00"}', '{"a": "x\udcff"}'):
        with pytest.raises(DataError, match="lone surrogate .* is not a character") as err:
            file_reads.parse_json(text, "--template_args")
        assert str(err.value).startswith("--template_args: a lone surrogate")
    # A whole pair, and an escaped backslash before "u", are text.
    assert file_reads.parse_json('{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}', "x") == {
        "a": "\U0001F600", "b": "\\ud800"}
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"inputs": "a", "targets": "b"}\n{"inputs": "x\\ud800", "targets": "c"}\n')
    with pytest.raises(DataError, match=f"^{rows}:2: a lone surrogate \\\\ud800"):
        jsonl_objects(str(rows))
    for tokenizer in (ByteTokenizer(), Tokenizer(str(FIXTURES / "t5_vocab" / "spiece.model"))):
        with pytest.raises(DataError, match=r"^the text 'ab\\udcffcd': a lone surrogate"):
            tokenizer.encode("ab\udcffcd")
    monkeypatch.setattr(sys, "stdin", io.StringIO("fine\nab\udcffcd\n"))
    with pytest.raises(DataError, match="^stdin line 2: a lone surrogate"):
        read_inputs(types.SimpleNamespace(input=None, input_file=None))


def test_a_byte_order_mark_inside_a_file_and_a_carriage_return_in_a_cell_are_named(tmp_path):
    """Only a file's first line may start with a BOM (it is dropped); anywhere else it would
    stay in a field, unseen. A lone \\r in an unquoted TSV cell is named as what it is."""
    from t5core.data.sources import tsv_rows

    joined = tmp_path / "joined.tsv"
    joined.write_text("\ufeffinputs\ttargets\na\tb\n\ufeffc\td\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"^{joined}:3: a byte-order mark starts the line"):
        tsv_rows(str(joined))
    twice = tmp_path / "twice.jsonl"
    twice.write_text('\ufeff\ufeff{"inputs": "a", "targets": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=f"^{twice}:1: a byte-order mark"):
        jsonl_objects(str(twice))
    once = tmp_path / "once.tsv"
    once.write_text("\ufeffinputs\ttargets\na\tb\n", encoding="utf-8")
    assert tsv_rows(str(once)) == (["inputs", "targets"], [(2, ["a", "b"])])
    cr = tmp_path / "cr.tsv"
    cr.write_bytes(b"inputs\ttargets\nline one\rcontinued\tx\nok\ty\n")
    with pytest.raises(DataError, match=rf"^{cr}:2: a carriage return \(\\r\) inside a cell"):
        tsv_rows(str(cr))
