"""LoRA (Hu et al. 2021) on chosen projections, y = W x + (alpha / r) B (A x) with W frozen, and
`merge_lora`, which folds it back into plain weights (names and init: docs/architecture.md, LoRA).
"""

from __future__ import annotations

import contextlib
import fnmatch
import math

import keras
import tensorflow as tf

from t5core import compat
from t5core.config import check_int
from t5core.layers.dropout import Dropout
from t5core.peft.freezing import freeze_all, keep_heads_trainable, stacks

ATTENTION_PROJECTIONS = ("q", "k", "v", "o")
FFN_PROJECTIONS = ("wi", "wi_0", "wi_1", "wo")
DEFAULT_TARGETS = ("q", "v")


def projection_slots(model):
    """(model-relative path, parent layer, attribute) of every Dense projection in the blocks,
    e.g. "decoder/block_1/cross_attention/k"."""
    slots = []
    for stack in stacks(model):
        for block in stack.blocks:
            for sub in ("self_attention", "cross_attention"):
                attention = getattr(block, sub, None)
                if attention is not None:
                    slots += [(f"{stack.name}/{block.name}/{sub}/{p}", attention, p)
                              for p in ATTENTION_PROJECTIONS]
            slots += [(f"{stack.name}/{block.name}/ffn/{p}", block.ffn, p)
                      for p in FFN_PROJECTIONS if hasattr(block.ffn, p)]
    return slots


def _matches(path, target):
    if "/" in target:  # a glob over the whole path
        return fnmatch.fnmatchcase(path, target)
    leaf = path.rsplit("/", 1)[1]
    # A bare name (or glob) names the projection; "wi" also names both halves of a gated FFN.
    return fnmatch.fnmatchcase(leaf, target) or (target == "wi" and leaf in ("wi_0", "wi_1"))


def select_projections(model, targets):
    """The slots matched by `targets`: bare names ("q", "wo") or path globs ("decoder/*/o")."""
    if isinstance(targets, str):
        targets = [t for t in targets.replace(",", " ").split() if t]
    targets = list(targets)
    if not targets:
        raise ValueError("lora targets: give at least one projection name (e.g. q,v)")
    slots = projection_slots(model)
    unmatched = [t for t in targets if not any(_matches(path, t) for path, _, _ in slots)]
    if unmatched:
        names = sorted({path.rsplit("/", 1)[1] for path, _, _ in slots})
        raise ValueError(f"lora targets {unmatched} match no projection of this model; valid "
                         f"names: {', '.join(names)} (or a path glob such as "
                         f"'decoder/*/cross_attention/q')")
    return [s for s in slots if any(_matches(s[0], t) for t in targets)]


