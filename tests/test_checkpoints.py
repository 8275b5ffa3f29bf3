"""Every checkpoint format against real files and HF's outputs; round trips; bad input.

Goldens: tests/fixtures/reference/*.npz (HF transformers run on the same weights, see
tests/make_reference.py). The Mesh-TF checkpoints are written here, from the random HF weights,
with the names, shapes, dtypes and optimizer slots of a real one (tests/fixtures/mtf_tiny_t5_index).
"""

import os
import pathlib
import re
import shutil
import zipfile

import ml_dtypes
import msgpack
import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file, save_file

import t5core
from t5core.checkpoints import (
    CheckpointMismatchError,
    UnsafeCheckpointError,
    detect_format,
    export_hf,
    load_pretrained,
    write_tf_checkpoint,
)
from t5core.checkpoints.export import EXPORT_DTYPES
from t5core.checkpoints.hf_bin import HFBinReader
from t5core.checkpoints.mesh_tf import derive_config, mesh_tf_rules
from t5core.checkpoints.rules import plan_mapping
from t5core.checkpoints.t5x import config_from_gin
from t5core.errors import CheckpointError

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"
TINY = FIXTURES / "hf_tiny_random_t5"
T5X = FIXTURES / "t5x_tiny"
MTF_INDEX = FIXTURES / "mtf_tiny_t5_index"
VARIANTS = ["t5_v1_0_relu_tied", "t5_v1_1_gated_gelu_untied", "mt5", "umt5", "gated_silu"]
T5X_GINS = [str(T5X / "t5_1_1_base.gin"), str(T5X / "tiny.gin")]


def logits_error(model, npz_path):
    """Max |logit difference| / max |logit| over real target positions, on the npz's columns."""
    ref = np.load(npz_path)
    logits = model({"encoder_input_tokens": ref["encoder_input_tokens"],
                    "decoder_input_tokens": ref["decoder_input_tokens"]}).numpy()
    logits = logits[..., ref["logits_columns"]]
    valid = ref["decoder_target_tokens"] != 0
    return np.abs(logits - ref["logits"])[valid].max() / np.abs(ref["logits"][valid]).max()


def weights(model):
    return {name: v.numpy() for name, v in model.variables_by_name().items()}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    different = [name for name in wa if not np.array_equal(wa[name], wb[name])]
    assert not different, different


def uninitialized_registry_size():
    from t5core.compat import uninitialized_variables

    return len(uninitialized_variables())


# ----------------------------------------------------------------------------- HF bin and h5


def test_hf_tiny_bin_and_h5_load_identical_weights_matching_hf():
    config = str(TINY / "config.json")
    from_bin = load_pretrained(str(TINY / "pytorch_model.bin"), config=config, use_torch=False)
    from_h5 = load_pretrained(str(TINY / "tf_model.h5"), config=config)
    assert_same_weights(from_bin, from_h5)
    assert detect_format(str(TINY)) == ("hf-bin", str(TINY))
    # The weights are tiny (init factor 0.002), so compare relative to the logits' own scale.
    assert logits_error(from_bin, REFERENCE / "hf_tiny_random_t5.npz") < 1e-5
    assert logits_error(from_h5, REFERENCE / "hf_tiny_random_t5.npz") < 1e-5


def test_hf_tiny_bin_through_torch_when_installed():
    pytest.importorskip("torch", reason="torch is not installed; the restricted reader is tested")
    config = str(TINY / "config.json")
    with_torch = load_pretrained(str(TINY / "pytorch_model.bin"), config=config, use_torch=True)
    without = load_pretrained(str(TINY / "pytorch_model.bin"), config=config, use_torch=False)
    assert_same_weights(with_torch, without)


def test_restricted_bin_reader_sees_every_tensor_with_its_shape():
    reader = HFBinReader(str(TINY / "pytorch_model.bin"), use_torch=False)
    assert len(reader.shapes) == 113
    assert reader.shapes["shared.weight"] == (1302, 32)
    assert reader.shapes["encoder.block.0.layer.1.DenseReluDense.wi.weight"] == (37, 32)
    np.testing.assert_array_equal(reader.read("shared.weight"), reader.read("lm_head.weight"))


