"""TF checkpoints: the reader shared with Mesh-TF, and t5core's own training checkpoints."""

from __future__ import annotations

import functools
import os
import re

import numpy as np
import tensorflow as tf

from t5core import file_reads, file_writes, model_dir, quantization
from t5core.checkpoints.model_state import ModelState
from t5core.checkpoints.reader import CheckpointReader, named_errors
from t5core.checkpoints.rules import Rule, skip
from t5core.checkpoints.untrusted import element_count
from t5core.errors import CheckpointError

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class TFCheckpointReader(CheckpointReader):
    """Tensor-by-tensor access to a TF checkpoint (name- or object-keyed; local or gs://)."""

    def __init__(self, prefix):
        self.path = prefix
        with named_errors(prefix, "unreadable TF checkpoint"):
            file_reads.check_tf_index(prefix)  # TF aborts the process on some hostile indexes
            self._reader = tf.train.load_checkpoint(prefix)
            self.shapes = {k: tuple(v) for k, v in
                           self._reader.get_variable_to_shape_map().items()}
            self._dtypes = self._reader.get_variable_to_dtype_map()

    def nbytes(self, name):
        return element_count(self.shapes[name]) * self._dtypes[name].size

    def validate(self, names):
        """The data shards must all exist before anything is assigned (TF reads them lazily)."""
        directory, base = os.path.dirname(self.path), os.path.basename(self.path)
        shards = tf.io.gfile.glob(os.path.join(directory, base + ".data-*"))
        counts = {int(m.group(1)) for s in shards if (m := re.search(r"-of-(\d+)$", s))}
        if not shards or len(counts) != 1 or len(shards) != counts.pop():
            raise FileNotFoundError(
                f"{self.path}: the index is there but its data shards are not all there "
                f"(found {sorted(os.path.basename(s) for s in shards) or 'none'})")
        # A shape the index declares is trusted by TF when it allocates the tensor: refuse one
        # whose bytes the data shards cannot hold, before anything is allocated.
        # A string takes at least a byte (its length) in a shard.
        stored = sum(tf.io.gfile.stat(s).length for s in shards)
        least = {name: element_count(self.shapes[name]) * max(self._dtypes[name].size, 1)
                 for name in names}
        too_large = [name for name in names if least[name] > stored]
        if too_large:
            name = too_large[0]
            raise CheckpointError(
                f"{self.path}: the index declares {name} of shape {list(self.shapes[name])} "
                f"(at least {least[name]:,} bytes), but its data shards hold {stored:,} bytes "
                "in all")

    def read(self, name):
        with named_errors(self.path, f"could not read tensor {name}"):
            return self._reader.get_tensor(name)


def is_object_prefix(prefix):
    """Whether the checkpoint at `prefix` is object-keyed (TF2's, t5core's) rather than
    name-keyed (Mesh-TF's). Its index is read once while the file stays the same."""
    stat = tf.io.gfile.stat(prefix + ".index")
    return _is_object_prefix(prefix, stat.length, stat.mtime_nsec)


@functools.lru_cache(maxsize=32)
def _is_object_prefix(prefix, length, mtime_nsec):
    return "_CHECKPOINTABLE_OBJECT_GRAPH" in TFCheckpointReader(prefix).shapes


def checkpoint_prefix(path):
    """The prefix of a prefix, an `.index` file, or a directory with a `checkpoint` state file."""
    if path.endswith(".index"):
        return path[: -len(".index")]
    if tf.io.gfile.isdir(path):
        prefix = file_reads.latest_checkpoint(path)
        if prefix is None:
            raise FileNotFoundError(f"{path}: its `checkpoint` file names no checkpoint that exists")
        return prefix
    if tf.io.gfile.exists(path + ".index"):
        return path
    raise FileNotFoundError(f"No TF checkpoint at {path} (no {path}.index)")


def _weight_path(match):
    """`encoder..block_0..q..kernel` (ModelState's dotted key, TF-escaped) -> the model path."""
    key = re.sub(r"\.(.)", r"\1", match.group(1))
    return key.replace(".", "/")


def tf_rules():
    """t5core's TF checkpoints: `model/weights/<path with dots>` is the variable at that path."""
    suffix = re.escape(_SUFFIX)
    return [
        skip(r"_CHECKPOINTABLE_OBJECT_GRAPH", "the object graph"),
        skip(r"save_counter" + suffix, "checkpoint counter"),
        Rule(r"model/weights/([^/]+)" + suffix, _weight_path),
        skip(r"model/rng_states/.+", "dropout seed-generator state"),
        skip(r"(?!model/).+", "not model weights (optimizer, data iterator or training state)"),
    ]


def write_tf_checkpoint(model, directory, progress=None):
    """Writes `directory/ckpt-1` (+ `checkpoint` state file and config.json) as the trainer
    does, so `load_pretrained(directory)` reads it back.

    Args:
      model: a built T5Model (or a t5core model with `variables_by_name()` and a config).
      directory: created if missing; local or `gs://...`.
      progress: None, or `progress(nbytes_done_now, nbytes_total, prefix)`, once at the end.

    Returns:
      The checkpoint prefix, `directory/ckpt-1`.

    Raises:
      CheckpointError: an int8-quantized model.
    """
    quantization.check_float(model, "a TF checkpoint")
    file_writes.make_dirs(directory)
    prefix = tf.train.Checkpoint(model=ModelState(model)).save(
        model_dir.path(directory, model_dir.CHECKPOINT_PREFIX))
    model.config.to_json(model_dir.path(directory, model_dir.CONFIG))
    if progress:
        total = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
        progress(total, total, prefix)
    return prefix
