"""Property-based fuzzers over what a stranger's checkpoint declares, with `hypothesis`.

One property for every format: reading the file ends in a named error (CheckpointError or a
subclass; FileNotFoundError for a shard the index names that is absent) or in a correct load,
never in another exception, a crash, a hang or memory past a limit. "Correct" is checked
against an oracle written from the format's specification, not from the reader:
  * safetensors: every tensor read equals the bytes of its declared range, which lies inside
    the data section and overlaps no other; whatever the `safetensors` package loads (in
    t5core's dtypes) loads here too, with the same values;
  * pytorch_model.bin: every element equals the storage element at offset + sum(index * stride),
    found by plain index arithmetic (numpy fancy indexing, which raises out of bounds);
  * index JSON: no file outside the checkpoint directory is opened (an audit hook records every
    open) and no tensor from outside is returned;
  * T5X msgpack: a tree with a corrupted leaf is refused; any other tree loads every array exactly.

The read runs in this process: the readers build views only through `np.ndarray(buffer=...)`,
which checks its own bounds, so an escaping view raises (and fails the property) rather than
reading memory. A watchdog turns a hang into a failure; tracemalloc measures the memory.

CI runs a bounded number of examples, derandomised (the same cases every run). A long run:
    T5CORE_FUZZ_SCALE=50 python -m pytest -q tests/test_fuzz_checkpoints.py \
        --hypothesis-show-statistics
(random cases, 50 times as many); BUILD_NOTES.md records one with its counts.
"""

import contextlib
import io
import json
import os
import pathlib
import signal
import sys
import tempfile
import tracemalloc
import zipfile

import msgpack
import numpy as np
import pytest
from hostile_files import (
    ext_array,
    safetensors_bytes,
    torch_pickle,
    write_torch_zip,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from t5core.checkpoints.hf_bin import HFBinReader
from t5core.checkpoints.safetensors_io import SafetensorsReader
from t5core.checkpoints.t5x import T5XReader
from t5core.errors import CheckpointError

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SCALE = float(os.environ.get("T5CORE_FUZZ_SCALE", "1"))
HANG_SECONDS = 60  # a read of a few KiB that takes this long is a hang, not a slow machine
MEMORY_LIMIT = 64 << 20  # bytes allocated beyond the input's own size (x8) at the peak


def fuzz_settings(examples):
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    derandomize="T5CORE_FUZZ_SCALE" not in os.environ,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example,
                                           HealthCheck.filter_too_much])


class Hang(Exception):
    pass


