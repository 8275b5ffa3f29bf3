"""The hostile inputs of BUILD_NOTES' "Hostile inputs" table, each run in its own process.

    python tests/hostile_inputs_table.py [--only NAME] > table.txt

prints one line per input: its name, the process's exit status and what it ended with (the
exception's type and first line, or what was loaded). Point PYTHONPATH at another checkout of
t5core to see what that version does (a segfault shows as exit status -11). Not a test: the
assertions about each input live in test_hostile_checkpoints.py.
"""

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import msgpack
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_files import (  # noqa: E402
    ext_array,
    pack_t5x,
    safetensors_bytes,
    safetensors_of,
    set_declared_size,
    torch_pickle,
    write_torch_zip,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
VARIANT = FIXTURES / "reference" / "t5_v1_1_gated_gelu_untied"
TINY = FIXTURES / "hf_tiny_random_t5"
CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


# ----------------------------------------------------------------------------- helpers


def variant_state():
    from safetensors.numpy import load_file

    return load_file(VARIANT / "model.safetensors")


def bin_dir(tmp, override=None, source=VARIANT, state=None):
    """A checkpoint directory whose pytorch_model.bin holds `state` (default: the variant's),
    with `override` ({name: (offset, size, stride)}) replacing some tensors' views."""
    if state is None:
        from safetensors.numpy import load_file

        state = (load_file(source / "model.safetensors") if source == VARIANT
                 else tiny_state())
    tensors, storages = {}, {}
    for i, (name, array) in enumerate(sorted(state.items())):
        strides = tuple(int(np.prod(array.shape[k + 1:])) for k in range(array.ndim))
        view = (override or {}).get(name, (0, tuple(array.shape), strides))
        tensors[name] = ("FloatStorage", str(i), array.size, *view)
        storages[str(i)] = array.astype(np.float32).tobytes()
    directory = pathlib.Path(tmp) / "bin"
    directory.mkdir()
    write_torch_zip(directory / "pytorch_model.bin", torch_pickle(tensors), storages)
    shutil.copyfile(source / "config.json", directory / "config.json")
    return directory


def tiny_state():
    from t5core.checkpoints.hf_bin import HFBinReader

    reader = HFBinReader(str(TINY / "pytorch_model.bin"), use_torch=False)
    return {name: reader.read(name) for name in reader.shapes}


def load(path, **kwargs):
    from t5core.checkpoints import load_pretrained

    model = load_pretrained(str(path), **kwargs)
    return f"loaded a model ({len(model.variables_by_name())} variables)"


def bin_reader(tmp, tensors, storages, pickle_bytes=None):
    from t5core.checkpoints.hf_bin import HFBinReader

    path = pathlib.Path(tmp) / "x.bin"
    write_torch_zip(path, pickle_bytes if pickle_bytes is not None else torch_pickle(tensors),
                    storages)
    reader = HFBinReader(str(path), use_torch=False)
    if hasattr(reader, "validate"):
        reader.validate(list(reader.shapes))
    return {name: reader.read(name) for name in reader.shapes}


FLOATS4 = np.arange(4, dtype=np.float32).tobytes()


def one_view(tmp, spec, storages=None):
    arrays = bin_reader(tmp, {"w": ("FloatStorage", "0", *spec)}, storages or {"0": FLOATS4})
    return f"read w = {arrays['w'].ravel()[:6].tolist()}"


def st_reader(tmp, header=None, data=b"", text=None):
    from t5core.checkpoints.safetensors_io import SafetensorsReader

    path = pathlib.Path(tmp) / "model.safetensors"
    path.write_bytes(safetensors_bytes(header, data, text))
    reader = SafetensorsReader(str(path))
    arrays = {name: reader.read(name) for name in reader.shapes}
    return "read " + ", ".join(f"{k}={v.ravel()[:8].tolist()}" for k, v in arrays.items())


def sharded(tmp, weight_map=None, text=None, kind="safetensors"):
    directory = pathlib.Path(tmp) / "ckpt"
    directory.mkdir(exist_ok=True)
    header, data = safetensors_of({"w": np.ones(2, np.float32)})
    (directory / "shard-1.safetensors").write_bytes(safetensors_bytes(header, data))
    secret = pathlib.Path(tmp) / "secret.safetensors"
    header, data = safetensors_of({"stolen": np.full(3, 7, np.float32)})
    secret.write_bytes(safetensors_bytes(header, data) + b"x" * 1000)
    name = ("model.safetensors.index.json" if kind == "safetensors"
            else "pytorch_model.bin.index.json")
    (directory / name).write_text(text if text is not None else json.dumps(
        {"weight_map": weight_map}))
    return directory, secret


def read_sharded(directory, kind="safetensors"):
    from t5core.checkpoints.hf_bin import HFBinReader
    from t5core.checkpoints.safetensors_io import SafetensorsReader

    reader = (SafetensorsReader(str(directory)) if kind == "safetensors"
              else HFBinReader(str(directory), use_torch=False))
    arrays = {name: reader.read(name) for name in reader.shapes}
    return "read " + ", ".join(f"{k}={v.tolist()}" for k, v in arrays.items())


def t5x(tmp, tree):
    from t5core.checkpoints.t5x import T5XReader

    path = pathlib.Path(tmp) / "checkpoint"
    path.write_bytes(tree if isinstance(tree, bytes) else pack_t5x(tree))
    reader = T5XReader(str(path))
    arrays = {name: reader.read(name) for name in reader.shapes}
    return "read " + ", ".join(f"{k}{np.shape(v)}" for k, v in arrays.items())


def config(tmp, **changes):
    import t5core

    values = json.loads((VARIANT / "config.json").read_text())
    values.update(changes)
    path = pathlib.Path(tmp) / "config.json"
    path.write_text(json.dumps(values))
    c = t5core.T5Config.from_json(str(path))
    return "config " + ", ".join(f"{k}={getattr(c, k)!r}" for k in changes)


# ----------------------------------------------------------------------------- bin


@case("bin: storage offset -1 (load_pretrained)")
def _(tmp):
    return load(bin_dir(tmp, {"shared.weight": (-1, (128, 24), (24, 1))}), use_torch=False)


@case("bin: storage offset -1 (convert_checkpoint.py)")
def _(tmp):
    directory = bin_dir(tmp, {"shared.weight": (-1, (128, 24), (24, 1))})
    out = pathlib.Path(tmp) / "out"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_checkpoint.py"),
                          f"--input={directory}", f"--output={out}", "--quiet", "--no_torch"],
                         capture_output=True, text=True)
    return (f"exit {run.returncode}; output written: {(out / 'model.safetensors').exists()}; "
            f"{run.stderr.strip().splitlines()[-1][:120] if run.stderr.strip() else ''}")


