"""Checks every checkpoint reader applies to a file from a stranger, before reading any data."""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping

import tensorflow as tf

from t5core.checkpoints.reader import CheckpointReader
from t5core.errors import CheckpointError
from t5core.file_reads import (  # noqa: F401  (the names checkpoint readers import from here)
    UnsafeCheckpointError,
    check_file,
    element_count,
    file_inside,
    is_int,
    read_json,
    shape_problem,
    shown,
    user_file,
)


def read_weight_map(index_path):
    """{tensor name: shard file name} of a Hugging Face `*.index.json`, every field type-checked."""
    index = read_json(index_path, CheckpointError)
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


def listing(items, limit=10, sep="\n  "):
    """The first `limit` of `items` joined by `sep`, and how many more there are."""
    more = [f"... and {len(items) - limit} more"] if len(items) > limit else []
    return sep.join(list(items[:limit]) + more)


def shard_files(path, index_name, single_name):
    """An HF checkpoint's files: one file, a directory's `single_name`, or the shards its
    `index_name` lists (each inside the directory and present).

    Returns:
      (index path or None, {file path: the tensor names the index puts there}).
    """
    if not tf.io.gfile.isdir(path):
        return None, {path: []}
    index_path = os.path.join(path, index_name)
    if not tf.io.gfile.exists(index_path):
        return None, {user_file(path, single_name): []}
    shards = {}
    for name, file_name in read_weight_map(index_path).items():
        shards.setdefault(file_name, []).append(name)
    files = {file_inside(path, file_name, index_path): names
             for file_name, names in sorted(shards.items())}
    missing = [os.path.basename(p) for p in files if not tf.io.gfile.exists(p)]
    if missing:
        raise FileNotFoundError(f"{index_path} names shard(s) that are missing: "
                                f"{', '.join(missing)}")
    return index_path, files


class ShardedReader(CheckpointReader):
    """One HF checkpoint read as one: a file, a directory's `single_name`, or the shards its
    `index_name` lists, each opened by `open_file(file path)` -> a CheckpointReader."""

    def __init__(self, path, index_name, single_name, open_file):
        index_path, files = shard_files(path, index_name, single_name)
        self.path, self.shapes, self._where = path, {}, {}
        for file_path, expected in files.items():
            check_file(file_path, CheckpointError)  # a FIFO or device would hang a library's open
            reader = open_file(file_path)
            for name in reader.shapes:
                if name in self._where:
                    raise CheckpointError(f"{file_path}: tensor {name} is also in "
                                          f"{self._where[name].path}")
                self._where[name] = reader
            self.shapes.update(reader.shapes)
            absent = sorted(set(expected) - set(reader.shapes))
            if absent:
                raise CheckpointError(f"{index_path}: names tensor(s) {', '.join(absent[:5])} in "
                                      f"{os.path.basename(file_path)}, which does not hold them")

    def nbytes(self, name):
        return self._where[name].nbytes(name)

    def validate(self, names):
        by_reader = collections.defaultdict(list)
        for name in names:
            by_reader[self._where[name]].append(name)
        for reader, group in by_reader.items():
            reader.validate(group)

    def read(self, name):
        return self._where[name].read(name)

    def close(self):
        for reader in set(self._where.values()):
            reader.close()
