"""T5X checkpoints in T5X's own tensorstore layout, written here with tensorstore from the real
t5x_tiny fixture's arrays: every array a gzip zarr directory of several chunks beside the msgpack
`checkpoint`, whose leaf is the array's spec, as `t5x/checkpoints.py` writes it (`_get_spec`,
`_write_array`). Spec forms: a relative file kvstore; the gs:// form (gcs kvstore with T5X's dummy
bucket, the path at the top level or, as newer tensorstore writes it, in the kvstore); a save
dtype other than the array's (the zarr spec naming bfloat16, and a `cast` spec over it). Every
reader is run on them, and each refusal has its own test.
"""

import builtins
import importlib.util
import math
import os
import pathlib
import shutil

import ml_dtypes
import msgpack
import numpy as np
import pytest
import tensorstore as ts

from conftest import FIXTURES
from hostile_files import pack_t5x
from t5core.checkpoints import CheckpointMismatchError, load_pretrained
from t5core.checkpoints.optimizer_state import import_optimizer_state
from t5core.checkpoints.t5x import T5XReader, config_from_gin
from t5core.checkpoints.untrusted import UnsafeCheckpointError
from t5core.errors import CheckpointError
from t5core.optimizers import Adafactor
from t5core.training.run import RunOptions, run
from t5core.training.trainer import TrainConfig

ROOT = pathlib.Path(__file__).parents[1]
T5X_DIR = FIXTURES / "t5x_tiny"
T5X_FILE = T5X_DIR / "test_t5_tiny.checkpoint_0"
T5X_GINS = [str(T5X_DIR / "t5_1_1_base.gin"), str(T5X_DIR / "tiny.gin")]
STEP = 5
EMBEDDING = "optimizer/target/token_embedder/embedding"
INPUTS = {"encoder_input_tokens": np.array([[37, 1782, 19, 207, 5, 1, 0, 0]], np.int32),
          "decoder_input_tokens": np.array([[0, 644, 1782, 229, 1, 0]], np.int32)}


def _decode(node):
    """The fixture's msgpack tree with its inline arrays (ext type 1) as numpy arrays."""
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out[key] = _decode(value)
        elif isinstance(value, msgpack.ExtType):
            shape, dtype, data = msgpack.unpackb(value.data)
            out[key] = np.frombuffer(data, dtype).reshape(shape).copy()
        else:
            out[key] = value
    return out


def _train_state():
    """The fixture's weights, with non-zero Adafactor second moments and a later step (the
    fixture was saved at step 0 with zero state, which would import the same from anything)."""
    tree = _decode(msgpack.unpackb(T5X_FILE.read_bytes(), raw=False))
    rng = np.random.default_rng(0)

    def fill(states):
        for value in states.values():
            if "v" in value and isinstance(value["v"], np.ndarray):
                value["v"] = rng.uniform(0.1, 2.0, value["v"].shape).astype(np.float32)
            else:
                fill(value)

    fill(tree["optimizer"]["state"]["param_states"])
    tree["optimizer"]["state"]["step"] = np.asarray(STEP, np.int32)
    return tree


def _spec(name, array, form, save_dtype=None):
    """The msgpack leaf T5X writes for `array` saved under `name`, and the spec to write it."""
    dtype = np.dtype(ml_dtypes.bfloat16) if save_dtype == "bfloat16" else array.dtype
    metadata = {"compressor": {"id": "gzip"}, "shape": list(array.shape),
                "chunks": [max(1, math.ceil(d / 3)) for d in array.shape]}  # several chunks
    directory = name.replace("/", ".")
    if form.startswith("gs"):  # T5X's _get_spec for a gs:// checkpoint directory
        leaf = {"driver": "zarr", "dtype": dtype.name, "kvstore": {
            "driver": "gcs", "bucket": "t5x-dummy-bucket"}, "path": directory,
            "metadata": metadata}
        if form == "gs_tensorstore_json":  # what ts.Spec(...).to_json() makes of it
            leaf = ts.Spec(leaf).to_json()
    else:
        leaf = ts.Spec({"driver": "zarr", "dtype": dtype.name, "kvstore": {
            "driver": "file", "path": directory}, "metadata": metadata}).to_json()
    if form == "cast_spec":
        leaf = {"driver": "cast", "dtype": array.dtype.name, "base": leaf}
    return leaf, {"driver": "zarr", "dtype": dtype.name, "metadata": metadata}