@case("bin: storage offset -1 (generate.py)")
def _(tmp):
    directory = bin_dir(tmp, {"shared.weight": (-1, (1302, 32), (32, 1))}, source=TINY)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"),
                          f"--checkpoint={directory}",
                          f"--vocab={FIXTURES / 't5_vocab' / 'spiece.model'}",
                          "--input=hello", "--max_new_tokens=4", "--jit_compile=false"],
                         capture_output=True, text=True)
    return f"exit {run.returncode}; {(run.stderr.strip().splitlines() or [''])[-1][:120]}"


for _name, _spec in {
        "bin: negative stride": (4, 0, (4,), (-1,)),
        "bin: negative size": (4, 0, (-4,), (1,)),
        "bin: view overruns the storage (offset 1, 4 of 4)": (4, 1, (4,), (1,)),
        "bin: strides overrun the storage": (4, 0, (2, 2), (3, 1)),
        "bin: storage declares more elements than its bytes": (8, 0, (8,), (1,)),
        "bin: offset 1.5 (a float)": (4, 1.5, (2,), (1,)),
        "bin: offset '0' (a string)": (4, "0", (2,), (1,)),
        "bin: size holds True": (4, 0, (True, 2), (2, 1)),
        "bin: 65 dimensions": (4, 0, (1,) * 65, (1,) * 65),
        "bin: storage of -4 elements": (-4, 0, (0,), (1,)),
        "bin: broadcast view of 2**62 elements": (4, 0, (2**31, 2**31), (0, 0)),
        "bin: storage of 2**62 elements": (2**62, 0, (2**62,), (1,)),
}.items():
    case(_name)(lambda tmp, spec=_spec: one_view(tmp, spec))