def test_restricted_bin_reader_on_dtypes_views_and_shared_storages():
    # views.bin was written by torch (tests/fixtures/torch_views/make_views.py).
    reader = HFBinReader(str(FIXTURES / "torch_views" / "views.bin"), use_torch=False)
    expected = np.load(FIXTURES / "torch_views" / "views.npz")
    assert sorted(reader.shapes) == sorted(expected.files)
    for name in expected.files:
        got = reader.read(name)
        assert got.shape == expected[name].shape, name
        np.testing.assert_array_equal(got.astype(expected[name].dtype), expected[name], err_msg=name)
    assert reader.read("bf16").dtype == ml_dtypes.bfloat16
    assert reader.read("fp16").dtype == np.float16


# ----------------------------------------------------------------------------- T5X


def test_t5x_config_from_gin_files():
    config = config_from_gin(T5X_GINS)
    assert (config.vocab_size, config.d_model, config.num_heads, config.d_kv, config.d_ff,
            config.num_layers, config.num_decoder_layers) == (32128, 8, 4, 3, 16, 2, 2)
    assert config.feed_forward_proj == "gated-gelu" and not config.tie_word_embeddings
    with pytest.raises(ValueError, match=r"vocab_size, mlp_activations.*unresolved includes: t5x/examples"):
        config_from_gin([str(T5X / "tiny.gin")])  # its base.gin include is not beside it


def test_t5x_tiny_checkpoint_matches_hf():
    model = load_pretrained(str(T5X / "test_t5_tiny.checkpoint_0"), config=T5X_GINS)
    assert logits_error(model, REFERENCE / "t5x_tiny.npz") < 1e-5


def test_t5x_model_directory_with_config_gin(tmp_path):
    step = tmp_path / "checkpoint_0"
    step.mkdir()
    shutil.copyfile(T5X / "test_t5_tiny.checkpoint_0", step / "checkpoint")
    gin = "".join(pathlib.Path(p).read_text() for p in T5X_GINS)
    (tmp_path / "config.gin").write_text(gin.replace("include '", "# include '"))
    model = load_pretrained(str(tmp_path))
    assert detect_format(str(tmp_path))[0] == "t5x"
    assert logits_error(model, REFERENCE / "t5x_tiny.npz") < 1e-5


def test_t5x_without_config_says_how_to_give_one(tmp_path):
    shutil.copyfile(T5X / "test_t5_tiny.checkpoint_0", tmp_path / "checkpoint")
    with pytest.raises(ValueError, match="config="):
        load_pretrained(str(tmp_path))


def _pack_t5x(tree):
    def default(obj):
        if isinstance(obj, np.ndarray):
            payload = msgpack.packb([list(obj.shape), obj.dtype.name, obj.tobytes()])
            return msgpack.ExtType(1, payload)
        raise TypeError(type(obj))
    return msgpack.packb(tree, default=default)


def test_t5x_tensorstore_array_needs_tensorstore(tmp_path):
    try:
        import tensorstore  # noqa: F401
        pytest.skip("tensorstore is installed: the missing-extra error cannot happen")
    except ImportError:
        pass
    from t5core.checkpoints.t5x import T5XReader

    reader = T5XReader(str(T5X / "test_t5_tiny.checkpoint_0"))
    tree = {"version": 3, "target": {}}
    for name in reader.shapes:
        if name.startswith("optimizer/target/"):
            node = tree["target"]
            *parents, leaf = name[len("optimizer/target/"):].split("/")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = np.array(reader.read(name))
    # How T5X stores a large array: a tensorstore spec relative to the checkpoint directory.
    tree["target"]["token_embedder"]["embedding"] = {
        "driver": "zarr", "kvstore": {"driver": "file", "path": "target.token_embedder.embedding"},
        "metadata": {"shape": [32128, 8], "chunks": [32128, 8], "dtype": "<f4"}}
    (tmp_path / "checkpoint").write_bytes(_pack_t5x(tree))
    before = uninitialized_registry_size()
    with pytest.raises(ImportError, match=r"tensorstore.*token_embedder/embedding"):
        load_pretrained(str(tmp_path), config=T5X_GINS)
    assert uninitialized_registry_size() == before


# ----------------------------------------------------------------------------- Mesh-TF


