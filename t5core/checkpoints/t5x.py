"""T5X checkpoints (Flan-T5's and UL2's original releases): `checkpoint_N/checkpoint` msgpack
files."""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

import t5core.checkpoints.t5x_zarr as t5x_zarr
from t5core.checkpoints.gin_config import lookup, parse_gin
from t5core.checkpoints.reader import CheckpointReader, named_errors
from t5core.checkpoints.rules import Rule, merge_heads_in, merge_heads_out, skip, transpose
from t5core.checkpoints.t5x_zarr import DTYPE_NAMES, np_dtype
from t5core.checkpoints.untrusted import element_count, is_int, listing, shape_problem, shown
from t5core.config import T5Config
from t5core.errors import CheckpointError, ConfigError
from t5core.file_reads import open_file, present

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


_MAX_DEPTH = 64  # a T5X train state nests about 10 levels deep
# msgpack makes one Python object (about 70 bytes) per entry: bounding the entries bounds the
# memory a hostile file can take beyond its own bytes. A T5X checkpoint has ~10 per parameter.
_MAX_ENTRIES = 4_000_000
_MAX_CONTAINER = 1 << 20


class _Inline:
    """An array stored inside the msgpack file: shape, dtype and exactly that many bytes."""

    def __init__(self, shape, dtype, data):
        # Built only by `_inline`, which checks the fields first.
        self.shape, self.dtype, self.data = tuple(shape), np_dtype(dtype), data

    def array(self):
        return np.frombuffer(self.data, self.dtype).reshape(self.shape)


class _Invalid:
    """A leaf that is not a readable array; reported with its path once the tree is walked."""

    def __init__(self, reason):
        self.reason = reason


def _inline(shape, dtype, data):
    """An _Inline, or an _Invalid saying what is wrong, from a file's declared fields."""
    if not isinstance(dtype, str) or dtype not in DTYPE_NAMES:
        return _Invalid(f"dtype {shown(dtype)} is not one t5core reads "
                        f"({', '.join(sorted(DTYPE_NAMES))})")
    problem = shape_problem(shape)
    if problem:
        return _Invalid(problem)
    if not isinstance(data, bytes):
        return _Invalid(f"an inline array's data is a {type(data).__name__}, not bytes")
    needed = element_count(shape) * np_dtype(dtype).itemsize
    if len(data) != needed:
        return _Invalid(f"an inline array of shape {tuple(shape)} {dtype} holds {len(data)} "
                        f"bytes (needs {needed})")
    return _Inline(shape, dtype, data)


def _unpack(data, count, ext_hook=None):
    """msgpack.unpackb of a T5X file's bytes or an extension's payload in it, within the limits
    and the one entry budget `count` (an `_entry_budget`) of the whole file."""
    import msgpack

    return msgpack.unpackb(data, ext_hook=ext_hook or msgpack.ExtType, raw=False,
                           strict_map_key=False, object_hook=count, list_hook=count,
                           max_array_len=_MAX_CONTAINER, max_map_len=_MAX_CONTAINER)


def _ext_hook(count):
    """msgpack's ext_hook: an extension's payload is unpacked on the file's entry budget."""
    def hook(code, data):
        if code not in (1, 3):  # 1: ndarray [shape, dtype, bytes]; 3: numpy scalar [dtype, bytes]
            return _Invalid(f"msgpack extension type {code} is not an array")
        try:
            fields = _unpack(data, count)
        except CheckpointError:  # the budget: the whole file is refused
            raise
        except Exception as err:  # msgpack raises several types on damaged data
            return _Invalid(f"unreadable inline array ({type(err).__name__})")
        return _ext_fields(code, fields)
    return hook


def _ext_fields(code, fields):
    """The _Inline (or _Invalid) of an extension's unpacked payload."""
    size = 3 if code == 1 else 2
    if not isinstance(fields, list) or len(fields) != size:
        return _Invalid(f"an inline array is [{'shape, ' if code == 1 else ''}dtype, bytes]; "
                        f"this one is {shown(fields)}")
    return _inline(*fields) if code == 1 else _inline([], *fields)


