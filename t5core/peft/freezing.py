"""Freezing parts of a T5 model (or of a `T5EncoderClassifier`) by setting sub-layers' trainable
flags, and reporting what still trains; what each mode freezes: docs/architecture.md, Freezing.
"""

from __future__ import annotations

import numpy as np


def stacks(model):
    """The model's block stacks that exist: (encoder, decoder) of a T5Model, (encoder,) else."""
    return [s for s in (getattr(model, "encoder", None), getattr(model, "decoder", None))
            if s is not None]


def top_stack(model):
    decoder = getattr(model, "decoder", None)
    return decoder if decoder is not None else model.encoder


def head_layers(model):
    """Layers a model wants trained whatever is frozen (a classifier's freshly made head)."""
    hook = getattr(model, "peft_head_layers", None)
    return list(hook()) if hook is not None else []


def freeze_all(model):
    """Clears the trainable flag of every variable, leaving the model object itself trainable."""
    for layer in model.layers:
        layer.trainable = False
    return model


def unfreeze_all(model):
    for layer in model.layers:
        layer.trainable = True
    return model


def keep_heads_trainable(model):
    """Makes `head_layers(model)` trainable again after a freeze."""
    for layer in head_layers(model):
        layer.trainable = True


def freeze_embeddings(model, freeze_lm_head=False):
    model.shared.trainable = False
    if freeze_lm_head and getattr(model, "lm_head", None) is not None:
        model.lm_head.trainable = False
    return model


def freeze_encoder(model, with_embeddings=False):
    model.encoder.trainable = False
    if with_embeddings:
        model.shared.trainable = False
    keep_heads_trainable(model)
    return model


def freeze_all_but_top(model, n, train_lm_head=True):
    """Trains only the last `n` blocks of the top stack, its final norm and the output head."""
    stack = top_stack(model)
    count = len(stack.blocks)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= count:
        raise ValueError(f"top_n={n!r}: expected an integer in [0, {count}] (the {stack.name} "
                         f"has {count} blocks)")
    freeze_all(model)
    for block in stack.blocks[count - int(n):]:
        block.trainable = True
    stack.final_layer_norm.trainable = True
    if train_lm_head and getattr(model, "lm_head", None) is not None:
        model.lm_head.trainable = True
    keep_heads_trainable(model)
    return model


# -- reporting ------------------------------------------------------------------------------------
def trainable_variable_names(model) -> list[str]:
    """Model-relative paths ("decoder/block_1/ffn/wo/kernel") of the trainable variables."""
    trainable = {id(v) for v in model.trainable_variables}
    return sorted(name for name, v in model.variables_by_name().items() if id(v) in trainable)


def trainable_summary(model) -> str:
    """'trainable 1,234 of 56,789 parameters (2.17%)', for the training log."""
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    share = 100.0 * trainable / max(total, 1)
    return f"trainable {trainable:,} of {total:,} parameters ({share:.2f}%)"
