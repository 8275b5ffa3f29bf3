"""t5core: T5 in TensorFlow / Keras 3, exact to the public checkpoints."""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from t5core.config import T5Config  # noqa: E402
from t5core.model import T5Model  # noqa: E402
from t5core.presets import count_parameters, preset_names  # noqa: E402
from t5core.checkpoints import (  # noqa: E402
    CheckpointMismatchError, UnsafeCheckpointError, detect_format, export_hf, load_pretrained,
    write_tf_checkpoint)
from t5core.tokenizer import ByteTokenizer, Tokenizer  # noqa: E402
from t5core.decoding import generate  # noqa: E402
from t5core.losses import cross_entropy_loss  # noqa: E402
from t5core.optimizers import Adafactor, AdamW, make_optimizer, make_schedule  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "T5Config", "T5Model", "count_parameters", "preset_names", "load_pretrained", "export_hf",
    "write_tf_checkpoint", "detect_format", "CheckpointMismatchError", "UnsafeCheckpointError",
    "Tokenizer", "ByteTokenizer", "generate", "cross_entropy_loss", "Adafactor", "AdamW",
    "make_optimizer", "make_schedule",
]