def _indexed(value):
    """Flax writes tuples as dicts keyed "0", "1", ...: the tuple, or None if it is not one."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict) and set(value) == {str(i) for i in range(len(value))}:
        return tuple(value[str(i)] for i in range(len(value)))
    return None


def _unchunk(value):
    """The array Flax split into chunks of its flattened values (arrays over 2**30 bytes)."""
    shape, chunks = _indexed(value.get("shape")), _indexed(value.get("chunks"))
    if shape is None or shape_problem(shape):
        return _Invalid(f"a chunked array's shape {shown(value.get('shape'))} is not a shape")
    if (not chunks or not all(isinstance(c, _Inline) for c in chunks)
            or len({c.dtype for c in chunks}) != 1):
        return _Invalid("a chunked array's chunks are not arrays of one dtype keyed 0, 1, ...")
    return _inline(list(shape), chunks[0].dtype.name, b"".join(c.data for c in chunks))


def _flatten(tree, prefix=""):
    """{"a/b/c": leaf} of a nested tree, walked without recursion and at most _MAX_DEPTH deep."""
    out, stack = {}, [(prefix, tree, 0)]
    while stack:
        path, node, depth = stack.pop()
        for key, value in node.items():
            if not (isinstance(key, str) or is_int(key)):
                raise CheckpointError(f"{path or 'the top level'}: a key of type "
                                      f"{type(key).__name__}, not a name")
            name = f"{path}/{key}" if path else str(key)
            if isinstance(value, dict) and value.get("__msgpack_chunked_array__"):
                out[name] = _unchunk(value)
            elif isinstance(value, dict) and not t5x_zarr.is_spec(value):
                if depth >= _MAX_DEPTH:
                    raise CheckpointError(f"{shown(name)}: nested more than {_MAX_DEPTH} "
                                          "levels deep")
                stack.append((name, value, depth + 1))  # an empty dict holds no tensor
            else:
                out[name] = value
    return out


def _entry_budget():
    """A msgpack hook counting the entries of every map and array made, to stop at _MAX_ENTRIES."""
    entries = 0

    def count(container):
        nonlocal entries
        entries += 1 + len(container)  # an empty map or array is an object too
        if entries > _MAX_ENTRIES:
            raise CheckpointError(f"more than {_MAX_ENTRIES} map and array entries (no T5X "
                                  "checkpoint has that many)")
        return container
    return count


def checkpoint_file(path):
    """The msgpack file of a T5X checkpoint file, `checkpoint_N/` directory or model directory."""
    if not tf.io.gfile.isdir(path):
        return path
    candidate = os.path.join(path, "checkpoint")
    if present(candidate) and is_t5x_file(candidate):
        return candidate
    steps = sorted((int(m.group(1)), name) for name in tf.io.gfile.listdir(path)
                   if (m := re.fullmatch(r"checkpoint_(\d+)/?", name))
                   and tf.io.gfile.exists(os.path.join(path, name.rstrip("/"), "checkpoint")))
    if steps:
        return os.path.join(path, steps[-1][1].rstrip("/"), "checkpoint")
    raise FileNotFoundError(f"{path}: no T5X checkpoint (checkpoint or checkpoint_N/checkpoint)")


def is_t5x_file(path):
    """A Flax msgpack file starts with a map (fixmap 0x80-0x8f, map16 0xde, map32 0xdf)."""
    with open_file(path, CheckpointError) as f:
        head = f.read(1)
    return len(head) == 1 and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))


class T5XReader(CheckpointReader):
    """Parameter-by-parameter access to a T5X checkpoint (inline arrays and tensorstore specs)."""

    def __init__(self, path):
        import msgpack

        self.path = checkpoint_file(path)
        self.directory = os.path.dirname(self.path)
        with open_file(self.path, CheckpointError) as f:
            data = f.read()  # a regular file's bytes: the checks below bound what they expand to
        count = _entry_budget()
        with named_errors(self.path, "not a readable T5X msgpack checkpoint", prefix_own=True):
            try:
                tree = _unpack(data, count, _ext_hook(count))
            except msgpack.StackError:
                raise CheckpointError("nested too deep for a T5X checkpoint") from None
            del data
            if not isinstance(tree, dict):
                raise CheckpointError("not a T5X checkpoint (top level is not a map)")
            self._leaves = _flatten(tree)
        self.shapes, problems, self._specs, self._arrays = {}, [], {}, {}
        for name, leaf in self._leaves.items():
            shape, problem = self._shape(name, leaf)
            if problem:
                problems.append(f"{name}: {problem}")
            self.shapes[name] = shape
        if problems:
            raise CheckpointError(f"{self.path}: damaged T5X checkpoint:\n  {listing(problems)}")

    def _shape(self, name, leaf):
        """(shape, None) or (None, why the leaf cannot be read); plain values are shape ()."""
        if isinstance(leaf, _Inline):
            return leaf.shape, None
        if isinstance(leaf, _Invalid):
            return None, leaf.reason
        if t5x_zarr.is_spec(leaf):
            try:
                spec = t5x_zarr.parse_spec(leaf)
            except CheckpointError as err:
                return None, str(err)
            # A path out of the checkpoint is refused now, before anything else is looked at.
            t5x_zarr.zarray_path(self.directory, spec, f"{self.path}: {name}")
            self._specs[name] = spec
            return spec.shape, None
        return (), None  # plain msgpack values: version, step counters

    def nbytes(self, name):
        leaf = self._leaves[name]
        if isinstance(leaf, _Inline):
            return len(leaf.data)
        spec = self._specs.get(name)
        itemsize = spec.dtype.itemsize if spec is not None and spec.dtype is not None else 4
        return element_count(self.shapes[name]) * itemsize

    def _checked(self, name):
        """The tensorstore array behind `name`, its `.zarray` checked (once) against its spec."""
        if name not in self._arrays:
            self._arrays[name] = t5x_zarr.check_array(self.directory, self._specs[name],
                                                      f"{self.path}: {name}")
        return self._arrays[name]

    def validate(self, names):
        """Every check that reads no data, for all of `names`, before the first is read."""
        bad = [n for n in names if not isinstance(self._leaves[n], _Inline)
               and n not in self._specs and not isinstance(self._leaves[n], (int, float))]
        if bad:
            raise CheckpointError(f"{self.path}: entries that are not arrays: {', '.join(bad)}")
        stored = [n for n in names if n in self._specs]
        if stored:
            t5x_zarr.require_tensorstore(self.path, stored)
        for name in stored:
            self._checked(name)

    def read(self, name):
        leaf = self._leaves[name]
        if isinstance(leaf, _Inline):
            return leaf.array()
        if name in self._specs:
            with named_errors(self.path, f"could not read tensor {name}"):  # tensorstore's errors
                return t5x_zarr.read_array(self._checked(name), self._specs[name],
                                           f"{self.path}: {name}")
        return np.asarray(leaf)


# -- Adafactor state (read by t5core.checkpoints.optimizer_state) ----------------------------

T5X_STEP_NAMES = ("optimizer/state/step", "state/step")


def adafactor_slot_names(shapes, param_name):
    """{"v_row", "v_col", "v", "m"} -> the slot T5X's Adafactor uses for a parameter; {}: none.

    T5X stores all four, unused ones as (1,) placeholders: `v` (else `v_row`, `v_col`) and `m`
    are used when of the parameter's shape.
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