def _model_info_config(path):
    """The T5Config that model-info.txt's variable shapes describe (Shape[dim=size, ...])."""
    shapes = {}
    for line in pathlib.Path(path).read_text().splitlines():
        m = re.match(r"Variable (\S+) .*Shape\[(.*)\]", line)
        if m:
            dims = (d.strip().split("=") for d in m.group(2).split(","))
            shapes[m.group(1)] = {k: int(v) for k, v in dims}
    emb = shapes["shared/embedding"]
    bias = shapes["encoder/block_000/layer_000/SelfAttention/relative_attention_bias"]
    inner = shapes["encoder/block_000/layer_000/SelfAttention/q"]["heads"]
    return t5core.T5Config(
        vocab_size=emb["vocab"], d_model=emb["d_model"], num_heads=bias["heads"],
        d_kv=inner // bias["heads"], relative_attention_num_buckets=bias["buckets"],
        d_ff=shapes["encoder/block_000/layer_001/DenseReluDense/wi_0/kernel"]["d_ff"],
        num_layers=len({n[:17] for n in shapes if n.startswith("encoder/block_")}),
        num_decoder_layers=len({n[:17] for n in shapes if n.startswith("decoder/block_")}),
        feed_forward_proj="gated-gelu", tie_word_embeddings="decoder/logits/kernel" not in shapes,
        dropout_rate=0.0)


def test_mesh_tf_index_maps_every_variable_onto_the_model_info_sizes():
    listed = dict(tf.train.list_variables(str(MTF_INDEX / "model.ckpt-0")))
    config = _model_info_config(MTF_INDEX / "model-info.txt")
    model = t5core.T5Model(config)
    shapes = {k: tuple(v.shape) for k, v in model.variables_by_name().items()}
    plan = plan_mapping(listed, mesh_tf_rules(), shapes, source="mtf index")
    non_slot = {n for n in listed if "_slot_" not in n and n != "global_step"}
    assert {name for name, _, _ in plan.assignments} == non_slot
    assert {target for _, target, _ in plan.assignments} == set(shapes)
    assert {name for name, _ in plan.skipped} == set(listed) - non_slot
    assert len(non_slot) == 52 and len(plan.skipped) == 53
    # The config load_pretrained derives from shapes + operative_config.gin is the same.
    derived = derive_config(listed, str(MTF_INDEX / "operative_config.gin"))
    assert derived == config


def test_mesh_tf_index_without_data_fails_before_assigning():
    before = uninitialized_registry_size()
    with pytest.raises(FileNotFoundError, match=r"data shards"):
        load_pretrained(str(MTF_INDEX))
    assert uninitialized_registry_size() == before


def _hf_to_mesh_tf(state, version):
    """HF tensors -> the Mesh-TF names and layouts (written from the Mesh-TF naming, not the rules)."""
    norm = "rms_norm" if version == "1.1" else "layer_norm"
    out = {"shared/embedding": state["shared.weight"]}
    if "lm_head.weight" in state:
        out["decoder/logits/kernel"] = state["lm_head.weight"].T
    for stack in ("encoder", "decoder"):
        final = "rms_norm" if version == "1.1" else "final_layer_norm"
        out[f"{stack}/{final}/scale"] = state[f"{stack}.final_layer_norm.weight"]
    for name, value in state.items():
        m = re.fullmatch(r"(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\.(.+)\.weight", name)
        if not m:
            continue
        stack, block, layer, rest = m.groups()
        prefix = f"{stack}/block_{int(block):03d}/layer_{int(layer):03d}/"
        if rest == "layer_norm":
            out[prefix + f"{norm}/scale"] = value
        elif rest.endswith("relative_attention_bias"):
            out[prefix + rest.replace(".", "/")] = value.T  # [heads, buckets]
        elif rest.startswith(("SelfAttention", "EncDecAttention")):
            out[prefix + rest.replace(".", "/")] = value.T  # q/k/v/o, no /kernel suffix
        else:
            out[prefix + rest.replace(".", "/") + "/kernel"] = value.T  # DenseReluDense/wi_0
    return out