@contextlib.contextmanager
def bounded(input_size):
    """Fails a read that hangs or whose Python/numpy allocations peak past the limit."""
    def alarm(signum, frame):
        raise Hang(f"no result after {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert peak <= MEMORY_LIMIT + 8 * input_size, f"peak {peak} bytes for {input_size} of input"


def read_all(reader):
    """{name: array} of every tensor, as a loader would read them."""
    if hasattr(reader, "validate"):
        reader.validate(list(reader.shapes))
    return {name: reader.read(name) for name in reader.shapes}


def outcome(make_reader, input_size):
    """("loaded", arrays) or ("refused", error); any other exception fails the property."""
    with bounded(input_size):
        try:
            arrays = read_all(make_reader())
        except (CheckpointError, FileNotFoundError) as err:
            assert str(err), "an error without a message"
            event(f"refused: {type(err).__name__}")
            return "refused", err
    event("loaded")
    return "loaded", arrays


def outcome_of_file(file_name, blob, make_reader):
    """outcome() of `make_reader(path)` on `blob` written as `file_name` in a fresh directory."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, file_name)
        with open(path, "wb") as f:
            f.write(blob)
        return outcome(lambda: make_reader(path), len(blob))


# ----------------------------------------------------------------------------- safetensors

SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
                      "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "BF16": "<u2"}

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
odd_ints = st.one_of(st.integers(-8, 80), st.integers(-2**64, 2**64),
                     st.sampled_from([2**31, 2**32, 2**62, 2**63, -2**63, 2**64]))


@st.composite
def safetensors_files(draw):
    """(file bytes, header dict or None): a valid file, then zero or more damaging edits."""
    header, data = {}, b""
    for i in range(draw(st.integers(0, 4))):
        dtype = draw(st.sampled_from(sorted(SAFETENSORS_DTYPES)))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize
        data += b"\0" * draw(st.integers(0, 3))  # gaps are allowed
        header[f"t{i}"] = {"dtype": dtype, "shape": shape,
                           "data_offsets": [len(data), len(data) + size]}
        data += draw(st.binary(min_size=size, max_size=size))
    names = sorted(header)
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.sampled_from(["offset", "shape", "dtype", "entry", "metadata", "extra"]))
        if edit == "extra" or not names:
            header[draw(st.text(max_size=4))] = draw(json_values)
            continue
        entry = header[draw(st.sampled_from(names))]
        if not isinstance(entry, dict):
            continue
        if edit == "offset":
            entry["data_offsets"] = draw(st.one_of(
                st.lists(odd_ints, min_size=2, max_size=2), json_values))
        elif edit == "shape":
            entry["shape"] = draw(st.one_of(st.lists(odd_ints, max_size=3), json_values))
        elif edit == "dtype":
            entry["dtype"] = draw(st.one_of(st.sampled_from(["F32", "F8_E4M3", "f32", ""]),
                                            json_values))
        elif edit == "entry":
            header[draw(st.sampled_from(names))] = draw(json_values)
        else:
            header["__metadata__"] = draw(json_values)
    blob = safetensors_bytes(header, data)
    tail = draw(st.sampled_from(["keep", "keep", "truncate", "length", "garbage"]))
    if tail == "truncate":
        blob = blob[:draw(st.integers(0, len(blob)))]
    elif tail == "length":
        blob = draw(odd_ints.filter(lambda n: 0 <= n < 2**64)).to_bytes(8, "little") + blob[8:]
    elif tail == "garbage":
        at = draw(st.integers(0, max(0, len(blob) - 1)))
        blob = blob[:at] + draw(st.binary(min_size=1, max_size=4)) + blob[at + 1:]
    return blob


def safetensors_oracle(blob, arrays):
    """What a correct load must satisfy, from the format's specification alone."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    ranges = []
    for name, array in arrays.items():
        begin, end = header[name]["data_offsets"]
        assert 0 <= begin <= end <= len(data), (name, begin, end, len(data))
        assert array.tobytes() == data[begin:end], name
        assert array.shape == tuple(header[name]["shape"]), name
        if begin < end:
            ranges.append((begin, end))
    ranges.sort()
    assert all(b0 >= e1 for (_, e1), (b0, _) in zip(ranges, ranges[1:])), "overlapping ranges"


def official_load(blob):
    from safetensors.numpy import load

    try:
        return load(blob)
    except Exception:  # the reference refuses: nothing to compare
        return None


@fuzz_settings(400)
@given(blob=safetensors_files())
def test_fuzz_safetensors_header(blob):
    kind, result = outcome_of_file("model.safetensors", blob, SafetensorsReader)
    if kind == "loaded":
        safetensors_oracle(blob, result)
    reference = official_load(blob)
    if reference is not None:
        n = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + n])
        ours = all(e["dtype"] in SAFETENSORS_DTYPES and len(e["shape"]) <= 64
                   for k, e in header.items() if k != "__metadata__")
        if ours:  # the reference reads it in dtypes t5core has: so must t5core
            assert kind == "loaded", f"the safetensors package loads it; t5core said {result}"
            for name, array in reference.items():
                assert result[name].tobytes() == array.tobytes(), name


# ----------------------------------------------------------------------------- pytorch_model.bin

STORAGES = {"FloatStorage": "<f4", "HalfStorage": "<f2", "LongStorage": "<i8",
            "ByteStorage": "u1", "BFloat16Storage": "<u2", "BoolStorage": "u1"}
odd_values = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, width=32),
                       st.text(max_size=3), st.tuples(st.integers(0, 3)))


