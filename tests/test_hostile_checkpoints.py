"""Checkpoints and configs from strangers: each is refused with a named error, or loads correctly.

One test per fault a review found (and its neighbours): out-of-bounds views in a torch zip,
byte ranges in safetensors, shard paths out of the checkpoint, index and state dicts of the wrong
JSON type, hostile T5X msgpack, non-finite weights, and config fields of the wrong type or range.
The property-based fuzzers over the same formats are in test_fuzz_checkpoints.py.
"""

import importlib.util
import json
import math
import os
import pathlib
import re
import shutil
import struct
import tracemalloc
import zipfile

import h5py
import msgpack
import numpy as np
import pytest
from hostile_files import (
    ext_array,
    set_declared_size,
    pack_t5x,
    safetensors_bytes,
    safetensors_of,
    torch_pickle,
    write_torch_zip,
)
from safetensors.numpy import load_file, save_file

import t5core
from t5core.checkpoints import load_pretrained
from t5core.checkpoints.hf_bin import HFBinReader, UnsafeCheckpointError
from t5core.checkpoints.optimizer_state import import_optimizer_state
from t5core.checkpoints.safetensors_io import SafetensorsReader
from t5core.checkpoints.t5x import T5XReader
from t5core.errors import CheckpointError, ConfigError
from t5core.optimizers import Adafactor

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"
VARIANT = REFERENCE / "t5_v1_1_gated_gelu_untied"
T5X = FIXTURES / "t5x_tiny"
T5X_GINS = [str(T5X / "t5_1_1_base.gin"), str(T5X / "tiny.gin")]


def _floats(n):
    return np.arange(n, dtype=np.float32).tobytes()


def _bin(tmp_path, tensors, storages, name="x.bin"):
    path = tmp_path / name
    write_torch_zip(path, torch_pickle(tensors), storages)
    return str(path)


def _variant_as_bin(tmp_path, override=None):
    """The reference variant's weights as a torch zip (one storage each), with `override`
    ({name: (offset, size, stride)}) replacing some tensors' views."""
    state = load_file(VARIANT / "model.safetensors")
    tensors, storages = {}, {}
    for i, (name, array) in enumerate(sorted(state.items())):
        strides = tuple(int(np.prod(array.shape[k + 1:])) for k in range(array.ndim))
        view = (0, tuple(array.shape), strides)
        if override and name in override:
            view = override[name]
        tensors[name] = ("FloatStorage", str(i), array.size, *view)
        storages[str(i)] = array.astype(np.float32).tobytes()
    directory = tmp_path / "bin"
    directory.mkdir()
    write_torch_zip(directory / "pytorch_model.bin", torch_pickle(tensors), storages)
    shutil.copyfile(VARIANT / "config.json", directory / "config.json")
    return directory


# ----------------------------------------------------------------------------- pytorch_model.bin


def test_negative_storage_offset_is_refused_not_read_outside_the_buffer(tmp_path):
    path = _bin(tmp_path, {"w": ("FloatStorage", "0", 4, -1, (4,), (1,))}, {"0": _floats(4)})
    with pytest.raises(CheckpointError, match=r"(?s)x\.bin.*\bw\b.*offset -1"):
        HFBinReader(path, use_torch=False).read("w")


