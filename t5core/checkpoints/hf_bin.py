"""`pytorch_model.bin`: a torch zip archive whose pickle describes tensors, read without running
it."""

from __future__ import annotations

import collections
import importlib.util
import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile

import ml_dtypes
import numpy as np

from t5core.checkpoints.reader import CheckpointReader, named_errors
from t5core.checkpoints.untrusted import (
    ShardedReader,
    UnsafeCheckpointError,
    element_count,
    is_int,
    listing,
    shape_problem,
    shown,
)
from t5core.errors import CheckpointError
from t5core.file_reads import open_file

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

# A state dict's pickle takes about 125 bytes and 30 opcodes per tensor. The bounds below are
# hundreds of times what any public checkpoint needs; they bound what unpickling can allocate
# (an opcode makes at most one object of about 70 bytes).
_MAX_PICKLE_BYTES = 64 << 20
_MAX_PICKLE_OPCODES = 2_000_000
_MAX_MARK_DEPTH = 32  # a state dict nests 3 deep
# A view may repeat its storage's elements (stride 0, a broadcast); beyond this many elements
# more than its storage holds, reading it could take any amount of memory, so it is refused.
_MAX_BROADCAST_ELEMENTS = 1 << 20
_DEFLATE_MAX_RATIO = 1032  # deflate cannot inflate one byte into more than this


class _Frozen:
    """Base of the unpickler's stand-ins; BUILD is refused on them, since the storage types are
    shared by every load in the process (BUILD could change FloatStorage's dtype for all)."""

    __slots__ = ()

    def __init__(self, **fields):
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise UnsafeCheckpointError(f"the pickle tries to change a {type(self).__name__[1:]}")

    def __setstate__(self, state):
        raise UnsafeCheckpointError(f"the pickle tries to change a {type(self).__name__[1:]}")


class _StorageType(_Frozen):
    __slots__ = ("name", "dtype")


class _Function(_Frozen):
    __slots__ = ("fn",)

    def __call__(self, *args):
        return self.fn(*args)


class _Storage(_Frozen):
    """A storage as the pickle declares it; checked against the archive after unpickling."""

    __slots__ = ("type", "key", "numel")