def sometimes_odd(draw, usual):
    return draw(st.one_of(usual, usual, usual, odd_ints, odd_values))


@st.composite
def torch_state_dicts(draw):
    """(tensors for torch_pickle, storage bytes by key): half the files hold only views that fit
    their storages, the other half views and storages drawn with odd and hostile values."""
    tensors, storages = {}, {}
    fits = draw(st.booleans())
    for key in map(str, range(draw(st.integers(1, 3)))):
        cls = draw(st.sampled_from(sorted(STORAGES)))
        itemsize = np.dtype(STORAGES[cls]).itemsize
        views = []
        for _ in range(draw(st.integers(1, 2))):
            ndim = draw(st.integers(0, 3))
            views.append((draw(st.integers(0, 6)),
                          tuple(draw(st.integers(0, 5)) for _ in range(ndim)),
                          tuple(draw(st.integers(0, 6)) for _ in range(ndim))))
        extents = [offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
                   for offset, size, stride in views if all(size)]
        numel = max(extents, default=0) + draw(st.integers(0, 3))
        stored = numel * itemsize
        if not fits:
            numel = draw(st.integers(0, 24))
            stored = numel * itemsize + draw(st.sampled_from([0, 0, 0, -itemsize, itemsize]))
        storages[key] = draw(st.binary(min_size=max(0, stored), max_size=max(0, stored)))
        for i, (offset, size, stride) in enumerate(views):
            spec = (cls, key, numel, offset, size, stride)
            if not fits:
                spec = (cls, draw(st.sampled_from([key, key, key, "9", "../0"])),
                        sometimes_odd(draw, st.just(numel)),
                        sometimes_odd(draw, st.just(offset)),
                        draw(st.one_of(st.just(size), st.just(size),
                                       st.lists(odd_ints, max_size=3).map(tuple), odd_values)),
                        draw(st.one_of(st.just(stride), st.just(stride),
                                       st.lists(odd_ints, max_size=3).map(tuple), odd_values)))
            tensors[f"k{key}v{i}"] = spec
    if not fits and draw(st.integers(0, 9)) == 0:  # a key that is not a name
        tensors[draw(st.one_of(st.integers(), st.tuples(st.integers())))] = spec
    return tensors, storages


def restricted_reader(path):
    return HFBinReader(path, use_torch=False)


def torch_oracle(tensors, storages, arrays):
    """Each element equals storage[offset + sum(index * stride)], by plain index arithmetic."""
    for name, array in arrays.items():
        cls, key, numel, offset, size, stride = tensors[name]
        dtype = np.dtype(STORAGES[cls])
        assert storages[key] is not None and len(storages[key]) >= numel * dtype.itemsize
        flat = np.frombuffer(storages[key][:numel * dtype.itemsize], dtype)
        index = np.full(size, offset, dtype=np.int64)
        for axis, (n, s) in enumerate(zip(size, stride)):
            shape = [1] * len(size)
            shape[axis] = n
            index = index + (np.arange(n, dtype=np.int64) * s).reshape(shape)
        assert index.size == 0 or 0 <= index.min(), name
        expected = flat[index]  # IndexError past the storage: the oracle refuses such a load
        assert array.shape == tuple(size), name
        assert array.tobytes() == expected.tobytes(), name


@fuzz_settings(400)
@given(state=torch_state_dicts())
def test_fuzz_torch_pickle_views(state):
    tensors, storages = state
    archive = io.BytesIO()
    write_torch_zip(archive, torch_pickle(tensors), storages)
    kind, result = outcome_of_file("pytorch_model.bin", archive.getvalue(), restricted_reader)
    if kind == "loaded":
        torch_oracle(tensors, storages, result)


def _fixture_archive(name):
    with zipfile.ZipFile(FIXTURES / name) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


BIN_FIXTURES = {"hf_tiny_random_t5/pytorch_model.bin": _fixture_archive(
    "hf_tiny_random_t5/pytorch_model.bin"),
    "torch_views/views.bin": _fixture_archive("torch_views/views.bin")}


