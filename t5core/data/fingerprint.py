"""A fingerprint of a run's data files (size, mtime, SHA-256 of both ends), recorded in run.json so
that a resume notices changed data."""

from __future__ import annotations

import hashlib

import tensorflow as tf

from t5core.file_reads import open_file

_END = 1 << 20  # bytes hashed at each end of a file


def fingerprint(path: str) -> dict:
    """{"path", "size", "mtime", "ends_sha256"} of one file (local or gs://)."""
    digest = hashlib.sha256()
    with open_file(path) as f:  # first: stat would follow a link loop into a TF error
        stat = tf.io.gfile.stat(path)
        digest.update(f.read(_END))
        if stat.length > _END:
            f.seek(max(stat.length - _END, _END))
            digest.update(f.read(_END))
    return {"path": path, "size": int(stat.length), "mtime": int(stat.mtime_nsec),
            "ends_sha256": digest.hexdigest()}


def fingerprints(files: dict[str, str]) -> dict[str, dict]:
    """{flag: fingerprint} for the named files that are given ({flag: path}, "" skipped)."""
    return {flag: fingerprint(path) for flag, path in files.items() if path}


def changes(saved: dict, now: dict) -> tuple[list[str], list[str]]:
    """(changed, touched) data-file descriptions between two records: changed: another file,
    size or ends (or a flag only one has); touched: only the modification time differs."""
    changed, touched = [], []
    for flag in sorted(set(saved) | set(now)):
        old, new = saved.get(flag), now.get(flag)
        if old is None or new is None:
            changed.append(f"--{flag} {'added' if old is None else 'removed'}")
        elif (old.get("size"), old.get("ends_sha256")) != (new["size"], new["ends_sha256"]):
            changed.append(f"--{flag} {new['path']} ({old.get('size')} bytes then, "
                           f"{new['size']} now)")
        elif old.get("mtime") != new["mtime"]:
            touched.append(f"--{flag} {new['path']}")
    return changed, touched
