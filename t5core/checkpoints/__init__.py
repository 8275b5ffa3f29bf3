"""Reading every public T5 checkpoint format, and writing HF's."""

from __future__ import annotations

import os

import tensorflow as tf

from t5core.checkpoints.hf import SafetensorsReader, hf_rules
from t5core.checkpoints.loading import assign_from_reader
from t5core.checkpoints.rules import CheckpointMismatchError
from t5core.config import T5Config


def _resolve_config(config, path):
    if isinstance(config, T5Config):
        return config
    if isinstance(config, str):
        if tf.io.gfile.exists(config) or config.endswith(".json"):
            return T5Config.from_json(config)
        return T5Config.from_preset(config)
    if isinstance(config, dict):
        return T5Config(**config)
    config_path = os.path.join(path, "config.json")
    if tf.io.gfile.exists(config_path):
        return T5Config.from_json(config_path)
    raise ValueError(f"{path}: no config.json there; pass config= (a T5Config, a preset name "
                     "or a config.json path)")


def load_pretrained(path, config=None, dtype=None):
    """A built T5Model filled from the checkpoint at `path`; raises without a half-loaded model."""
    from t5core.model import T5Model

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"No checkpoint at {path}")
    if tf.io.gfile.isdir(path) and (
            tf.io.gfile.exists(os.path.join(path, "model.safetensors"))
            or tf.io.gfile.exists(os.path.join(path, "model.safetensors.index.json"))):
        config = _resolve_config(config, path)
        reader = SafetensorsReader(path)
        model = T5Model(config, dtype=dtype)
        assign_from_reader(model, reader, hf_rules(), source=path)
        return model
    raise ValueError(f"{path}: no checkpoint t5core recognises (looked for model.safetensors)")


__all__ = ["load_pretrained", "CheckpointMismatchError"]