def write_t5x_layout(tree, model_dir, form="file", save_dtype=None, state=True):
    """`model_dir/checkpoint_STEP/`: every array of rank >= 1 a zarr directory, as T5X saves a
    partitioned train state (without `state`, the Adafactor slots stay inline, which is quicker
    to write); returns the checkpoint directory."""
    directory = pathlib.Path(model_dir) / f"checkpoint_{STEP}"
    directory.mkdir(parents=True)

    def convert(node, prefix):
        out = {}
        for key, value in node.items():
            name = f"{prefix}/{key}" if prefix else key
            if isinstance(value, dict):
                out[key] = convert(value, name)
            elif (isinstance(value, np.ndarray) and value.ndim >= 1
                  and (state or "/param_states/" not in name)):
                leaf, write_spec = _spec(name, value, form, save_dtype)
                write_spec["kvstore"] = {"driver": "file",
                                         "path": str(directory / name.replace("/", "."))}
                stored = value.astype(ml_dtypes.bfloat16) if save_dtype else value
                ts.open(write_spec, create=True).result().write(stored).result()
                out[key] = leaf
            else:
                out[key] = value
        return out

    (directory / "checkpoint").write_bytes(pack_t5x(convert(tree, "")))
    return directory


def write_inline(tree, model_dir):
    directory = pathlib.Path(model_dir) / f"checkpoint_{STEP}"
    directory.mkdir(parents=True)
    (directory / "checkpoint").write_bytes(pack_t5x(tree))
    return directory


class _Layouts(dict):
    """{form: checkpoint directory}, each written on first use and kept for the module."""

    def __init__(self, root):
        super().__init__()
        self.root, self.tree = root, _train_state()

    def __missing__(self, form):
        where = self.root / form
        if form == "inline":
            made = write_inline(self.tree, where)
        elif form == "file":  # the full train state, as T5X saves it
            made = write_t5x_layout(self.tree, where)
        elif form in ("bfloat16", "cast_spec"):
            made = write_t5x_layout(self.tree, where, "cast_spec" if form == "cast_spec" else
                                    "file", save_dtype="bfloat16", state=False)
        else:
            made = write_t5x_layout(self.tree, where, form, state=False)
        self[form] = made
        return made


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The same train state in T5X's layout in each spec form, and inline."""
    return _Layouts(tmp_path_factory.mktemp("t5x_layouts"))


@pytest.fixture(scope="module")
def fixture_logits():
    return load_pretrained(str(T5X_FILE), config=T5X_GINS)(INPUTS).numpy()


def _logits(path):
    return load_pretrained(str(path), config=T5X_GINS)(INPUTS).numpy()


def test_the_layout_is_t5x_s(layouts):
    directory = layouts["file"]
    embedding = directory / "optimizer.target.token_embedder.embedding"
    assert sorted(os.listdir(embedding)) == [".zarray"] + [f"{i}.{j}" for i in range(3)
                                                          for j in range(3)]
    leaf = msgpack.unpackb((directory / "checkpoint").read_bytes(), raw=False)[
        "optimizer"]["target"]["token_embedder"]["embedding"]
    assert leaf["kvstore"] == {"driver": "file", "path": "optimizer.target.token_embedder."
                                                         "embedding/"}
    assert leaf["metadata"]["compressor"]["id"] == "gzip"
    # 52 parameters and 4 Adafactor slots each, every one a directory; only the step is inline.
    assert len([p for p in directory.iterdir() if p.is_dir()]) == 52 * 5


@pytest.mark.parametrize("form", ["file", "gs", "gs_tensorstore_json"])
def test_load_pretrained_gives_the_inline_fixture_s_logits(layouts, fixture_logits, form):
    np.testing.assert_array_equal(_logits(layouts[form]), fixture_logits)
    # The model directory and the msgpack file itself open the same checkpoint.
    reader = T5XReader(str(layouts[form].parent))
    assert reader.path == str(layouts[form] / "checkpoint")
    assert reader.shapes[EMBEDDING] == (32128, 8)


