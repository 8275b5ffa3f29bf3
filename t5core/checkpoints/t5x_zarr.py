"""T5X's tensorstore arrays: the spec in a msgpack leaf, the zarr directory it names, checked
before tensorstore reads a byte of data."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re

import ml_dtypes
import numpy as np
import tensorflow as tf

from t5core.checkpoints.untrusted import element_count, file_inside, is_int, shape_problem, shown
from t5core.errors import CheckpointError
from t5core.file_reads import parse_json, read_bytes

INSTALL_HINT = "pip install -e .[t5x]"

# The element types Flax and T5X write for parameters and optimizer state; a name outside this
# set (object, void, structured, complex) is refused rather than handed to np.dtype.
DTYPE_NAMES = {"float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
               "uint8", "uint16", "uint32", "uint64", "bool"}
# Bounds on what a `.zarray` may declare, checked before tensorstore allocates anything: one T5
# parameter is at most a few GiB (T5-XXL's embedding: 0.5 GiB in float32); tensorstore decodes a
# whole chunk at once, and T5X aims at 64 MiB chunks.
MAX_ARRAY_BYTES = 1 << 36
MAX_CHUNK_BYTES = 1 << 31
MAX_CHUNKS = 1 << 20
_MAX_ZARRAY_BYTES = 1 << 16  # a `.zarray` is a few hundred bytes of JSON
_KVSTORE_DRIVERS = ("file", "gfile", "gcs")  # T5X's restore maps gfile and gcs to the local file
_COMPRESSORS = ("gzip", "zlib", "blosc", "zstd", "bz2")  # those tensorstore's zarr driver decodes


class TensorstoreMissingError(CheckpointError, ImportError):
    """A checkpoint holds tensorstore arrays and the optional tensorstore package is absent."""


def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def _zarr_dtype(name):
    """The numpy dtype of a zarr v2 data type string ("<f4", "|u1", "bfloat16"), or None."""
    if name == "bfloat16":
        return np_dtype(name)
    if isinstance(name, str) and re.fullmatch(r"[<>|]?[fiub][1248]", name):
        dtype = np.dtype(name)
        return dtype if dtype.name in DTYPE_NAMES else None
    return None


def is_spec(value):
    """Whether a msgpack map is a tensorstore spec (a leaf), not a subtree of the train state."""
    if not isinstance(value, dict) or "driver" not in value:
        return False
    if value.get("driver") == "cast":
        return "base" in value
    return "kvstore" in value or "path" in value


@dataclasses.dataclass(frozen=True)
class ZarrSpec:
    """A msgpack leaf: array directory (relative), shape, stored dtype (None: the `.zarray`'s) and
    the dtype it is read as (a cast spec's, else the stored one)."""
    path: str
    shape: tuple
    stored_dtype: np.dtype | None
    dtype: np.dtype | None


def _dtype_field(spec, where):
    name = spec.get("dtype")
    if name is None:
        return None
    if not isinstance(name, str) or name not in DTYPE_NAMES:
        raise CheckpointError(f"tensorstore spec: {where}dtype {shown(name)} is not one t5core "
                              f"reads ({', '.join(sorted(DTYPE_NAMES))})")
    return np_dtype(name)


def parse_spec(spec):
    """The ZarrSpec of a msgpack leaf; CheckpointError saying what is wrong otherwise."""
    cast_dtype = None
    if spec.get("driver") == "cast":
        cast_dtype = _dtype_field(spec, "cast ")
        if cast_dtype is None:
            raise CheckpointError("tensorstore spec: a cast spec without a dtype")
        spec = spec.get("base")
        if not isinstance(spec, dict):
            raise CheckpointError(f"tensorstore spec: a cast spec's base {shown(spec)} is not a "
                                  "spec")
    if spec.get("driver") != "zarr":
        raise CheckpointError(f"tensorstore driver {shown(spec.get('driver'))} is not one T5X "
                              "writes (zarr, or cast over zarr)")
    store = spec.get("kvstore", {})
    if not isinstance(store, dict) or store.get("driver", "file") not in _KVSTORE_DRIVERS:
        raise CheckpointError(
            f"tensorstore kvstore {shown(store)} is not one T5X writes: {{driver: file, gfile or "
            "gcs, path}} with a path relative to the checkpoint")
    # A top-level path (older tensorstore, and T5X's gs:// form) is appended to the kvstore's.
    parts = [store.get("path"), spec.get("path")]
    if any(p is not None and not isinstance(p, str) for p in parts):
        raise CheckpointError(f"tensorstore path {shown(parts)} is not a string")
    # Only trailing slashes go: a leading one makes the path absolute, which is refused later.
    path = "/".join(p.rstrip("/") for p in parts if p and p.rstrip("/"))
    if not path:
        raise CheckpointError(f"tensorstore spec names no array directory (kvstore "
                              f"{shown(store)}, path {shown(spec.get('path'))})")
    metadata = spec.get("metadata")
    shape = metadata.get("shape") if isinstance(metadata, dict) else None
    problem = shape_problem(shape)
    if problem:
        raise CheckpointError(f"tensorstore spec: metadata.shape: {problem}")
    stored = _dtype_field(spec, "")
    return ZarrSpec(path, tuple(shape), stored, cast_dtype or stored)


@dataclasses.dataclass(frozen=True)
class ZarrArray:
    """A `.zarray` that passed `check_array`: the array directory and what it holds."""
    directory: str
    shape: tuple
    dtype: np.dtype
    chunks: tuple


def zarray_path(checkpoint_dir, spec, source):
    """`<array directory>/.zarray`, refused unless inside the checkpoint once links are resolved
    (a directory linked elsewhere resolves its `.zarray` there too)."""
    return file_inside(checkpoint_dir, f"{spec.path}/.zarray", source)


def _read_zarray(path, source):
    if not tf.io.gfile.exists(path):
        raise CheckpointError(f"{source}: no zarr array at {os.path.dirname(path)} (its .zarray "
                              "is missing)")
    zarray = parse_json(read_bytes(path, CheckpointError, _MAX_ZARRAY_BYTES), f"{source}: {path}",
                        CheckpointError)
    if not isinstance(zarray, dict) or zarray.get("zarr_format") != 2:
        raise CheckpointError(f"{source}: {path}: not a zarr v2 array description (T5X writes "
                              f"zarr_format 2), but {shown(zarray)}")
    return zarray


def _chunk_grid(shape, chunks, itemsize, where):
    """The number of chunks along each dim, once the declared sizes are within bounds."""
    if (not isinstance(chunks, list) or len(chunks) != len(shape)
            or not all(is_int(c) and 1 <= c <= max(d, 1) for c, d in zip(chunks, shape))):
        raise CheckpointError(f"{where}: chunks {shown(chunks)} are not {len(shape)} sizes "
                              f"from 1 to the array's {list(shape)}")
    array_bytes = element_count(shape) * itemsize
    if array_bytes > MAX_ARRAY_BYTES:
        raise CheckpointError(f"{where}: shape {list(shape)} is {array_bytes} bytes, over the "
                              f"{MAX_ARRAY_BYTES} bytes t5core reads as one parameter")
    chunk_bytes = element_count(chunks) * itemsize
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise CheckpointError(f"{where}: chunks {chunks} are {chunk_bytes} bytes each, over "
                              f"{MAX_CHUNK_BYTES}")
    grid = tuple(math.ceil(d / c) for d, c in zip(shape, chunks))
    if element_count(grid) > MAX_CHUNKS:
        raise CheckpointError(f"{where}: {element_count(grid)} chunks, over {MAX_CHUNKS}")
    return grid


def check_array(checkpoint_dir, spec, source):
    """The ZarrArray of a parsed spec, after checking its `.zarray` against the spec and bounds
    and finding every chunk file inside the checkpoint; nothing of the data is read."""
    path = zarray_path(checkpoint_dir, spec, source)
    zarray = _read_zarray(path, source)
    where = f"{source}: {path}"
    shape = zarray.get("shape")
    problem = shape_problem(shape)
    if problem:
        raise CheckpointError(f"{where}: {problem}")
    if tuple(shape) != spec.shape:
        raise CheckpointError(f"{where}: shape {tuple(shape)}, but the checkpoint's spec says "
                              f"{spec.shape}")
    dtype = _zarr_dtype(zarray.get("dtype"))
    if dtype is None:
        raise CheckpointError(f"{where}: dtype {shown(zarray.get('dtype'))} is not one t5core "
                              "reads (little- or big-endian numbers, bool, bfloat16)")
    if spec.stored_dtype is not None and dtype != spec.stored_dtype:
        raise CheckpointError(f"{where}: dtype {dtype.name}, but the checkpoint's spec says "
                              f"{spec.stored_dtype.name}")
    compressor = zarray.get("compressor")
    if compressor is not None and (not isinstance(compressor, dict)
                                   or compressor.get("id") not in _COMPRESSORS):
        raise CheckpointError(f"{where}: compressor {shown(compressor)} is not one of "
                              f"{', '.join(_COMPRESSORS)}")
    if zarray.get("filters") not in (None, []) or zarray.get("order", "C") not in ("C", "F"):
        raise CheckpointError(f"{where}: filters {shown(zarray.get('filters'))} or order "
                              f"{shown(zarray.get('order'))}: T5X writes none and C")
    separator = zarray.get("dimension_separator", ".")
    if separator not in (".", "/"):
        raise CheckpointError(f"{where}: dimension_separator {shown(separator)} is not . or /")
    grid = _chunk_grid(tuple(shape), zarray.get("chunks"), dtype.itemsize, where)
    # A zero-dimensional array has one chunk, key "0".
    keys = (separator.join(map(str, index)) for index in itertools.product(*map(range, grid)))
    for key in keys if grid else ["0"]:
        chunk = file_inside(checkpoint_dir, f"{spec.path}/{key}", source)
        if not tf.io.gfile.exists(chunk):
            raise CheckpointError(f"{where}: chunk {key} of {element_count(grid) or 1} is missing "
                                  f"({chunk}); tensorstore would fill it with the fill value")
    return ZarrArray(os.path.dirname(path), tuple(shape), dtype, tuple(zarray["chunks"]))


def _kvstore(directory):
    """The tensorstore kvstore of an array directory: local, or on GCS when the checkpoint is."""
    m = re.fullmatch(r"gs://([^/]+)/(.*)", directory, re.DOTALL)
    if m:
        return {"driver": "gcs", "bucket": m.group(1), "path": m.group(2).rstrip("/") + "/"}
    return {"driver": "file", "path": os.path.abspath(directory) + "/"}


def require_tensorstore(source, names):
    try:
        import tensorstore  # noqa: F401
    except ImportError:
        raise TensorstoreMissingError(
            f"{source}: {len(names)} array(s) are stored beside it with tensorstore "
            f"({names[0]}, ...); reading them needs the optional tensorstore package "
            f"({INSTALL_HINT})") from None


def read_array(array: ZarrArray, spec: ZarrSpec, source):
    """The values of a checked array, through tensorstore, in the dtype the spec reads it as."""
    require_tensorstore(source, [array.directory])
    import tensorstore as ts

    store = ts.open({"driver": "zarr", "kvstore": _kvstore(array.directory)}, open=True,
                    read=True).result()
    # The directory could have changed since it was checked: the shape is checked again.
    if tuple(store.shape) != array.shape or np.dtype(store.dtype.numpy_dtype) != array.dtype:
        raise CheckpointError(f"{source}: {array.directory} changed while being read")
    values = np.asarray(store.read().result())
    return values.astype(spec.dtype) if spec.dtype is not None else values
