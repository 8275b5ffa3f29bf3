"""Checks every checkpoint reader applies to a file from a stranger, before reading any data.

A checkpoint declares where its tensors are (byte ranges, storage offsets, shapes, shard files);
each declaration is checked against the file and the directory it came in. The checks that are
not particular to checkpoints (names read from files, sizes, bounded reprs) live in
`t5core.file_reads`, the one module that owns the trust boundary for reads; their names stay
importable from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import tensorflow as tf

from t5core.errors import CheckpointError
from t5core.file_reads import (  # noqa: F401  (the names checkpoint readers import from here)
    MAX_DIMS,
    UnsafeCheckpointError,
    dir_inside,
    element_count,
    file_inside,
    is_int,
    resolve_inside,
    shape_problem,
    shown,
)


def read_weight_map(index_path):
    """{tensor name: shard file name} of a Hugging Face `*.index.json`, every field type-checked."""
    try:
        with tf.io.gfile.GFile(index_path, "rb") as f:
            text = f.read()
        index = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"{index_path}: not valid JSON ({shown(str(err))})") from None
    if not isinstance(index, Mapping):
        raise CheckpointError(f"{index_path}: not a shard index (a JSON object with a "
                              f"weight_map), but a JSON {type(index).__name__}")
    if "weight_map" not in index:
        raise CheckpointError(f"{index_path}: no weight_map (tensor name -> shard file)")
    weight_map = index["weight_map"]
    if not isinstance(weight_map, Mapping):
        raise CheckpointError(f"{index_path}: weight_map must be a JSON object (tensor name -> "
                              f"shard file), not a JSON {type(weight_map).__name__}")
    bad = [f"{name} maps to {shown(file)}" for name, file in weight_map.items()
           if not isinstance(file, str) or not file]
    if bad:
        raise CheckpointError(f"{index_path}: weight_map: {', '.join(bad[:5])}, not a shard "
                              "file name")
    return dict(weight_map)
