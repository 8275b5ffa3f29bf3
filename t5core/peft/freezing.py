"""Freezing parts of a T5 model (or of a `T5EncoderClassifier`), and reporting what still trains.

Keras 3 keeps "trainable" on each variable: `layer.trainable = False` clears the flag of every
variable the layer (recursively) owns, and `model.trainable_variables` lists the variables whose
flag is set. So the modes below set flags on sub-layers and never on the model itself (a model
with `trainable = False` reports no trainable variables at all). The trainer builds its optimizer
and gradient tape from `model.trainable_variables`, so a frozen variable gets no gradient, no
optimizer slots and no update.

What each mode freezes (decisions, since "freeze the encoder" is ambiguous for a tied model):

  freeze_embeddings   the shared token embedding `shared/embeddings`. With a tied model
                      (T5 v1.0, UMT5) that is also the output projection, so it is frozen too; an
                      untied `lm_head` stays trainable unless `freeze_lm_head=True`.
  freeze_encoder      every encoder variable: its blocks (relative position bias included) and
                      `encoder/final_layer_norm`. The shared embedding stays trainable, because the
                      decoder reads it too (input embedding, and output projection when tied); pass
                      `with_embeddings=True` to freeze it as well.
  freeze_all_but_top  only the last `n` blocks of the top stack and that stack's final norm train,
                      plus the output head: the untied `lm_head` (unless `train_lm_head=False`) or
                      a classifier's head. The top stack is the decoder of a T5Model and the
                      encoder of a classifier. A tied model's output projection is the shared
                      embedding, which is also the input embedding, so it stays frozen. For T5 and
                      mT5 only block 0 owns the relative position table that every block reads; it
                      is frozen unless block 0 is among the top n.
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


def _keep_heads_trainable(model):
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
    _keep_heads_trainable(model)
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
    _keep_heads_trainable(model)
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
