"""Mesh-TF checkpoints (the original T5 release): rules, Adafactor slot names, config."""

from __future__ import annotations

import re

from t5core.checkpoints.gin_config import lookup, parse_gin
from t5core.checkpoints.hf import block_rules
from t5core.checkpoints.rules import Rule, skip, transpose
from t5core.config import T5Config
from t5core.errors import CheckpointError, ConfigError

def mesh_tf_rules():
    return [
        skip(r".+_slot_(?:vr|vc|v|m)", "Adafactor optimizer slot"),
        skip(r"global_step", "training step counter"),
        Rule(r"shared/embedding", "shared/embeddings"),
        Rule(r"decoder/logits/kernel", "lm_head/kernel"),
        Rule(r"(encoder|decoder)/(?:rms_norm|final_layer_norm)/scale", "{0}/final_layer_norm/scale"),
    ] + block_rules(r"{stack}/block_(\d+)/layer_{index:03d}/", "/", "", "/kernel", "",
                    r"(?:rms_norm|layer_norm)/scale", bias_transform=transpose)


# -- Adafactor state (read by t5core.checkpoints.optimizer_state) ----------------------------

MESH_TF_STEP_NAMES = ("global_step",)
_SLOT_SUFFIXES = {"v_row": "vr", "v_col": "vc", "v": "v", "m": "m"}


def adafactor_slot_names(shapes, param_name):
    """{"v_row", "v_col", "v", "m"} -> the `<variable>_slot_<vr|vc|v|m>` names present: `vr`/`vc`
    when factored, else `v`; `m` only with momentum."""
    return {kind: f"{param_name}_slot_{suffix}" for kind, suffix in _SLOT_SUFFIXES.items()
            if f"{param_name}_slot_{suffix}" in shapes}


def adafactor_averaged_axes(shape):
    """(axes v_row averages over, axes v_col ...) of a weight."""
    # Mesh-TF sorts dims by decreasing size, stably: of two equal dims the earlier is the larger.
    order = sorted(range(len(shape)), key=lambda i: -shape[i])
    return (order[0],), (order[1],)


def derive_config(shapes, gin_path=None, source="checkpoint") -> T5Config:
    """A T5Config from variable shapes; the head count and a non-gated activation come from
    `operative_config.gin` (the query kernel gives only heads * d_kv). No gin: pass config=."""
    def shape(name):
        if name not in shapes:
            raise CheckpointError(f"{source}: no {name}; not a Mesh-TF T5 checkpoint?")
        return shapes[name]

    vocab, d_model = shape("shared/embedding")
    blocks = {stack: len({m.group(1) for n in shapes
                          if (m := re.match(rf"{stack}/block_(\d+)/", n))})
              for stack in ("encoder", "decoder")}
    inner = shape("encoder/block_000/layer_000/SelfAttention/q")[1]
    gated = "encoder/block_000/layer_001/DenseReluDense/wi_0/kernel" in shapes
    d_ff = shape("encoder/block_000/layer_001/DenseReluDense/"
                 + ("wi_0" if gated else "wi") + "/kernel")[1]
    bias_heads, buckets = shape("encoder/block_000/layer_000/SelfAttention/relative_attention_bias")
    if gin_path is None:
        raise ConfigError(
            f"{source}: the number of heads is not in the variable shapes alone (the query kernel "
            f"is [d_model, heads * d_kv] = {[d_model, inner]}); no operative_config.gin beside the "
            "checkpoint, so pass config= (a T5Config, a preset name or a config.json)")
    gin = parse_gin(gin_path)
    heads = lookup(gin, "SelfAttention.num_heads", "num_heads")
    if not isinstance(heads, int):
        raise ConfigError(f"{gin_path}: no integer num_heads binding; pass config=")
    if heads != bias_heads or inner % heads:
        raise ConfigError(f"{gin_path}: num_heads = {heads} does not fit the checkpoint (relative "
                         f"table for {bias_heads} heads, attention width {inner})")
    activation = lookup(gin, "DenseReluDense.activation")
    if isinstance(activation, (list, tuple)):
        activation = activation[0]
    activation = {"gelu": "gelu", "relu": "relu", "swish": "silu", "silu": "silu",
                  None: "gelu" if gated else "relu"}.get(activation)
    if activation is None or (gated and activation == "relu") or (not gated and activation != "relu"):
        raise ConfigError(f"{gin_path}: feed-forward activation "
                         f"{lookup(gin, 'DenseReluDense.activation')!r} is not one t5core has "
                         f"for a {'gated' if gated else 'plain'} feed-forward")
    epsilon = lookup(gin, "sublayer_rms_norm.epsilon", "layer_norm.epsilon")
    dropout = lookup(gin, "dropout_rate")
    return T5Config(
        vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff, num_heads=heads,
        num_layers=blocks["encoder"], num_decoder_layers=blocks["decoder"],
        feed_forward_proj=f"gated-{activation}" if gated else "relu",
        relative_attention_num_buckets=buckets,
        layer_norm_epsilon=float(epsilon) if isinstance(epsilon, (int, float)) else 1e-6,
        tie_word_embeddings="decoder/logits/kernel" not in shapes,
        dropout_rate=float(dropout) if isinstance(dropout, (int, float)) else 0.1)