def test_negative_offset_in_a_whole_checkpoint_fails_load_and_convert(tmp_path):
    directory = _variant_as_bin(tmp_path, {"shared.weight": (-1, (128, 24), (24, 1))})
    with pytest.raises(CheckpointError, match=r"(?s)pytorch_model\.bin.*shared\.weight"):
        load_pretrained(str(directory), use_torch=False)
    spec = importlib.util.spec_from_file_location(
        "convert_checkpoint",
        pathlib.Path(__file__).parents[1] / "scripts" / "convert_checkpoint.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    out = tmp_path / "out"
    assert convert.main([f"--input={directory}", f"--output={out}", "--quiet", "--no_torch"]) == 2
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("spec,storages,message", [
    (("FloatStorage", "0", 4, 0, (4,), (-1,)), {"0": _floats(4)}, r"stride"),
    (("FloatStorage", "0", 4, 0, (-4,), (1,)), {"0": _floats(4)}, r"size"),
    (("FloatStorage", "0", 4, 1, (4,), (1,)), {"0": _floats(4)}, r"overruns its storage"),
    (("FloatStorage", "0", 4, 0, (2, 2), (3, 1)), {"0": _floats(4)}, r"overruns its storage"),
    (("FloatStorage", "0", 8, 0, (8,), (1,)), {"0": _floats(4)}, r"has 16 bytes, needs 32"),
    (("FloatStorage", "1", 4, 0, (4,), (1,)), {"0": _floats(4)}, r"missing"),
    (("FloatStorage", "0", 4, 1.5, (2,), (1,)), {"0": _floats(4)}, r"offset"),
    (("FloatStorage", "0", 4, "0", (2,), (1,)), {"0": _floats(4)}, r"offset"),
    (("FloatStorage", "0", 4, 0, (True, 2), (2, 1)), {"0": _floats(4)}, r"size"),
    (("FloatStorage", "0", 4, 0, (4,), (1, 1)), {"0": _floats(4)}, r"size.*stride"),
    (("FloatStorage", "0", 4, 0, (1,) * 65, (1,) * 65), {"0": _floats(4)}, r"dimensions"),
    (("FloatStorage", "0", -4, 0, (0,), (1,)), {"0": _floats(4)}, r"elements"),
    # Every element of a broadcast view is the storage's first: 2**62 of them would be read.
    (("FloatStorage", "0", 4, 0, (2**31, 2**31), (0, 0)), {"0": _floats(4)}, r"more elements"),
    (("FloatStorage", "0", 2**62, 0, (2**62,), (1,)), {"0": _floats(4)}, r"needs"),
    (("FloatStorage", "../../x", 4, 0, (4,), (1,)), {"0": _floats(4)}, r"storage key"),
])
def test_views_that_do_not_fit_their_storage_are_named(tmp_path, spec, storages, message):
    path = _bin(tmp_path, {"w": spec}, storages)
    with pytest.raises(CheckpointError, match=r"(?s)x\.bin") as err:
        reader = HFBinReader(path, use_torch=False)
        reader.validate(["w"])
        reader.read("w")
    assert "w" in str(err.value)  # the tensor is named
    assert len(str(err.value)) < 2000
    assert re.search(message, str(err.value), re.S), str(err.value)


def test_a_storage_shared_with_two_dtypes_is_refused(tmp_path):
    path = _bin(tmp_path, {"a": ("FloatStorage", "0", 4, 0, (4,), (1,)),
                           "b": ("LongStorage", "0", 2, 0, (2,), (1,))}, {"0": _floats(4)})
    with pytest.raises(CheckpointError, match=r"(?s)storage 0.*FloatStorage.*LongStorage"):
        HFBinReader(path, use_torch=False)


def test_valid_views_still_read_exactly(tmp_path):
    values = np.arange(12, dtype=np.float32)
    path = _bin(tmp_path, {"t": ("FloatStorage", "0", 12, 1, (3, 2), (1, 3)),
                           "e": ("FloatStorage", "0", 12, 5, (0, 4), (4, 1)),
                           "b": ("FloatStorage", "0", 12, 2, (3, 2), (0, 1))},
                {"0": values.tobytes()})
    reader = HFBinReader(path, use_torch=False)
    np.testing.assert_array_equal(reader.read("t"), [[1, 4], [2, 5], [3, 6]])
    assert reader.read("e").shape == (0, 4)
    np.testing.assert_array_equal(reader.read("b"), [[2, 3]] * 3)


def _pickle_with(body):
    return b"\x80\x02" + body


@pytest.mark.parametrize("pickle_bytes,message", [
    # LONG_BINPUT at index 2**31: CPython's unpickler would grow its memo to 16 GiB first.
    (_pickle_with(b"}r\xff\xff\xff\x7f."), r"memo"),
    # BINBYTES8 declaring 2**40 bytes: the unpickler would allocate them before reading.
    (_pickle_with(b"\x8e" + (2**40).to_bytes(8, "little") + b"ab."), r"truncated|damaged"),
    (_pickle_with(b"(" * 100 + b"."), r"nest"),
    (_pickle_with(b"]."), r"holds a list, not a state dict"),
    (torch_pickle({7: ("FloatStorage", "0", 4, 0, (4,), (1,))}), r"key"),
    (_pickle_with(b"}" + b"X\x01\x00\x00\x00w" + b"K\x05s."), r"not tensors: w"),
    (_pickle_with(b"}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n("
                  b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
                  b"X\x03\x00\x00\x00cpu]tQK\x00(K\x01t(K\x01t\x89tRs."), r"elements|storage"),
    (b"garbage", r"damaged|unreadable"),
])
def test_hostile_pickles_are_named_errors(tmp_path, pickle_bytes, message):
    path = tmp_path / "x.bin"
    write_torch_zip(path, pickle_bytes, {"0": _floats(4)})
    with pytest.raises(CheckpointError, match=r"(?s)x\.bin") as err:
        reader = HFBinReader(str(path), use_torch=False)
        reader.validate(list(reader.shapes))
    assert re.search(message, str(err.value), re.S), str(err.value)


def test_a_pickle_cannot_change_the_readers_own_objects(tmp_path):
    # BUILD on the FloatStorage stand-in would set its dtype for every later load in the process.
    payload = _pickle_with(b"ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00Os"
                           b"b}.")
    write_torch_zip(tmp_path / "x.bin", payload, {})
    with pytest.raises(CheckpointError):
        HFBinReader(str(tmp_path / "x.bin"), use_torch=False)
    ok = _bin(tmp_path, {"w": ("FloatStorage", "0", 4, 0, (4,), (1,))}, {"0": _floats(4)},
              name="ok.bin")
    assert HFBinReader(ok, use_torch=False).read("w").dtype == np.float32


def test_a_storage_declaring_more_than_its_compressed_bytes_can_hold(tmp_path):
    # A deflated entry of 1 KiB cannot inflate to 1 GiB (deflate's ratio is at most 1032:1):
    # such a declared size is refused before anything is inflated.
    path = tmp_path / "x.bin"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", torch_pickle(
            {"w": ("FloatStorage", "0", 2**28, 0, (2**28,), (1,))}))
        z.writestr("archive/data/0", b"\0" * 2**20, compress_type=zipfile.ZIP_DEFLATED)
    set_declared_size(path, "archive/data/0", 2**30)
    assert zipfile.ZipFile(path).getinfo("archive/data/0").compress_size < 2**12
    with pytest.raises(CheckpointError, match=r"(?s)x\.bin.*\bw\b.*compressed"):
        HFBinReader(str(path), use_torch=False).validate(["w"])


