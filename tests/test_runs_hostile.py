"""Hostile runs: a second trainer, killed trainers, signals, torn logs, bad flags, bad rows.

Each test here failed before its fix. The loss-curve tests of an interrupted run (SIGTERM on one
device and on two workers, kill -9) are in test_trainer.py.
"""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from t5core.errors import DataError, FlagError, ModelDirError
from t5core.locking import DirectoryLock
from t5core.training import run as run_module
from t5core.training import train_log
from t5core.training.preemption import Preemption
from t5core.training.run import RunOptions
from t5core.training.trainer import TrainConfig

from test_trainer import (ROOT, _logged_losses, _start_workers, _train_cmd, _wait_for_step,
                          losses, make_trainer)

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
_ONE = []


def one_device():
    if not _ONE:
        _ONE.append(tf.distribute.OneDeviceStrategy("/cpu:0"))
    return _ONE[0]


# -- the model_dir lock ----------------------------------------------------------------------------


def test_a_second_trainer_on_a_model_dir_in_use_is_refused_naming_the_holder(tmp_path):
    first = make_trainer(tmp_path, one_device(), "run", train_steps=3)
    holder = rf"pid {os.getpid()} on host {re.escape(socket.gethostname())}"
    with pytest.raises(ModelDirError, match=rf"run is in use by {holder}"):
        make_trainer(tmp_path, one_device(), "run", train_steps=3)
    assert len(losses(first.train())) == 3
    # train() ended and released the lock: the same model_dir trains on, from step 3.
    again = make_trainer(tmp_path, one_device(), "run", train_steps=5)
    assert [r["step"] for r in again.train()] == [4, 5]


