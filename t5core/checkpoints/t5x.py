"""T5X checkpoints (Flan-T5's and UL2's original releases): `checkpoint_N/checkpoint` msgpack files.

The msgpack file is Flax's serialisation of the train state: parameters under `target/` (or
`optimizer/target/` in older files), Adafactor state under `state/`. Small arrays sit inline as
msgpack ext type 1 (shape, dtype name, raw bytes); large ones are written beside the file by
tensorstore (zarr) and the msgpack holds their tensorstore spec, whose `metadata.shape` lets the
mapping be planned without tensorstore, which only reading them needs (an optional extra).

Kernels are `[in, out]` as in Keras; relative tables `[heads, buckets]` (t5core: `[buckets,
heads]`). T5X stores no model config: pass config= or keep the run's `config.gin` beside the
checkpoint (T5X writes it into the model directory).
"""

from __future__ import annotations

import copy
import os
import re

import ml_dtypes
import numpy as np
import tensorflow as tf

from t5core.checkpoints.gin_config import lookup, parse_gin
from t5core.checkpoints.rules import Rule, merge_heads_in, merge_heads_out, skip, transpose
from t5core.config import T5Config

_PARAMS = r"(?:optimizer/)?target/"


def t5x_rules():
    rules = [
        skip(r"version", "format version"),
        skip(r"(?:optimizer/)?state(?:/.*)?", "optimizer state (Adafactor moments, step)"),
        Rule(_PARAMS + r"token_embedder/embedding", "shared/embeddings"),
        Rule(_PARAMS + r"decoder/logits_dense/kernel", "lm_head/kernel"),
        Rule(_PARAMS + r"encoder/encoder_norm/scale", "encoder/final_layer_norm/scale"),
        Rule(_PARAMS + r"decoder/decoder_norm/scale", "decoder/final_layer_norm/scale"),
        Rule(_PARAMS + r"(encoder|decoder)/relpos_bias/rel_embedding",
             "{0}/block_0/self_attention/relative_attention_bias/embeddings", transpose),
    ]
    sublayers = [("encoder", "attention", "self_attention", "pre_attention_layer_norm"),
                 ("decoder", "self_attention", "self_attention", "pre_self_attention_layer_norm"),
                 ("decoder", "encoder_decoder_attention", "cross_attention",
                  "pre_cross_attention_layer_norm")]
    for stack, theirs, ours, norm in sublayers:
        prefix = _PARAMS + rf"{stack}/layers_(\d+)/"
        for t5x_name, name, transform in [("query", "q", merge_heads_out), ("key", "k", merge_heads_out),
                                          ("value", "v", merge_heads_out), ("out", "o", merge_heads_in)]:
            rules.append(Rule(prefix + f"{theirs}/{t5x_name}/kernel",
                              f"{stack}/block_{{0}}/{ours}/{name}/kernel", transform))
        rules.append(Rule(prefix + f"{norm}/scale", f"{stack}/block_{{0}}/{ours}_norm/scale"))
    for stack in ("encoder", "decoder"):
        prefix = _PARAMS + rf"{stack}/layers_(\d+)/"
        rules += [Rule(prefix + r"mlp/(wi|wi_0|wi_1|wo)/kernel", f"{stack}/block_{{0}}/ffn/{{1}}/kernel"),
                  Rule(prefix + r"pre_mlp_layer_norm/scale", f"{stack}/block_{{0}}/ffn_norm/scale")]
    return rules


def _np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


class _Inline:
    """An array stored inside the msgpack file."""

    def __init__(self, shape, dtype, data):
        self.shape, self.dtype, self.data = tuple(shape), _np_dtype(dtype), data
        if len(data) != int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize:
            raise ValueError(f"an inline array of shape {self.shape} {self.dtype} holds "
                             f"{len(data)} bytes")

    def array(self):
        return np.frombuffer(self.data, self.dtype).reshape(self.shape)


def _ext_hook(code, data):
    import msgpack

    if code == 1:  # ndarray: [shape, dtype name, bytes]
        shape, dtype, buffer = msgpack.unpackb(data, raw=False)
        return _Inline(shape, dtype, buffer)
    if code == 3:  # numpy scalar: [dtype name, bytes]
        dtype, buffer = msgpack.unpackb(data, raw=False)
        return _Inline((), dtype, buffer)
    raise ValueError(f"unknown msgpack extension type {code}")