def write_mesh_tf(directory, state, version="1.1", dtype=np.float32, gin=None):
    """A Mesh-TF checkpoint: name-keyed TF1 bundle, Adafactor slots, global_step, `checkpoint`."""
    tensors = {}
    for name, value in _hf_to_mesh_tf(state, version).items():
        tensors[name] = np.ascontiguousarray(value).astype(dtype)
        if value.ndim >= 2:  # factored second moments: row and column statistics
            tensors[name + "_slot_vr"] = np.ones(value.shape[:-1], np.float32)
            tensors[name + "_slot_vc"] = np.ones(value.shape[:-2] + value.shape[-1:], np.float32)
        else:
            tensors[name + "_slot_v"] = np.ones(value.shape, np.float32)
    tensors["global_step"] = np.array(1000, np.int64)
    os.makedirs(directory, exist_ok=True)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=os.path.join(directory, "model.ckpt-1000"), tensor_names=names,
                      shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])
    with open(os.path.join(directory, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model.ckpt-1000"\n'
                'all_model_checkpoint_paths: "model.ckpt-1000"\n')
    if gin:
        with open(os.path.join(directory, "operative_config.gin"), "w") as f:
            f.write(gin)
    return tensors


MT5_GIN = """\
# Macros:
d_ff = 48
d_kv = 8
d_model = 32
dropout_rate = 0.0
num_heads = 4
num_layers = 2
encoder/DenseReluDense.activation = ['gelu', 'linear']
decoder/DenseReluDense.activation = ['gelu', 'linear']
encoder/SelfAttention.num_heads = %num_heads
sublayer_rms_norm.epsilon = 1e-06
"""


def test_mesh_tf_v1_1_with_slots_and_operative_gin_matches_hf(tmp_path):
    state = load_file(REFERENCE / "mt5" / "model.safetensors")
    written = write_mesh_tf(tmp_path, state, "1.1", gin=MT5_GIN)
    assert any(n.endswith("_slot_vr") for n in written) and "global_step" in written
    assert detect_format(str(tmp_path))[0] == "mesh-tf"
    model = load_pretrained(str(tmp_path))
    hf = t5core.T5Config.from_json(str(REFERENCE / "mt5" / "config.json"))
    assert model.config == hf.replace(model_type="t5", dropout_rate=0.0)
    assert logits_error(model, REFERENCE / "mt5" / "reference.npz") < 1e-4


def test_mesh_tf_v1_1_odd_sizes_with_config(tmp_path):
    variant = REFERENCE / "t5_v1_1_gated_gelu_untied"
    write_mesh_tf(tmp_path, load_file(variant / "model.safetensors"), "1.1")
    with pytest.raises(ValueError, match=r"number of heads.*config="):
        load_pretrained(str(tmp_path))  # no gin beside it: the heads are not in the shapes
    model = load_pretrained(str(tmp_path / "model.ckpt-1000"), config=str(variant / "config.json"))
    assert logits_error(model, variant / "reference.npz") < 1e-4


def test_mesh_tf_v1_0_layer_norm_names_tied_matches_hf(tmp_path):
    variant = REFERENCE / "t5_v1_0_relu_tied"
    written = write_mesh_tf(tmp_path, load_file(variant / "model.safetensors"), "1.0",
                            gin="num_heads = 4\nDenseReluDense.activation = 'relu'\n")
    assert "encoder/final_layer_norm/scale" in written
    assert "decoder/logits/kernel" not in written
    model = load_pretrained(str(tmp_path))
    assert model.config.tie_word_embeddings and model.config.feed_forward_proj == "relu"
    assert logits_error(model, variant / "reference.npz") < 1e-4


def test_mesh_tf_bfloat16_variables_load_exactly(tmp_path):
    variant = REFERENCE / "t5_v1_0_relu_tied"
    state = load_file(variant / "model.safetensors")
    write_mesh_tf(tmp_path, state, "1.0", dtype=ml_dtypes.bfloat16)
    model = load_pretrained(str(tmp_path), config=str(variant / "config.json"))
    want = state["shared.weight"].astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(model.variables_by_name()["shared/embeddings"].numpy(), want)
    assert not np.array_equal(want, state["shared.weight"])  # bfloat16 did round


def test_an_integer_tensor_never_fills_a_float_weight(tmp_path):
    # Any format, one rule (t5core.checkpoints.loading; T5X's own case in test_t5x_zarr.py):
    # integers would load as numbers (bfloat16 bits as int16 become weights in the thousands).
    variant = REFERENCE / "t5_v1_0_relu_tied"
    state = load_file(variant / "model.safetensors")
    state["shared.weight"] = state["shared.weight"].astype(ml_dtypes.bfloat16).view(np.int16)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"is stored as int16, but shared/embeddings is a "
                                              r"float32 weight"):
        load_pretrained(str(tmp_path), config=str(variant / "config.json"))


