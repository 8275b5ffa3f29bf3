"""Every file t5core writes or deletes goes through this module.

Rules it enforces (docs/security.md): a file in a model_dir or an output folder is never written
through a symlink (local files are opened with O_NOFOLLOW, or written to a temp file in the same
folder and renamed over the target), and a deletion names a path inside the folder that owns it.
`gs://` and other remote paths go through `tf.io.gfile`, where links do not exist.
"""

from __future__ import annotations

import os
import shutil
import uuid

import tensorflow as tf

from t5core.errors import T5CoreError


class UnsafeWriteError(T5CoreError):
    """A write or deletion that would leave its folder or follow a link."""


def is_remote(path: str) -> bool:
    return "://" in str(path)


def make_dirs(path: str) -> None:
    """Creates a folder and its parents (no error if it exists)."""
    if is_remote(path):
        tf.io.gfile.makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def _refuse_link(path: str) -> None:
    if not is_remote(path) and os.path.islink(path):
        raise UnsafeWriteError(f"{path} is a symbolic link; t5core does not write through links")


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically: a temp file beside it, then a rename over it.

    A link at `path` is refused rather than replaced, so a planted link is reported, not hidden.
    """
    path = str(path)
    _refuse_link(path)
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    if is_remote(path):
        with tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(data)
        tf.io.gfile.rename(tmp, path, overwrite=True)
        return
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """`write_bytes` of UTF-8 text."""
    write_bytes(path, text.encode("utf-8"))


def open_append(path: str):
    """Opens a text file for appending (creating it), never through a link."""
    path = str(path)
    if is_remote(path):
        return tf.io.gfile.GFile(path, "a")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if os.path.islink(path):
            raise UnsafeWriteError(
                f"{path} is a symbolic link; t5core does not write through links") from e
        raise
    return os.fdopen(fd, "a", encoding="utf-8")


def _inside(path: str, folder: str) -> bool:
    if is_remote(path) or is_remote(folder):
        return str(path).startswith(str(folder).rstrip("/") + "/")
    folder = os.path.realpath(folder)
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    return os.path.commonpath([parent, folder]) == folder


def remove(path: str, inside: str) -> None:
    """Deletes a file or folder (a link is removed, never followed) that lies inside `inside`."""
    path = str(path)
    if not _inside(path, inside):
        raise UnsafeWriteError(f"refusing to delete {path}: it is outside {inside}")
    if is_remote(path):
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        elif tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
        return
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def replace_link(path: str, target: str) -> None:
    """Points the symbolic link `path` at `target` atomically: a new link renamed over the old.

    Anything at `path` that is not a link (a file or folder someone put there) is refused, not
    replaced.
    """
    path = str(path)
    if os.path.lexists(path) and not os.path.islink(path):
        raise UnsafeWriteError(f"{path} exists and is not a link; t5core does not replace it")
    tmp = os.path.join(os.path.dirname(path) or ".",
                       f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