@case("bin: storage key names a missing entry")
def _(tmp):
    return str(bin_reader(tmp, {"w": ("FloatStorage", "1", 4, 0, (4,), (1,))}, {"0": FLOATS4}))


@case("bin: storage key '../../x'")
def _(tmp):
    return str(bin_reader(tmp, {"w": ("FloatStorage", "../../x", 4, 0, (4,), (1,))},
                          {"0": FLOATS4}))


@case("bin: one storage as FloatStorage and LongStorage")
def _(tmp):
    return str(bin_reader(tmp, {"a": ("FloatStorage", "0", 4, 0, (4,), (1,)),
                                "b": ("LongStorage", "0", 2, 0, (2,), (1,))}, {"0": FLOATS4}))


@case("bin: pickle memo index 2**31 (LONG_BINPUT)")
def _(tmp):
    return str(bin_reader(tmp, None, {}, b"\x80\x02}r\xff\xff\xff\x7f."))


@case("bin: pickle BINBYTES8 of 2**40 bytes")
def _(tmp):
    return str(bin_reader(tmp, None, {}, b"\x80\x02\x8e" + (2**40).to_bytes(8, "little") + b"a."))


@case("bin: pickle nested 100 MARKs deep")
def _(tmp):
    return str(bin_reader(tmp, None, {}, b"\x80\x02" + b"(" * 100 + b"."))


@case("bin: pickle is a list, not a dict")
def _(tmp):
    return str(bin_reader(tmp, None, {}, b"\x80\x02]."))


@case("bin: state dict key is an int")
def _(tmp):
    return str(bin_reader(tmp, {7: ("FloatStorage", "0", 4, 0, (4,), (1,))}, {"0": FLOATS4}))


@case("bin: state dict value is an int")
def _(tmp):
    return str(bin_reader(tmp, None, {}, b"\x80\x02}X\x01\x00\x00\x00wK\x05s."))


@case("bin: pickle calls posix.system")
def _(tmp):
    command = f"touch {tmp}/pwned".encode()
    payload = (b"\x80\x02cposix\nsystem\nq\x00X" + len(command).to_bytes(4, "little") + command
               + b"\x85R.")
    try:
        return str(bin_reader(tmp, None, {}, payload))
    finally:
        print(f"  (command ran: {os.path.exists(f'{tmp}/pwned')})", file=sys.stderr)


@case("bin: BUILD rewrites FloatStorage's dtype, then a good file")
def _(tmp):
    payload = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00Osb}."
    try:
        first = str(bin_reader(tmp, None, {}, payload))
    except Exception as err:
        first = f"{type(err).__name__}"
    os.remove(pathlib.Path(tmp) / "x.bin")
    return f"first: {first}; then a good file: " + one_view(tmp, (4, 0, (4,), (1,)))


@case("bin: deflated storage declaring 1 GiB in 1 KiB")
def _(tmp):
    path = pathlib.Path(tmp) / "x.bin"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", torch_pickle(
            {"w": ("FloatStorage", "0", 2**28, 0, (2**28,), (1,))}))
        z.writestr("archive/data/0", b"\0" * 2**20, compress_type=zipfile.ZIP_DEFLATED)
    set_declared_size(path, "archive/data/0", 2**30)
    from t5core.checkpoints.hf_bin import HFBinReader

    reader = HFBinReader(str(path), use_torch=False)
    if hasattr(reader, "validate"):
        reader.validate(["w"])
    return f"read {reader.read('w').shape}"