def test_mesh_tf_gin_heads_that_do_not_fit(tmp_path):
    write_mesh_tf(tmp_path, load_file(REFERENCE / "mt5" / "model.safetensors"), "1.1",
                  gin=MT5_GIN.replace("num_heads = 4", "num_heads = 2"))
    with pytest.raises(ValueError, match=r"num_heads = 2 does not fit.*4 heads"):
        load_pretrained(str(tmp_path))


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("variant", VARIANTS)
def test_export_hf_then_load_is_bit_identical(variant, tmp_path):
    model = load_pretrained(str(REFERENCE / variant))
    files = export_hf(model, str(tmp_path))
    assert files == ["model.safetensors"]
    exported = load_file(tmp_path / "model.safetensors")
    original = load_file(REFERENCE / variant / "model.safetensors")
    assert sorted(exported) == sorted(original)  # HF's names, no tied copies
    for name in original:
        np.testing.assert_array_equal(exported[name], original[name], err_msg=name)
    assert_same_weights(model, load_pretrained(str(tmp_path)))


def test_sharded_and_bfloat16_exports(tmp_path):
    model = load_pretrained(str(REFERENCE / "umt5"))
    files = export_hf(model, str(tmp_path / "sharded"), max_shard_size="20KB")
    assert len(files) > 2 and (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    assert_same_weights(model, load_pretrained(str(tmp_path / "sharded")))
    export_hf(model, str(tmp_path / "bf16"), dtype="bfloat16")
    assert load_file(tmp_path / "bf16" / "model.safetensors")["shared.weight"].dtype == \
        ml_dtypes.bfloat16
    reloaded = weights(load_pretrained(str(tmp_path / "bf16")))
    for name, value in weights(model).items():
        np.testing.assert_array_equal(
            reloaded[name], value.astype(ml_dtypes.bfloat16).astype(np.float32))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_an_export_holds_only_what_loads_back(dtype, tmp_path):
    """A finite weight past the on-disk dtype's range (float16: 65504) would be written as Inf,
    which load_pretrained then refuses: export_hf refuses it first, naming the tensor."""
    model = load_pretrained(str(REFERENCE / "t5_v1_1_gated_gelu_untied"))
    variable = model.variables_by_name()["decoder/block_1/cross_attention/k/kernel"]
    big = variable.numpy()
    big.flat[3] = 7e4
    variable.assign(big)
    if dtype == "float16":
        with pytest.raises(CheckpointError, match=r"decoder\.block\.1\.layer\.1\.EncDecAttention"
                           r"\.k\.weight: 1 Inf of .*float16"):
            export_hf(model, str(tmp_path), dtype=dtype)
        return
    export_hf(model, str(tmp_path), dtype=dtype)
    reloaded = weights(load_pretrained(str(tmp_path)))["decoder/block_1/cross_attention/k/kernel"]
    np.testing.assert_array_equal(reloaded, big.astype(EXPORT_DTYPES[dtype]).astype(np.float32))


def test_training_checkpoint_loads_its_weights(tmp_path):
    import keras

    from t5core.checkpoints.model_state import ModelState

    config = t5core.T5Config.from_json(str(REFERENCE / "gated_silu" / "config.json"))
    model = load_pretrained(str(REFERENCE / "gated_silu"), config=config.replace(dropout_rate=0.1))
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    # The trainer's layout: weights + seed states under model/, optimizer and counters beside.
    checkpoint = tf.train.Checkpoint(model=ModelState(model), optimizer=optimizer,
                                     best=tf.Variable(1.5, dtype=tf.float64))
    tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=1).save()
    model.config.to_json(str(tmp_path / "config.json"))
    listed = [name for name, _ in tf.train.list_variables(str(tmp_path))]
    assert any(name.startswith("optimizer/") for name in listed)
    assert any(name.startswith("model/rng_states/") for name in listed)
    assert detect_format(str(tmp_path))[0] == "tf"
    loaded = load_pretrained(str(tmp_path))
    assert_same_weights(model, loaded)
    # Variables the checkpoint does not give (dropout seed states) were initialised as usual.
    features = {"encoder_input_tokens": np.array([[5, 6, 1]]),
                "decoder_input_tokens": np.array([[0, 5, 6]])}
    assert np.isfinite(loaded(features, training=True).numpy()).all()


