"""The write side's trust boundary: no write through a planted link, no deletion outside its
folder, no output that replaces a user's files or the command's own input.

One test per finding of the second hostile-input review that concerns writes; each failed before
t5core/file_writes.py owned the writes (BUILD_NOTES.md, "The write side's trust boundary").
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from t5core import cli, file_reads, file_writes, model_dir, serving
from t5core.checkpoints import export_hf, load_pretrained, write_tf_checkpoint
from t5core.classifier import T5EncoderClassifier
from t5core.commands import convert_checkpoint, generate
from t5core.errors import ModelDirError
from t5core.locking import DirectoryLock
from t5core.model_dir import checkpoint_manager
from t5core.peft import describe_structure
from t5core.training import train_log

REFERENCE = pathlib.Path(__file__).parent / "fixtures" / "reference"
SECRET = "the user's own file\n"


def victim(tmp_path) -> pathlib.Path:
    """A file outside every t5core folder that a planted link points to."""
    path = tmp_path / "elsewhere" / "precious.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(SECRET)
    return path


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    target = victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / model_dir.LOCK).symlink_to(target)
    with pytest.raises(file_writes.UnsafeWriteError, match="symbolic link"):
        DirectoryLock(str(run), model_dir.LOCK, ModelDirError).acquire()
    assert target.read_text() == SECRET


@pytest.mark.parametrize("kind", ["hard link", "not a lock record"])
def test_the_lock_never_truncates_a_file_it_did_not_create(tmp_path, kind):
    target = victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    if kind == "hard link":
        os.link(target, run / model_dir.LOCK)
    else:
        target = run / model_dir.LOCK
        target.write_text(SECRET)
    with pytest.raises(file_writes.UnsafeWriteError, match="LOCK"):
        DirectoryLock(str(run), model_dir.LOCK, ModelDirError).acquire()
    assert target.read_text() == SECRET


def test_the_lock_still_takes_over_from_a_killed_holder(tmp_path):
    (tmp_path / model_dir.LOCK).write_text('{"pid": 1, "host": "h", "started": 0}\n')
    lock = DirectoryLock(str(tmp_path), model_dir.LOCK, ModelDirError)
    assert lock.acquire()["pid"] == 1
    lock.release()


def test_run_json_and_its_temp_file_as_links_leave_their_targets_alone(tmp_path):
    target = victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / (model_dir.RUN + ".tmp")).symlink_to(target)  # the old fixed temp name
    model_dir.write_run(str(run), model_dir.RunDescription())
    assert target.read_text() == SECRET
    assert model_dir.read_run(str(run)) == model_dir.RunDescription()
    os.remove(run / model_dir.RUN)
    (run / model_dir.RUN).symlink_to(target)
    with pytest.raises(file_writes.UnsafeWriteError, match="symbolic link"):
        model_dir.write_run(str(run), model_dir.RunDescription())
    assert target.read_text() == SECRET


def test_a_train_log_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    target = victim(tmp_path)
    log = tmp_path / model_dir.TRAIN_LOG
    log.symlink_to(target)
    with pytest.raises(file_writes.UnsafeWriteError, match="symbolic link"):
        train_log.append(str(log), {"step": 1, "loss": 1.0})
    assert target.read_text() == SECRET
    target.write_text("no newline at its end")  # which repair would cut off as a torn record
    with pytest.raises(file_writes.UnsafeWriteError, match="symbolic link"):
        train_log.repair(str(log))
    assert target.read_text() == "no newline at its end"


def _checkpoint_files(folder: pathlib.Path, step: int) -> list[str]:
    checkpoint = tf.train.Checkpoint(v=tf.Variable(1.0))
    checkpoint.write(str(folder / f"ckpt-{step}"))
    return sorted(p.name for p in folder.glob(f"ckpt-{step}.*"))


def test_pruning_never_deletes_checkpoints_the_state_file_names_outside_the_model_dir(tmp_path):
    outside, run = tmp_path / "someone_elses_run", tmp_path / "run"
    outside.mkdir()
    run.mkdir()
    kept = _checkpoint_files(outside, 7)
    (run / model_dir.CHECKPOINT_STATE).write_text(
        f'model_checkpoint_path: "{outside}/ckpt-7"\n'
        f'all_model_checkpoint_paths: "{outside}/ckpt-7"\n'
        # (without timestamps TensorFlow would not consider ckpt-7 for pruning)
        'all_model_checkpoint_timestamps: 1.0\nlast_preserved_timestamp: 0.5\n')
    with pytest.raises(ModelDirError, match="outside .*resumes only from checkpoints inside"):
        manager = checkpoint_manager(tf.train.Checkpoint(v=tf.Variable(2.0)), str(run), 1)
        manager.save(checkpoint_number=8)  # max_to_keep=1 deletes ckpt-7
        manager.save(checkpoint_number=9)
    assert sorted(p.name for p in outside.glob("ckpt-7.*")) == kept
    (run / model_dir.CHECKPOINT_STATE).write_text('model_checkpoint_path: "../run/../x/ckpt-1"\n')
    with pytest.raises(ModelDirError, match="outside .*resumes only from checkpoints inside"):
        checkpoint_manager(tf.train.Checkpoint(v=tf.Variable(2.0)), str(run), 1)
    # Inside the model_dir but not a checkpoint the trainer wrote: a user's file, never pruned.
    (run / "notes.index").write_text("mine")
    (run / model_dir.CHECKPOINT_STATE).write_text('model_checkpoint_path: "notes"\n')
    with pytest.raises(ModelDirError, match="not a ckpt-N checkpoint of"):
        checkpoint_manager(tf.train.Checkpoint(v=tf.Variable(2.0)), str(run), 1)
    assert (run / "notes.index").read_text() == "mine"


@pytest.mark.parametrize("name", [model_dir.BEST, model_dir.TRAIN_EVENTS, model_dir.EVAL_EVENTS])
def test_a_run_folder_that_is_a_link_is_refused_before_anything_is_written_or_pruned(tmp_path,
                                                                                    name):
    # TensorFlow's checkpoint manager and summary writers write, rename and prune inside these
    # folders by themselves: a link there (a downloaded run's) would take them to another run.
    other, run = tmp_path / "my_other_run", tmp_path / "run"
    kept = _checkpoint_files(other, 3)
    (other / "ckpt-4_temp").mkdir()  # what opening a run removes in its own folders
    run.mkdir()
    (run / name).symlink_to(os.path.join("..", other.name))
    before = sorted(p.name for p in other.iterdir())
    strategy = tf.distribute.get_strategy()
    with pytest.raises(file_writes.UnsafeWriteError, match=f"{name} is a symbolic link"):
        model_dir.open_run(str(run), strategy)
    assert sorted(p.name for p in other.iterdir()) == before
    assert _checkpoint_files(other, 3) == kept
    (run / name).unlink()
    model_dir.open_run(str(run), strategy).lock.release()  # the refusal held no lock


def test_pruning_inside_the_model_dir_still_works(tmp_path):
    manager = checkpoint_manager(tf.train.Checkpoint(v=tf.Variable(2.0)), str(tmp_path), 1)
    manager.save(checkpoint_number=1)
    manager.save(checkpoint_number=2)
    manager = checkpoint_manager(tf.train.Checkpoint(v=tf.Variable(2.0)), str(tmp_path), 1)
    manager.save(checkpoint_number=3)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-3.index"]


def _convert(*argv) -> int:
    args, _ = cli.parse_flags(convert_checkpoint.define_flags, ["--quiet", *argv])
    return convert_checkpoint.convert(args)


@pytest.fixture(scope="module")
def two_exports(tmp_path_factory):
    """(new, old): a single-file HF export, and an older sharded one of another model."""
    root = tmp_path_factory.mktemp("exports")
    new, old = root / "new", root / "old"
    export_hf(load_pretrained(str(REFERENCE / "t5_v1_1_gated_gelu_untied")), str(new))
    export_hf(load_pretrained(str(REFERENCE / "gated_silu")), str(old), max_shard_size="20KB")
    assert (old / "model.safetensors.index.json").exists()
    return new, old


def _copy(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_convert_refuses_a_non_empty_output_and_keeps_the_users_files(tmp_path, two_exports,
                                                                      capsys):
    new, _ = two_exports
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text(SECRET)
    (out / "notes.txt").write_text(SECRET)
    assert _convert(f"--input={new}", f"--output={out}") == cli.USER_ERROR_STATUS
    assert "is not empty (config.json, notes.txt)" in capsys.readouterr().err
    assert (out / "config.json").read_text() == SECRET
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt"]


def test_convert_overwrite_replaces_an_older_sharded_export_and_only_it(tmp_path, two_exports):
    new, old = two_exports
    out = _copy(old, tmp_path / "out")
    (out / "notes.txt").write_text(SECRET)
    assert _convert(f"--input={new}", f"--output={out}", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors",
                                                      "notes.txt"]
    loaded, expected = load_pretrained(str(out)), load_pretrained(str(new))
    for a, b in zip(loaded.weights, expected.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_convert_refuses_to_write_over_its_input(tmp_path, two_exports, capsys):
    new, _ = two_exports
    source = _copy(new, tmp_path / "source")
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    assert _convert(f"--input={source}", f"--output={source}", "--overwrite") == \
        cli.USER_ERROR_STATUS
    assert "would destroy the input" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before


@pytest.mark.parametrize("same", ["the same path", "a link to it"])
def test_generate_refuses_an_output_file_that_is_its_input(tmp_path, two_exports, same):
    new, _ = two_exports
    texts = tmp_path / "in.txt"
    texts.write_text("first\nsecond\n")
    output = texts
    if same == "a link to it":
        output = tmp_path / "out.txt"
        output.symlink_to(texts)
    args, _ = cli.parse_flags(generate.define_flags, [
        f"--checkpoint={new}", "--vocab=byte", f"--input_file={texts}",
        f"--output_file={output}", "--max_new_tokens=2"])
    with pytest.raises(file_writes.OutputExistsError, match="would destroy the input"):
        generate.generate(args)
    assert texts.read_text() == "first\nsecond\n"


def test_generate_refuses_an_output_that_is_a_file_of_its_checkpoint(tmp_path, two_exports,
                                                                     capsys):
    # Not typed as an input: the program read it, finding it beside the checkpoint.
    new, _ = two_exports
    source = _copy(new, tmp_path / "source")
    before = (source / "config.json").read_bytes()
    status = generate.main([f"--checkpoint={source}", "--vocab=byte", "--input=hello",
                            f"--output_file={source / 'config.json'}", "--max_new_tokens=2"])
    assert status == cli.USER_ERROR_STATUS
    assert "is a file this program read" in capsys.readouterr().err
    assert (source / "config.json").read_bytes() == before


def test_no_output_replaces_a_file_the_program_read_however_it_was_named(tmp_path):
    from t5core import file_reads

    data = tmp_path / "data.txt"
    data.write_text(SECRET)
    file_writes.forget_reads()
    file_reads.read_bytes(str(data))
    link = tmp_path / "link.txt"
    link.symlink_to(data)
    for name in (data, link, tmp_path / "." / "data.txt"):
        with pytest.raises(file_writes.OutputExistsError, match="a file this program read"):
            file_writes.open_user_file(str(name))
    assert data.read_text() == SECRET
    file_writes.forget_reads()  # a new program: it has read nothing yet
    with file_writes.open_user_file(str(data)) as f:
        f.write("replaced")
    assert data.read_text() == "replaced"


def test_check_output_dir_names_only_owned_names_and_changes_nothing(tmp_path):
    (tmp_path / "model-00001-of-00002.safetensors").write_text("old")
    (tmp_path / "keep.txt").write_text(SECRET)
    with pytest.raises(file_writes.OutputExistsError, match="--overwrite"):
        file_writes.check_output_dir(str(tmp_path), False, model_dir.CONVERTED_OUTPUT_NAMES)
    replaced = file_writes.check_output_dir(str(tmp_path), True,
                                            model_dir.CONVERTED_OUTPUT_NAMES)
    assert replaced == ["model-00001-of-00002.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "keep.txt", "model-00001-of-00002.safetensors"]


def _new_output(folder, fail):
    with file_writes.new_output_dir(str(folder), True, model_dir.CONVERTED_OUTPUT_NAMES) as stage:
        pathlib.Path(stage, "config.json").write_text("new")
        if fail:
            raise ValueError("refused half-way")


def test_the_previous_output_is_replaced_only_once_the_new_one_is_written(tmp_path):
    """An output folder's previous contents go only once the new output is written whole: a
    refusal half-way leaves the folder as it was (and a new folder uncreated), no temp folder."""
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        _new_output(out, fail=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    out.mkdir()
    (out / "config.json").write_text("old")
    (out / "model.safetensors").write_text("old")
    (out / "README.txt").write_text(SECRET)
    with pytest.raises(ValueError):
        _new_output(out, fail=True)
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "config.json": "old", "model.safetensors": "old", "README.txt": SECRET}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    _new_output(out, fail=False)
    assert {p.name: p.read_text() for p in out.iterdir()} == {"config.json": "new",
                                                              "README.txt": SECRET}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _killed(out, owned, kill):
    """Runs new_output_dir(out, overwrite=True, owned) in a process killed (exit 9) while the
    new output is written ("writing") or after the first removal of the previous one."""
    code = f"""