@case("bin: zip entry declaring a 2 GiB compressed size")
def _(tmp):
    import tracemalloc

    path = pathlib.Path(tmp) / "x.bin"
    write_torch_zip(path, torch_pickle({"w": ("FloatStorage", "0", 4, 0, (4,), (1,))}),
                    {"0": FLOATS4})
    set_declared_size(path, "archive/byteorder", 2**31, field="compress_size")
    from t5core.checkpoints.hf_bin import HFBinReader

    tracemalloc.start()
    try:
        result = f"read {HFBinReader(str(path), use_torch=False).read('w').tolist()}"
    except Exception as err:  # the allocation is the point, whatever the outcome
        result = f"{type(err).__name__}: {str(err)[-60:]}"
    return f"{result}; peak allocation {tracemalloc.get_traced_memory()[1]} bytes"


# ----------------------------------------------------------------------------- safetensors


@case("safetensors: data_offsets [-8, 0]")
def _(tmp):
    return st_reader(tmp, {"w": {"dtype": "U8", "shape": [8], "data_offsets": [-8, 0]}})


@case("safetensors: overlapping byte ranges")
def _(tmp):
    return st_reader(tmp, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                     np.arange(3, dtype=np.float32).tobytes())


for _name, _entry in {
        "safetensors: shape [2**32, 2**32] in 0 bytes": {"dtype": "F32", "shape": [2**32, 2**32],
                                                         "data_offsets": [0, 0]},
        "safetensors: shape [true, 2]": {"dtype": "F32", "shape": [True, 2],
                                         "data_offsets": [0, 8]},
        "safetensors: data_offsets [0.0, 8.0]": {"dtype": "F32", "shape": [2],
                                                 "data_offsets": [0.0, 8.0]},
        "safetensors: shape \"2\"": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]},
        "safetensors: dtype F4": {"dtype": "F4", "shape": [2], "data_offsets": [0, 8]},
        "safetensors: dtype [\"F32\"]": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]},
        "safetensors: data_offsets [8, 0]": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]},
        "safetensors: entry is a list": [0, 8],
}.items():
    case(_name)(lambda tmp, entry=_entry: st_reader(tmp, {"w": entry},
                                                    np.arange(2, dtype=np.float32).tobytes()))

for _name, _text in {
        "safetensors: header names a tensor twice":
            '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
            '"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
        "safetensors: __metadata__ is a list": '{"__metadata__": ["x"]}',
        "safetensors: header nested 50000 deep": "[" * 50000 + "]" * 50000,
        "safetensors: offset of 5000 digits":
            '{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1' + "0" * 5000 + "]}}",
        "safetensors: header not UTF-8": b"\xff\xfe{",
        "safetensors: header of 0 bytes": "",
}.items():
    case(_name)(lambda tmp, text=_text: st_reader(tmp, None, b"\0" * 8, text))


@case("safetensors: header length 2**62")
def _(tmp):
    from t5core.checkpoints.safetensors_io import SafetensorsReader

    path = pathlib.Path(tmp) / "model.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    return str(SafetensorsReader(str(path)).shapes)


# ----------------------------------------------------------------------------- shard paths


@case("index: weight_map names ../secret.safetensors")
def _(tmp):
    return read_sharded(sharded(tmp, {"stolen": "../secret.safetensors"})[0])


@case("index: weight_map names an absolute path")
def _(tmp):
    directory, secret = sharded(tmp, {})
    (directory / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"stolen": str(secret)}}))
    return read_sharded(directory)


@case("index: a shard that links outside")
def _(tmp):
    directory, secret = sharded(tmp, {"stolen": "link.safetensors"})
    os.symlink(secret, directory / "link.safetensors")
    return read_sharded(directory)


@case("index: weight_map names /etc/passwd")
def _(tmp):
    return read_sharded(sharded(tmp, {"w": "/etc/passwd"})[0])


@case("index (bin): weight_map names ../secret.safetensors")
def _(tmp):
    return read_sharded(sharded(tmp, {"stolen": "../secret.safetensors"}, kind="bin")[0], "bin")