def test_tf_checkpoint_round_trip_and_convert_script(tmp_path):
    import importlib.util

    model = load_pretrained(str(REFERENCE / "t5_v1_1_gated_gelu_untied"))
    write_tf_checkpoint(model, str(tmp_path / "tf"))
    assert detect_format(str(tmp_path / "tf"))[0] == "tf"
    assert_same_weights(model, load_pretrained(str(tmp_path / "tf")))
    spec = importlib.util.spec_from_file_location(
        "convert_checkpoint", pathlib.Path(__file__).parents[1] / "scripts" / "convert_checkpoint.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    assert convert.main([f"--input={tmp_path / 'tf'}", f"--output={tmp_path / 'hf'}",
                         "--quiet"]) == 0
    assert_same_weights(model, load_pretrained(str(tmp_path / "hf")))
    assert convert.main([f"--input={T5X / 'test_t5_tiny.checkpoint_0'}",
                         f"--config={','.join(T5X_GINS)}", f"--output={tmp_path / 't5x'}",
                         "--format=tf", "--quiet"]) == 0
    assert logits_error(load_pretrained(str(tmp_path / "t5x")), REFERENCE / "t5x_tiny.npz") < 1e-5
    assert convert.main([f"--input={tmp_path / 'nothing'}", f"--output={tmp_path / 'x'}",
                         "--quiet"]) == 2  # a user error: one line, status 2


# ----------------------------------------------------------------------------- bad input


def _copy_variant(tmp_path, variant="t5_v1_1_gated_gelu_untied"):
    target = tmp_path / variant
    shutil.copytree(REFERENCE / variant, target)
    return target


def _truncate(path, keep=0.6):
    data = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(data[: int(len(data) * keep)])


def test_truncated_files_are_clear_errors(tmp_path):
    before = uninitialized_registry_size()
    safetensors_dir = _copy_variant(tmp_path)
    _truncate(safetensors_dir / "model.safetensors")
    with pytest.raises(ValueError, match=r"model\.safetensors.*truncated"):
        load_pretrained(str(safetensors_dir))
    for name in ("pytorch_model.bin", "tf_model.h5"):
        shutil.copyfile(TINY / name, tmp_path / name)
        _truncate(tmp_path / name)
        with pytest.raises(ValueError, match=re.escape(name)):
            load_pretrained(str(tmp_path / name), config=str(TINY / "config.json"))
    shutil.copyfile(T5X / "test_t5_tiny.checkpoint_0", tmp_path / "t5x")
    _truncate(tmp_path / "t5x")
    with pytest.raises(ValueError, match="not a readable T5X"):
        load_pretrained(str(tmp_path / "t5x"), config=T5X_GINS)
    mtf = tmp_path / "mtf"
    write_mesh_tf(mtf, load_file(REFERENCE / "mt5" / "model.safetensors"), gin=MT5_GIN)
    _truncate(next(mtf.glob("*.data-*")), keep=0.3)
    with pytest.raises(ValueError, match=r"model\.ckpt-1000.*could not read tensor"):
        load_pretrained(str(mtf))
    assert uninitialized_registry_size() == before  # no half-built model kept anywhere


def test_every_offender_is_listed_before_anything_is_read(tmp_path):
    directory = _copy_variant(tmp_path)
    state = load_file(directory / "model.safetensors")
    del state["encoder.block.1.layer.1.DenseReluDense.wo.weight"]  # missing
    state["encoder.block.0.layer.0.SelfAttention.extra.weight"] = np.zeros((2, 2), np.float32)
    state["decoder.block.0.layer.1.EncDecAttention.q.weight"] = np.zeros((4, 4), np.float32)
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError) as err:
        load_pretrained(str(directory))
    message = str(err.value)
    assert "EncDecAttention.q.weight (4, 4)" in message and "the model needs (24, 30)" in message
    assert "tensors no rule maps" in message and "SelfAttention.extra.weight" in message
    assert "missing tensors" in message and "encoder/block_1/ffn/wo/kernel" in message


def test_config_checkpoint_mismatch(tmp_path):
    variant = REFERENCE / "t5_v1_1_gated_gelu_untied"
    config = t5core.T5Config.from_json(str(variant / "config.json"))
    with pytest.raises(CheckpointMismatchError, match=r"wi_0.*gives.*needs"):
        load_pretrained(str(variant), config=config.replace(d_ff=config.d_ff + 2))
    # An untied checkpoint under a tied config: lm_head.weight is not the embedding.
    with pytest.raises(CheckpointMismatchError, match="lm_head.weight differs from shared"):
        load_pretrained(str(variant), config=config.replace(tie_word_embeddings=True))
    # A tied checkpoint under an untied config: the output projection is missing.
    tied = t5core.T5Config.from_json(str(REFERENCE / "t5_v1_0_relu_tied" / "config.json"))
    with pytest.raises(CheckpointMismatchError, match="lm_head/kernel"):
        load_pretrained(str(REFERENCE / "t5_v1_0_relu_tied"),
                        config=tied.replace(tie_word_embeddings=False))


