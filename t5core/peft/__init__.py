"""Parameter-efficient fine-tuning: `apply_peft(model, method, **options)` for the trainer's
model_fn (methods none, freeze_embeddings, freeze_encoder, top_n, prompt, lora; the table of
what each trains: docs/architecture.md, PEFT).
"""

from __future__ import annotations

from t5core.classifier import T5EncoderClassifier
from t5core.peft.freezing import (freeze_all, freeze_all_but_top, freeze_embeddings,
                                  freeze_encoder, trainable_summary, trainable_variable_names,
                                  unfreeze_all)
from t5core.peft.lora import (DEFAULT_TARGETS, LoRADense, apply_lora, lora_layers, merge_lora,
                              select_projections)
from t5core.peft.prompt_tuning import PromptTunedT5, SoftPrompt, add_prompt_tuning

PEFT_METHODS = ("none", "freeze_embeddings", "freeze_encoder", "top_n", "prompt", "lora")


def describe_structure(model) -> dict:
    """`RunDescription` fields for what `model` holds besides a plain T5: its class, a
    classifier's labels and pooling, a prompt's length, LoRA's rank, alpha and targets."""
    fields = {"model_class": type(model).__name__}
    if isinstance(model, T5EncoderClassifier):
        fields.update(head="classifier", labels=model.label_names, pooling=model.pooling)
    if isinstance(model, PromptTunedT5):
        fields.update(prompt_length=model.prompt_length, prompt_init=model.prompt_init)
    wrapped = lora_layers(model)
    if wrapped:
        settings = {(layer.rank, layer.alpha) for layer in wrapped.values()}
        if len(settings) > 1:
            raise ValueError(f"LoRA layers of different rank/alpha {sorted(settings)} cannot be "
                             "described by one lora_rank and lora_alpha")
        (rank, alpha), = settings
        fields.update(lora_rank=rank, lora_alpha=alpha, lora_targets=lora_target_spec(model))
    return fields


def lora_target_spec(model) -> str:
    """`lora_targets` that select exactly the model's LoRA layers: their projection names
    ("q,v") when those name no other projection, else their paths."""
    paths = sorted(lora_layers(model))
    names = sorted({p.rsplit("/", 1)[1] for p in paths})
    if sorted(path for path, _, _ in select_projections(model, names)) == paths:
        return ",".join(names)
    return ",".join(paths)


def apply_peft(model, method="none", *, top_n=1, train_lm_head=True, prompt_length=20,
               prompt_init="vocab", lora_rank=8, lora_alpha=None, lora_targets=DEFAULT_TARGETS,
               lora_dropout=0.0, seed=None):
    """Returns the model ready for `method` (docs/architecture.md, PEFT), maybe a new one;
    options a method does not use are ignored.

    Args:
      model: a built T5Model, PromptTunedT5 or T5EncoderClassifier.
      method: "none" (or None: unchanged), "freeze_embeddings", "freeze_encoder", "top_n",
        "prompt" or "lora" (case-insensitive).
      top_n: how many of the top stack's last blocks train (0 to its block count).
      train_lm_head: "top_n": an untied lm_head trains too.
      prompt_length: soft-prompt vectors.
      prompt_init: "vocab", "random" or an array [prompt_length, d_model] (`PromptTunedT5`).
      lora_rank: r of each update.
      lora_alpha: the scale is alpha / r; None: alpha = r.
      lora_targets: projection names ("q", "v", "wo", ...) or path globs ("decoder/*/o"), a
        sequence or comma-separated.
      lora_dropout: on the low-rank path's input, in training.
      seed: of the "vocab" prompt; None: numpy's global state.

    Returns:
      The given model changed in place, or a new `PromptTunedT5` for "prompt".

    Raises:
      ValueError: an unknown method, top_n out of range, LoRA targets matching nothing or
        wrapped already, or a bad prompt_length / prompt_init.
      TypeError: "prompt" on a model that is not an encoder-decoder T5Model.
    """
    method = (method or "none").strip().lower()
    methods = {
        "none": lambda: model,
        "freeze_embeddings": lambda: freeze_embeddings(model),
        "freeze_encoder": lambda: freeze_encoder(model),
        "top_n": lambda: freeze_all_but_top(model, top_n, train_lm_head=train_lm_head),
        "prompt": lambda: add_prompt_tuning(model, prompt_length, prompt_init, seed=seed),
        "lora": lambda: apply_lora(model, lora_rank, lora_alpha, lora_targets, lora_dropout),
    }
    if method not in methods:
        raise ValueError(f"--peft={method!r}: expected one of {', '.join(PEFT_METHODS)}")
    return methods[method]()


__all__ = ["PEFT_METHODS", "apply_peft", "describe_structure", "lora_target_spec",
           "PromptTunedT5", "SoftPrompt",
           "LoRADense", "apply_lora", "merge_lora", "lora_layers", "add_prompt_tuning",
           "freeze_all", "unfreeze_all", "freeze_embeddings", "freeze_encoder",
           "freeze_all_but_top", "trainable_variable_names", "trainable_summary"]
