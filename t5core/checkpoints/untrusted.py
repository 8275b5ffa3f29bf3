"""Checks every checkpoint reader applies to a file from a stranger, before reading any data.

A checkpoint declares where its tensors are (byte ranges, storage offsets, shapes, shard files);
each declaration is checked against the file and the directory it came in. Sizes are computed
with Python integers, so a declared shape cannot overflow into a small number; a shard path must
name a file inside the checkpoint directory once links are resolved; a value is shown in a
message only through `shown()`, which bounds its length and depth.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
from collections.abc import Mapping

import tensorflow as tf

from t5core.errors import CheckpointError

MAX_DIMS = 64  # numpy's own limit on an array's dimensions

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlevel = 3


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint asks for something t5core refuses to do: run pickled code, or read a
    file outside the checkpoint."""


def shown(value):
    """A short, bounded repr of a value read from a hostile file (no deep recursion)."""
    return _repr.repr(value)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def shape_problem(shape):
    """Why `shape` is not a list (or tuple) of at most 64 non-negative integers, or None."""
    if not isinstance(shape, (list, tuple)):
        return f"shape {shown(shape)} is not a list of sizes"
    if len(shape) > MAX_DIMS:
        return f"shape has {len(shape)} dimensions (at most {MAX_DIMS})"
    if not all(is_int(d) and d >= 0 for d in shape):
        return f"shape {shown(shape)} holds something other than sizes >= 0"
    return None


def element_count(shape):
    """The exact number of elements (Python integers: no int64 overflow)."""
    return math.prod(shape)


def _escapes_lexically(name):
    parts = name.replace("\\", "/").split("/")
    return (name.startswith(("/", "\\")) or os.path.isabs(name) or "://" in name
            or ".." in parts or (len(name) > 1 and name[1] == ":") or "\0" in name)


def _allowed_roots(directory):
    """The real directory, and for a Hugging Face cache snapshot
    (`<repo>/snapshots/<revision>/`, whose files link to `<repo>/blobs/`) its blobs directory."""
    real = os.path.realpath(directory)
    roots = [real]
    parent = os.path.dirname(real)
    if os.path.basename(parent) == "snapshots":
        roots.append(os.path.join(os.path.dirname(parent), "blobs"))
    return roots


def file_inside(directory, name, source):
    """`directory/name`, refused unless it stays inside `directory` once links are resolved.

    `source` is the file that named it (an index), for the message. A name that leaves the
    directory is refused before anything is opened or even looked up there.
    """
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{source}: {shown(name)} is not a file name")
    if _escapes_lexically(name):
        raise UnsafeCheckpointError(
            f"{source}: names the file {shown(name)}, which is outside the checkpoint directory "
            f"{directory}; t5core reads only files inside it")
    path = os.path.join(directory, name)
    if "://" in directory:  # a remote file system has no links to resolve
        return path
    real = os.path.realpath(path)
    if not any(os.path.commonpath([real, root]) == root for root in _allowed_roots(directory)):
        raise UnsafeCheckpointError(
            f"{source}: {shown(name)} is a link to a file outside the checkpoint directory "
            f"{directory}; t5core reads only files inside it")
    if os.path.isdir(real):
        raise CheckpointError(f"{source}: {shown(name)} is a directory, not a checkpoint file")
    return path


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
