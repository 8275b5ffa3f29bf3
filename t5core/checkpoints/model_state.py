"""What t5core's own TF checkpoints hold of a model: every variable, by its model path.

`ModelState(model)` is what the trainer's checkpoints (under the key `model`, beside the optimizer,
the data position and the best-so-far counters), its `best/` checkpoints and
`write_tf_checkpoint` save. It holds
- `weights`: each weight under its `variables_by_name()` path with dots for slashes
  (`model/weights/encoder.block_0.self_attention.q.kernel`), the keys the loader's rules read back
  (`t5core.checkpoints.tf_checkpoint.tf_rules`);
- `rng_states`: the dropout layers' seed-generator states, by creation order, so a resumed run
  draws the same dropout masks as an uninterrupted one.

A plain `tf.train.Checkpoint(model=model)` follows the layers' attributes instead. It does find
every weight (the stacks name their blocks as attributes for that; Keras alone keeps them in a
list, which TensorFlow's object tracking does not follow), but not the seed-generator states, and
its keys follow the attribute structure. It restores into a model, but a run resumed from it would
draw other dropout masks.
"""

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
    """Restores the latest training checkpoint of `model_dir` into `model` (no optimizer state).

    Use it for models `load_pretrained` cannot build from the checkpoint alone, such as a LoRA
    model before `merge_lora`: build the same structure, restore, then merge.
    """
    path = file_reads.latest_checkpoint(model_dir) if tf.io.gfile.isdir(model_dir) else model_dir
    if not path:
        raise FileNotFoundError(f"No training checkpoint in {model_dir}")
    status = tf.train.Checkpoint(model=ModelState(model)).restore(path)
    status.expect_partial().assert_existing_objects_matched()
    return path