def test_a_zip_entry_declaring_a_huge_compressed_size_is_refused_before_reading(tmp_path):
    # Found by test_fuzz_torch_pickle_stream: zipfile reads an entry in requests of up to its
    # declared compressed size, each allocated in full first (1 GiB here for a 2 KB file).
    import tracemalloc

    path = tmp_path / "x.bin"
    write_torch_zip(path, torch_pickle({"w": ("FloatStorage", "0", 4, 0, (4,), (1,))}),
                    {"0": _floats(4)})
    set_declared_size(path, "archive/byteorder", 2**31, field="compress_size")
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"(?s)x\.bin.*archive/byteorder"):
            HFBinReader(str(path), use_torch=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**24


# ----------------------------------------------------------------------------- safetensors


def _safetensors(tmp_path, header, data, name="model.safetensors", header_text=None):
    path = tmp_path / name
    path.write_bytes(safetensors_bytes(header, data, header_text))
    return str(path)


def test_negative_data_offsets_do_not_load_the_header_as_weights(tmp_path):
    header = {"w": {"dtype": "U8", "shape": [8], "data_offsets": [-8, 0]}}
    path = _safetensors(tmp_path, header, b"")
    with pytest.raises(CheckpointError, match=r"(?s)model\.safetensors.*\bw\b.*data_offsets"):
        SafetensorsReader(path)


def test_overlapping_byte_ranges_are_refused(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    path = _safetensors(tmp_path, header, _floats(3))
    with pytest.raises(CheckpointError, match=r"(?s)model\.safetensors.*overlap.*\ba\b.*\bb\b"):
        SafetensorsReader(path)


BAD_ENTRIES = [
    ({"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}, r"shape"),
    ({"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}, r"shape"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]}, r"data_offsets"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}, r"data_offsets"),
    ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, r"shape"),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, r"shape"),
    ({"dtype": "F4", "shape": [2], "data_offsets": [0, 8]}, r"dtype"),
    ({"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}, r"dtype"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, r"data_offsets"),
    ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, r"8 bytes.*\(3,\)"),
    ({"dtype": "F32", "shape": [2]}, r"data_offsets"),
    ([0, 8], r"not an object"),
]


@pytest.mark.parametrize("entry,message", BAD_ENTRIES)
def test_malformed_header_entries_are_named(tmp_path, entry, message):
    path = _safetensors(tmp_path, {"w": entry}, _floats(2))
    with pytest.raises(CheckpointError, match=r"(?s)model\.safetensors") as err:
        SafetensorsReader(path)
    assert "w" in str(err.value)
    assert re.search(message, str(err.value), re.S), str(err.value)


@pytest.mark.parametrize("header_text,message", [
    ("[1, 2]", r"not a JSON object"),
    ('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
     '"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', r"'w'.*given more than once"),
    ('{"__metadata__": ["x"]}', r"__metadata__"),
    ('{"__metadata__": {"format": 3}}', r"__metadata__"),
    ("[" * 50000 + "]" * 50000, r"nested too deeply"),
    (b"\xff\xfe{", r"not UTF-8"),
    ('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1' + "0" * 5000 + "]}}",
     r"not valid JSON|data_offsets"),
    ("", r"header of 0 bytes"),
])
def test_malformed_headers_are_named(tmp_path, header_text, message):
    path = _safetensors(tmp_path, None, _floats(2), header_text=header_text)
    with pytest.raises(CheckpointError, match=r"(?s)model\.safetensors") as err:
        SafetensorsReader(path)
    assert re.search(message, str(err.value), re.S), str(err.value)


def test_a_huge_declared_header_is_not_allocated(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match=r"(?s)header of 4611686018427387904 bytes"):
        SafetensorsReader(str(path))


def test_well_formed_safetensors_with_gaps_and_empty_tensors_load(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
              "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]},
              "b": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}
    reader = SafetensorsReader(_safetensors(tmp_path, header, _floats(4)))
    np.testing.assert_array_equal(reader.read("a"), [2, 3])
    assert reader.read("e").shape == (0, 3)
    assert reader.read("b").tolist() == [0]


def test_local_files_are_read_by_the_safetensors_library(tmp_path, monkeypatch):
    import safetensors

    path = tmp_path / "model.safetensors"
    save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(path))
    opened = []
    real_open = safetensors.safe_open
    monkeypatch.setattr(safetensors, "safe_open",
                        lambda p, **kw: opened.append(p) or real_open(p, **kw))
    reader = SafetensorsReader(str(path))
    np.testing.assert_array_equal(reader.read("a"), np.arange(6).reshape(2, 3))
    assert opened and set(opened) == {str(path)}


def test_the_libraries_errors_become_checkpoint_errors_naming_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": np.ones(1024, np.float32)}, str(path))
    reader = SafetensorsReader(str(path))
    with open(path, "r+b") as f:  # the file changes under the reader: cut off its data
        f.truncate(path.stat().st_size - 1024)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*\ba\b"):
        reader.read("a")


# ----------------------------------------------------------------------------- shard paths


def _sharded(tmp_path, weight_map=None, index_text=None, kind="safetensors"):
    """A checkpoint directory with one real shard and an index of the given content."""
    directory = tmp_path / "ckpt"
    directory.mkdir(exist_ok=True)
    header, data = safetensors_of({"w": np.ones(2, np.float32)})
    (directory / "shard-1.safetensors").write_bytes(safetensors_bytes(header, data))
    index = ("model.safetensors.index.json" if kind == "safetensors"
             else "pytorch_model.bin.index.json")
    text = index_text if index_text is not None else json.dumps({"weight_map": weight_map})
    (directory / index).write_text(text)
    return directory


def _outside(tmp_path):
    secret = tmp_path / "secret.safetensors"
    header, data = safetensors_of({"stolen": np.full(3, 7, np.float32)})
    secret.write_bytes(safetensors_bytes(header, data) + b"x" * 1234)
    return secret


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
@pytest.mark.parametrize("escape", ["relative", "absolute", "symlink"])
def test_shard_paths_cannot_leave_the_checkpoint(tmp_path, escape, kind):
    secret = _outside(tmp_path)
    directory = tmp_path / "ckpt"
    directory.mkdir()
    name = {"relative": "../secret.safetensors", "absolute": str(secret),
            "symlink": "link.safetensors"}[escape]
    if escape == "symlink":
        os.symlink(secret, directory / "link.safetensors")
    _sharded(tmp_path, {"stolen": name}, kind=kind)
    reader_cls = SafetensorsReader if kind == "safetensors" else (
        lambda p: HFBinReader(p, use_torch=False))
    with pytest.raises(UnsafeCheckpointError, match=r"(?s)index\.json.*outside") as err:
        reader_cls(str(directory))
    assert str(secret.stat().st_size) not in str(err.value)


def test_the_hugging_face_cache_layout_still_loads(tmp_path):
    # snapshots/<rev>/model.safetensors -> ../../blobs/<hash>: a symlink out of the snapshot that
    # stays inside the cached repository.
    repo = tmp_path / "models--t5core--tiny"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(VARIANT / name, repo / "blobs" / (name + ".blob"))
        os.symlink(os.path.join("..", "..", "blobs", name + ".blob"), snapshot / name)
    model = load_pretrained(str(snapshot))
    assert model.config.d_model == t5core.T5Config.from_json(str(VARIANT / "config.json")).d_model


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
@pytest.mark.parametrize("index_text,message", [
    ('{"weight_map": 3}', r"weight_map.*object"),
    ('{"weight_map": ["a", "b"]}', r"weight_map.*object"),
    ('{"weight_map": {"w": 3}}', r"\bw\b.*file name"),
    ('{"weight_map": {"w": ["shard-1.safetensors"]}}', r"\bw\b.*file name"),
    ('{"weight_map": {"w": ""}}', r"\bw\b.*file name"),
    ('["weight_map"]', r"JSON object"),
    ('{"metadata": {}}', r"no weight_map"),
    ("{not json", r"not valid JSON"),
])
def test_index_of_the_wrong_json_type_names_the_file(tmp_path, index_text, message, kind):
    directory = _sharded(tmp_path, index_text=index_text, kind=kind)
    with pytest.raises(CheckpointError, match=r"(?s)index\.json") as err:
        if kind == "safetensors":
            SafetensorsReader(str(directory))
        else:
            HFBinReader(str(directory), use_torch=False)
    assert re.search(message, str(err.value), re.S), str(err.value)


def test_index_naming_a_tensor_its_shard_lacks(tmp_path):
    directory = _sharded(tmp_path, {"w": "shard-1.safetensors", "v": "shard-1.safetensors"})
    with pytest.raises(CheckpointError, match=r"(?s)index\.json.*\bv\b.*shard-1\.safetensors"):
        SafetensorsReader(str(directory))


def test_a_checkpoint_file_the_user_linked_elsewhere_is_followed(tmp_path):
    # docs/security.md: model.safetensors is looked for by its fixed name in the directory the
    # user named, so a link there is the user's (weights on a shared disk) and is followed; only
    # names read from inside a file (an index's shards) must stay in the directory.
    shared = tmp_path / "shared_disk"
    shared.mkdir()
    shutil.copyfile(VARIANT / "model.safetensors", shared / "weights.safetensors")
    directory = tmp_path / "ckpt"
    directory.mkdir()
    os.symlink(shared / "weights.safetensors", directory / "model.safetensors")
    shutil.copyfile(VARIANT / "config.json", directory / "config.json")
    model = load_pretrained(str(directory))
    state = load_file(VARIANT / "model.safetensors")
    np.testing.assert_array_equal(model.variables_by_name()["shared/embeddings"].numpy(),
                                  state["shared.weight"])


# ----------------------------------------------------------------------------- T5X msgpack


def _t5x(tmp_path, tree):
    path = tmp_path / "checkpoint"
    path.write_bytes(pack_t5x(tree) if not isinstance(tree, bytes) else tree)
    return str(path)


@pytest.mark.parametrize("leaf,message", [
    (msgpack.ExtType(7, b"\x90"), r"extension type 7"),
    (ext_array([2], "object", b"\0" * 16), r"dtype 'object'"),
    (ext_array([2], "complex64", b"\0" * 16), r"dtype 'complex64'"),
    (ext_array([2], "V8", b"\0" * 16), r"dtype 'V8'"),
    (ext_array([3], "float32", b"\0" * 8), r"holds 8 bytes"),
    (ext_array([-2], "float32", b""), r"shape"),
    (ext_array([2**40, 2**40], "float32", b""), r"holds 0 bytes"),
    (ext_array("ab", "float32", b""), r"shape"),
    (ext_array([2], 3, b"\0" * 8), r"dtype"),
    (msgpack.ExtType(1, b"\x93\x91\x02\xa7float32"), r"unreadable|array"),
    (msgpack.ExtType(1, msgpack.packb([[2], "float32"])), r"array"),
])
def test_bad_inline_arrays_name_the_field(tmp_path, leaf, message):
    path = _t5x(tmp_path, {"target": {"encoder": {"w": leaf}}})
    with pytest.raises(CheckpointError, match=r"(?s)checkpoint.*target/encoder/w") as err:
        T5XReader(path)
    assert re.search(message, str(err.value), re.S), str(err.value)


def test_deep_nesting_is_refused_without_recursion_errors(tmp_path):
    for depth in (900, 5000):  # msgpack itself stops at 1024 levels; Python's recursion at ~1000
        nested = b"\x81\xa1a" * depth + b"\x80"
        with pytest.raises(CheckpointError, match=r"(?s)checkpoint.*(nest|deep)"):
            T5XReader(_t5x(tmp_path, nested))


def test_keys_of_other_types_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"(?s)checkpoint.*target.*key"):
        T5XReader(_t5x(tmp_path, {"target": {1.5: np.zeros(2, np.float32)}}))


def test_huge_msgpack_arrays_are_refused(tmp_path):
    data = b"\x81\xa6target\xdd" + (50_000_000).to_bytes(4, "big") + b"\xc0" * 16
    with pytest.raises(CheckpointError, match=r"(?s)checkpoint"):
        T5XReader(_t5x(tmp_path, data))


@pytest.mark.parametrize("store", [
    {"driver": "file", "path": "../../etc"},
    {"driver": "file", "path": "/etc"},
    "file:///etc/",
])
def test_tensorstore_paths_cannot_leave_the_checkpoint(tmp_path, store):
    spec = {"driver": "zarr", "kvstore": store, "metadata": {"shape": [4], "dtype": "<f4"}}
    with pytest.raises(CheckpointError, match=r"(?s)checkpoint.*target/w.*(outside|kvstore)"):
        T5XReader(_t5x(tmp_path, {"target": {"w": spec}}))


def test_tensorstore_spec_with_a_bad_shape(tmp_path):
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": "w"},
            "metadata": {"shape": [-1, "x"], "dtype": "<f4"}}
    with pytest.raises(CheckpointError, match=r"(?s)checkpoint.*target/w.*shape"):
        T5XReader(_t5x(tmp_path, {"target": {"w": spec}}))


def test_flax_chunked_arrays_load(tmp_path):
    # Flax splits large arrays: shape and chunks are dicts keyed "0", "1", ...
    values = np.arange(12, dtype=np.float32)
    leaf = {"__msgpack_chunked_array__": True, "shape": {"0": 3, "1": 4},
            "chunks": {"0": values[:5], "1": values[5:]}}
    reader = T5XReader(_t5x(tmp_path, {"target": {"w": leaf}}))
    assert reader.shapes["target/w"] == (3, 4)
    np.testing.assert_array_equal(reader.read("target/w"), values.reshape(3, 4))
    leaf["chunks"] = {"0": values[:5], "2": values[5:]}
    with pytest.raises(CheckpointError, match=r"(?s)target/w.*chunks"):
        T5XReader(_t5x(tmp_path, {"target": {"w": leaf}}))


def test_an_inline_arrays_payload_is_unpacked_within_the_files_limits(tmp_path):
    # An array of more empty maps than a msgpack array may hold, one byte each: unpacked without
    # limits, the payload would become a dict per byte before the leaf is refused.
    n = (1 << 20) + 1
    payload = b"\xdd" + struct.pack(">I", n) + b"\x80" * n
    path = _t5x(tmp_path, {"target": {"w": msgpack.ExtType(1, payload)}})
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"(?s)checkpoint.*target/w"):
            T5XReader(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak:,} bytes held for a {n:,}-byte payload"


def _t5x_with(tmp_path, change):
    """The T5X fixture in tmp_path/t5x with `change(tree)` applied to its msgpack tree."""
    directory = tmp_path / "t5x"
    directory.mkdir()
    tree = msgpack.unpackb((T5X / "test_t5_tiny.checkpoint_0").read_bytes(), raw=False,
                           strict_map_key=False)
    change(tree)
    (directory / "checkpoint").write_bytes(msgpack.packb(tree))
    return directory


def test_a_step_counter_of_many_values_is_refused_before_it_is_read(tmp_path, monkeypatch):
    def steps(tree):
        tree["optimizer"]["state"]["step"] = ext_array([4], "int32", bytes(16))
    directory = _t5x_with(tmp_path, steps)
    model = load_pretrained(str(directory), config=T5X_GINS)
    optimizer = Adafactor(0.01)
    optimizer.build(model.trainable_variables)
    read = T5XReader.read

    def no_step(self, name):
        assert not name.endswith("state/step"), "the step counter was read before its shape"
        return read(self, name)
    monkeypatch.setattr(T5XReader, "read", no_step)
    with pytest.raises(CheckpointError, match=r"checkpoint: optimizer/state/step has shape "
                                              r"\(4,\), not a step count"):
        import_optimizer_state(str(directory), model, optimizer)


def test_importing_optimizer_state_lets_go_of_the_checkpoint_it_opened():
    h5 = str(FIXTURES / "hf_tiny_random_t5" / "tf_model.h5")
    model = load_pretrained(h5)
    optimizer = Adafactor(0.01)
    optimizer.build(model.trainable_variables)
    with pytest.raises(CheckpointError, match=r"tf_model\.h5: a hf-h5 checkpoint") as err:
        import_optimizer_state(h5, model, optimizer)
    # (the error's traceback keeps the reader alive: only closing it lets go of the file)
    assert not h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE), f"still open after: {err.value}"


