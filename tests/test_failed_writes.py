"""A write the system refuses (disk full, file too large, read-only, folder gone) ends in one
WriteFailedError naming the file, and leaves what was there before intact.

The failures are real: RLIMIT_FSIZE makes every write past the limit fail with EFBIG (Python
ignores SIGXFSZ), as a full disk fails with ENOSPC.
"""

import contextlib
import errno
import os
import resource
import shutil

import pytest
import tensorflow as tf

from t5core import file_writes
from t5core.file_writes import WriteFailedError
from t5core.training import train_log

from test_resume_exact import make_trainer


@contextlib.contextmanager
def file_size_limit(size):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_whole_file_write_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("the old results")
    with file_size_limit(1000), pytest.raises(WriteFailedError) as raised:
        file_writes.write_bytes(str(target), b"x" * 5000)
    assert raised.value.errno == errno.EFBIG
    assert str(raised.value).startswith(f"could not write {target}: File too large; ")
    assert target.read_text() == "the old results"
    assert os.listdir(tmp_path) == ["results.json"]


def test_an_append_that_fails_takes_back_its_part_of_the_record(tmp_path):
    log = tmp_path / "train_log.jsonl"
    train_log.append(str(log), {"step": 1, "loss": 1.0})
    before = log.read_bytes()
    with file_size_limit(len(before) + 10), pytest.raises(WriteFailedError, match=str(log)):
        train_log.append(str(log), {"step": 2, "loss": 0.5, "note": "x" * 100})
    assert log.read_bytes() == before  # not a torn line that the next append would bury
    assert train_log.read(str(log)) == [{"step": 1, "loss": 1.0}]


def test_writes_into_a_folder_that_vanished_or_cannot_be_made(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    shutil.rmtree(gone)
    for write in (lambda: file_writes.write_text(str(gone / "run.json"), "{}"),
                  lambda: file_writes.append_bytes(str(gone / "train_log.jsonl"), b"{}\n"),
                  lambda: file_writes.open_lock_file(str(gone / "LOCK"))):
        with pytest.raises(WriteFailedError, match=rf"could not write {gone}/\S+: No such file"):
            write()
    (tmp_path / "a_file").write_text("")
    with pytest.raises(WriteFailedError, match=r"could not write .*a_file/run: Not a directory"):
        file_writes.make_dirs(str(tmp_path / "a_file" / "run"))


def test_an_error_of_the_callers_own_passes_through_the_writer_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError):
        with file_writes.atomic_writer(str(tmp_path / "out")) as f:
            f.write(b"partial")
            open(tmp_path / "missing")  # the caller's read, not the write
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_save_that_fails_names_it_and_the_intact_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path / "run", train_steps=4, save_every=2, eval_every=0)
    save = trainer.manager.save
    limited = []

    def save_under_a_limit(checkpoint_number):
        if checkpoint_number == 4:  # the second save fails as on a full disk
            with file_size_limit(4096):
                limited.append(checkpoint_number)
                return save(checkpoint_number=checkpoint_number)
        return save(checkpoint_number=checkpoint_number)

    trainer.manager.save = save_under_a_limit
    with pytest.raises(WriteFailedError) as raised:
        trainer.train()
    run = tmp_path / "run"
    assert limited == [4]
    assert str(raised.value).startswith(f"could not write {run}/ckpt-4: File too large; the last "
                                        f"complete checkpoint ({run}/ckpt-2) is intact")
    trainer.run_dir.lock.release()
    latest = tf.train.latest_checkpoint(str(run))
    assert latest.endswith("ckpt-2")
    assert int(tf.train.load_checkpoint(latest).get_tensor(
        "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == 2