@st.composite
def mutated_bytes(draw, original):
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        edit = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if edit == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif edit == "delete":
            del data[at:at + draw(st.integers(1, 9))]
        else:
            del data[at:]
    return bytes(data)


@st.composite
def mutated_archives(draw):
    """A real torch archive with its pickle (or, sometimes, the whole zip) damaged."""
    name = draw(st.sampled_from(sorted(BIN_FIXTURES)))
    entries = dict(BIN_FIXTURES[name])
    pickle_name = next(n for n in entries if n.endswith("/data.pkl"))
    if draw(st.integers(0, 4)):
        entries[pickle_name] = draw(mutated_bytes(entries[pickle_name]))
        return entries, None
    return entries, draw(st.integers(0, 2**32))  # a seed to damage the zip itself


@fuzz_settings(150)
@given(archive=mutated_archives())
def test_fuzz_torch_pickle_stream(archive):
    entries, zip_seed = archive
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    blob = bytearray(blob.getvalue())
    if zip_seed is not None:
        rng = np.random.default_rng(zip_seed)
        for at in rng.integers(0, len(blob), size=rng.integers(1, 8)):
            blob[at] = rng.integers(0, 256)
    kind, result = outcome_of_file("pytorch_model.bin", bytes(blob), restricted_reader)
    if kind == "loaded":
        for name, array in result.items():
            assert isinstance(array, np.ndarray) and array.flags.owndata, name


# ----------------------------------------------------------------------------- index JSON

_opened = []


def _record_opens(event, args):
    if event == "open" and _opened and _opened[-1] is not None and isinstance(args[0], str):
        _opened[-1].append(args[0])


sys.addaudithook(_record_opens)  # audit hooks cannot be removed; recording is off between cases
SECRET_SIZE = 7331  # a size that would give the secret away if a message printed it


def _shard_names(tmp):
    return st.sampled_from([
        "shard-1.safetensors", "shard-1.safetensors", "./shard-1.safetensors",
        "sub/../shard-1.safetensors", "../secret.safetensors",
        os.path.join(tmp, "secret.safetensors"),
        "link.safetensors", "absent.safetensors", "", ".", "..", "sub", "C:\\secret",
        "..\\secret.safetensors", "gs://bucket/x.safetensors", "shard-1.safetensors\0x",
        "/etc/passwd", "~/secret.safetensors", "sub/shard-2.safetensors"])


@st.composite
def index_documents(draw, tmp):
    tensor_names = st.sampled_from(["w", "v", "stolen", ""])
    weight_map = draw(st.one_of(
        st.dictionaries(tensor_names, _shard_names(tmp), max_size=4),
        st.dictionaries(tensor_names, st.one_of(_shard_names(tmp), json_values), max_size=3),
        json_values))
    document = draw(st.one_of(st.just({"weight_map": weight_map}),
                              st.fixed_dictionaries({"weight_map": st.just(weight_map),
                                                     "metadata": json_values}),
                              json_values))
    return json.dumps(document)


def _is_inside(path, directory):
    return os.path.commonpath([os.path.realpath(path), directory]) == directory


def _is_python_module(path):
    # A lazy import (a codec, say) opens files of the Python installation.
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p}
    return path.endswith((".py", ".pyc", ".so")) and any(_is_inside(path, r) for r in roots)


