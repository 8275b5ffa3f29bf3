"""Reloading a model saved with Keras (`model.save("model.keras")`) in a fresh process.

Keras finds a custom class by the name it was registered under, and a class is registered when
the module that defines it is imported. `import t5core` imports none of them (its names load on
first use, so that the sweep and the templates need no TensorFlow), so `keras.models.load_model`
in a fresh process would not know `T5Model`. This module imports them all.
"""

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