@case("model.safetensors links outside (no index)")
def _(tmp):
    directory = pathlib.Path(tmp) / "ckpt"
    directory.mkdir()
    secret = pathlib.Path(tmp) / "secret.safetensors"
    shutil.copyfile(VARIANT / "model.safetensors", secret)
    os.symlink(secret, directory / "model.safetensors")
    shutil.copyfile(VARIANT / "config.json", directory / "config.json")
    return load(directory)


@case("Hugging Face cache snapshot (links into ../../blobs)")
def _(tmp):
    repo = pathlib.Path(tmp) / "models--t5core--tiny"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(VARIANT / name, repo / "blobs" / name)
        os.symlink(os.path.join("..", "..", "blobs", name), snapshot / name)
    return load(snapshot)


for _name, _text in {
        "index: weight_map is 3": '{"weight_map": 3}',
        "index: weight_map is a list": '{"weight_map": ["a", "b"]}',
        "index: weight_map value is 3": '{"weight_map": {"w": 3}}',
        "index: weight_map value is a list": '{"weight_map": {"w": ["shard-1.safetensors"]}}',
        "index: the index is a list": '["weight_map"]',
        "index: no weight_map": '{"metadata": {}}',
        "index: names a tensor its shard lacks":
            '{"weight_map": {"w": "shard-1.safetensors", "v": "shard-1.safetensors"}}',
}.items():
    case(_name)(lambda tmp, text=_text: read_sharded(sharded(tmp, text=text)[0]))
    case(_name.replace("index:", "index (bin):"))(
        lambda tmp, text=_text: read_sharded(sharded(tmp, text=text, kind="bin")[0], "bin"))


# ----------------------------------------------------------------------------- T5X


for _name, _leaf in {
        "t5x: ext type 7": msgpack.ExtType(7, b"\x90"),
        "t5x: dtype 'object'": ext_array([2], "object", b"\0" * 16),
        "t5x: dtype 'complex64'": ext_array([2], "complex64", b"\0" * 16),
        "t5x: dtype 'V8'": ext_array([2], "V8", b"\0" * 16),
        "t5x: shape [3] with 8 bytes": ext_array([3], "float32", b"\0" * 8),
        "t5x: shape [-2]": ext_array([-2], "float32", b""),
        "t5x: shape [2**40, 2**40] with 0 bytes": ext_array([2**40, 2**40], "float32", b""),
        "t5x: ext payload truncated": msgpack.ExtType(1, b"\x93\x91\x02\xa7float32"),
        "t5x: tensorstore path ../../etc": {"driver": "zarr", "kvstore": {
            "driver": "file", "path": "../../etc"}, "metadata": {"shape": [4], "dtype": "<f4"}},
        "t5x: tensorstore kvstore 'file:///etc/'": {"driver": "zarr", "kvstore": "file:///etc/",
                                                    "metadata": {"shape": [4], "dtype": "<f4"}},
        "t5x: tensorstore shape [-1, 'x']": {"driver": "zarr", "kvstore": {
            "driver": "file", "path": "w"}, "metadata": {"shape": [-1, "x"], "dtype": "<f4"}},
        "t5x: Flax chunked array (shape as {'0': 3, '1': 4})": {
            "__msgpack_chunked_array__": True, "shape": {"0": 3, "1": 4},
            "chunks": {"0": np.arange(5, dtype=np.float32),
                       "1": np.arange(5, 12, dtype=np.float32)}},
        "t5x: chunked array with chunks 0 and 2": {
            "__msgpack_chunked_array__": True, "shape": {"0": 3, "1": 4},
            "chunks": {"0": np.arange(5, dtype=np.float32),
                       "2": np.arange(5, 12, dtype=np.float32)}},
}.items():
    case(_name)(lambda tmp, leaf=_leaf: t5x(tmp, {"target": {"encoder": {"w": leaf}}}))

