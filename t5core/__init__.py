"""t5core: T5 in TensorFlow / Keras 3, exact to the public checkpoints."""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from t5core.config import T5Config  # noqa: E402
from t5core.model import T5Model  # noqa: E402
from t5core.presets import count_parameters, preset_names  # noqa: E402

__version__ = "0.1.0"

from t5core.checkpoints import CheckpointMismatchError, load_pretrained  # noqa: E402