import os, pathlib
from t5core import file_writes
remove = file_writes.remove
def remove_then_die(path, inside):
    remove(path, inside)
    os._exit(9)
with file_writes.new_output_dir({str(out)!r}, True, {tuple(owned)!r}) as stage:
    pathlib.Path(stage, "config.json").write_text("new")
    if {kill!r} == "writing":
        os._exit(9)
    file_writes.remove = remove_then_die
"""
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 9


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    _killed(out, model_dir.CONVERTED_OUTPUT_NAMES, "writing")
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".")  # beside the output it would have been
    _new_output(out, fail=False)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    out = tmp_path / "empty"
    out.mkdir()
    _killed(out, model_dir.CONVERTED_OUTPUT_NAMES, "writing")
    assert len(list(out.iterdir())) == 1  # inside the folder it replaces into
    with file_writes.new_output_dir(str(out), False, model_dir.CONVERTED_OUTPUT_NAMES) as stage:
        pathlib.Path(stage, "config.json").write_text("new")
    assert [p.name for p in out.iterdir()] == ["config.json"]


def test_an_interrupted_overwrite_is_refused_by_the_loaders_until_rerun(tmp_path, two_exports,
                                                                        capsys):
    new, old = two_exports
    out = _copy(old, tmp_path / "out")
    _killed(out, model_dir.CONVERTED_OUTPUT_NAMES, "replacing")
    assert (out / file_writes.INCOMPLETE).exists()
    with pytest.raises(file_writes.IncompleteOutputError, match="--overwrite .*was interrupted"):
        load_pretrained(str(out))
    with pytest.raises(file_writes.IncompleteOutputError, match="was interrupted; rerun"):
        serving.load(str(out))
    assert _convert(f"--input={new}", f"--output={out}") == cli.USER_ERROR_STATUS
    assert "--overwrite" in capsys.readouterr().err
    assert _convert(f"--input={new}", f"--output={out}", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    loaded, expected = load_pretrained(str(out)), load_pretrained(str(new))
    for a, b in zip(loaded.weights, expected.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_refused_conversion_leaves_no_output_folder(tmp_path, two_exports, capsys):
    new, _ = two_exports
    classifier = T5EncoderClassifier(load_pretrained(str(new)).config, num_classes=2)
    run = tmp_path / "clf"
    write_tf_checkpoint(classifier, str(run))
    model_dir.write_run(str(run), model_dir.RunDescription(**describe_structure(classifier)))
    out = tmp_path / "more" / "hf_clf"
    assert cli.command(convert_checkpoint.define_flags, convert_checkpoint.convert,
                       ["--quiet", f"--input={run}", f"--output={out}"]) == \
        cli.USER_ERROR_STATUS
    assert "classifier" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]


def test_a_refused_trainer_leaves_no_lock_behind(tmp_path):
    run = tmp_path / "run"
    lock = DirectoryLock(str(run), model_dir.LOCK, ModelDirError)
    lock.acquire()
    lock.release(undo=True)
    assert list(tmp_path.iterdir()) == []
    run.mkdir()
    (run / "ckpt-1.index").write_text("x")
    lock.acquire()
    lock.release(undo=True)
    assert [p.name for p in run.iterdir()] == ["ckpt-1.index"]
    lock.acquire()
    lock.release()  # a clean end keeps the (empty) lock file
    assert sorted(p.name for p in run.iterdir()) == [model_dir.LOCK, "ckpt-1.index"]
    lock.acquire()
    lock.release(undo=True)  # not created by this acquire: kept
    assert (run / model_dir.LOCK).exists()


def test_remove_refuses_a_path_outside_its_folder(tmp_path):
    target = victim(tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(file_writes.UnsafeWriteError, match="outside"):
        file_writes.remove(str(folder / ".." / "elsewhere" / "precious.txt"), inside=str(folder))
    (folder / "escape").symlink_to(target.parent)
    with pytest.raises(file_writes.UnsafeWriteError, match="outside"):
        file_writes.remove(str(folder / "escape" / "precious.txt"), inside=str(folder))
    assert target.read_text() == SECRET


def test_atomic_writer_leaves_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(SECRET)
    with pytest.raises(RuntimeError):
        with file_writes.atomic_writer(str(path)) as f:
            f.write(b"half")
            raise RuntimeError("killed")
    assert path.read_text() == SECRET
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left


def test_a_sweep_journal_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    from t5core.sweep import study

    target = victim(tmp_path)
    target.write_text("")  # an empty file passes as an empty journal: Optuna would append to it
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / study.JOURNAL).symlink_to(target)
    for create in (None, {"direction": "minimize"}):
        with pytest.raises(file_writes.UnsafeWriteError, match="symbolic link"):
            study.load_study(str(sweep_dir), create, log=lambda line: None)
    assert target.read_text() == ""
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_check_folder_inside_refuses_every_link_on_the_way_and_a_way_out(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "real" / "deeper").mkdir(parents=True)
    elsewhere.mkdir()
    file_writes.check_folder_inside(str(root / "real" / "deeper" / "new"), str(root))
    (root / "linked").symlink_to(elsewhere)
    with pytest.raises(file_writes.UnsafeWriteError, match="linked is a symbolic link"):
        file_writes.check_folder_inside(str(root / "linked" / "trial_1"), str(root))
    with pytest.raises(file_writes.UnsafeWriteError, match="is outside"):
        file_writes.check_folder_inside(str(tmp_path / "elsewhere"), str(root))


def test_a_user_s_output_file_is_replaced_whole_or_not_at_all(tmp_path):
    # generate streams its outputs: a failure (or a kill) half-way leaves the previous file.
    out = tmp_path / "out.txt"
    out.write_text(SECRET)
    link = tmp_path / "link.txt"
    link.symlink_to(out)
    file_writes.forget_reads()
    with pytest.raises(RuntimeError):
        with file_writes.open_user_file(str(link)) as f:
            f.write("first output\n")
            raise RuntimeError("the model failed half-way")
    assert out.read_text() == SECRET and sorted(p.name for p in tmp_path.iterdir()) == \
        ["link.txt", "out.txt"]
    with file_writes.open_user_file(str(link)) as f:
        f.write("新的\n")
    assert link.is_symlink() and out.read_text(encoding="utf-8") == "新的\n"


def test_every_output_is_one_line_and_reads_back_as_written():
    """Predictions and generate's outputs are one line each, whatever they hold (ByT5 can write
    any line break), and `line_text` undoes the escape: a literal backslash-n and a newline stay
    different texts. Plain text is written as it is."""
    texts = ["a\rb", "c\u2028d", "e\x85f", "g\\nh", "i\nj", "k\r", "\\", "plain 中文 text",
             "\x0b\x0c\x1c\x1d\x1e\u2029", "\\u2028 is six characters"]
    lines = [file_writes.one_line(t) for t in texts]
    assert "".join(line + "\n" for line in lines).splitlines() == lines
    assert [file_reads.line_text(line) for line in lines] == texts
    assert file_writes.one_line("plain 中文 text") == "plain 中文 text"
    assert file_writes.one_line("i\nj") == "i\\nj"
