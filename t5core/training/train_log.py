"""model_dir/train_log.jsonl: one JSON object per line, appended by the trainer, read on resume;
a torn last line is expected and repaired (the rules: docs/architecture.md, "The train log")."""

from __future__ import annotations

from t5core import file_reads, file_writes
from t5core.errors import ModelDirError


def _parse(line: bytes) -> dict:
    # nonfinite: logs written before strict JSON hold a bare NaN loss.
    record = file_reads.parse_json(line, "line", ValueError, nonfinite=True)
    if not isinstance(record, dict):
        raise ValueError(f"a JSON {type(record).__name__}, not an object")
    return record


def read(path: str) -> list[dict]:
    """A train log's records in file order ([] if none). A torn last line (a killed or ongoing
    write) is left out; any other non-object line is a ModelDirError naming file and line."""
    if not file_reads.present(path):
        return []
    data = file_reads.read_bytes(path, ModelDirError)
    lines = data.split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(_parse(line))
        except ValueError as err:
            if number == len(lines):  # no newline after it: the torn tail
                continue
            raise ModelDirError(
                f"{path}:{number}: not a JSON record ({err}); the line is damaged. Delete it "
                "(the log is not needed to resume) and rerun.") from None
    return records


def repair(path: str) -> str:
    """Ends the file with a newline before appending; returns what it did ('' for nothing). A
    complete last record keeps its place; a torn one is dropped."""
    if not file_reads.present(path):
        return ""
    data = file_reads.read_bytes(path, ModelDirError)
    if not data or data.endswith(b"\n"):
        return ""
    start = data.rfind(b"\n") + 1
    tail = data[start:]
    try:
        _parse(tail)
    except ValueError:
        file_writes.write_bytes(path, data[:start])
        return (f"{path}: dropped a torn last line ({len(tail)} bytes of a record that a killed "
                "run did not finish writing)")
    file_writes.append_bytes(path, b"\n")
    return ""


def append(path: str, record: dict) -> None:
    """Appends one record and its newline in a single write (never through a link; a failed
    write leaves no part of the record behind: `file_writes.append_bytes`)."""
    file_writes.append_bytes(path, (file_writes.json_text(record) + "\n").encode("utf-8"))