@pytest.mark.parametrize("form", ["bfloat16", "cast_spec"])
def test_a_save_dtype_other_than_the_array_s(layouts, form, tmp_path):
    reader = T5XReader(str(layouts[form]))
    embedding = reader.read(EMBEDDING)
    inline = T5XReader(str(T5X_FILE)).read(EMBEDDING)
    # The cast spec reads float32 values; the plain one the stored bfloat16 (a model casts).
    assert embedding.dtype == (np.float32 if form == "cast_spec" else ml_dtypes.bfloat16)
    np.testing.assert_array_equal(embedding.astype(np.float32),
                                  inline.astype(ml_dtypes.bfloat16).astype(np.float32))
    rounded = _train_state()

    def round_all(node):
        for key, value in node.items():
            if isinstance(value, dict):
                round_all(value)
            elif isinstance(value, np.ndarray) and value.dtype == np.float32:
                node[key] = value.astype(ml_dtypes.bfloat16).astype(np.float32)

    round_all(rounded)
    np.testing.assert_array_equal(_logits(layouts[form]),
                                  _logits(write_inline(rounded, tmp_path)))


def test_adafactor_state_imports_as_from_the_inline_twin(layouts):
    slots = {}
    for form in ("inline", "file"):
        model = load_pretrained(str(layouts[form]), config=T5X_GINS)
        opt = Adafactor(0.01)
        opt.build(model.trainable_variables)
        imported = import_optimizer_state(str(layouts[form]), model, opt)
        assert (imported.step, imported.variables) == (STEP, 52)
        slots[form] = {name: opt.slots(v)["v"].numpy()
                       for name, v in model.variables_by_name().items()
                       if opt.slots(v).get("v") is not None}
    assert slots["file"].keys() == slots["inline"].keys() and len(slots["file"]) == 52
    for name, value in slots["file"].items():
        np.testing.assert_array_equal(value, slots["inline"][name], err_msg=name)
        assert value.min() >= 0.1, name  # the written state, not zeros


def test_trainer_init_checkpoint_and_optimizer_state(layouts, tmp_path):
    config = tmp_path / "config.json"
    config_from_gin(T5X_GINS).to_json(str(config))
    train = TrainConfig(model_dir=str(tmp_path / "run"), train_steps=STEP + 1, batch_size=2,
                        inputs_length=16, targets_length=8, eval_every=0, eval_steps=1,
                        save_every=1, log_every=1, optimizer="adafactor", learning_rate=1e-3,
                        schedule="constant", peak_flops=1e12, progress_bar=False)
    lines = []
    trainer = run(RunOptions(model=str(config), init_checkpoint=str(layouts["file"].parent),
                             init_optimizer_state=True, eval_examples=2, train=train),
                  log=lines.append)
    assert any(f"Continuing the run: Adafactor state of 52 variables (0 factored) and step "
               f"{STEP}" in line for line in lines), lines
    assert trainer.step == STEP + 1


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_and_inspect(layouts, fixture_logits, tmp_path, capsys):
    convert = _script("convert_checkpoint")
    assert convert.main([f"--input={layouts['gs']}", f"--config={','.join(T5X_GINS)}",
                         f"--output={tmp_path / 'hf'}", "--quiet"]) == 0
    np.testing.assert_array_equal(load_pretrained(str(tmp_path / "hf"))(INPUTS).numpy(),
                                  fixture_logits)
    config = tmp_path / "config.json"
    config_from_gin(T5X_GINS).to_json(str(config))
    assert _script("inspect_model").main([
        "--checkpoint", str(layouts["file"]), "--config", str(config), "--input_ids",
        "37,1782,19", "--target_ids", "644,1782", "--no_png", "--variables"]) == 0
    assert "shared/embeddings" in capsys.readouterr().out


