"""The protocol every checkpoint reader implements (see docs/architecture.md, "checkpoints")."""

from __future__ import annotations

import contextlib

import numpy as np

from t5core.errors import CheckpointError
from t5core.file_reads import shown


class CheckpointReader:
    """Tensor-by-tensor access to one checkpoint.

    Attributes:
      path: the file, directory or prefix opened (named in every error).
      shapes: {source tensor name: shape}, known before any value is read.
    """

    path: str
    shapes: dict

    def read(self, name):
        """The tensor `name` as an ndarray (one tensor in memory at a time)."""
        raise NotImplementedError

    def nbytes(self, name):
        """Bytes `read(name)` returns (for progress); float32 unless a reader knows better."""
        return int(np.prod(self.shapes[name], dtype=np.int64)) * 4

    def validate(self, names):
        """Cheap checks of `names` (missing shards, packages) before any assignment."""

    def close(self):
        """Releases open files; the reader is not used after."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def named_errors(path, what, prefix_own=False):
    """Re-raises a parser's error on a damaged file as a CheckpointError "<path>: <what> (<type>:
    <message>)"; t5core's own errors and ImportErrors pass ("<path>: " added if `prefix_own`)."""
    try:
        yield
    except CheckpointError as err:
        if prefix_own:
            raise type(err)(f"{path}: {err}") from None
        raise
    except ImportError:
        raise
    except Exception as err:  # each parser raises its own types on damaged data
        raise CheckpointError(f"{path}: {what} ({type(err).__name__}: {shown(str(err))})") from None
