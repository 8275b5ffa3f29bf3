"""Every file t5core writes or deletes goes through this module: atomic writes, no writes through
links, deletions confined to their folder, output folders refused unless new, empty or
--overwrite (the rules: docs/architecture.md, Writes, and docs/security.md).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import math
import os
import shutil
import uuid

from t5core.errors import T5CoreError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnsafeWriteError(T5CoreError):
    """A write or deletion that would leave its folder or follow a link."""


class OutputExistsError(T5CoreError, FileExistsError):
    """An output folder or file already holds something the write would replace or destroy."""


class IncompleteOutputError(T5CoreError):
    """An output folder whose replacement by `new_output_dir` was interrupted."""


class WriteFailedError(T5CoreError, OSError):
    """The system refused a write (disk full, file too large, read-only, its folder gone); the
    file written is left as it was before."""


# What only a failing write raises, even where the caller's code runs too.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT, errno.EIO}


def write_failed(path: str, err: BaseException, intact: str = "") -> WriteFailedError:
    """The WriteFailedError of `err` (an OSError, or TensorFlow's error for a file it wrote)
    writing `path`: why, in the system's words, and `intact` (default: `path` is as it was)."""
    reason = getattr(err, "strerror", None) or getattr(err, "message", None) or str(err)
    # TensorFlow's message: "{{function_node ...}} <its temp file>; File too large [Op:SaveV2]"
    reason = reason.rsplit("; ", 1)[-1].split(" [Op:")[0].strip()
    error = WriteFailedError(f"could not write {path}: {reason}; "
                             f"{intact or f'{path} is as it was before'}")
    error.errno = getattr(err, "errno", None)
    return error


def is_remote(path: str) -> bool:
    return "://" in str(path)


def _gfile():
    # TensorFlow only for remote paths, so that local writes (the lock, run.json) do not import it.
    import tensorflow as tf

    return tf.io.gfile


def make_dirs(path: str) -> None:
    """Creates a folder and its parents (no error if it exists)."""
    if is_remote(path):
        _gfile().makedirs(path)
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise write_failed(path, err, "nothing was written") from None


def refuse_link(path: str) -> None:
    """Refuses `path` when it is a link: for files a library writes itself (Optuna's journal)."""
    if not is_remote(path) and os.path.islink(path):
        raise UnsafeWriteError(f"{path} is a symbolic link; t5core does not write through links")


def check_folder_inside(folder: str, root: str) -> None:
    """Refuses `folder`, inside `root`, when it or a folder between them is a link (or it lies
    outside `root`): TensorFlow's checkpoint managers and summary writers save, rename and prune
    there by themselves, so a link would carry those writes and deletions out of `root`."""
    if is_remote(folder):
        return
    relative = os.path.relpath(folder, root)
    if relative.split(os.sep)[0] == os.pardir:
        raise UnsafeWriteError(f"{folder} is outside {root}")
    current = root
    for part in relative.split(os.sep):
        current = os.path.join(current, part)
        refuse_link(current)


@contextlib.contextmanager
def atomic_writer(path: str, binary: bool = True):
    """A file object writing `path` whole via a temp file renamed over it; on an exception `path`
    is left as it was. A link at `path` is refused."""
    path = str(path)
    refuse_link(path)
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    mode = "wb" if binary else "w"
    if is_remote(path):
        try:
            with _gfile().GFile(tmp, mode) as f:
                yield f
            _gfile().rename(tmp, path, overwrite=True)
        except BaseException:
            if _gfile().exists(tmp):
                _gfile().remove(tmp)
            raise
        return
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    except OSError as err:
        raise write_failed(path, err) from None
    in_body = False
    try:
        with os.fdopen(fd, mode, **({} if binary else {"encoding": "utf-8"})) as f:
            in_body = True
            yield f
            in_body = False
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        # The caller's own errors (in the body) pass as they are, but for a failing write's.
        if isinstance(err, OSError) and not isinstance(err, T5CoreError) and (
                not in_body or err.errno in _WRITE_ERRNOS):
            raise write_failed(path, err) from None
        raise


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically (see `atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    """`write_bytes` of UTF-8 text."""
    write_bytes(path, text.encode("utf-8"))


# Where str.splitlines() ends a line: an output holding one is escaped to stay one line.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r",
            **{c: f"\\u{ord(c):04x}" for c in LINE_BREAKS[2:]}}


def one_line(text: str) -> str:
    """`text` as one line of a predictions or outputs file, reversibly (`file_reads.line_text`):
    a backslash is written "\\\\", a newline "\\n", a carriage return "\\r", every other line
    break "\\uXXXX" (ByT5 can write any of them). Other text is unchanged."""
    return "".join(_ESCAPES.get(c, c) for c in text) if any(c in _ESCAPES for c in text) \
        else text


def json_text(value, **options) -> str:
    """`value` as strict JSON text (RFC 8259): the one serialiser of every JSON file t5core
    writes, so that jq, JSON.parse, Go and serde read what t5core writes.

    RFC 8259 has no NaN or Infinity (Python's json writes them as bare words those readers
    refuse): a non-finite float becomes null, and a reader that must tell it from a missing value
    reads null as non-finite (train_log.jsonl's evaluations: t5core.sweep.evals). Numpy scalars
    and arrays become numbers and lists; a string holding an undecodable byte (a file name or
    argument that was not UTF-8) keeps it as the visible text \\udcXX rather than a lone surrogate
    that is no character. `options`: json.dumps's (indent, sort_keys, separators, ensure_ascii).
    """
    return json.dumps(_strict(value), allow_nan=False, **options)


def _strict(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_strict(k) if isinstance(k, str) or hasattr(k, "tolist") else k: _strict(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _strict(value.tolist())
    return value


def write_json(path: str, value, **options) -> None:
    """Writes `value` to `path` atomically as strict JSON (`json_text`) and a final newline."""
    write_text(path, json_text(value, **options) + "\n")


def _open_no_link(path: str, flags: int) -> int:
    """`os.open(path, flags)` refusing a link at path (UnsafeWriteError); returns the fd."""
    try:
        return os.open(path, flags | _NOFOLLOW, 0o644)
    except OSError:
        refuse_link(path)
        raise


def open_append(path: str, binary: bool = False):
    """Opens a file for appending (creating it), never through a link; text is UTF-8."""
    path = str(path)
    if is_remote(path):
        return _gfile().GFile(path, "ab" if binary else "a")
    fd = _open_no_link(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "ab") if binary else os.fdopen(fd, "a", encoding="utf-8")


def append_bytes(path: str, data: bytes) -> None:
    """Appends `data` to `path` (creating it) in one write, never through a link.

    A write that fails (WriteFailedError) takes back what part of `data` it wrote, so the file
    stays what it was: a log of whole records.
    """
    path = str(path)
    if is_remote(path):
        with _gfile().GFile(path, "ab") as f:
            f.write(data)
        return
    try:
        fd = _open_no_link(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except OSError as err:
        raise write_failed(path, err) from None
    try:
        size = os.fstat(fd).st_size
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as err:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise write_failed(path, err) from None
    finally:
        os.close(fd)


def open_lock_file(path: str) -> int:
    """Opens (creating) a lock file read-write, never through a link; returns the descriptor."""
    path = str(path)
    try:
        fd = _open_no_link(path, os.O_RDWR | os.O_CREAT)
    except OSError as err:
        raise write_failed(path, err, "the run did not start") from None
    info = os.fstat(fd)
    # One link only: through a hard link to a user's file, the lock record would overwrite it.
    if not os.path.stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not os.path.stat.S_ISREG(info.st_mode) else \
            f"a file with {info.st_nlink} hard links"
        raise UnsafeWriteError(f"{path} is {what}; t5core did not create it and will not write it")
    return fd


def open_user_file(path: str, inputs=()):
    """A text file the user named, to write in a `with` block (links followed): written whole
    through a temp file renamed over it at the block's end, so a failure or a kill leaves the
    previous file as it was; a device or FIFO (/dev/stdout) is written to directly. The same
    file as an input (`refuse_input_as_output`) is an OutputExistsError."""
    path = str(path)
    refuse_input_as_output(path, inputs)
    if is_remote(path):
        return _gfile().GFile(path, "w")
    if os.path.exists(path) and not os.path.isfile(path):
        return open(path, "w", encoding="utf-8")
    return atomic_writer(os.path.realpath(path), binary=False)


# (device, inode) of each local file read through t5core.file_reads since the program began:
# an output the user names may be none of them, however the input's path was found (a flag,
# run.json, a file beside the checkpoint).
_READ = set()


def note_read(status: os.stat_result) -> None:
    """Records a file `t5core.file_reads` opened (its `os.fstat`)."""
    _READ.add((status.st_dev, status.st_ino))


def forget_reads() -> None:
    """Starts a program's record of what it read afresh (`t5core.cli.command`)."""
    _READ.clear()


def refuse_input_as_output(path: str, inputs) -> None:
    """OutputExistsError when `path` is the same file as one of `inputs` (None entries skipped)
    or as any file read so far (`note_read`)."""
    for source in inputs:
        if source and same_file(path, source):
            raise OutputExistsError(f"the output {path} is the input {source}; writing it would "
                                    "destroy the input: name another output file")
    try:
        status = None if is_remote(path) else os.stat(path)
    except OSError:
        status = None
    if status is not None and (status.st_dev, status.st_ino) in _READ:
        raise OutputExistsError(f"the output {path} is a file this program read (its data, its "
                                "run's or its checkpoint's files); writing it would destroy it: "
                                "name another output file")


def same_file(a: str, b: str) -> bool:
    """Whether two paths name the same existing file (links and hard links included)."""
    a, b = str(a), str(b)
    if is_remote(a) or is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


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
        if _gfile().isdir(path):
            _gfile().rmtree(path)
        elif _gfile().exists(path):
            _gfile().remove(path)
        return
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


# Lies in an output folder while `new_output_dir` replaces what it holds: from the first removal
# to the last move, it holds neither the previous output whole nor the new one.
INCOMPLETE = "INCOMPLETE.t5core"


def check_complete(folder: str) -> None:
    """IncompleteOutputError when `folder` holds the INCOMPLETE marker (its loaders call this)."""
    folder = str(folder)
    marker = os.path.join(folder, INCOMPLETE)
    if _gfile().exists(marker) if is_remote(folder) else os.path.lexists(marker):
        raise IncompleteOutputError(
            f"{folder} holds a half-replaced output ({INCOMPLETE}): the --overwrite that wrote "
            "it was interrupted; rerun that command (with --overwrite) to write it whole")


def _stage_name(directory: str) -> str:
    """The hidden folder `new_output_dir` writes a new output into: one fixed name per output,
    so that the next run finds and removes a killed run's."""
    return f".{os.path.basename(os.path.abspath(directory))}.partial"


def check_output_dir(directory: str, overwrite: bool, owned: tuple[str, ...],
                     flag: str = "--overwrite") -> list[str]:
    """The one rule of what an output folder may hold before a new output is written there:
    nothing, unless `overwrite`; then entries matching the globs `owned` (the previous output,
    which the new one replaces) and any other file (kept). Changes nothing; returns the names the
    new output replaces. A file, or a non-empty folder without `overwrite`, is an
    OutputExistsError naming `flag`."""
    directory = str(directory)
    if is_remote(directory):
        entries = [e.rstrip("/") for e in _gfile().listdir(directory)] \
            if _gfile().isdir(directory) else []
    elif os.path.lexists(directory) and not os.path.isdir(directory):
        raise OutputExistsError(f"{directory} exists and is not a folder")
    else:
        entries = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    entries = [name for name in entries if name != _stage_name(directory)]  # new_output_dir's
    if entries and not overwrite:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5
                                          else "")
        raise OutputExistsError(f"{directory} is not empty ({shown}); choose a new or empty "
                                f"folder, or pass {flag} to replace the previous output there")
    return [name for name in entries if any(fnmatch.fnmatchcase(name, p) for p in owned)]


@contextlib.contextmanager
def new_output_dir(directory: str, overwrite: bool, owned: tuple[str, ...],
                   flag: str = "--overwrite"):
    """Yields an empty folder to write a new output into, which then takes the place of the
    previous output in `directory` (`check_output_dir` decides what may be there first).

    The previous output is removed only once the new one is written whole: locally, the new one
    is written into a hidden folder inside `directory` (beside it when `directory` is new), whose
    entries replace the `owned` names there at the end. On an exception nothing was removed and
    `directory` is as it was, not created when it was not there. A kill while the entries are
    replaced leaves the INCOMPLETE marker there (`check_complete`); a kill before leaves the
    hidden folder, which the next run removes. `owned` should name INCOMPLETE, so that
    `overwrite` replaces such a folder.
    """
    directory = str(directory)
    replaced = [name for name in check_output_dir(directory, overwrite, owned, flag)
                if name != INCOMPLETE]  # written again below, removed last
    marker = os.path.join(directory, INCOMPLETE)
    if is_remote(directory):
        # Object stores rename a folder by copying it: the checks have run, then the previous
        # output goes and the new one is written in place.
        created = not _gfile().isdir(directory)
        make_dirs(directory)
        write_text(marker, "")
        for name in replaced:
            remove(os.path.join(directory, name), inside=directory)
        try:
            yield directory
        except BaseException:
            if created:
                _gfile().rmtree(directory)
            raise
        remove(marker, inside=directory)
        return
    existed = os.path.isdir(directory)
    beside = os.path.dirname(os.path.abspath(directory))
    stage_in = directory if existed else beside
    for folder in (beside, directory):  # a killed run's, ours by its name
        if os.path.isdir(folder):
            remove(os.path.join(folder, _stage_name(directory)), inside=folder)
    make_dirs(stage_in)
    stage = os.path.join(stage_in, _stage_name(directory))
    try:
        os.mkdir(stage)
    except OSError as err:
        raise write_failed(directory, err, "nothing was written") from None
    try:
        yield stage
        if not existed:
            os.replace(stage, directory)
            return
        write_text(marker, "")
        for name in replaced:
            remove(os.path.join(directory, name), inside=directory)
        for name in os.listdir(stage):
            os.replace(os.path.join(stage, name), os.path.join(directory, name))
        os.unlink(marker)
    finally:
        remove(stage, inside=stage_in)


def remove_empty_folders(folders) -> None:
    """Removes each of `folders` (local, innermost first) that is empty; keeps any other."""
    for folder in folders:
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def replace_link(path: str, target: str) -> None:
    """Points the link `path` at `target` atomically; anything but a link at `path` is refused."""
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
