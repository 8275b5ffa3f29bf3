"""Which layers int8 serving quantizes, the checks before it does, and quantizing a checkpoint
tensor by tensor while it is loaded (why: docs/architecture.md, "int8 serving")."""

from __future__ import annotations

import hashlib
import warnings

import keras
import numpy as np

from t5core import compat
from t5core.errors import CheckpointError, FlagError

MODES = ("int8",)

_CHUNK_ELEMENTS = 1 << 20  # quantized at a time while loading: a 4 MiB float32 temporary

# Per quantizable class, the axis Keras' default weight quantizer reduces (a Dense kernel per
# output column, a table per row, i.e. per token).
_INT8_AXES = ((keras.layers.Embedding, -1), (keras.layers.Dense, 0))


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
    return any(getattr(layer, "quantization_mode", None) for layer in compat.all_layers(model))


def check_no_unmerged_lora(model):
    """Raises ValueError naming the LoRA layers of `model` whose updates are not merged."""
    unmerged = [layer.path for layer in compat.all_layers(model)
                if getattr(layer, "merge_before_quantizing", False)]
    if unmerged:
        raise ValueError(f"{len(unmerged)} LoRA layer(s) not merged ({unmerged[0]}, ...): merge "
                         "them before quantizing (t5core.merge_lora(model), or load_pretrained "
                         "with merge_lora=True)")


def check_float(model, what):
    """Raises CheckpointError if `model` is int8-quantized: `what` (a float checkpoint format)
    cannot hold it, and dequantizing would not give back the weights it was loaded from."""
    if is_quantized(model):
        raise CheckpointError(f"Cannot write {what} from an int8-quantized model (serving only). "
                              "Load the checkpoint without quantize= to convert it, or export "
                              "an int8 SavedModel (scripts/export.py --quantize=int8).")


def quantize(model, mode="int8", config=None, **kwargs):
    """Quantizes a t5core model's weights in place, the layers `quantizable` picks.

    Args:
      model: a T5Model, PromptTunedT5 or T5EncoderClassifier, LoRA merged.
      mode: "int8", the one mode t5core serves.
      config: None, or a `keras.quantizers.Int8QuantizationConfig`.
      **kwargs: `keras.Model.quantize`'s.

    Returns:
      The same model.

    Raises:
      FlagError: a mode other than "int8".
      ValueError: the model holds unmerged LoRA layers.
    """
    _keras_quantize(model, mode, config, quantizable, **kwargs)
    return model


def _keras_quantize(model, mode, config, filters, **kwargs):
    check_mode(mode)
    check_no_unmerged_lora(model)
    with warnings.catch_warnings(), compat.gc_deferred():
        # Keras' quantizer converts each weight with np.array(tensor), which numpy 2 reports
        # once per weight; the conversion itself is right.
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        keras.Model.quantize(model, mode, config=config, filters=filters, **kwargs)


def config_entry(model) -> dict:
    """{"quantize": "int8"} for a `get_config` of an int8 model (see `quantize_structure`)."""
    return {"quantize": "int8"} if is_quantized(model) else {}


class _Unread(keras.quantizers.Quantizer):
    """A weight quantizer that reads no value: zeros and unit scales of the right shapes."""

    def __init__(self, axis):
        super().__init__(output_dtype="int8")
        self.axis = axis

    def __call__(self, x, *args, **kwargs):  # Keras passes to_numpy=True
        scale_shape = list(x.shape)
        scale_shape[self.axis] = 1
        return np.zeros(x.shape, np.int8), np.ones(scale_shape, np.float32)


def quantize_structure(model, mode="int8"):
    """Turns the layers `quantize` picks into int8 layers without reading their float weights,
    for a model about to be filled through `assignable_weights`.

    Args:
      model: a freshly built t5core model, LoRA merged or absent.
      mode: "int8".

    Returns:
      The float variables the layers dropped (for a deferred build to forget).
    """
    before = list(model.weights)
    for kind, axis in _INT8_AXES:
        config = keras.quantizers.Int8QuantizationConfig(weight_quantizer=_Unread(axis))
        _keras_quantize(model, mode, config,
                        lambda layer, kind=kind: isinstance(layer, kind) and quantizable(layer))
    for layer in compat.all_layers(model):
        if isinstance(getattr(getattr(layer, "quantization_config", None), "weight_quantizer",
                              None), _Unread):
            layer.quantization_config = keras.quantizers.Int8QuantizationConfig()
    kept = {id(v) for v in model.weights}
    return [v for v in before if id(v) not in kept]


class _QuantizingTarget:
    """An int8 layer's float weight for `assign_from_reader`: `assign` quantizes as
    `model.quantize` does, a block of channels at a time, keeping a digest for `holds`."""

    def __init__(self, values, scale, axis, dtype):
        self.values, self.scale, self.axis, self.dtype = values, scale, axis, dtype
        self.shape = tuple(values.shape)
        self._digest = None

    def assign(self, value):
        value = np.asarray(value, dtype=self.dtype)
        kept_axis = 1 if self.axis == 0 else 0  # one scale per index of this axis
        step = max(1, _CHUNK_ELEMENTS // value.shape[self.axis])
        quantizer = keras.quantizers.AbsMaxQuantizer(axis=self.axis)
        int8 = np.empty(self.shape, np.int8)
        scales = []
        for start in range(0, self.shape[kept_axis], step):
            block = np.s_[:, start:start + step] if kept_axis else np.s_[start:start + step]
            part, scale = quantizer(value[block], to_numpy=True)
            int8[block] = keras.ops.convert_to_numpy(part)
            scales.append(keras.ops.convert_to_numpy(scale).reshape(-1))
        self.values.assign(int8)
        self.scale.assign(np.concatenate(scales))
        self._digest = _digest(value)

    def holds(self, array) -> bool:
        """Whether `array` equals the float value last assigned (-0.0 and 0.0 alike)."""
        return self._digest is not None and _digest(np.asarray(array, self.dtype)) == self._digest


def _digest(array):
    digest = hashlib.blake2b()
    flat = array.reshape(-1)
    for start in range(0, flat.size, _CHUNK_ELEMENTS):
        digest.update((flat[start:start + _CHUNK_ELEMENTS] + 0).tobytes())  # -0.0 -> 0.0
    return digest.digest()


def assignable_weights(model) -> dict:
    """`model.variables_by_name()`, each int8 layer's values and scale as one float target that
    quantizes what is assigned, bit for bit as `model.quantize` after a float load."""
    weights = model.variables_by_name()
    name_of = {id(v): name for name, v in weights.items()}
    for layer in compat.all_layers(model):
        if getattr(layer, "quantization_mode", None) != "int8":
            continue
        for kind, axis in _INT8_AXES:
            if isinstance(layer, kind):
                values, scale = compat.int8_weights(layer)
                weights[name_of[id(values)]] = _QuantizingTarget(values, scale, axis,
                                                                 layer.variable_dtype)
                del weights[name_of[id(scale)]]
                break
    return weights
