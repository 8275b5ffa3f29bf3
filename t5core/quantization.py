"""Which layers int8 serving quantizes, and the checks before it does.

Keras' own quantization (`model.quantize("int8")`) replaces the float kernel of a `Dense` and the
table of an `Embedding` by int8 values with one float scale per output channel (per token for a
table), and quantizes each input row on the fly. t5core quantizes exactly those layers: every
projection, the shared embedding and so the tied output projection
(`t5core.layers.embedding.SharedEmbedding.project`). Norm scales, the relative position bias and a
soft prompt are not Dense or Embedding layers and stay float32, and softmax runs in float32
whatever the weights are.

A LoRA update must be merged into its base kernel first: quantizing the base alone would leave a
float update beside an int8 kernel that `merge_lora` could no longer fold (it would read int8
values without their scale).
"""

from __future__ import annotations

import warnings

import keras

from t5core.errors import FlagError

MODES = ("int8",)


def check_mode(mode, where="quantize"):
    """mode itself, or a FlagError naming `where` if t5core cannot serve it."""
    if mode not in MODES:
        raise FlagError(f"{where}: quantization mode {mode!r} is not supported; use "
                        f"{' or '.join(repr(m) for m in MODES)}")
    return mode


def quantizable(layer) -> bool:
    """True for the layers int8 serving quantizes: Dense projections and Embedding tables."""
    return isinstance(layer, (keras.layers.Dense, keras.layers.Embedding))


def is_quantized(model) -> bool:
    """True when any layer of `model` holds quantized weights."""
    return any(getattr(layer, "quantization_mode", None) for layer in model._flatten_layers())


def check_no_unmerged_lora(model):
    """Raises ValueError naming the LoRA layers of `model` whose updates are not merged."""
    unmerged = [layer.path for layer in model._flatten_layers()
                if getattr(layer, "merge_before_quantizing", False)]
    if unmerged:
        raise ValueError(f"{len(unmerged)} LoRA layer(s) not merged ({unmerged[0]}, ...): merge "
                         "them before quantizing (t5core.merge_lora(model), or load_pretrained "
                         "with merge_lora=True)")


def quantize(model, mode="int8", config=None, **kwargs):
    """Quantizes the weights of a t5core model in place, the layers `quantizable` picks.

    Args:
      model: a T5Model, PromptTunedT5 or T5EncoderClassifier, LoRA merged.
      mode: "int8", the one mode t5core serves (see MODES).
      config: None, or a `keras.quantizers.Int8QuantizationConfig`.
      **kwargs: `keras.Model.quantize`'s other arguments.

    Returns:
      The same model, quantized.

    Raises:
      FlagError: a mode other than "int8".
      ValueError: the model holds unmerged LoRA layers.
    """
    check_mode(mode)
    check_no_unmerged_lora(model)
    with warnings.catch_warnings():
        # Keras' quantizer converts each weight with np.array(tensor), which numpy 2 reports
        # once per weight; the conversion itself is right.
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        keras.Model.quantize(model, mode, config=config, filters=quantizable, **kwargs)
    return model