def _is_tensorstore_spec(value):
    return isinstance(value, dict) and "driver" in value and ("kvstore" in value or "path" in value)


def _flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict) and value.get("__msgpack_chunked_array__"):
            # Flax splits arrays over 2**30 bytes into chunks of the flattened array.
            chunks = [value["chunks"][k].array() for k in sorted(value["chunks"], key=int)]
            out[name] = _Inline(value["shape"], chunks[0].dtype.name,
                                np.concatenate([c.reshape(-1) for c in chunks]).tobytes())
        elif isinstance(value, dict) and not _is_tensorstore_spec(value):
            out.update(_flatten(value, name))  # an empty dict (no mutables) holds no tensor
        else:
            out[name] = value
    return out


def checkpoint_file(path):
    """The msgpack file of a T5X checkpoint file, `checkpoint_N/` directory or model directory."""
    if not tf.io.gfile.isdir(path):
        return path
    candidate = os.path.join(path, "checkpoint")
    if tf.io.gfile.exists(candidate) and is_t5x_file(candidate):
        return candidate
    steps = sorted((int(m.group(1)), name) for name in tf.io.gfile.listdir(path)
                   if (m := re.fullmatch(r"checkpoint_(\d+)/?", name))
                   and tf.io.gfile.exists(os.path.join(path, name.rstrip("/"), "checkpoint")))
    if steps:
        return os.path.join(path, steps[-1][1].rstrip("/"), "checkpoint")
    raise FileNotFoundError(f"{path}: no T5X checkpoint (checkpoint or checkpoint_N/checkpoint)")


