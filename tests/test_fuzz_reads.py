"""Property-based fuzzers over the untrusted inputs of the read boundary (t5core/file_reads.py):
run directories (run.json, config.json, the TF `checkpoint` state file), HDF5 checkpoints,
tokenizer.json and data files. (Safetensors, pytorch_model.bin, shard indexes and T5X msgpack
trees have theirs in test_fuzz_checkpoints.py.)

The properties, for every input drawn:
  * only t5core's own errors (T5CoreError) are raised, never AttributeError, TypeError, ...;
  * no path read from a file resolves outside the file's folder (what the resolver returns is
    checked against the folder, links resolved);
  * nothing is allocated past the budget: a data line past BUDGETS["line_bytes"] is refused, a
    model a run directory describes beyond its checkpoint's tensors is refused before it is
    built (the process's peak memory is checked).

CI runs a small, derandomised number of examples. A long run:
    T5CORE_FUZZ_SCALE=20 python -m pytest -q tests/test_fuzz_reads.py --hypothesis-show-statistics
"""

import gzip
import json
import os
import pathlib
import resource
import shutil
import tempfile

import h5py
import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from t5core import file_reads
from t5core import model_dir as md
from t5core.checkpoints import load_pretrained
from t5core.checkpoints.hf_h5 import H5Reader
from t5core.data.sources import jsonl_objects, read_lines, tsv_rows
from t5core.errors import T5CoreError
from t5core.tokenizer.hf_tokenizer_json import HFUnigramFile
from t5core.tokenizer.sentencepiece_vocab import Tokenizer

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
RUN = FIXTURES / "interrupted_run"
H5 = FIXTURES / "hf_tiny_random_t5" / "tf_model.h5"
TOKENIZER = FIXTURES / "hf_tiny_random_t5" / "tokenizer.json"
SCALE = float(os.environ.get("T5CORE_FUZZ_SCALE", "1"))
MEMORY_GROWTH_LIMIT = 1 << 30  # bytes of peak resident memory a refused input may add


def fuzz_settings(examples):
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    derandomize=SCALE == 1, suppress_health_check=list(HealthCheck))


def _inside(path, folder):
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12)
# Names a file may hold for another file: plain, nested, escaping, absolute, links.
path_names = st.sampled_from(["spiece.model", "tokenizer.json", "ckpt-3", "sub/ckpt-3",
                              "../secret", "../../etc/passwd", "/etc/passwd", "link",
                              "link_dir/x", "", ".", "..", "a\0b", "gs://bucket/x", "C:x",
                              "ckpt-3/../../secret"]) | st.text(max_size=20)


def _run_dir(tmp):
    run = pathlib.Path(tmp) / "run"
    shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("LOCK", "best"))
    secret = pathlib.Path(tmp) / "secret"
    secret.write_text("secret")
    os.symlink(secret, run / "link")
    os.symlink(tmp, run / "link_dir")
    return run


# ----------------------------------------------------------------------------- run directories


@st.composite
def run_directories(draw):
    """(run.json, config.json, state file text) of a mutated run directory."""
    run = json.loads((RUN / "run.json").read_text())
    config = json.loads((RUN / "config.json").read_text())
    names_only = draw(st.booleans())  # half the cases change only what names other files
    for record, fields in ((run, sorted(run)), (config, sorted(config))):
        for _ in range(0 if names_only else draw(st.integers(0, 3))):
            field = draw(st.sampled_from(fields) | st.text(max_size=8))
            record[field] = draw(
                json_values | path_names | st.integers(0, 10**12)
                | st.lists(st.text(max_size=3), min_size=0, max_size=3))
        event(f"{len(record)} fields")
    if names_only or draw(st.booleans()):  # the field that names a file
        run["tokenizer"] = draw(path_names)
    names = draw(st.lists(path_names, min_size=0, max_size=3))
    state = "".join(f'all_model_checkpoint_paths: {json.dumps(n)}\n' for n in names)
    if names:
        state = f'model_checkpoint_path: {json.dumps(names[0])}\n' + state
    if draw(st.booleans()):
        state = draw(st.text(max_size=40))
    return run, config, state