LOCK_AND_SLEEP = """
import sys, time
from t5core.errors import ModelDirError
from t5core.locking import DirectoryLock
lock = DirectoryLock(sys.argv[1], "LOCK", ModelDirError)
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", LOCK_AND_SLEEP, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(ENV, PYTHONPATH=ROOT))
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock = DirectoryLock(tmp_path, "LOCK", ModelDirError)
        with pytest.raises(ModelDirError, match=f"in use by pid {holder.pid} on host"):
            lock.acquire()
    finally:
        holder.kill()
        holder.wait()
    previous = lock.acquire()  # the kernel freed the killed holder's flock
    assert previous["pid"] == holder.pid and previous["host"] == socket.gethostname()
    lock.release()
    assert lock.acquire() is None  # a clean release leaves nothing to take over
    lock.release()


def _script(model_dir, *flags):
    """scripts/train.py, 60 quick steps saved every 5 (absl: a later flag overrides)."""
    return _train_cmd(model_dir, "--train_steps=60", "--save_every=5", "--eval_examples=0",
                      "--log_every=1", "--batch_size=8", "--inputs_length=16",
                      "--targets_length=8", "--warmup_steps=0", "--dropout_rate=0.0",
                      "--peak_flops=1e11", *flags)


def test_two_trainers_the_second_refused_then_kill_9_and_the_same_command_resumes(tmp_path):
    model_dir = tmp_path / "shared"
    first = subprocess.Popen(_script(model_dir), env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        _wait_for_step(model_dir, 2, first)
        second = subprocess.run(_script(model_dir), env=ENV, capture_output=True, text=True)
        assert second.returncode != 0
        assert f"is in use by pid {first.pid} on host {socket.gethostname()}" in second.stderr
        _wait_for_step(model_dir, 7, first)  # past the step-5 checkpoint
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    logged = _logged_losses(model_dir)
    assert len(logged) == max(logged)  # no step twice: the second run wrote nothing
    saved = int(tf.train.latest_checkpoint(str(model_dir)).rsplit("-", 1)[1])
    rerun = subprocess.run(_script(model_dir), env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Took over the lock of {model_dir} from pid {first.pid}" in rerun.stdout
    assert f"Resumed from {model_dir}/ckpt-{saved} at step {saved}" in rerun.stdout
    assert sorted(_logged_losses(model_dir)) == list(range(1, 61))


def test_two_workers_on_a_locked_model_dir_both_stop_none_waits_for_the_other(tmp_path):
    model_dir = tmp_path / "taken"
    lock = DirectoryLock(model_dir, "LOCK", ModelDirError)
    lock.acquire()  # another run (this process) holds the model_dir
    try:
        processes = _start_workers(model_dir)
        outputs = [p.communicate(timeout=600)[0] for p in processes]
    finally:
        lock.release()
    assert all(p.returncode not in (0, None) for p in processes)
    assert f"is in use by pid {os.getpid()} on host" in outputs[0]
    assert "the chief worker could not lock it" in outputs[1]


# -- signals ---------------------------------------------------------------------------------------


def _as_in_a_terminal():
    """Child-side: SIGINT handled by default (pytest may be a background job that ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_saves_the_step_and_exits_cleanly(tmp_path):
    model_dir = tmp_path / "ctrl_c"
    process = subprocess.Popen(_script(model_dir, "--train_steps=400", "--save_every=100"),
                               env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=_as_in_a_terminal)
    _wait_for_step(model_dir, 3, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "KeyboardInterrupt" not in err and "Traceback" not in err
    stopped_at = max(_logged_losses(model_dir))
    assert stopped_at < 100  # stopped long before the first periodic save, yet nothing lost:
    assert tf.train.latest_checkpoint(str(model_dir)).endswith(f"ckpt-{stopped_at}")
    assert f"Stopped by SIGINT after step {stopped_at}" in out


def test_a_second_sigint_aborts_without_saving():
    # As in a terminal (pytest may run as a background job, which ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        preemption = Preemption(strategy=None, manager=None, num_workers=1)
        with preemption:
            os.kill(os.getpid(), signal.SIGINT)
            assert preemption.signal_name == "SIGINT"
            with pytest.raises(KeyboardInterrupt, match="without saving"):
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with Preemption(strategy=None, manager=None, num_workers=1) as preemption:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == preemption._on_signal
    finally:
        signal.signal(signal.SIGINT, previous)


# -- checkpoint temp dirs left by killed saves -----------------------------------------------------


def test_temp_dirs_of_killed_saves_are_removed_at_start_and_nothing_else(tmp_path):
    model_dir = tmp_path / "run"
    for path in ("ckpt-7_temp", "best/ckpt-5_temp", "ckpt-7_template", "notes_temp"):
        (model_dir / path).mkdir(parents=True)
        (model_dir / path / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 100)
    (model_dir / "ckpt-8_temp").write_text("a file, not TF's directory")
    make_trainer(tmp_path, one_device(), "run")
    assert not (model_dir / "ckpt-7_temp").exists()
    assert not (model_dir / "best" / "ckpt-5_temp").exists()
    for kept in ("ckpt-7_template", "notes_temp", "ckpt-8_temp"):
        assert (model_dir / kept).exists()


# -- train_log.jsonl -------------------------------------------------------------------------------


def test_a_torn_last_line_of_the_train_log_is_dropped_and_the_run_resumes(tmp_path):
    make_trainer(tmp_path, one_device(), "run", train_steps=3, save_every=3,
                 eval_every=3).train()
    path = tmp_path / "run" / "train_log.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"step": 4, "lo')  # killed while writing the record of step 4
    history = make_trainer(tmp_path, one_device(), "run", train_steps=6, save_every=3,
                           eval_every=3).train()
    assert [r["step"] for r in history if "loss" in r] == [4, 5, 6]
    records = train_log.read(str(path))  # every line is whole: the torn one is gone
    assert path.read_bytes().count(b"\n") == len(records)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]


def test_train_log_repair_and_read(tmp_path):
    path = str(tmp_path / "train_log.jsonl")
    good = '{"step": 1, "loss": 2.0}\n'
    with open(path, "w") as f:
        f.write(good + '{"step": 2, "loss": 1.5}')  # whole, only its newline was lost
    assert train_log.repair(path) == ""
    train_log.append(path, {"step": 3, "loss": 1.0})
    assert [r["step"] for r in train_log.read(path)] == [1, 2, 3]
    with open(path, "a") as f:
        f.write('{"step": 4, "lo')
    assert [r["step"] for r in train_log.read(path)] == [1, 2, 3]  # a torn tail is skipped
    assert "dropped a torn last line" in train_log.repair(path)
    train_log.append(path, {"step": 4, "loss": 0.5})
    assert [r["step"] for r in train_log.read(path)] == [1, 2, 3, 4]
    with open(path, "w") as f:
        f.write(good + '{"step": 2, "lo{"step": 3, "loss": 1.0}\n' + good)
    with pytest.raises(ModelDirError, match=r"train_log\.jsonl:2: not a JSON record"):
        train_log.read(path)


# -- flags -----------------------------------------------------------------------------------------

BAD_FLAGS = [
    ("learning_rate", -1.0), ("learning_rate", 0.0), ("learning_rate", float("nan")),
    ("batch_size", 0), ("batch_size", -4), ("inputs_length", 0), ("targets_length", 0),
    ("grad_accum_steps", 0), ("train_steps", 0), ("label_smoothing", 1.0),
    ("label_smoothing", -0.1), ("z_loss", -1.0), ("z_loss", float("inf")),
    ("weight_decay", -0.1), ("clip_norm", -1.0), ("warmup_steps", -1), ("keep_checkpoints", 0),
    ("save_every", -1), ("log_every", 0), ("eval_steps", -1), ("early_stopping_patience", -1),
    ("seed", -1), ("loss_normalization", "bogus"), ("loss_normalization", "constant:0"),
    ("peak_flops", -1.0), ("optimizer", "sgd"), ("schedule", "step"),
]
BAD_RUN_FLAGS = [("dropout_rate", 1.0), ("dropout_rate", -0.5), ("eval_examples", -1),
                 ("peft_top_n", 0), ("lora_rank", 0), ("lora_alpha", -1.0), ("prompt_length", 0),
                 ("num_cpu_devices", 0), ("pooling", "max"), ("targets_field", ""),
                 ("cluster_resolver", "k8s"), ("slurm_port_base", 0)]


@pytest.fixture
def no_data(monkeypatch):
    """Fails the test if run() gets as far as building data or a strategy."""
    def refuse(*args, **kwargs):
        raise AssertionError("data or a strategy was built before the flags were checked")

    monkeypatch.setattr(run_module, "make_trainer_inputs", refuse)
    monkeypatch.setattr(run_module, "make_strategy", refuse)


@pytest.mark.parametrize("flag,value", BAD_FLAGS + BAD_RUN_FLAGS)
def test_every_bad_flag_is_a_flag_error_naming_it_before_any_work(tmp_path, no_data, flag,
                                                                  value):
    train = TrainConfig(model_dir=str(tmp_path / "run"))
    if flag in RunOptions.__dataclass_fields__:
        options = RunOptions(train=train, **{flag: value})
    else:
        setattr(train, flag, value)
        options = RunOptions(train=train)
    with pytest.raises(FlagError, match=f"--{flag}"):
        run_module.run(options)
    assert not (tmp_path / "run").exists()


def test_flags_that_only_conflict_together():
    with pytest.raises(FlagError, match="--batch_size=6 is not divisible by replicas x "
                                        "--grad_accum_steps = 2 x 2"):
        TrainConfig(model_dir="x", batch_size=6, grad_accum_steps=2).check(num_replicas=2)
    TrainConfig(model_dir="x", batch_size=8, grad_accum_steps=2).check(num_replicas=2)


def test_the_script_refuses_a_zero_batch_before_tensorflow_runs(tmp_path):
    out = subprocess.run(_script(tmp_path / "run", "--batch_size=0"), env=ENV,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "--batch_size must be >= 1 (got 0)" in out.stderr
    assert "ZeroDivisionError" not in out.stderr and "InvalidArgumentError" not in out.stderr


# -- data rows -------------------------------------------------------------------------------------


def _file_task(tmp_path, text, name="train.jsonl"):
    """The --train_file rows of `text` (a str; lone surrogates stand for non-UTF-8 bytes)."""
    from t5core.data.files import file_task

    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    task = file_task(str(path), "", "inputs", "targets", {"inputs": 16, "targets": 8}, [])
    return task.source.get_dataset("train")


GOOD = '{"inputs": "reverse: abc", "targets": "cba"}\n'


@pytest.mark.parametrize("row,message", [
    ('{"inputs": "x", "targets": null}', "field 'targets' is null"),
    ('{"inputs": "x", "targets": {"a": 1}}', "field 'targets' is an object"),
    ('{"inputs": "x", "targets": ["a", "b"]}', "field 'targets' is a list"),
    ('{"inputs": "x", "targets": ["a", null]}', "field 'targets' is null inside a list"),
    ('{"inputs": "x", "targets": true}', r"field 'targets' is a boolean \(true\)"),
    ('{"inputs": "x", "targets": NaN}', "NaN is not a JSON number"),
    ('{"inputs": "x", "targets": "a", "targets": "b"}', r"\['targets'\] given more than once"),
    ('{"inputs": "x"}', "missing field 'targets'"),
    ('["x", "y"]', "expected a JSON object, found a list"),
    ('{"inputs": "caf\udce9", "targets": "y"}', "not valid UTF-8"),
    ('{"inputs": "x", "targets": "  "}', "empty targets"),
])
def test_a_bad_jsonl_row_is_a_data_error_naming_file_and_line(tmp_path, row, message):
    with pytest.raises(DataError, match=rf"train\.jsonl:3: .*{message}"):
        _file_task(tmp_path, GOOD * 2 + row + "\n" + GOOD)


def test_what_a_jsonl_row_may_hold(tmp_path):
    rows = ("\ufeff" + GOOD + "\n   \n" + '{"inputs": "2 + 0.50 =", "targets": 2.50}\n'
            + '{"inputs": 12345678901234567890, "targets": "big"}\n')
    texts = [(r["inputs"].decode(), r["targets"].decode())
             for r in _file_task(tmp_path, rows).as_numpy_iterator()]
    # A byte-order mark and blank lines are skipped; numbers are kept as written.
    assert texts == [("reverse: abc", "cba"), ("2 + 0.50 =", "2.50"),
                     ("12345678901234567890", "big")]


def test_tsv_rows(tmp_path):
    texts = [(r["inputs"].decode(), r["targets"].decode()) for r in _file_task(
        tmp_path, "\ufeffinputs\ttargets\na b\tc\n\n", name="t.tsv").as_numpy_iterator()]
    assert texts == [("a b", "c")]  # the header is found despite the byte-order mark
    with pytest.raises(DataError, match=r"u\.tsv:3: malformed line: expected 2"):
        _file_task(tmp_path, "inputs\ttargets\na\tb\nonly one\n", name="u.tsv")


TEMPLATE_ROWS = {
    "classification": ('{"sentence": "good", "label": 1}', "label",
                       '{"label_words": ["negative", "positive"]}'),
    "ner": ('{"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}', "tokens", ""),
    "qa": ('{"question": "q?", "context": "c a", "answers": ["a"]}', "answers", ""),
    "translation": ('{"en": "hi", "de": "hallo"}', "de", ""),
    "summarization": ('{"document": "long text", "summary": "short"}', "summary", ""),
    "dialogue": ('{"turns": ["hi", "hello", "bye"], "response": "ciao"}', "turns", ""),
}


def _json_value(rng, depth=0):
    kind = rng.choice(["null", "bool", "int", "float", "str", "list", "object"][:7 - depth * 2])
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-5, 5)
    if kind == "float":
        return rng.choice([0.5, -1e300, 1e-7])
    if kind == "str":
        return rng.choice(["", " ", "B-PER", "O", "a", "négatif", "0", "1"])
    if kind == "list":
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["text", "speaker", "x"]): _json_value(rng, depth + 1)
            for _ in range(rng.randint(0, 2))}