@keras.saving.register_keras_serializable(package="t5core")
class LoRADense(keras.layers.Layer):
    """A frozen bias-free Dense `base` plus a trainable rank-`rank` update scaled by alpha/rank."""

    # t5core.quantization refuses a model holding this layer: merge_lora first.
    merge_before_quantizing = True

    def __init__(self, base, rank, alpha=None, dropout_rate=0.0, **kwargs):
        kwargs.setdefault("name", base.name)
        kwargs.setdefault("dtype", base.dtype_policy)
        super().__init__(**kwargs)
        if not isinstance(base, keras.layers.Dense) or base.use_bias or not base.built:
            raise ValueError(f"LoRA wraps a built bias-free Dense layer; got {base!r}")
        if base.quantization_mode is not None:
            # merge_lora would fold the update into int8 values read without their scale.
            raise ValueError(f"{base.path}: LoRA needs float weights, this projection is "
                             f"{base.quantization_mode}-quantized; load the model unquantized")
        rank = check_int(rank, "lora rank")
        alpha = float(rank if alpha is None else alpha)
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"lora alpha must be a positive number, got {alpha!r}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"lora dropout must be in [0, 1), got {dropout_rate!r}")
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.scale = alpha / rank
        self.dropout_rate = dropout_rate
        self.input_dim, self.units = (int(d) for d in base.kernel.shape)
        self.dropout = Dropout(dropout_rate) if dropout_rate else None

    def build(self, input_shape=None):
        bound = self.input_dim ** -0.5
        # float32 whatever the compute dtype: tiny updates must not underflow in bfloat16.
        self.lora_a = self.add_weight(
            name="lora_a", shape=(self.input_dim, self.rank), dtype="float32",
            initializer=keras.initializers.RandomUniform(-bound, bound))
        self.lora_b = self.add_weight(name="lora_b", shape=(self.rank, self.units),
                                      dtype="float32", initializer="zeros")
        self.built = True

    def call(self, x, training=False):
        h = self.dropout(x, training=training) if self.dropout is not None else x
        update = keras.ops.matmul(keras.ops.matmul(h, self.lora_a), self.lora_b)
        return self.base(x) + update * keras.ops.cast(self.scale, update.dtype)

    def delta(self):
        """The float32 [in, out] matrix (alpha / r) A B this layer adds to the base kernel."""
        return self.scale * tf.matmul(tf.convert_to_tensor(self.lora_a),
                                      tf.convert_to_tensor(self.lora_b))

    def _trackable_children(self, save_type="checkpoint", **kwargs):  # compat.OVERRIDDEN_HOOKS
        # Checkpoint layout: the Dense's own children ("_kernel") directly under this object,
        # as if no wrapper were there, so plain-model checkpoints and LoRA ones interoperate.
        children = dict(compat.trackable_children(super(), save_type, **kwargs))
        if save_type != "checkpoint":  # SavedModel export keeps the plain object graph
            return children
        children.pop("base", None)
        base_children = compat.trackable_children(self.base, save_type, **kwargs)
        return {**base_children, **children}

    def get_config(self):
        # Rebuilt by apply_lora over a model, not deserialised alone (it needs its base layer).
        return {**super().get_config(), "rank": self.rank, "alpha": self.alpha,
                "dropout_rate": self.dropout_rate}


def _replace_sublayer(parent, attribute, old, new):
    # Swapped in place in the locked list of sub-layers (keeping the order of `weights`), so that
    # the tracker accepts the new attribute value.
    compat.replace_tracked_sublayer(parent, old, new)
    setattr(parent, attribute, new)


def _scope_parts(dense):
    # The kernel's path is ".../self_attention/q/kernel"; the LoRA variables go beside it.
    return dense.kernel.path.split("/")[:-2]


def apply_lora(model, rank=8, alpha=None, targets=DEFAULT_TARGETS, dropout_rate=0.0):
    """Wraps the projections `targets` names in LoRA layers (alpha defaults to rank) and freezes
    all but them (and a classifier's head); returns the model, changed in place."""
    slots = select_projections(model, targets)
    freeze_all(model)
    for path, parent, attribute in slots:
        dense = getattr(parent, attribute)
        if isinstance(dense, LoRADense):
            raise ValueError(f"{path} already has LoRA; merge_lora(model) first")
        lora = LoRADense(dense, rank, alpha, dropout_rate)
        with contextlib.ExitStack() as scopes:
            for part in _scope_parts(dense):
                scopes.enter_context(keras.name_scope(part))
            lora.build()
        _replace_sublayer(parent, attribute, dense, lora)
        lora.base.trainable = False
    keep_heads_trainable(model)
    return model


def lora_layers(model):
    """{path: LoRADense} of the wrapped projections."""
    return {path: getattr(parent, attr) for path, parent, attr in projection_slots(model)
            if isinstance(getattr(parent, attr), LoRADense)}


def merge_lora(model):
    """Folds every LoRA update into its kernel (W + (alpha / r) A B) and removes the wrappers,
    in place; paths unchanged, still trainable=False (`peft.freezing.unfreeze_all`).

    Args:
      model: a model with LoRA layers; one without is returned unchanged.

    Returns:
      The same model object, merged.
    """
    for path, parent, attribute in projection_slots(model):
        lora = getattr(parent, attribute)
        if not isinstance(lora, LoRADense):
            continue
        kernel = lora.base.kernel
        merged = tf.cast(kernel, tf.float32) + lora.delta()
        kernel.assign(tf.cast(merged, kernel.dtype))
        _replace_sublayer(parent, attribute, lora, lora.base)
    return model
