"""Writers of checkpoint files with any content, well-formed or not, for the hostile-input tests.

Each writer takes the fields a checkpoint declares (offsets, shapes, dtypes, names) as plain
values, so a test can put in what a stranger's file may hold: negative offsets, overlapping
ranges, strides past the storage, paths out of the directory. Nothing here checks anything.
"""

from __future__ import annotations

import json
import struct
import zipfile

import msgpack
import numpy as np
from tensorflow.core.protobuf import tensor_bundle_pb2

# ----------------------------------------------------------------------------- torch zip


def _pickle_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -2**31 <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def _pickle_value(v):
    """Protocol-2 opcodes pushing `v` (int, float, str, bool, None, tuple or list of those)."""
    if isinstance(v, bool):
        return b"\x88" if v else b"\x89"
    if isinstance(v, int):
        return _pickle_int(v)
    if isinstance(v, float):
        return b"G" + struct.pack(">d", v)
    if isinstance(v, str):
        data = v.encode("utf-8", "surrogatepass")
        return b"X" + struct.pack("<I", len(data)) + data
    if v is None:
        return b"N"
    if isinstance(v, tuple):
        return b"(" + b"".join(_pickle_value(x) for x in v) + b"t"
    if isinstance(v, list):
        return b"(" + b"".join(_pickle_value(x) for x in v) + b"l"
    raise TypeError(type(v))


def tensor_opcodes(storage_class, key, numel, offset, size, stride):
    """A `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`."""
    pid = _pickle_value("storage") + f"ctorch\n{storage_class}\n".encode() + _pickle_value(key)
    pid = b"(" + pid + _pickle_value("cpu") + _pickle_value(numel) + b"t"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"Q" + _pickle_value(offset)
            + _pickle_value(size) + _pickle_value(stride)
            + b"\x89ccollections\nOrderedDict\n)R" + b"tR")


def torch_pickle(tensors):
    """The pickle of a state dict: {name: (storage class, key, numel, offset, size, stride)}.

    A name may be any value `_pickle_value` writes (a non-string key is how a state dict of the
    wrong type looks).
    """
    body = b"".join(_pickle_value(name) + tensor_opcodes(*spec) for name, spec in tensors.items())
    return b"\x80\x02}(" + body + b"u."


def write_torch_zip(path, pickle_bytes, storages, prefix="archive", compression=zipfile.ZIP_STORED):
    """A torch zip archive: `<prefix>/data.pkl` and `<prefix>/data/<key>` for each storage."""
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr(f"{prefix}/data.pkl", pickle_bytes)
        z.writestr(f"{prefix}/byteorder", "little")
        z.writestr(f"{prefix}/version", "3\n")
        for key, data in storages.items():
            z.writestr(f"{prefix}/data/{key}", bytes(data))


# ----------------------------------------------------------------------------- safetensors


def safetensors_bytes(header, data, header_text=None):
    """8-byte length, the header (a dict dumped as JSON, or `header_text` verbatim), the data."""
    text = header_text if header_text is not None else json.dumps(header)
    blob = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    return len(blob).to_bytes(8, "little") + blob + bytes(data)


def safetensors_of(arrays):
    """(header, data) of well-formed safetensors holding `arrays` ({name: ndarray}) in order."""
    codes = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64",
             np.dtype("<i4"): "I32", np.dtype("u1"): "U8", np.dtype("<f8"): "F64"}
    header, data = {}, b""
    for name, array in arrays.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": codes[array.dtype], "shape": list(array.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return header, data


# ----------------------------------------------------------------------------- T5X msgpack


def ext_array(shape, dtype_name, data):
    """Flax's msgpack ext type 1: [shape, dtype name, bytes], each field as given."""
    return msgpack.ExtType(1, msgpack.packb([shape, dtype_name, data]))


def pack_t5x(tree):
    """A T5X msgpack file of `tree`; ndarray leaves become ext type 1 as Flax writes them."""
    def default(obj):
        if isinstance(obj, np.ndarray):
            return ext_array(list(obj.shape), obj.dtype.name, obj.tobytes())
        raise TypeError(type(obj))
    return msgpack.packb(tree, default=default, strict_types=False)