for _name, _blob in {
        "t5x: maps nested 900 deep": b"\x81\xa1a" * 900 + b"\x80",
        "t5x: maps nested 5000 deep": b"\x81\xa1a" * 5000 + b"\x80",
        "t5x: array header of 50,000,000 entries":
            b"\x81\xa6target\xdd" + (50_000_000).to_bytes(4, "big") + b"\xc0" * 16,
        "t5x: key 1.5": msgpack.packb({"target": {1.5: 1}}),
}.items():
    case(_name)(lambda tmp, blob=_blob: t5x(tmp, blob))


# ----------------------------------------------------------------------------- numbers


def nonfinite_dir(tmp, value):
    from safetensors.numpy import save_file

    directory = pathlib.Path(tmp) / "nan"
    shutil.copytree(VARIANT, directory)
    state = variant_state()
    state["shared.weight"][3, 5] = value
    save_file(state, str(directory / "model.safetensors"))
    return directory


case("weights: one NaN")(lambda tmp: load(nonfinite_dir(tmp, np.nan)))
case("weights: one Inf")(lambda tmp: load(nonfinite_dir(tmp, np.inf)))
case("weights: one NaN, allow_nonfinite=True")(
    lambda tmp: load(nonfinite_dir(tmp, np.nan), allow_nonfinite=True))

for _name, _change in {
        "config: layer_norm_epsilon NaN": {"layer_norm_epsilon": math.nan},
        "config: layer_norm_epsilon -1e-6": {"layer_norm_epsilon": -1e-6},
        "config: layer_norm_epsilon 0": {"layer_norm_epsilon": 0},
        "config: layer_norm_epsilon \"1e-6\"": {"layer_norm_epsilon": "1e-6"},
        "config: dropout_rate \"0.1\"": {"dropout_rate": "0.1"},
        "config: dropout_rate Infinity": {"dropout_rate": math.inf},
        "config: initializer_factor NaN": {"initializer_factor": math.nan},
        "config: tie_word_embeddings \"false\"": {"tie_word_embeddings": "false"},
        "config: tie_word_embeddings 0": {"tie_word_embeddings": 0},
        "config: d_model \"512\"": {"d_model": "512"},
        "config: d_model 24.0": {"d_model": 24.0},
        "config: d_model true": {"d_model": True},
        "config: d_model 0": {"d_model": 0},
        "config: num_heads -2": {"num_heads": -2},
        "config: num_decoder_layers 0": {"num_decoder_layers": 0},
        "config: vocab_size null": {"vocab_size": None},
        "config: decoder_start_token_id -1": {"decoder_start_token_id": -1},
        "config: decoder_start_token_id = vocab_size": {"decoder_start_token_id": 128},
        "config: decoder_start_token_id \"0\"": {"decoder_start_token_id": "0"},
        "config: eos_token_id 1.0": {"eos_token_id": 1.0},
        "config: pad_token_id null": {"pad_token_id": None},
        "config: feed_forward_proj 3": {"feed_forward_proj": 3},
        "config: relative_attention_num_buckets 2": {"relative_attention_num_buckets": 2},
        "config: relative_attention_max_distance 6 (buckets 12)":
            {"relative_attention_max_distance": 6},
}.items():
    case(_name)(lambda tmp, change=_change: config(tmp, **change))


def run_one(name):
    """Runs one case here and prints how it ended (called in a child process)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = CASES[name](tmp)
            print(f"OK {result}"[:300])
        except BaseException as err:  # the point is to see what each version raises
            print(f"{type(err).__module__}.{type(err).__name__}: "
                  + " / ".join(str(err).splitlines()[:2])[:300])


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        run_one(sys.argv[2])
        return
    only = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--only" else None
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for name in CASES:
        if only and only not in name:
            continue
        try:
            run = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True,
                                 text=True, timeout=300, env=env)
            lines = [line for line in run.stdout.splitlines() if line.strip()]
            print(f"{name}\t{run.returncode}\t{lines[-1] if lines else run.stderr[-200:]!r}",
                  flush=True)
        except subprocess.TimeoutExpired:
            print(f"{name}\ttimeout\t", flush=True)


if __name__ == "__main__":
    main()
