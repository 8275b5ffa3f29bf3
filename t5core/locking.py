"""One process at a time in a directory: an exclusive `flock` on a file that names its holder
(why flock, and what happens on remote filesystems: docs/architecture.md, "Locking")."""

from __future__ import annotations

import errno
import os
import socket
import sys
import time

from t5core import file_reads, file_writes
from t5core.errors import T5CoreError

try:
    import fcntl
except ImportError:  # not a POSIX system
    fcntl = None


class DirectoryLock:
    """An exclusive, non-blocking lock on `directory/name`; `error` (a T5CoreError subclass) is
    raised when another process holds it, its message ending with `hint`."""

    def __init__(self, directory: str, name: str, error: type[T5CoreError],
                 hint: str = "wait for it to finish"):
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, name)
        self.error = error
        self.hint = hint
        self._fd: int | None = None
        self.skipped = ""  # why the directory could not be locked, if it could not
        self._created: list[str] = []  # what acquire created: `release(undo=True)` removes it

    def acquire(self) -> dict | None:
        """Takes the lock; returns a killed previous holder's record, else None (also, with
        `skipped` set, where there are no file locks). Held elsewhere: `error` naming pid, host."""
        if self._fd is not None:  # held already
            return None
        if "://" in self.directory:
            self.skipped = f"{self.directory} is remote: file locks do not exist there"
            return None
        if fcntl is None:
            self.skipped = "this system has no flock"
            return None
        self._created = [p for p in (self.path, self.directory) if not os.path.lexists(p)]
        file_writes.make_dirs(self.directory)
        # Never through a link, never a file with other hard links (file_writes.open_lock_file).
        fd = file_writes.open_lock_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_record(fd)
            os.close(fd)
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                self.skipped = f"the filesystem of {self.directory} has no file locks ({err})"
                return None
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise self.error(f"{self.directory} is in use by {describe(holder)}; "
                             f"{self.hint}") from None
        if os.fstat(fd).st_nlink == 0:  # a refused holder removed the file it created: lock anew
            os.close(fd)
            return self.acquire()
        previous = _read_record(fd)
        if os.pread(fd, 1, 0) and "pid" not in previous:
            # Content that is no lock record was not written by a lock holder: it is not ours to
            # truncate.
            os.close(fd)
            raise file_writes.UnsafeWriteError(
                f"{self.path} holds something other than a lock record; t5core did not write it "
                "and will not overwrite it: move it away if it is yours")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                  "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (file_writes.json_text(record) + "\n").encode(), 0)
        self._fd = fd
        return previous or None

    def release(self, undo: bool = False) -> None:
        """Empties the file (a clean end) and releases the lock; a no-op when not held. `undo`
        (a refusal, which takes nothing): also removes the file, and the folder if it is empty,
        where `acquire` created them."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            if undo and self.path in self._created:  # while held, so no other holder loses it
                file_writes.remove(self.path, inside=self.directory)
                file_writes.remove_empty_folders(self._created[1:])
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __del__(self):
        # An object dropped while holding the lock (a Trainer never trained) frees it here, as
        # process exit would.
        self.release()


def describe(holder: dict | None) -> str:
    """'pid 123 on host h (started ...: python train.py ...)' for a lock record."""
    if not holder:
        return "another process (it has not written its pid yet)"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (started {when}"
    if holder.get("command"):
        text += f": {holder['command'][:200]}"
    return text + ")"


# What each field of a lock record is; a record is another process's file, so any other field
# (or type) is dropped rather than trusted by `describe`.
_RECORD_FIELDS = {"pid": int, "host": str, "started": (int, float), "command": str}


def _read_record(fd: int) -> dict:
    data = os.pread(fd, 65536, 0)
    try:
        record = file_reads.parse_json(data, "lock record", ValueError) if data.strip() else {}
    except ValueError:
        return {"command": "unreadable lock record"}
    if not isinstance(record, dict):
        return {"command": "unreadable lock record"} if record else {}
    kept = {k: v for k, v in record.items() if k in _RECORD_FIELDS
            and isinstance(v, _RECORD_FIELDS[k]) and not isinstance(v, bool)}
    if "started" in kept and not 0 <= kept["started"] < 2**40:  # localtime's range
        del kept["started"]
    if len(kept) < len(record):
        kept.setdefault("command", "a lock record with fields of the wrong type")
    return kept
