"""`pytorch_model.bin`: a torch zip archive whose pickle describes tensors, read without running it.

A pickle is a program: unpickling an arbitrary one can call any importable function. A torch
state dict's pickle needs only a handful of globals (an OrderedDict, the tensor-rebuild function,
the storage classes that say a storage's dtype), so the restricted reader here resolves exactly
those to inert stand-ins and refuses any other global by name, before anything runs. Tensor data
stays in the archive (`<archive>/data/<key>`, raw little-endian) and is read one storage at a time.

With torch installed, `torch.load(weights_only=True)` (torch's own restricted unpickler) is used
instead, unless `use_torch=False`.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import zipfile

import ml_dtypes
import numpy as np

from t5core.errors import CheckpointError


class UnsafeCheckpointError(CheckpointError):
    """The pickle asks for something that is not a tensor: t5core refuses to unpickle it."""


_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, storage_type, key, numel):
        self.dtype, self.key, self.numel = storage_type.dtype, str(key), int(numel)


class _LazyTensor:
    """Where a tensor's values are: storage, element offset, size and stride (in elements)."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise UnsafeCheckpointError("a tensor's storage is not a storage reference")
        self.storage, self.offset = storage, int(offset)
        self.shape = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def extent(self):
        """One past the last element the view touches (0 for an empty tensor)."""
        if any(s == 0 for s in self.shape):
            return self.offset
        return self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) + 1


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    return _LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


_ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter}
_ALLOWED.update({("torch", name): _StorageType(name) for name in _STORAGE_DTYPES})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self.source}: the pickle names the global {module}.{name}, which is not a "
                "tensor storage or tensor-rebuild function; t5core refuses to unpickle it (a "
                "pickle may run code). If the file is trusted, convert it with torch.") from None

    def persistent_load(self, pid):
        if (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            return _Storage(pid[1], pid[2], pid[4])
        raise UnsafeCheckpointError(f"{self.source}: unexpected persistent id {pid!r:.80}")


def _is_legacy_torch(path):
    with open(path, "rb") as f:
        head = f.read(16)
    # The pre-1.6 format starts with a pickled magic number 0x1950a86a20f9469cfc6c.
    return head[:2] == b"\x80\x02" and b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19" in head


class TorchZipReader:
    """Tensor-by-tensor access to a torch zip checkpoint without torch and without running code."""

    def __init__(self, path):
        self.path = path
        if not zipfile.is_zipfile(path):
            if _is_legacy_torch(path):
                raise ValueError(f"{path}: a legacy (pre-torch-1.6) checkpoint; t5core reads it "
                                 "only through torch (pip install torch)")
            raise ValueError(f"{path}: not a torch zip checkpoint (truncated or damaged?)")
        try:
            self._zip = zipfile.ZipFile(path)
            pickles = [n for n in self._zip.namelist() if n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ValueError(f"expected one <archive>/data.pkl, found {pickles}")
            self._prefix = pickles[0][: -len("data.pkl")]
            byteorder = self._prefix + "byteorder"
            if byteorder in self._zip.namelist() and self._zip.read(byteorder) != b"little":
                raise ValueError("big-endian torch archives are not supported")
            with self._zip.open(pickles[0]) as f:
                state = _RestrictedUnpickler(f, path).load()
        except UnsafeCheckpointError:
            raise
        except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, KeyError,
                TypeError, AttributeError) as err:
            raise ValueError(f"{path}: unreadable torch checkpoint ({type(err).__name__}: "
                             f"{err})") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: the pickle holds a {type(state).__name__}, not a state dict")
        not_tensors = [str(k) for k, v in state.items() if not isinstance(v, _LazyTensor)]
        if not_tensors:
            raise ValueError(f"{path}: entries that are not tensors: {', '.join(not_tensors[:10])}")
        self._tensors = dict(state)
        self.shapes = {name: t.shape for name, t in state.items()}

    def nbytes(self, name):
        t = self._tensors[name]
        return int(np.prod(t.shape, dtype=np.int64)) * t.storage.dtype.itemsize

    def validate(self, names):
        """Every storage present, complete and large enough for its views: before any assignment."""
        infos = {i.filename: i for i in self._zip.infolist()}
        problems = []
        for name in names:
            t = self._tensors[name]
            entry = f"{self._prefix}data/{t.storage.key}"
            info = infos.get(entry)
            if info is None:
                problems.append(f"{name}: storage {entry} is missing from the archive")
            elif info.file_size < t.storage.numel * t.storage.dtype.itemsize:
                problems.append(f"{name}: storage {entry} has {info.file_size} bytes, needs "
                                f"{t.storage.numel * t.storage.dtype.itemsize}")
            elif t.extent() > t.storage.numel or min(t.stride, default=0) < 0:
                problems.append(f"{name}: view {t.shape} / stride {t.stride} at {t.offset} "
                                f"overruns its storage of {t.storage.numel} elements")
        if problems:
            raise ValueError(f"{self.path}: damaged torch checkpoint:\n  " + "\n  ".join(problems))

    def read(self, name):
        t = self._tensors[name]
        self.validate([name])
        data = self._zip.read(f"{self._prefix}data/{t.storage.key}")  # checks the zip CRC
        flat = np.frombuffer(data, t.storage.dtype, count=t.storage.numel)
        itemsize = t.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[t.offset:], shape=t.shape, strides=tuple(s * itemsize for s in t.stride),
            writeable=False)
        return np.array(view)  # owns its memory; the storage bytes are dropped on return


class TorchLoadReader:
    """The same through `torch.load(weights_only=True)`; also reads pre-1.6 (non-zip) files."""

    def __init__(self, path):
        import torch

        self.path = path
        try:
            # mmap keeps the file out of memory; torch offers it for zip archives only.
            state = torch.load(path, map_location="cpu", weights_only=True,
                               mmap=zipfile.is_zipfile(path))
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(f"{path}: torch refused to unpickle it: {err}") from None
        except Exception as err:  # torch raises RuntimeError for damaged archives
            raise ValueError(f"{path}: unreadable torch checkpoint ({type(err).__name__}: "
                             f"{err})") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise ValueError(f"{path}: not a state dict of tensors")
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


def _torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class HFBinReader:
    """One `pytorch_model.bin`, or the shards a `pytorch_model.bin.index.json` names."""

    def __init__(self, path, use_torch=None):
        if use_torch is None:
            use_torch = _torch_available()
        reader_cls = TorchLoadReader if use_torch else TorchZipReader
        if os.path.isdir(path):
            index = os.path.join(path, "pytorch_model.bin.index.json")
            if os.path.exists(index):
                with open(index) as f:
                    files = sorted(set(json.load(f)["weight_map"].values()))
            else:
                files = ["pytorch_model.bin"]
            paths = [os.path.join(path, name) for name in files]
        else:
            paths = [path]
        self.path, self.shapes, self._where = path, {}, {}
        for file_path in paths:
            if not os.path.exists(file_path):
                raise FileNotFoundError(f"torch checkpoint shard {file_path} is missing")
            reader = reader_cls(file_path)
            for name, shape in reader.shapes.items():
                if name in self._where:
                    raise ValueError(f"{file_path}: tensor {name} is also in another shard")
                self._where[name] = reader
                self.shapes[name] = shape
        self.uses_torch = use_torch

    def nbytes(self, name):
        return self._where[name].nbytes(name)

    def validate(self, names):
        by_reader = collections.defaultdict(list)
        for name in names:
            by_reader[self._where[name]].append(name)
        for reader, group in by_reader.items():
            if hasattr(reader, "validate"):
                reader.validate(group)

    def read(self, name):
        return self._where[name].read(name)