def is_t5x_file(path):
    """A Flax msgpack file starts with a map (fixmap 0x80-0x8f, map16 0xde, map32 0xdf)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(1)
    return len(head) == 1 and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))


class T5XReader:
    """Parameter-by-parameter access to a T5X checkpoint (inline arrays and tensorstore specs)."""

    def __init__(self, path):
        import msgpack

        self.path = checkpoint_file(path)
        self.directory = os.path.dirname(self.path)
        with tf.io.gfile.GFile(self.path, "rb") as f:
            data = f.read()
        try:
            tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
        except Exception as err:  # msgpack raises several types for truncated or foreign data
            raise ValueError(f"{self.path}: not a readable T5X msgpack checkpoint "
                             f"({type(err).__name__}: {err})") from None
        del data
        if not isinstance(tree, dict):
            raise ValueError(f"{self.path}: not a T5X checkpoint (top level is not a map)")
        self._leaves = _flatten(tree)
        self.shapes = {name: self._shape(name, leaf) for name, leaf in self._leaves.items()}

    def _shape(self, name, leaf):
        if isinstance(leaf, _Inline):
            return leaf.shape
        if _is_tensorstore_spec(leaf):
            return tuple(leaf.get("metadata", {}).get("shape", ()))
        return np.shape(leaf)  # plain msgpack values: version, step counters

    def nbytes(self, name):
        leaf = self._leaves[name]
        if isinstance(leaf, _Inline):
            return len(leaf.data)
        return int(np.prod(self.shapes[name], dtype=np.int64)) * 4

    def validate(self, names):
        stored = [n for n in names if _is_tensorstore_spec(self._leaves[n])]
        if stored:
            try:
                import tensorstore  # noqa: F401
            except ImportError:
                raise ImportError(
                    f"{self.path}: {len(stored)} array(s) are stored beside it with tensorstore "
                    f"({stored[0]}, ...); reading them needs the optional tensorstore package "
                    "(pip install tensorstore)") from None
        bad = [n for n in names if not isinstance(self._leaves[n], _Inline)
               and not _is_tensorstore_spec(self._leaves[n])]
        if bad:
            raise ValueError(f"{self.path}: entries that are not arrays: {', '.join(bad)}")

    def read(self, name):
        leaf = self._leaves[name]
        if isinstance(leaf, _Inline):
            return leaf.array()
        if _is_tensorstore_spec(leaf):
            return self._read_tensorstore(leaf)
        return np.asarray(leaf)

    def _read_tensorstore(self, spec):
        import tensorstore as ts

        spec = copy.deepcopy(spec)
        store = spec.get("kvstore", spec)  # tensorstore < 0.1.14 kept the path at the top
        # T5X writes paths relative to the checkpoint directory (and a dummy bucket for gcs).
        m = re.fullmatch(r"gs://([^/]*)/(.*)", self.directory)
        if m:
            store.update(driver="gcs", bucket=m.group(1), path=f"{m.group(2)}/{store['path']}")
        else:
            store.update(driver="file", path=os.path.join(self.directory, store["path"]))
        return np.asarray(ts.open(spec).result().read().result())


# -- Adafactor state (read by t5core.checkpoints.optimizer_state) ----------------------------

T5X_STEP_NAMES = ("optimizer/state/step", "state/step")


def adafactor_slot_names(shapes, param_name):
    """{"v_row", "v_col", "v", "m"} -> name of the slot T5X's Adafactor keeps for a parameter.

    T5X stores all four for every parameter, the unused ones as a (1,) placeholder: `v` is used
    when it has the parameter's shape (else `v_row` and `v_col` are), `m` when it has the
    parameter's shape (momentum on). Only the used slots are returned; {} when the checkpoint
    holds no state for the parameter.
    """
    m = re.fullmatch(r"((?:optimizer/)?)target/(.+)", param_name)
    if m is None:
        return {}
    base = f"{m.group(1)}state/param_states/{m.group(2)}"
    names = {kind: f"{base}/{kind}" for kind in ("v_row", "v_col", "v", "m")
             if f"{base}/{kind}" in shapes}
    param_shape = tuple(shapes[param_name])
    used = {}
    if "v" in names and tuple(shapes[names["v"]]) == param_shape:
        used["v"] = names["v"]
    elif "v_row" in names and "v_col" in names:
        used["v_row"], used["v_col"] = names["v_row"], names["v_col"]
    if "m" in names and tuple(shapes[names["m"]]) == param_shape:
        used["m"] = names["m"]
    return used


# T5X network.T5Config field -> T5Config field.
_GIN_FIELDS = {"vocab_size": "vocab_size", "emb_dim": "d_model", "num_heads": "num_heads",
               "num_encoder_layers": "num_layers", "num_decoder_layers": "num_decoder_layers",
               "head_dim": "d_kv", "mlp_dim": "d_ff"}


def config_from_gin(paths, **overrides) -> T5Config:
    """The T5Config of a T5X run from its gin files (applied in order), e.g. [base.gin, tiny.gin].

    Reads `network.T5Config` (emb_dim, num_heads, head_dim, mlp_dim, layers, vocab_size,
    mlp_activations, logits_via_embedding). T5X's network fixes 32 buckets, max distance 128 and
    epsilon 1e-6, the T5Config defaults.
    """
    missing_includes = []
    gin = parse_gin(paths, missing_includes)
    values, missing = {}, []
    for theirs, ours in _GIN_FIELDS.items():
        value = lookup(gin, f"T5Config.{theirs}")
        if isinstance(value, int):
            values[ours] = value
        elif ours not in overrides:
            missing.append(theirs)
    activations = lookup(gin, "T5Config.mlp_activations")
    if activations is not None:
        activations = tuple(activations) if isinstance(activations, (list, tuple)) else (activations,)
        kinds = {("relu",): "relu", ("gelu", "linear"): "gated-gelu",
                 ("silu", "linear"): "gated-silu", ("swish", "linear"): "gated-silu"}
        if activations not in kinds:
            raise ValueError(f"{paths}: mlp_activations {activations} is not one t5core has")
        values["feed_forward_proj"] = kinds[activations]
    elif "feed_forward_proj" not in overrides:
        missing.append("mlp_activations")
    tied = lookup(gin, "T5Config.logits_via_embedding")
    values["tie_word_embeddings"] = bool(tied) if isinstance(tied, bool) else False
    dropout = lookup(gin, "T5Config.dropout_rate")
    if isinstance(dropout, float):
        values["dropout_rate"] = dropout
    if missing:
        hint = f"; unresolved includes: {', '.join(missing_includes)}" if missing_includes else ""
        raise ValueError(f"{paths}: no network.T5Config value for {', '.join(missing)}{hint}. "
                         "Pass the included gin files too (base first), or config=")
    return T5Config(**{**values, **overrides})


def find_config_gin(checkpoint_path):
    """T5X's `config.gin` in the checkpoint's directory or the model directory above it."""
    directory = os.path.dirname(checkpoint_file(checkpoint_path))
    for candidate in (os.path.join(directory, "config.gin"),
                      os.path.join(os.path.dirname(directory), "config.gin")):
        if tf.io.gfile.exists(candidate):
            return candidate
    return None
