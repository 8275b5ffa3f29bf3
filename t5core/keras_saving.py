"""Reloading a `model.save("model.keras")` file in a fresh process: registers t5core's Keras
classes, which `import t5core` (loading names lazily) does not."""

from __future__ import annotations

import keras

# Imported for their classes' Keras registration: the model (and, through it, every layer), the
# optimizers and schedules, the PEFT layers and the classification head.
import t5core.classifier  # noqa: F401
import t5core.model  # noqa: F401
import t5core.optimizers  # noqa: F401
import t5core.peft  # noqa: F401


def load_keras_model(path, **kwargs):
    """`keras.models.load_model(path, **kwargs)` with t5core's classes registered first.

    Args:
      path: a `.keras` file.
      **kwargs: `keras.models.load_model`'s.

    Returns:
      The saved T5Model, PromptTunedT5 or T5EncoderClassifier.
    """
    return keras.models.load_model(path, **kwargs)