@pytest.mark.parametrize("name", sorted(TEMPLATE_ROWS))
def test_templated_rows_of_any_json_type_render_or_name_file_and_line(tmp_path, name):
    """A seeded fuzz: 300 rows per template, each field replaced by a random JSON value."""
    from t5core.data.files import read_rows
    from t5core.data.templates import make_template

    good, field, args = TEMPLATE_ROWS[name]
    template = make_template(name, args)
    rng = random.Random(name)
    rows = [json.loads(good)]
    for _ in range(300):
        row = json.loads(good)
        row[rng.choice([field, *row])] = _json_value(rng)
        rows.append(row)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    errors = 0
    for row in read_rows(str(path)):
        try:
            rendered = template(row)
        except DataError as err:
            assert f"rows.jsonl line {row['_line']}" in str(err)
            errors += 1
            continue
        assert isinstance(rendered["inputs"], str) and rendered["targets"].strip()
    assert 0 < errors < 301  # the good row renders; the fuzz found bad rows


@pytest.mark.parametrize("name,row,message", [
    ("classification", '{"sentence": "bad", "label": null}', "label field 'label' .* got null"),
    ("ner", '{"tokens": null, "tags": ["O"]}', "field 'tokens' should be a list"),
    ("ner", '{"tokens": ["x"], "tags": {"a": 1}}', "field 'tags' should be a list"),
    ("qa", '{"question": "q?", "context": "c", "answers": null}', "answers field 'answers'"),
    ("dialogue", '{"turns": ["hi", null], "response": "r"}', "turn 1 of field 'turns'"),
])
def test_a_bad_templated_row_names_file_and_line(tmp_path, name, row, message):
    from t5core.data.files import templated_task
    from t5core.data.templates import make_template

    good, _, args = TEMPLATE_ROWS[name]
    path = tmp_path / "rows.jsonl"
    path.write_text(good + "\n" + row + "\n")
    with pytest.raises(DataError, match=rf"{message}.*rows\.jsonl line 2"):
        templated_task(str(path), "", make_template(name, args), {"inputs": 16, "targets": 8})