@fuzz_settings(60)
@given(run_directories())
def test_fuzz_run_directory(drawn):
    run_record, config_record, state = drawn
    with tempfile.TemporaryDirectory() as tmp:
        run = _run_dir(tmp)
        (run / "run.json").write_text(json.dumps(run_record))
        (run / "config.json").write_text(json.dumps(config_record))
        (run / "checkpoint").write_text(state, errors="surrogatepass")
        outcomes = []
        for read in (md.read_run, md.read_config, md.find_tokenizer,
                     file_reads.checkpoint_state_paths):
            try:
                found = read(str(run))
            except T5CoreError as err:
                outcomes.append(type(err).__name__)
                continue
            outcomes.append("read")
            paths = found if isinstance(found, list) else [found] if isinstance(found, str) \
                else []
            for path in paths:
                if path != "byte":
                    assert _inside(path, run), (read.__name__, path)
        event(" ".join(outcomes))


@st.composite
def run_sizes(draw):
    field = draw(st.sampled_from(["lora_rank", "prompt_length", "labels", "d_model",
                                  "vocab_size", "d_ff", "num_layers", "num_heads"]))
    return field, draw(st.integers(0, 10**9))


@fuzz_settings(12)
@given(run_sizes())
def test_fuzz_run_directory_sizes_never_allocate_past_the_checkpoint(drawn):
    field, value = drawn
    with tempfile.TemporaryDirectory() as tmp:
        run = _run_dir(tmp)
        target = "config.json" if field in ("d_model", "vocab_size", "d_ff", "num_layers",
                                            "num_heads") else "run.json"
        record = json.loads((run / target).read_text())
        if field == "labels":
            record.update(model_class="T5EncoderClassifier", head="classifier",
                          labels=[str(i) for i in range(min(value, 300_000))])
        else:
            record[field] = value
            if field == "prompt_length":
                record["model_class"] = "PromptTunedT5"
        (run / target).write_text(json.dumps(record))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        try:
            load_pretrained(str(run))
            event("loaded")
        except T5CoreError as err:
            event(type(err).__name__)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
        assert grown < MEMORY_GROWTH_LIMIT, (field, value, grown)


# ----------------------------------------------------------------------------- HDF5

_H5_FEATURES = ("external storage", "virtual dataset", "soft link", "external link",
                "plain dataset", "nested group")


@st.composite
def h5_members(draw):
    return draw(st.lists(st.tuples(st.sampled_from(_H5_FEATURES), st.sampled_from(
        ["shared", "encoder", "decoder", ""]), st.text("abc", min_size=1, max_size=4)),
        max_size=4))


@fuzz_settings(40)
@given(h5_members())
def test_fuzz_h5_references(members):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "tf_model.h5"
        shutil.copyfile(H5, path)
        secret = pathlib.Path(tmp) / "secret.bin"
        secret.write_bytes(np.arange(16, dtype=np.float32).tobytes())
        other = pathlib.Path(tmp) / "other.h5"
        with h5py.File(other, "w") as g:
            g["x"] = np.arange(4, dtype=np.float32)
        with h5py.File(path, "a") as f:
            for i, (feature, group, name) in enumerate(members):
                parent = f.require_group(group) if group else f
                name = f"{name}{i}:0"
                if feature == "external storage":
                    parent.create_dataset(name, shape=(16,), dtype="f4",
                                          external=[(str(secret), 0, 64)])
                elif feature == "virtual dataset":
                    layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
                    layout[:] = h5py.VirtualSource(str(other), "x", shape=(4,))
                    parent.create_virtual_dataset(name, layout)
                elif feature == "soft link":
                    parent[name] = h5py.SoftLink("/shared")
                elif feature == "external link":
                    parent[name] = h5py.ExternalLink(str(other), "/x")
                elif feature == "plain dataset":
                    parent[name] = np.zeros(3, np.float32)
                else:
                    parent.create_group(name).create_dataset("w:0", data=np.ones(2, np.float32))
        referring = any(feature not in ("plain dataset", "nested group")
                        for feature, _, _ in members)
        try:
            reader = H5Reader(str(path))
        except file_reads.UnsafeCheckpointError:
            assert referring
            event("refused")
            return
        assert not referring
        for name in reader.shapes:
            reader.read(name)
        event("read")


# ----------------------------------------------------------------------------- tokenizer.json


def _small_tokenizer():
    spec = json.loads(TOKENIZER.read_text())
    spec["model"]["vocab"] = spec["model"]["vocab"][:300]
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] < 300]
    return spec


_SMALL_TOKENIZER = json.dumps(_small_tokenizer())


