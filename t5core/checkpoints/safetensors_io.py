"""The safetensors format, read and written one tensor at a time: local files through the
`safetensors` library, gs:// (which it cannot open) by t5core's streaming reads."""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import safetensors
import tensorflow as tf

from t5core import file_writes
from t5core.checkpoints.reader import CheckpointReader, named_errors
from t5core.checkpoints.untrusted import (
    ShardedReader,
    element_count,
    is_int,
    listing,
    shape_problem,
    shown,
)
from t5core.errors import CheckpointError
from t5core.file_reads import open_file, parse_json

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit


def _open(path):
    return open_file(path, CheckpointError)


def _size(path):
    return tf.io.gfile.stat(path).length if "://" in path else os.path.getsize(path)


def read_header(path):
    """(header without __metadata__, metadata, data offset): each entry typed, each byte range
    inside the data, of exactly shape x dtype bytes and overlapping no other, before any read."""
    try:
        size = _size(path)
        with _open(path) as f:
            head = f.read(8)
            n = int.from_bytes(head, "little")
            if len(head) == 8 and 2 <= n <= _MAX_HEADER and 8 + n <= size:
                raw = f.read(n)
    except FileNotFoundError:
        raise
    except OSError as err:  # a directory, a file without read permission
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    if len(head) < 8:
        raise CheckpointError(f"{path}: not a safetensors file ({size} bytes, too short for "
                              "a header)")
    if not (2 <= n <= _MAX_HEADER and 8 + n <= size):
        raise CheckpointError(f"{path}: not a safetensors file or truncated (header of {n} "
                              f"bytes, file of {size} bytes)")
    header = parse_json(raw, f"{path}: its safetensors header", CheckpointError)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: unreadable safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: __metadata__ must map names to strings, not "
                              f"{shown(metadata)}")
    data_size = size - 8 - n
    problems, beyond, ranges = [], [], []
    for name, info in header.items():
        problem = _entry_problem(info)
        if problem:
            problems.append(f"{name}: {problem}")
            continue
        dtype, shape = _DTYPES[info["dtype"]], info["shape"]
        begin, end = info["data_offsets"]
        expected = element_count(shape) * dtype.itemsize
        if end - begin != expected:
            problems.append(f"{name}: {end - begin} bytes stored for shape {tuple(shape)} "
                            f"{info['dtype']} ({expected} bytes)")
        elif end > data_size:
            beyond.append((end, name))
        elif begin < end:
            ranges.append((begin, end, name))
    ranges.sort()
    for (_, end_a, a), (begin_b, _, b) in zip(ranges, ranges[1:]):
        if begin_b < end_a:
            problems.append(f"overlapping byte ranges: {a} and {b}")
    if beyond:
        names = [name for _, name in sorted(beyond)]
        problems.append(
            f"file truncated: its tensors need {max(beyond)[0]} bytes of data, the file holds "
            f"{data_size}; {len(names)} tensor(s) cut off ({', '.join(names[:3])}"
            f"{', ...' if len(names) > 3 else ''})")
    if problems:
        raise CheckpointError(f"{path}: damaged safetensors file: {listing(problems, sep='; ')}")
    return header, metadata, 8 + n


def _entry_problem(info):
    """Why one header entry is malformed (types, dtype, shape, byte range), or None."""
    if not isinstance(info, dict):
        return f"entry {shown(info)} is not an object with dtype, shape and data_offsets"
    dtype, offsets = info.get("dtype"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        return f"dtype {shown(dtype)} is not one t5core reads ({', '.join(_DTYPES)})"
    problem = shape_problem(info.get("shape"))
    if problem:
        return problem
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(is_int(x) for x in offsets) or not 0 <= offsets[0] <= offsets[1]):
        return (f"data_offsets {shown(offsets)} is not a byte range [begin, end] with "
                "0 <= begin <= end")
    return None


class _SafetensorsFile(CheckpointReader):
    """One .safetensors file, header checked by `read_header`. Local: the `safetensors` library,
    opened per tensor so its map holds only that tensor; remote, or a file the library refuses
    though valid (gaps between tensors): plain seeks and reads."""

    def __init__(self, path):
        header, _, start = read_header(path)
        self.path = path
        self.shapes = {name: tuple(info["shape"]) for name, info in header.items()}
        self._where = {name: (start + info["data_offsets"][0],
                              info["data_offsets"][1] - info["data_offsets"][0],
                              _DTYPES[info["dtype"]]) for name, info in header.items()}
        self._library = "://" not in path and _library_opens(path)

    def nbytes(self, name):
        return self._where[name][1]

    def read(self, name):
        offset, length, dtype = self._where[name]
        if self._library:
            with named_errors(self.path, f"could not read tensor {name}"), \
                    safetensors.safe_open(self.path, framework="numpy") as f:
                return f.get_tensor(name)
        buffer = np.empty(length, np.uint8)
        with _open(self.path) as f:
            f.seek(offset)
            if hasattr(f, "readinto"):
                got = f.readinto(memoryview(buffer))
            else:
                data = f.read(length)
                got = len(data)
                buffer[:got] = np.frombuffer(data, np.uint8)
        if got != length:
            raise CheckpointError(f"{self.path}: truncated while reading {name} ({got} of "
                                  f"{length} bytes)")
        return buffer.view(dtype).reshape(self.shapes[name])


class SafetensorsReader(ShardedReader):
    """`model.safetensors`, a sharded index (its files inside) or one file, tensor by tensor."""

    def __init__(self, path):
        super().__init__(path, "model.safetensors.index.json", "model.safetensors",
                         _SafetensorsFile)


def _library_opens(path):
    """Whether the `safetensors` library opens the file (it refuses older writers' gaps)."""
    try:
        with safetensors.safe_open(path, framework="numpy"):
            return True
    except safetensors.SafetensorError:
        return False


def write_safetensors(path, tensors, metadata=None):
    """Writes `tensors` [(name, shape, dtype, produce() -> ndarray)]: the header from shapes
    first, then each array produced, written and dropped (one tensor in memory at a time)."""
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
    blob = file_writes.json_text(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # align the data section to 8 bytes, as the format's writers do
    with file_writes.atomic_writer(path) as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for name, shape, dtype, produce in tensors:
            array = np.ascontiguousarray(produce(), dtype=np.dtype(dtype))
            if array.shape != tuple(shape):
                raise ValueError(f"{name}: produced shape {array.shape}, header says {tuple(shape)}")
            f.write(memoryview(array.reshape(-1).view(np.uint8)))
            del array
    return offset