class _LazyTensor(_Frozen):
    """`_rebuild_tensor_v2`'s arguments as the pickle gives them; checked after unpickling."""

    __slots__ = ("storage", "offset", "size", "stride")


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    return _LazyTensor(storage=storage, offset=offset, size=size, stride=stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


_ALLOWED = {("collections", "OrderedDict"): _Function(fn=collections.OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2"): _Function(fn=_rebuild_tensor_v2),
            ("torch._utils", "_rebuild_parameter"): _Function(fn=_rebuild_parameter)}
_ALLOWED.update({("torch", name): _StorageType(name=name, dtype=np.dtype(dtype))
                 for name, dtype in _STORAGE_DTYPES.items()})


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpointError(
                f"the pickle names the global {str(module)[:100]}.{str(name)[:100]}, which is not "
                "a tensor storage or tensor-rebuild function; t5core refuses to unpickle it (a "
                "pickle may run code). If the file is trusted, convert it with torch.") from None

    def persistent_load(self, pid):
        if (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            return _Storage(type=pid[1], key=pid[2], numel=pid[4])
        raise UnsafeCheckpointError(f"unexpected persistent id (a {type(pid).__name__}); a "
                                    "state dict refers only to tensor storages")


def _scan_pickle(data):
    """Refuses what would make the unpickler allocate more than the pickle holds: arguments
    longer than the data (a BINBYTES8 is allocated before it is read), memo indices far beyond
    the objects made, nesting."""
    try:
        with warnings.catch_warnings():  # a protocol-0 string with a stray backslash warns
            warnings.simplefilter("ignore", DeprecationWarning)
            _scan_opcodes(pickletools.genops(data))
    except CheckpointError:
        raise
    except ValueError as err:  # genops checks every argument's length against the data
        raise CheckpointError(f"damaged pickle ({shown(str(err))})") from None


def _scan_opcodes(opcodes):
    depth = 0
    for count, (opcode, arg, _) in enumerate(opcodes):
        if count > _MAX_PICKLE_OPCODES:
            raise CheckpointError(f"the pickle has more than {_MAX_PICKLE_OPCODES} opcodes")
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= arg <= count:
            raise CheckpointError(f"the pickle stores memo entry {arg} after {count} opcodes")
        if opcode.name == "MARK":
            depth += 1
            if depth > _MAX_MARK_DEPTH:
                raise CheckpointError(f"the pickle nests more than {_MAX_MARK_DEPTH} levels deep")
        elif pickletools.markobject in opcode.stack_before:
            depth -= 1


def _is_legacy_torch(path):
    with open_file(path, CheckpointError) as f:
        head = f.read(16)
    # The pre-1.6 format starts with a pickled magic number 0x1950a86a20f9469cfc6c.
    return head[:2] == b"\x80\x02" and b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19" in head


class _View:
    """A tensor checked against its storage: every element it reads lies inside that storage."""

    def __init__(self, entry, dtype, offset, shape, stride, extent):
        self.entry, self.dtype, self.offset = entry, dtype, offset
        self.shape, self.stride, self.extent = shape, stride, extent


def _check_view(tensor, prefix, infos, archive_size):
    """(a _View, None) or (None, why the tensor cannot be read safely)."""
    storage = tensor.storage
    if not isinstance(storage, _Storage):
        return None, "its storage is not a storage reference"
    key, numel, dtype = storage.key, storage.numel, storage.type.dtype
    if not isinstance(key, str) or not re.fullmatch(r"[0-9A-Za-z_]{1,64}", key):
        return None, f"storage key {shown(key)} is not a plain name"
    if not is_int(numel) or numel < 0:
        return None, f"its storage of {shown(numel)} elements is not a count >= 0"
    offset, size, stride = tensor.offset, tensor.size, tensor.stride
    if not is_int(offset) or offset < 0:
        return None, f"storage offset {shown(offset)} is not an integer >= 0"
    problem = shape_problem(size)
    if problem:
        return None, f"size: {problem}"
    if (not isinstance(stride, (list, tuple)) or len(stride) != len(size)
            or not all(is_int(s) and s >= 0 for s in stride)):
        return None, (f"size {shown(size)} and stride {shown(stride)} do not fit (one "
                      "stride >= 0 per dimension)")
    count = element_count(size)
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if count else offset
    if count and extent > numel:
        return None, (f"view {tuple(size)} / stride {tuple(stride)} at offset {offset} overruns "
                      f"its storage of {numel} elements")
    if count > max(numel, _MAX_BROADCAST_ELEMENTS):
        return None, (f"view {tuple(size)} has {count} elements, far more elements than its "
                      f"storage of {numel} (a broadcast t5core does not expand)")
    entry = f"{prefix}data/{key}"
    info = infos.get(entry)
    if info is None:
        return None, f"storage {entry} is missing from the archive"
    needed = numel * dtype.itemsize
    if info.file_size < needed:
        return None, f"storage {entry} has {info.file_size} bytes, needs {needed}"
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != info.file_size or info.compress_size > archive_size:
            return None, f"storage {entry}: its sizes in the zip directory disagree"
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if needed > _DEFLATE_MAX_RATIO * info.compress_size + 64:
            return None, (f"storage {entry} declares {info.file_size} bytes in "
                          f"{info.compress_size} compressed bytes, more than deflate can hold")
    else:
        return None, (f"storage {entry} is compressed with zip method {info.compress_type} "
                      "(torch stores storages uncompressed)")
    return _View(entry, dtype, offset, tuple(size), tuple(stride), extent), None


class TorchZipReader(CheckpointReader):
    """A torch zip checkpoint, tensor by tensor, without torch or running code; every storage
    key, size, offset and stride the pickle declares is checked against the archive on open."""

    def __init__(self, path):
        self.path = path
        if not zipfile.is_zipfile(path):
            if _is_legacy_torch(path):
                raise CheckpointError(f"{path}: a legacy (pre-torch-1.6) checkpoint; t5core reads "
                                      "it only through torch (pip install torch)")
            raise CheckpointError(f"{path}: not a torch zip checkpoint (truncated or damaged?)")
        with named_errors(path, "unreadable torch checkpoint", prefix_own=True):
            state = self._open_archive(path)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: the pickle holds a {type(state).__name__}, not a "
                                  "state dict")
        not_names = [shown(k) for k in state if not isinstance(k, str)]
        if not_names:
            raise CheckpointError(f"{path}: state dict keys must be tensor names (strings), not "
                                  f"{', '.join(not_names[:5])}")
        not_tensors = [k for k, v in state.items() if not isinstance(v, _LazyTensor)]
        if not_tensors:
            raise CheckpointError(f"{path}: entries that are not tensors: "
                                  f"{', '.join(not_tensors[:10])}")
        self._tensors = self._check_views(state)
        self.shapes = {name: view.shape for name, view in self._tensors.items()}

    def _open_archive(self, path):
        self._zip = zipfile.ZipFile(path)
        self._infos = {i.filename: i for i in self._zip.infolist()}
        archive_size = os.path.getsize(path)
        # zipfile reads an entry in requests of up to its declared compressed size, and Python
        # allocates each request in full before reading: a declared size is checked first.
        beyond = [n for n, i in self._infos.items()
                  if i.header_offset + i.compress_size > archive_size]
        if beyond:
            raise CheckpointError(f"zip entries whose sizes point past the end of the archive: "
                                  f"{shown(beyond)}")
        pickles = [n for n in self._infos if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"expected one <archive>/data.pkl, found {shown(pickles)}")
        self._prefix = pickles[0][: -len("data.pkl")]
        byteorder = self._infos.get(self._prefix + "byteorder")
        if byteorder is not None and (byteorder.file_size > 16
                                      or self._zip.read(byteorder) != b"little"):
            raise CheckpointError("big-endian torch archives are not supported")
        if self._infos[pickles[0]].file_size > _MAX_PICKLE_BYTES:
            raise CheckpointError(f"its pickle of {self._infos[pickles[0]].file_size} bytes is "
                                  f"larger than any state dict's ({_MAX_PICKLE_BYTES} bytes)")
        data = self._zip.read(pickles[0])  # at most the declared size; CRC checked
        _scan_pickle(data)
        return _RestrictedUnpickler(io.BytesIO(data)).load()

    def _check_views(self, state):
        views, problems, storages = {}, [], {}
        archive_size = os.path.getsize(self.path)
        for name, tensor in state.items():
            view, problem = _check_view(tensor, self._prefix, self._infos, archive_size)
            if problem is None:
                # One storage key must mean one storage: same element type, same size.
                declared = (tensor.storage.type.name, tensor.storage.numel)
                first = storages.setdefault(tensor.storage.key, (name, declared))
                if first[1] != declared:
                    problem = (f"storage {tensor.storage.key} is declared twice, differently: "
                               f"{first[0]} ({first[1][1]} x {first[1][0]}) and {name} "
                               f"({declared[1]} x {declared[0]})")
            if problem:
                problems.append(f"{name}: {problem}")
            else:
                views[name] = view
        if problems:
            raise CheckpointError(f"{self.path}: damaged torch checkpoint:\n  {listing(problems)}")
        return views

    def nbytes(self, name):
        view = self._tensors[name]
        return element_count(view.shape) * view.dtype.itemsize

    def read(self, name):
        view = self._tensors[name]
        if element_count(view.shape) == 0:
            return np.empty(view.shape, view.dtype)
        itemsize = view.dtype.itemsize
        needed = view.extent * itemsize  # the bytes up to the view's last element, no more
        with named_errors(self.path, f"could not read tensor {name}"), \
                self._zip.open(view.entry) as f:
            data = f.read(needed)
        if len(data) != needed:
            raise CheckpointError(f"{self.path}: tensor {name}: storage {view.entry} ended "
                                  f"after {len(data)} of {needed} bytes")
        # np.ndarray checks itself that the strided view lies inside `data`.
        strided = np.ndarray(view.shape, view.dtype, buffer=data, offset=view.offset * itemsize,
                             strides=tuple(s * itemsize for s in view.stride))
        return strided.copy()  # owns its memory; the storage bytes are dropped on return


    def close(self):
        self._zip.close()

class TorchLoadReader(CheckpointReader):
    """The same through `torch.load(weights_only=True)`; also reads pre-1.6 (non-zip) files."""

    def __init__(self, path):
        import torch

        self.path = path
        with named_errors(path, "unreadable torch checkpoint"):
            try:
                # mmap keeps the file out of memory; torch offers it for zip archives only.
                state = torch.load(path, map_location="cpu", weights_only=True,
                                   mmap=zipfile.is_zipfile(path))
            except pickle.UnpicklingError as err:
                raise UnsafeCheckpointError(f"{path}: torch refused to unpickle it: "
                                            f"{shown(str(err))}") from None
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in state.items()):
            raise CheckpointError(f"{path}: not a state dict of tensors (tensor name -> tensor)")
        self._tensors = state
        self.shapes = {name: tuple(t.shape) for name, t in state.items()}

    def nbytes(self, name):
        t = self._tensors[name]
        return t.numel() * t.element_size()

    def read(self, name):
        import torch

        t = self._tensors[name].detach()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16 of its own: reinterpret the bits
            return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
        return t.numpy().copy()


class HFBinReader(ShardedReader):
    """One `pytorch_model.bin`, or the shards a `pytorch_model.bin.index.json` names."""

    def __init__(self, path, use_torch=None):
        if use_torch is None:
            use_torch = importlib.util.find_spec("torch") is not None
        super().__init__(path, "pytorch_model.bin.index.json", "pytorch_model.bin",
                         TorchLoadReader if use_torch else TorchZipReader)
