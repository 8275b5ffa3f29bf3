"""What a training checkpoint holds for a Keras 3 model.

`tf.train.Checkpoint(model=keras_model)` is not enough with Keras 3: layers kept in Python lists
(the stacks' blocks) are invisible to TensorFlow's object tracking, so most weights would be
silently left out. Checkpoints therefore hold the model's variables by their model-relative
paths, plus the dropout seed-generator states (by creation order), so a resumed run draws the
same dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf

from t5core.model_dir import BEST

# TensorFlow writes checkpoint <prefix> into the directory <prefix>_temp, then moves the files out
# and deletes it; a save killed half-way leaves it behind. CheckpointManager's prefix is ckpt-N.
_TEMP_DIR = re.compile(r"ckpt-\d+_temp")


class ModelState(tf.Module):
    """A trackable view of every variable of a model, named by path."""

    def __init__(self, model):
        super().__init__(name="model_state")
        weights = {path.replace("/", "."): v for path, v in model.variables_by_name().items()}
        weight_ids = {id(v) for v in weights.values()}
        extra = [v for v in model.variables if id(v) not in weight_ids]  # seed-generator states
        self.weights = weights
        self.rng_states = {f"state_{i}": v for i, v in enumerate(extra)}


def restore_model(model_dir, model):
    """Restores the latest training checkpoint of `model_dir` into `model` (no optimizer state).

    Use it for models `load_pretrained` cannot build from the checkpoint alone, such as a LoRA
    model before `merge_lora`: build the same structure, restore, then merge.
    """
    path = tf.train.latest_checkpoint(model_dir) if tf.io.gfile.isdir(model_dir) else model_dir
    if not path:
        raise FileNotFoundError(f"No training checkpoint in {model_dir}")
    status = tf.train.Checkpoint(model=ModelState(model)).restore(path)
    status.expect_partial().assert_existing_objects_matched()
    return path


def remove_orphaned_temp_dirs(directory: str) -> list[str]:
    """Deletes the `ckpt-N_temp` directories of killed saves in `directory` and its `best/`.

    Call it only while no save can be running there (the trainer holds the model_dir lock).
    Nothing but directories of exactly that name is touched. Returns the paths removed.
    """
    removed = []
    for folder in (directory, os.path.join(directory, BEST)):
        if not tf.io.gfile.isdir(folder):
            continue
        for name in tf.io.gfile.listdir(folder):
            name = name.rstrip("/")
            path = os.path.join(folder, name)
            if _TEMP_DIR.fullmatch(name) and tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
                removed.append(path)
    return removed