def _checkpoint_with_secret(tmp):
    directory = os.path.join(tmp, "ckpt")
    os.makedirs(os.path.join(directory, "sub"))
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    with open(os.path.join(directory, "shard-1.safetensors"), "wb") as f:
        f.write(safetensors_bytes(header, np.ones(2, np.float32).tobytes()))
    header = {"v": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    with open(os.path.join(directory, "sub", "shard-2.safetensors"), "wb") as f:
        f.write(safetensors_bytes(header, np.ones(1, np.float32).tobytes()))
    secret = os.path.join(tmp, "secret.safetensors")
    header = {"stolen": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}
    blob = safetensors_bytes(header, np.full(3, 7, np.float32).tobytes())
    with open(secret, "wb") as f:
        f.write(blob + b"x" * (SECRET_SIZE - len(blob)))
    os.symlink(secret, os.path.join(directory, "link.safetensors"))
    return directory


@fuzz_settings(300)
@given(data=st.data(), kind=st.sampled_from(["safetensors", "bin"]))
def test_fuzz_index_json(data, kind):
    with tempfile.TemporaryDirectory() as tmp:
        directory = _checkpoint_with_secret(tmp)
        text = data.draw(index_documents(tmp))
        index = ("model.safetensors.index.json" if kind == "safetensors"
                 else "pytorch_model.bin.index.json")
        with open(os.path.join(directory, index), "w") as f:
            f.write(text)
        make = (lambda: SafetensorsReader(directory)) if kind == "safetensors" else (
            lambda: HFBinReader(directory, use_torch=False))
        _opened.append([])
        try:
            kind_of_result, result = outcome(make, len(text))
        finally:
            opened = _opened.pop()
        inside = os.path.realpath(directory)
        outside = [p for p in opened if not _is_inside(p, inside) and not _is_python_module(p)]
        assert not outside, f"opened outside the checkpoint: {outside}"
        if kind_of_result == "loaded":
            assert "stolen" not in result
        else:
            assert str(SECRET_SIZE) not in str(result)


# ----------------------------------------------------------------------------- T5X msgpack

# What msgpack can hold: integers of at most 64 bits.
msgpack_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                            st.floats(allow_nan=False), st.text(max_size=8))
msgpack_values = st.recursive(msgpack_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
DTYPES_T5X = ["float32", "bfloat16", "float16", "int32", "int8", "uint8", "bool", "float64"]
T5X_DTYPE_NAMES = {"float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
                   "uint8", "uint16", "uint32", "uint64", "bool"}
# Shapes and chunk maps that cannot describe 6 float32 values: a corrupt chunked array.
NOT_A_SHAPE_OF_6 = [{"0": 2, "2": 3}, [2, 4], "ab", [-6], None, {"0": 6, "1": "x"}, [[2], 3]]


@st.composite
def t5x_leaves(draw):
    """(leaf to pack, the array it must read back as, or None when the leaf is corrupt)."""
    choice = draw(st.sampled_from(["array", "array", "array", "bad_array", "ext", "chunked",
                                   "plain", "tensorstore"]))
    if choice in ("array", "bad_array"):
        dtype = draw(st.sampled_from(DTYPES_T5X))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        raw = draw(st.binary(min_size=int(np.prod(shape)) * itemsize,
                             max_size=int(np.prod(shape)) * itemsize))
        if choice == "array":
            stored = np.frombuffer(raw, np.uint16 if dtype == "bfloat16" else dtype)
            return ext_array(shape, dtype, raw), (stored.reshape(shape), dtype)
        corruption = draw(st.sampled_from(["length", "shape", "dtype", "fields"]))
        if corruption == "length":
            raw += draw(st.binary(min_size=1, max_size=5))
        elif corruption == "shape":
            shape = draw(st.one_of(st.lists(st.integers(-2**63, -1), min_size=1, max_size=2),
                                   st.none(), st.text(max_size=3), st.floats(allow_nan=False),
                                   st.just([2**40, 2**40])))
        elif corruption == "dtype":
            dtype = draw(st.one_of(st.sampled_from(["object", "V8", "complex64", "<f4", "S3",
                                                    "float128", "", "f4,f4"]),
                                   msgpack_scalars.filter(lambda d: d not in T5X_DTYPE_NAMES)))
        else:
            fields = draw(st.lists(msgpack_scalars, max_size=4))
            return msgpack.ExtType(1, msgpack.packb(fields)), None
        return ext_array(shape, dtype, raw), None
    if choice == "ext":
        code = draw(st.integers(0, 127).filter(lambda c: c not in (1, 3)))
        return msgpack.ExtType(code, draw(st.binary(max_size=8))), None
    if choice == "chunked":
        values = np.frombuffer(draw(st.binary(min_size=24, max_size=24)), np.float32)
        cut = draw(st.integers(1, 5))
        leaf = {"__msgpack_chunked_array__": True, "shape": {"0": 2, "1": 3},
                "chunks": {"0": values[:cut], "1": values[cut:]}}
        if draw(st.booleans()):
            return leaf, (values.reshape(2, 3), "float32")
        if draw(st.booleans()):
            leaf["shape"] = draw(st.sampled_from(NOT_A_SHAPE_OF_6))
        else:
            leaf["chunks"] = draw(st.one_of(msgpack_values, st.just({"0": values[:cut]}),
                                            st.just({"0": values[:cut], "2": values[cut:]})))
        return leaf, None
    if choice == "plain":
        return draw(st.one_of(st.integers(-2**63, 2**63 - 1), st.booleans())), "plain"
    path = draw(st.sampled_from(["w", "w/x", "../w", "/etc", "a/../../w"]))
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": path},
            "metadata": {"shape": [2, 3], "dtype": "<f4"}}
    return spec, ("tensorstore" if ".." not in path and not path.startswith("/") else None)


