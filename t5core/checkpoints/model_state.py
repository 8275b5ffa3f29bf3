"""What t5core's own TF checkpoints hold of a model: every variable, by its model path."""

from __future__ import annotations

import tensorflow as tf

from t5core import file_reads


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
    """Restores `model_dir`'s latest checkpoint into `model` (no optimizer state), for models
    `load_pretrained` cannot build alone, e.g. a LoRA model before `merge_lora`."""
    path = file_reads.latest_checkpoint(model_dir) if tf.io.gfile.isdir(model_dir) else model_dir
    if not path:
        raise FileNotFoundError(f"No training checkpoint in {model_dir}")
    file_reads.check_tf_index(path)
    status = tf.train.Checkpoint(model=ModelState(model)).restore(path)
    status.expect_partial().assert_existing_objects_matched()
    return path