def test_missing_tensorstore_names_the_extra(layouts, monkeypatch, tmp_path, capsys):
    convert = _script("convert_checkpoint")

    real_import = builtins.__import__

    def no_tensorstore(name, *args, **kwargs):
        if name == "tensorstore":
            raise ImportError("No module named 'tensorstore'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorstore)
    reader = T5XReader(str(layouts["file"]))  # opening and planning need no tensorstore
    assert reader.shapes[EMBEDDING] == (32128, 8)
    with pytest.raises(ImportError, match=r"pip install -e \.\[t5x\]"):
        load_pretrained(str(layouts["file"]), config=T5X_GINS)
    capsys.readouterr()
    assert convert.main([f"--input={layouts['file']}", f"--config={','.join(T5X_GINS)}",
                         f"--output={tmp_path / 'hf'}", "--quiet"]) == 2
    error = capsys.readouterr().err.splitlines()
    assert error[0].startswith("error: ") and "pip install -e .[t5x]" in error[0], error


# -- refusals: one checkpoint of one small parameter each -----------------------------------


def _one_array(tmp_path, values=None, spec_shape=None, name="target/w"):
    """A T5X checkpoint of one zarr array (2 x 3 chunks); the spec may declare another shape."""
    values = np.arange(24, dtype=np.float32).reshape(4, 6) if values is None else values
    tree = {"target": {"w": values}}
    directory = write_t5x_layout(tree, tmp_path)
    if spec_shape is not None:
        leaf = {"driver": "zarr", "dtype": "float32", "kvstore": {"driver": "file",
                                                                   "path": "target.w"},
                "metadata": {"shape": spec_shape}}
        (directory / "checkpoint").write_bytes(pack_t5x({"target": {"w": leaf}}))
    return directory


def _set_checkpoint_leaf(directory, leaf):
    (directory / "checkpoint").write_bytes(pack_t5x({"target": {"w": leaf}}))


def test_the_small_checkpoint_reads_back(tmp_path):
    reader = T5XReader(str(_one_array(tmp_path)))
    np.testing.assert_array_equal(reader.read("target/w"),
                                  np.arange(24, dtype=np.float32).reshape(4, 6))


def test_refused_an_array_directory_linked_outside(tmp_path):
    directory = _one_array(tmp_path / "ckpt")
    outside = tmp_path / "elsewhere"
    shutil.move(str(directory / "target.w"), outside)
    os.symlink(outside, directory / "target.w")
    with pytest.raises(UnsafeCheckpointError, match=r"target/w.*link to a file outside"):
        T5XReader(str(directory))


def test_refused_a_chunk_linked_outside(tmp_path):
    directory = _one_array(tmp_path / "ckpt")
    chunk = directory / "target.w" / "1.1"
    shutil.move(str(chunk), tmp_path / "chunk")
    os.symlink(tmp_path / "chunk", chunk)
    reader = T5XReader(str(directory))
    with pytest.raises(UnsafeCheckpointError, match=r"target/w.*1\.1.*outside"):
        reader.read("target/w")


def test_refused_a_dot_dot_path(tmp_path):
    directory = _one_array(tmp_path / "ckpt")
    shutil.copytree(directory / "target.w", tmp_path / "w")  # a real array one level up
    _set_checkpoint_leaf(directory, {"driver": "zarr", "kvstore": {
        "driver": "file", "path": "../../w"}, "metadata": {"shape": [4, 6]}})
    with pytest.raises(UnsafeCheckpointError, match=r"target/w.*outside the checkpoint"):
        T5XReader(str(directory))


def test_refused_a_zarray_shape_other_than_the_spec_s(tmp_path, monkeypatch):
    directory = _one_array(tmp_path, spec_shape=[6, 4])
    reader = T5XReader(str(directory))
    assert reader.shapes["target/w"] == (6, 4)
    monkeypatch.setattr(ts, "open", _no_data_read)
    with pytest.raises(CheckpointError, match=r"target/w.*\.zarray: shape \(4, 6\), but the "
                                              r"checkpoint's spec says \(6, 4\)"):
        reader.read("target/w")
    with pytest.raises(CheckpointError, match=r"shape \(4, 6\), but"):
        reader.validate(["target/w"])


def _no_data_read(*args, **kwargs):
    raise AssertionError("tensorstore was asked to read data")


def test_refused_a_shape_other_than_the_model_s_before_any_read(tmp_path, monkeypatch):
    tree = _decode(msgpack.unpackb(T5X_FILE.read_bytes(), raw=False))
    embedding = tree["optimizer"]["target"]["token_embedder"]["embedding"]
    tree["optimizer"]["target"]["token_embedder"]["embedding"] = embedding[:32000]
    directory = write_t5x_layout(tree, tmp_path, state=False)
    monkeypatch.setattr(ts, "open", _no_data_read)
    with pytest.raises(CheckpointMismatchError, match=r"token_embedder/embedding.*32000"):
        load_pretrained(str(directory), config=T5X_GINS)


def test_refused_a_missing_chunk(tmp_path):
    directory = _one_array(tmp_path)
    os.remove(directory / "target.w" / "1.0")
    reader = T5XReader(str(directory))
    with pytest.raises(CheckpointError, match=r"target/w.*chunk 1\.0 of 6 is missing"):
        reader.validate(["target/w"])


def test_refused_a_huge_declared_shape(tmp_path, monkeypatch):
    huge = [2**40, 2**40]
    directory = _one_array(tmp_path, spec_shape=huge)
    zarray = directory / "target.w" / ".zarray"
    text = zarray.read_text().replace("[4,6]", "[1099511627776,1099511627776]")
    assert "1099511627776" in text
    zarray.write_text(text)
    monkeypatch.setattr(ts, "open", _no_data_read)
    reader = T5XReader(str(directory))
    with pytest.raises(CheckpointError, match=r"target/w.*shape \[1099511627776, 1099511627776\] "
                                              r"is \d+ bytes, over"):
        reader.read("target/w")


def test_refused_huge_declared_chunks(tmp_path, monkeypatch):
    directory = _one_array(tmp_path)
    zarray = directory / "target.w" / ".zarray"
    zarray.write_text(zarray.read_text().replace('"chunks":[2,2]', '"chunks":[4000000,6]'))
    assert "4000000" in zarray.read_text()
    monkeypatch.setattr(ts, "open", _no_data_read)
    with pytest.raises(CheckpointError, match=r"target/w.*chunks \[4000000, 6\] are not 2 sizes "
                                              r"from 1 to the array's \[4, 6\]"):
        T5XReader(str(directory)).read("target/w")


def test_refused_a_spec_dtype_other_than_the_zarray_s(tmp_path):
    directory = _one_array(tmp_path)
    _set_checkpoint_leaf(directory, {"driver": "zarr", "dtype": "int32", "kvstore": {
        "driver": "file", "path": "target.w"}, "metadata": {"shape": [4, 6]}})
    with pytest.raises(CheckpointError, match=r"target/w.*dtype float32, but the checkpoint's "
                                              r"spec says int32"):
        T5XReader(str(directory)).read("target/w")


def test_refused_a_kvstore_t5x_does_not_write(tmp_path):
    directory = _one_array(tmp_path)
    _set_checkpoint_leaf(directory, {"driver": "zarr", "kvstore": {
        "driver": "http", "base_url": "http://example.com/w"}, "metadata": {"shape": [4, 6]}})
    with pytest.raises(CheckpointError, match=r"target/w.*kvstore .*http.* is not one T5X "
                                              r"writes"):
        T5XReader(str(directory))


@pytest.mark.parametrize("layout", ["zarr", "inline"])
def test_refused_bfloat16_stored_as_uint16_as_t5x_refuses_it(layout, tmp_path):
    # T5X's checkpoint version 2 stored bfloat16 arrays as their uint16 bits; T5X's reader
    # refuses them ("Please update saved types to bfloat16"). Read as numbers they are weights in
    # the thousands, so t5core refuses them too, before a model is returned.
    tree = _decode(msgpack.unpackb(T5X_FILE.read_bytes(), raw=False))
    embedding = tree["optimizer"]["target"]["token_embedder"]["embedding"]
    tree["optimizer"]["target"]["token_embedder"]["embedding"] = \
        embedding.astype(ml_dtypes.bfloat16).view(np.uint16)
    tree["version"] = 2
    directory = (write_t5x_layout(tree, tmp_path, state=False) if layout == "zarr"
                 else write_inline(tree, tmp_path))
    with pytest.raises(CheckpointError, match=r"token_embedder/embedding'? is stored as uint16, "
                                              r"but .* is a float32 weight.*version 2"):
        load_pretrained(str(directory), config=T5X_GINS)