@st.composite
def t5x_trees(draw):
    """(tree, {path: expected}) where expected is an array, "plain", "tensorstore" or None."""
    tree, expected = {}, {}
    for _ in range(draw(st.integers(1, 6))):
        path = draw(st.lists(st.sampled_from(["target", "state", "encoder", "layers_0", "mlp"]),
                             min_size=1, max_size=4))
        name = "/".join(path)
        # A leaf may not sit where a subtree is, nor a subtree where a leaf is.
        if any(name == n or name.startswith(n + "/") or n.startswith(name + "/")
               for n in expected):
            continue
        leaf, want = draw(t5x_leaves())
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = leaf
        expected[name] = want
    return tree, expected


def _pack(tree):
    def default(obj):
        if isinstance(obj, np.ndarray):
            return ext_array(list(obj.shape), obj.dtype.name, obj.tobytes())
        raise TypeError(type(obj))
    return msgpack.packb(tree, default=default)


@fuzz_settings(400)
@given(generated=t5x_trees())
def test_fuzz_t5x_msgpack_tree(generated):
    tree, expected = generated
    blob = _pack(tree)

    def make(path):
        reader = T5XReader(path)
        # tensorstore is an optional extra: read only what the file itself holds.
        reader.shapes = {n: s for n, s in reader.shapes.items()
                         if expected.get(n) != "tensorstore"}
        return reader

    kind, result = outcome_of_file("checkpoint", blob, make)
    corrupt = [name for name, want in expected.items() if want is None]
    if corrupt:
        assert kind == "refused", f"loaded despite corrupt leaves {corrupt}"
        return
    assert kind == "loaded", result
    for name, want in expected.items():
        if isinstance(want, tuple):
            array, dtype = want
            got = result[name]
            assert got.shape == array.shape and got.dtype.name == dtype, name
            assert got.tobytes() == array.tobytes(), name


T5X_FIXTURE = (FIXTURES / "t5x_tiny" / "test_t5_tiny.checkpoint_0").read_bytes()


@fuzz_settings(25)
@given(blob=mutated_bytes(T5X_FIXTURE))
def test_fuzz_t5x_msgpack_bytes(blob):
    kind, result = outcome_of_file("checkpoint", blob, T5XReader)
    if kind == "loaded":
        for name, array in result.items():
            assert isinstance(array, np.ndarray), name


def test_the_fuzzers_see_both_outcomes():
    """The generators are not all-refused or all-loaded: each property is exercised both ways."""
    from hypothesis import find

    def loads(blob):
        return outcome_of_file("model.safetensors", blob, SafetensorsReader)[0]

    config = settings(database=None, derandomize=True, max_examples=200)
    find(safetensors_files(), lambda b: loads(b) == "loaded" and len(b) > 100, settings=config)
    find(safetensors_files(), lambda b: loads(b) == "refused", settings=config)
    with pytest.raises(AssertionError):
        safetensors_oracle(safetensors_bytes({"w": {"dtype": "U8", "shape": [2],
                                                    "data_offsets": [-2, 0]}}, b""),
                           {"w": np.zeros(2, np.uint8)})