def test_tensorstores_errors_on_a_corrupt_chunk_name_the_file_and_tensor(tmp_path):
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": "w"},
            "metadata": {"shape": [2], "dtype": "<f4"}}
    path = _t5x(tmp_path, {"target": {"w": spec}})
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / ".zarray").write_text(json.dumps(
        {"zarr_format": 2, "shape": [2], "chunks": [2], "dtype": "<f4", "fill_value": 0,
         "compressor": {"id": "zlib", "level": 1}, "filters": None, "order": "C"}))
    (tmp_path / "w" / "0").write_bytes(b"not zlib data")
    reader = T5XReader(path)
    reader.validate(["target/w"])
    with pytest.raises(CheckpointError, match=r"checkpoint: could not read tensor target/w "
                                              r"\(ValueError: "):
        reader.read("target/w")


# ----------------------------------------------------------------------------- non-finite


def _with_nonfinite(tmp_path):
    directory = tmp_path / "nan"
    shutil.copytree(VARIANT, directory)
    state = load_file(directory / "model.safetensors")
    state["shared.weight"][3, 5] = np.nan
    state["encoder.block.1.layer.1.DenseReluDense.wo.weight"][0, :2] = np.inf
    save_file(state, str(directory / "model.safetensors"))
    return directory


def test_nonfinite_weights_are_an_error_naming_every_tensor(tmp_path):
    directory = _with_nonfinite(tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(str(directory))
    message = str(err.value)
    assert "model.safetensors" in message or str(directory) in message
    assert "shared.weight: 1 NaN" in message
    assert "encoder.block.1.layer.1.DenseReluDense.wo.weight: 2 Inf" in message
    assert "allow_nonfinite=True" in message


def test_nonfinite_weights_load_when_allowed(tmp_path):
    model = load_pretrained(str(_with_nonfinite(tmp_path)), allow_nonfinite=True)
    embedding = model.variables_by_name()["shared/embeddings"].numpy()
    assert np.isnan(embedding[3, 5]) and np.isfinite(np.delete(embedding.ravel(), 3 * 24 + 5)).all()


# ----------------------------------------------------------------------------- config


def _config_file(tmp_path, **changes):
    values = json.loads((VARIANT / "config.json").read_text())
    values.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    return str(path)


@pytest.mark.parametrize("field,value,message", [
    ("layer_norm_epsilon", math.nan, r"finite number > 0"),
    ("layer_norm_epsilon", -1e-6, r"finite number > 0"),
    ("layer_norm_epsilon", 0, r"finite number > 0"),
    ("layer_norm_epsilon", "1e-6", r"number, not the string '1e-6'"),
    ("dropout_rate", "0.1", r"number, not the string '0.1'"),
    ("dropout_rate", math.inf, r"\[0, 1\)"),
    ("initializer_factor", math.nan, r"finite number > 0"),
    ("tie_word_embeddings", "false", r"true or false.*string 'false'"),
    ("tie_word_embeddings", 0, r"true or false"),
    ("d_model", "512", r"positive integer.*string '512'"),
    ("d_model", 512.0, r"positive integer"),
    ("d_model", True, r"positive integer"),
    ("d_model", 0, r"positive integer"),
    ("num_heads", -2, r"positive integer"),
    ("num_decoder_layers", 0, r"positive integer"),
    ("vocab_size", None, r"positive integer"),
    ("decoder_start_token_id", -1, r"token id in \[0, 128\)"),
    ("decoder_start_token_id", 128, r"token id in \[0, 128\)"),
    ("decoder_start_token_id", "0", r"token id"),
    ("decoder_start_token_id", False, r"token id"),
    ("eos_token_id", 1.0, r"token id"),
    ("pad_token_id", None, r"token id"),
    ("feed_forward_proj", 3, r"feed_forward_proj"),
    ("relative_attention_num_buckets", 2, r">= 4"),
    ("relative_attention_max_distance", 6, r"more than relative_attention_num_buckets // 2"),
])
def test_bad_config_fields_name_the_file_and_field(tmp_path, field, value, message):
    path = _config_file(tmp_path, **{field: value})
    with pytest.raises(ConfigError) as err:
        t5core.T5Config.from_json(path)
    text = str(err.value)
    assert path in text and field in text, text
    assert re.search(message, text, re.S), text


def test_good_config_values_are_kept_exactly(tmp_path):
    config = t5core.T5Config.from_json(_config_file(
        tmp_path, layer_norm_epsilon=1e-5, tie_word_embeddings=False, dropout_rate=0,
        decoder_start_token_id=2))
    assert (config.layer_norm_epsilon, config.tie_word_embeddings, config.dropout_rate,
            config.decoder_start_token_id) == (1e-5, False, 0.0, 2)
    assert isinstance(config.dropout_rate, float)
    config = t5core.T5Config(d_model=np.int64(16), d_kv=4, num_heads=4,
                             layer_norm_epsilon=np.float32(1e-6))
    assert type(config.d_model) is int and type(config.layer_norm_epsilon) is float


def test_config_that_is_not_an_object_or_not_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1]")
    with pytest.raises(ConfigError, match=r"(?s)config\.json.*JSON object"):
        t5core.T5Config.from_json(str(path))
    path.write_text("{")
    with pytest.raises(ConfigError, match=r"(?s)config\.json.*not valid JSON"):
        t5core.T5Config.from_json(str(path))
    with pytest.raises(FileNotFoundError, match="absent"):
        t5core.T5Config.from_json(str(tmp_path / "absent.json"))
