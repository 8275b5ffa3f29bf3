"""TensorFlow's start-up lines kept off a program's console unless the user asks for them
(`--verbose` or T5CORE_VERBOSE=1); why stderr itself: docs/architecture.md, Quiet start.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading

from t5core import cli

PACKAGE = "tensorflow"


class _Captured:
    """stderr (fd 2) into a pipe while in the `with` block; `.text` holds what came."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._chunks = []
        # A reader drains the pipe so that a long write never blocks on a full pipe.
        self._reader = threading.Thread(target=self._drain, args=(read_end,), daemon=True)
        self._reader.start()
        return self

    def _drain(self, read_end):
        with os.fdopen(read_end, "rb") as pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                self._chunks.append(chunk)

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the reader sees its end
        os.close(self._saved)
        self._reader.join()
        self.text = b"".join(self._chunks).decode("utf-8", "replace")
        return False


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        captured = _Captured()
        try:
            with captured:
                self._loader.exec_module(module)
                # The first device lookup logs the CUDA probe; do it now, still captured.
                module.config.list_physical_devices()
        except BaseException:
            sys.stderr.write(captured.text)
            raise


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != PACKAGE:
            return None
        sys.meta_path.remove(self)  # once: the real finders locate the package
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Makes the first `import tensorflow` quiet, unless it came already or with --verbose."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its later INFO lines too
    if cli.verbose() or PACKAGE in sys.modules:
        return
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