def _zip_with_pickle(path, pickle_bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/version", "3\n")


def test_pickle_naming_a_non_tensor_global_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    command = f"touch {marker}".encode()
    # protocol 2: GLOBAL posix.system, the command string, TUPLE1, REDUCE, STOP
    payload = (b"\x80\x02cposix\nsystem\nq\x00X" + len(command).to_bytes(4, "little") + command
               + b"\x85R.")
    _zip_with_pickle(tmp_path / "pytorch_model.bin", payload)
    shutil.copyfile(TINY / "config.json", tmp_path / "config.json")
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system"):
        load_pretrained(str(tmp_path), use_torch=False)
    assert not marker.exists()
    # A tensor whose storage class is not a storage is refused the same way.
    payload = b"\x80\x02}(X\x01\x00\x00\x00wcbuiltins\neval\nq\x00u."
    _zip_with_pickle(tmp_path / "pytorch_model.bin", payload)
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        load_pretrained(str(tmp_path), use_torch=False)


def test_directory_without_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint t5core recognises.*notes\.txt"):
        load_pretrained(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_pretrained(str(tmp_path / "absent"))


# ----------------------------------------------------------------------------- format table


def test_hf_export_names_map_back_to_their_variables_through_hf_rules():
    from t5core.checkpoints.hf import hf_name, hf_rules
    from t5core.model import T5Model

    config = t5core.T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_heads=2, num_layers=2,
                             num_decoder_layers=2, feed_forward_proj="gated-gelu",
                             tie_word_embeddings=False)
    shapes = {path: tuple(v.shape) for path, v in T5Model(config).variables_by_name().items()}
    exported = {}
    for path, shape in shapes.items():
        name, transform = hf_name(path)
        exported[name] = (path, transform.output_shape(shape))
    plan = plan_mapping({name: shape for name, (_, shape) in exported.items()}, hf_rules(),
                        shapes, source="exported names")
    assert {name: target for name, target, _ in plan.assignments} == {
        name: path for name, (path, _) in exported.items()}


def test_load_pretrained_closes_its_reader(monkeypatch):
    from t5core.checkpoints.untrusted import ShardedReader  # the safetensors reader's base

    closed = []
    monkeypatch.setattr(ShardedReader, "close", lambda self: closed.append(self.path))
    load_pretrained(str(REFERENCE / "gated_silu"))
    assert closed == [str(REFERENCE / "gated_silu")]


def test_every_format_row_is_named_in_formats():
    from t5core.checkpoints import FORMAT_TABLE, FORMATS

    assert FORMATS == tuple(row.name for row in FORMAT_TABLE)
    assert set(FORMATS) == {"hf-safetensors", "hf-bin", "hf-h5", "mesh-tf", "t5x", "tf"}
    # import_optimizer_state reads a run's Adafactor state through this column alone.
    assert {row.name for row in FORMAT_TABLE if row.adafactor} == {"mesh-tf", "t5x"}


@pytest.mark.parametrize("form", ["directory", "prefix", "index"])
def test_detecting_a_mesh_tf_checkpoint_reads_its_index_once(tmp_path, monkeypatch, form):
    # The `tf` and `mesh-tf` rows both ask whether the prefix is object-keyed.
    write_mesh_tf(tmp_path, load_file(REFERENCE / "mt5" / "model.safetensors"), gin=MT5_GIN)
    prefix = tf.train.latest_checkpoint(str(tmp_path))
    opened = []
    real = tf.train.load_checkpoint
    monkeypatch.setattr(tf.train, "load_checkpoint", lambda p: opened.append(p) or real(p))
    path = {"directory": str(tmp_path), "prefix": prefix, "index": prefix + ".index"}[form]
    assert detect_format(path) == ("mesh-tf", prefix)
    assert opened == [prefix]
    assert detect_format(path) == ("mesh-tf", prefix)
    assert opened == [prefix]  # the unchanged index is not read again
