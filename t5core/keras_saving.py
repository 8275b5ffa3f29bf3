"""Reloading a model saved with Keras (`model.save("model.keras")`) in a fresh process.

Keras finds a custom class by the name it was registered under, and a class is registered when
the module that defines it is imported. `import t5core` imports none of them (its names load on
first use, so that the sweep and the templates need no TensorFlow), so `keras.models.load_model`
in a fresh process would not know `T5Model`. `load_keras_model` imports them first.
"""

from __future__ import annotations


def register_keras_objects() -> None:
    """Imports every t5core module that defines a Keras-serialisable class (model, layers,
    optimizers and schedules, PEFT layers, the classification head), which registers them with
    Keras."""
    import t5core.classifier  # noqa: F401
    import t5core.model  # noqa: F401  (and, through it, every layer)
    import t5core.optimizers  # noqa: F401
    import t5core.peft  # noqa: F401


def load_keras_model(path, **kwargs):
    """`keras.models.load_model(path, **kwargs)` with t5core's classes registered first.

    Args:
      path: a `.keras` file written by `model.save(path)`.
      **kwargs: `keras.models.load_model`'s (compile, safe_mode, custom_objects, ...).

    Returns:
      The saved model (a T5Model, PromptTunedT5 or T5EncoderClassifier).
    """
    import keras

    register_keras_objects()
    return keras.models.load_model(path, **kwargs)
