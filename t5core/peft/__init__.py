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
    """What `model` holds besides a plain T5's variables, as `t5core.model_dir.RunDescription`
    fields: its class, a classifier's labels and pooling, a soft prompt's length, LoRA's rank,
    alpha and targets.
    """
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
    """Returns the model ready for `method` (the table: docs/architecture.md, PEFT); may be new.

    Options a method does not use are ignored.

    Args:
      model: a built T5Model, PromptTunedT5 or T5EncoderClassifier (loaded, when fine-tuning).
      method: "none" (default, or None: the model unchanged), "freeze_embeddings",
        "freeze_encoder", "top_n", "prompt" or "lora" (case-insensitive).
      top_n: "top_n": how many of the top stack's last blocks train (0 to its block count).
      train_lm_head: "top_n": whether an untied lm_head trains too.
      prompt_length: "prompt": the number of soft-prompt vectors.
      prompt_init: "prompt": "vocab", "random" or an array [prompt_length, d_model] (see
        `PromptTunedT5`).
      lora_rank: "lora": the rank r of each update.
      lora_alpha: "lora": the update's scale is alpha / r; None means alpha = r (scale 1).
      lora_targets: "lora": projection names ("q", "v", "wo", ...) or path globs
        ("decoder/*/o"), as a sequence or a comma-separated string.
      lora_dropout: "lora": dropout rate on the low-rank path's input in training.
      seed: "prompt": seed of the "vocab" initialisation; None draws from numpy's global state.

    Returns:
      The model to train: the given one (changed in place), or a new `PromptTunedT5` for
      "prompt" on a model without a prompt.

    Raises:
      ValueError: an unknown method, top_n out of range, LoRA targets that match no projection
        or are wrapped already, or a bad prompt_length / prompt_init.
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