def adafactor_averaged_axes(shape):
    """(axes v_row averages over, axes v_col ...) of a weight, or None (the slots say)."""
    # T5X's heuristic, which it also applies to every parameter of rank <= 2 when factor rules
    # are set: v_row averages over the largest dim, the later of two equal dims (np.argsort).
    # Rank > 2 needs an explicit rule in T5X: the slot shapes say which.
    if len(shape) != 2:
        return None
    order = np.argsort(shape, kind="stable")
    return (int(order[-1]),), (int(order[-2]),)


# T5X network.T5Config field -> T5Config field.
_GIN_FIELDS = {"vocab_size": "vocab_size", "emb_dim": "d_model", "num_heads": "num_heads",
               "num_encoder_layers": "num_layers", "num_decoder_layers": "num_decoder_layers",
               "head_dim": "d_kv", "mlp_dim": "d_ff"}


def config_from_gin(paths, **overrides) -> T5Config:
    """A T5X run's T5Config from its gin files in order ([base.gin, tiny.gin]): `network.T5Config`
    (emb_dim, num_heads, head_dim, mlp_dim, layers, vocab_size, mlp_activations,
    logits_via_embedding); buckets, distance and epsilon are fixed at T5Config's defaults."""
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
            raise ConfigError(f"{paths}: mlp_activations {activations} is not one t5core has")
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
        raise ConfigError(f"{paths}: no network.T5Config value for {', '.join(missing)}{hint}. "
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
