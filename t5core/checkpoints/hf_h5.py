"""`tf_model.h5`: HF's TFT5ForConditionalGeneration weights in Keras-2 HDF5, read through h5py."""

from __future__ import annotations

import os

from t5core.checkpoints.hf import block_rules
from t5core.checkpoints.reader import CheckpointReader, named_errors
from t5core.checkpoints.rules import Rule, skip
from t5core.checkpoints.untrusted import element_count
from t5core.errors import CheckpointError
from t5core.file_reads import check_file, check_h5_self_contained, h5_references_elsewhere


def h5_rules():
    return [
        Rule(r"shared/(?:[^/]+/)*embeddings:0", "shared/embeddings"),
        skip(r"(?:encoder|decoder)/(?:[^/]+/)*shared/embeddings:0",
             "the encoder's/decoder's reference to the shared embedding",
             equals="shared/embeddings"),
        Rule(r"lm_head/(?:[^/]+/)*lm_head/kernel:0", "lm_head/kernel"),
        Rule(r"(encoder|decoder)/[^/]+/(?:encoder|decoder)/final_layer_norm/weight:0",
             "{0}/final_layer_norm/scale"),
    ] + block_rules(r"{stack}/[^/]+/{stack}/block_\._(\d+)/layer_\._{index}/", "/", "/kernel:0",
                    "/kernel:0", "/embeddings:0", "layer_norm/weight:0")


class H5Reader(CheckpointReader):
    """Dataset-by-dataset access to a Keras-2 HDF5 weights file."""

    def __init__(self, path):
        try:
            import h5py
        except ImportError:
            raise ImportError(f"{path}: reading tf_model.h5 needs h5py (pip install h5py)") from None
        self.path = path
        check_file(path, CheckpointError)  # h5py would hang on a FIFO
        with named_errors(path, "unreadable HDF5 file"):
            self._file = h5py.File(path, "r")
            found = h5_references_elsewhere(self._file)
            self.shapes, self._dtypes = {}, {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    self.shapes[name] = tuple(obj.shape)
                    self._dtypes[name] = obj.dtype
                    self._stored[name] = (obj.id.get_storage_size(), obj.chunks is not None)

            self._stored = {}
            self._file.visititems(visit)
        # Outside the try: the refusal is a named UnsafeCheckpointError, not "unreadable".
        check_h5_self_contained(self.path, found)
        if not self.shapes:
            raise CheckpointError(f"{path}: the HDF5 file holds no weights")
        # Strings, compound records and references are not weights; refuse them by name.
        not_numbers = [n for n, d in self._dtypes.items() if d.kind not in "biuf"]
        if not_numbers:
            raise CheckpointError(f"{path}: datasets that are not numeric arrays: "
                                  f"{', '.join(not_numbers[:5])}")
        # HF writes each weight whole and uncompressed. A chunked (compressible) dataset, or one
        # storing fewer bytes than it declares (never written: HDF5 gives its fill value) or more
        # than the file holds, would make read() allocate what the file does not hold.
        size = os.path.getsize(path)
        unbacked = [f"{n} ({'chunked' if chunked else f'{stored:,} bytes of {self.nbytes(n):,}'})"
                    for n, (stored, chunked) in self._stored.items()
                    if chunked or not self.nbytes(n) <= stored <= size]
        if unbacked:
            raise CheckpointError(f"{path}: datasets not stored whole in the file, as HF writes "
                                  f"them (contiguous, uncompressed; the file has {size:,} "
                                  f"bytes): {', '.join(unbacked[:5])}")

    def nbytes(self, name):
        return element_count(self.shapes[name]) * self._dtypes[name].itemsize

    def read(self, name):
        with named_errors(self.path, f"could not read tensor {name}"):
            return self._file[name][()]

    def close(self):
        self._file.close()