def _members(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _members(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:4]):
            yield from _members(inner, prefix + (index,))


_TOKENIZER_PATHS = [p for p in _members(json.loads(_SMALL_TOKENIZER)) if p]


@fuzz_settings(150)
@given(st.lists(st.tuples(st.sampled_from(_TOKENIZER_PATHS), json_values), min_size=1,
                max_size=3))
def test_fuzz_tokenizer_json_fields(changes):
    spec = json.loads(_SMALL_TOKENIZER)
    for path, value in changes:
        holder = spec
        try:
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced the parent
    data = json.dumps(spec).encode("utf-8", "surrogatepass")
    try:
        HFUnigramFile(data, "tokenizer.json")
        event("read")
    except T5CoreError as err:
        assert str(err).startswith("tokenizer.json: ")
        event(type(err).__name__)
        return
    # What the reader accepts, the tokenizer refuses in words or uses without a fault.
    try:
        tokenizer = Tokenizer(model_proto=data)
    except T5CoreError as err:
        event(f"Tokenizer: {type(err).__name__}")
        return
    tokenizer.decode(tokenizer.encode("hello <extra_id_0> 你好 </s>"))


# ----------------------------------------------------------------------------- data files


@st.composite
def data_files(draw):
    kind = draw(st.sampled_from([".jsonl", ".tsv"]))
    rows = draw(st.lists(st.one_of(
        st.builds(lambda a, b: json.dumps({"inputs": a, "targets": b}), st.text(max_size=30),
                  st.text(max_size=30)),
        st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
        st.integers(0, 200).map(lambda n: "x" * n)), max_size=6))
    raw = "\n".join(rows).encode("utf-8", "surrogatepass")
    if kind == ".tsv":
        raw = b"inputs\ttargets\n" + raw
    compressed = draw(st.booleans())
    if compressed:
        raw = gzip.compress(raw)
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] if draw(st.booleans()) else raw
    return kind + (".gz" if compressed else ""), raw


@fuzz_settings(200)
@given(data_files())
def test_fuzz_data_files(drawn):
    suffix, raw = drawn
    line_budget = 100
    saved = file_reads.BUDGETS["line_bytes"]
    file_reads.BUDGETS["line_bytes"] = line_budget
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "data" + suffix)
            with open(path, "wb") as f:
                f.write(raw)
            try:
                lines = read_lines(path)
                assert all(len(line.encode("utf-8", "surrogatepass")) <= line_budget
                           for line in lines)
                (tsv_rows if ".tsv" in suffix else jsonl_objects)(path)
                event("read")
            except T5CoreError as err:
                event(type(err).__name__)
    finally:
        file_reads.BUDGETS["line_bytes"] = saved



# ----------------------------------------------------------------------------- any JSON file


@st.composite
def json_texts(draw):
    """JSON text, mostly well formed, then cut, spliced with bytes, nested or given hostile
    literals (NaN, huge integers, repeated keys, a BOM, Latin-1)."""
    text = json.dumps(draw(json_values)).encode()
    for _ in range(draw(st.integers(0, 3))):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from([
            b"", b"NaN", b"-Infinity", b"9" * 5000, b'{"a": 1, "a": 2}', b"\xef\xbb\xbf",
            b"\xe9", b"[" * 3000, b"\x00", b"\r\n"])) + text[cut:]
    return text


@fuzz_settings(150)
@given(json_texts())
def test_fuzz_any_json_file_is_read_or_refused_naming_it(text):
    try:
        file_reads.parse_json(text, "some.json")
        event("read")
    except T5CoreError as err:
        assert str(err).startswith("some.json"), err
        event(type(err).__name__)


# ----------------------------------------------------------------------------- spiece.model

_SPIECE = (FIXTURES / "t5_vocab" / "spiece.model").read_bytes()


@fuzz_settings(30)
@given(st.lists(st.tuples(st.integers(0, len(_SPIECE) - 1), st.integers(0, 255)), min_size=1,
                max_size=20), st.none() | st.integers(0, len(_SPIECE)))
def test_fuzz_spiece_model_bytes(changes, cut):
    data = bytearray(_SPIECE)
    for at, byte in changes:
        data[at] = byte
    try:
        Tokenizer(model_proto=bytes(data[:cut])).encode("hello 你好")
        event("read")
    except T5CoreError as err:
        event(type(err).__name__)