def set_declared_size(path, entry, size, field="file_size"):
    """Rewrites a size a zip archive declares for `entry` (both headers): its uncompressed
    `file_size` or its `compress_size`."""
    data = bytearray(open(path, "rb").read())
    # (signature, offset of the name length, of the name, of the size) in each kind of header
    local_at, central_at = {"file_size": (22, 24), "compress_size": (18, 20)}[field]
    for signature, name_len_at, name_at, size_at in ((b"PK\x03\x04", 26, 30, local_at),
                                                     (b"PK\x01\x02", 28, 46, central_at)):
        at = data.index(signature)
        while True:
            name_len = struct.unpack_from("<H", data, at + name_len_at)[0]
            if data[at + name_at: at + name_at + name_len] == entry.encode():
                struct.pack_into("<I", data, at + size_at, size)
                break
            at = data.index(signature, at + 4)
    open(path, "wb").write(bytes(data))


# ----------------------------------------------------------------------------- TF checkpoint index


def _crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _varint(buf, at):
    value = shift = 0
    while True:
        byte = buf[at]
        value, shift, at = value | (byte & 0x7F) << shift, shift + 7, at + 1
        if not byte & 0x80:
            return value, at


def set_declared_dims(index_path, old_dims, new_dims):
    """Rewrites, in a TF checkpoint's `.index` (a leveldb table), the shape of the tensor whose
    shape is `old_dims` (each below 128) to `new_dims` (as many, each below 128), and reseals
    the block's checksum, so TF reads the index and trusts the new shape."""
    data = bytearray(open(index_path, "rb").read())
    # TensorShapeProto: each dim is field 2, length 2, holding field 1 (size) as a 1-byte varint
    at = data.index(b"".join(b"\x12\x02\x08" + bytes([d]) for d in old_dims))
    for k, dim in enumerate(new_dims):
        data[at + 4 * k + 3] = dim
    # The footer's second handle is the index block; its entries are handles of data blocks.
    footer = data[-48:]
    _, i = _varint(footer, 0)
    _, i = _varint(footer, i)
    index_offset, i = _varint(footer, i)
    index_end = index_offset + _varint(footer, i)[0]
    j = index_offset
    while j < index_end:  # each entry: shared, unshared, value length, key, block handle
        _, j = _varint(data, j)
        unshared, j = _varint(data, j)
        value_len, j = _varint(data, j)
        offset, k = _varint(data, j + unshared)
        size, _ = _varint(data, k)
        if offset <= at < offset + size:
            crc = _crc32c(bytes(data[offset:offset + size + 1]))  # the block and its type byte
            masked = ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF
            struct.pack_into("<I", data, offset + size + 1, masked)
            break
        j += unshared + value_len
    open(index_path, "wb").write(bytes(data))


def _put_varint(n):
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _table_block(out, entries):
    """Appends a leveldb table block of `entries` (no shared key prefixes, one restart point)
    and its trailer (uncompressed, checksummed) to `out`; returns the block's handle."""
    block = b"".join(_put_varint(0) + _put_varint(len(k)) + _put_varint(len(v)) + k + v
                     for k, v in entries) + struct.pack("<II", 0, 1)
    crc = _crc32c(block + b"\0")
    handle = _put_varint(len(out)) + _put_varint(len(block))
    out += block + b"\0" + struct.pack("<I", ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF)
    return handle


def write_tf_bundle(prefix, tensors, data=b""):
    """A TF checkpoint `prefix` (.index and one data shard holding `data`) whose index declares
    `tensors`, [(name, dtype enum, shape, size in bytes)], each at offset 0 of the shard."""
    header = tensor_bundle_pb2.BundleHeaderProto(num_shards=1)
    entries = [(b"", header.SerializeToString())]
    for name, dtype, shape, size in sorted(tensors):
        entry = tensor_bundle_pb2.BundleEntryProto(dtype=dtype, size=size)
        for d in shape:
            entry.shape.dim.add(size=d)
        entries.append((name.encode(), entry.SerializeToString()))
    out = bytearray()
    data_handle = _table_block(out, entries)
    meta_handle = _table_block(out, [])
    index_handle = _table_block(out, [(entries[-1][0] + b"\0", data_handle)])
    footer = meta_handle + index_handle
    out += footer + b"\0" * (40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)
    with open(f"{prefix}.index", "wb") as f:
        f.write(out)
    with open(f"{prefix}.data-00000-of-00001", "wb") as f:
        f.write(data)
