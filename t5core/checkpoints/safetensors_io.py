"""The safetensors file format, read and written one tensor at a time.

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte
range in the data section) and the raw little-endian data. It is simple enough to read with plain
file reads, which t5core prefers to the `safetensors` package's memory map: pages of a map count in
the process's resident memory once touched, so reading a whole checkpoint through one would add the
checkpoint's size to the model's. Plain reads keep one tensor in memory at a time.
"""

from __future__ import annotations

import json
import os

import ml_dtypes
import numpy as np
import tensorflow as tf

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit


def _open(path, mode="rb"):
    # Local files through the OS; gs:// and other TF file systems through tf.io.gfile.
    if "://" in path:
        return tf.io.gfile.GFile(path, mode)
    return open(path, mode)


def _size(path):
    return tf.io.gfile.stat(path).length if "://" in path else os.path.getsize(path)


def read_header(path):
    """(header dict without __metadata__, metadata, data start offset); checks it fits the file."""
    size = _size(path)
    with _open(path) as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
        n = int.from_bytes(head, "little")
        if n > _MAX_HEADER or 8 + n > size:
            raise ValueError(f"{path}: not a safetensors file or truncated (header of {n} bytes, "
                             f"file of {size} bytes)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: unreadable safetensors header ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: unreadable safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", {}) or {}
    data_size = size - 8 - n
    problems, beyond = [], []
    for name, info in header.items():
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"{name}: unsupported or malformed entry {info!r}")
            continue
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != expected:
            problems.append(f"{name}: {end - begin} bytes stored for shape {shape} {info['dtype']}")
        elif end > data_size:
            beyond.append((end, name))
    if beyond:
        names = [name for _, name in sorted(beyond)]
        problems.append(
            f"file truncated: its tensors need {max(beyond)[0]} bytes of data, the file holds "
            f"{data_size}; {len(names)} tensor(s) cut off ({', '.join(names[:3])}"
            f"{', ...' if len(names) > 3 else ''})")
    if problems:
        raise ValueError(f"{path}: damaged safetensors file: " + "; ".join(problems))
    return header, metadata, 8 + n


class SafetensorsReader:
    """Tensor-by-tensor access to `model.safetensors`, a sharded index, or one .safetensors file."""

    def __init__(self, path):
        if path.endswith(".safetensors"):
            directory, files = os.path.dirname(path), [os.path.basename(path)]
        else:
            directory = path
            index_path = os.path.join(directory, "model.safetensors.index.json")
            if tf.io.gfile.exists(index_path):
                files = _index_files(index_path, directory)
            else:
                files = ["model.safetensors"]
        self.path = path
        self.shapes, self._where = {}, {}
        for file_name in files:
            file_path = os.path.join(directory, file_name)
            header, _, start = read_header(file_path)
            for name, info in header.items():
                if name in self._where:
                    raise ValueError(f"{file_path}: tensor {name} is also in "
                                     f"{self._where[name][0]}")
                begin, end = info["data_offsets"]
                self._where[name] = (file_path, start + begin, end - begin,
                                     _DTYPES[info["dtype"]], tuple(info["shape"]))
                self.shapes[name] = tuple(info["shape"])

    def nbytes(self, name):
        return self._where[name][2]

    def read(self, name):
        file_path, offset, length, dtype, shape = self._where[name]
        buffer = np.empty(length, np.uint8)
        with _open(file_path) as f:
            f.seek(offset)
            if hasattr(f, "readinto"):
                got = f.readinto(memoryview(buffer))
            else:
                data = f.read(length)
                got = len(data)
                buffer[:got] = np.frombuffer(data, np.uint8)
        if got != length:
            raise ValueError(f"{file_path}: truncated while reading {name} ({got} of {length} bytes)")
        return buffer.view(dtype).reshape(shape)


def _index_files(index_path, directory):
    with tf.io.gfile.GFile(index_path, "r") as f:
        try:
            weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{index_path}: not a safetensors index ({err})") from None
    files = sorted(set(weight_map.values()))
    missing = [name for name in files if not tf.io.gfile.exists(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(f"{index_path} names shard(s) that are missing: {', '.join(missing)}")
    return files


def write_safetensors(path, tensors, metadata=None):
    """Writes `tensors`, a list of (name, shape, dtype, produce) with `produce()` -> ndarray.

    The header comes first from shapes alone; each array is then produced, written and dropped, so
    at most one tensor (and its conversion) is in memory at a time.
    """
    header, offset = {}, 0
    for name, shape, dtype, _ in tensors:
        dtype = np.dtype(dtype)
        if dtype not in _NAMES:
            raise ValueError(f"{name}: dtype {dtype} has no safetensors code")
        length = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": _NAMES[dtype], "shape": [int(d) for d in shape],
                        "data_offsets": [offset, offset + length]}
        offset += length
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # align the data section to 8 bytes, as the format's writers do
    with _open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for name, shape, dtype, produce in tensors:
            array = np.ascontiguousarray(produce(), dtype=np.dtype(dtype))
            if array.shape != tuple(shape):
                raise ValueError(f"{name}: produced shape {array.shape}, header says {tuple(shape)}")
            f.write(memoryview(array.reshape(-1).view(np.uint8)))
            del array
    return offset
