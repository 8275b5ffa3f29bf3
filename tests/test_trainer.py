"""The trainer: strategies agree, accumulation is exact, resume continues, bad input is caught."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core.training import train_log
from t5core.data.pairs import batched
from t5core.training.run import RunOptions, run
from t5core.errors import FlagError, ModelDirError
from t5core.model_dir import ModelDirMismatchError
from t5core.training.trainer import (NonFiniteLossError, NonFiniteWeightsError, TrainConfig,
                                     Trainer)
from conftest import mirrored

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = t5core.T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=2, d_ff=32, num_layers=2,
                         num_decoder_layers=2, feed_forward_proj="gated-gelu",
                         tie_word_embeddings=False, dropout_rate=0.0)


def toy_features(n=64, inputs_length=12, targets_length=8, seed=0):
    rng = np.random.default_rng(seed)
    enc = rng.integers(2, 64, (n, inputs_length)).astype(np.int32)
    enc[:, -3:] = 0  # some padding
    tgt = rng.integers(2, 64, (n, targets_length)).astype(np.int32)
    tgt[: n // 2, -2:] = 0
    return {"encoder_input_tokens": enc, "decoder_target_tokens": tgt,
            "decoder_input_tokens": np.concatenate([np.zeros((n, 1), np.int32), tgt[:, :-1]], 1),
            "decoder_loss_weights": (tgt > 0).astype(np.float32)}


def make_trainer(tmp_path, strategy, name, model_config=CONFIG, **overrides):
    settings = dict(model_dir=str(tmp_path / name), train_steps=5, batch_size=8,
                    inputs_length=12, targets_length=8, log_every=1, save_every=0,
                    progress_bar=False, optimizer="adafactor", learning_rate=1e-2,
                    peak_flops=1e11)
    settings.update(overrides)
    config = TrainConfig(**settings)
    keras.utils.set_random_seed(config.seed)  # model init and tf.data's shuffle use it
    data = batched(toy_features(), config.batch_size, seed=1)
    return Trainer(config, strategy, lambda: t5core.T5Model(model_config), data,
                   log=lambda *a: None)


def losses(history):
    return np.array([r["loss"] for r in history if "loss" in r and "eval/eval_loss" not in r])


def test_mirrored_on_two_devices_gives_the_one_device_loss_curve(tmp_path):
    one = make_trainer(tmp_path, tf.distribute.OneDeviceStrategy("/cpu:0"), "one")
    two = make_trainer(tmp_path, mirrored(), "mirrored")
    assert two.strategy.num_replicas_in_sync == 2
    a, b = losses(one.train()), losses(two.train())
    assert len(a) == 5 and a[-1] < a[0]  # it learns
    np.testing.assert_allclose(b, a, rtol=1e-5)
    for v, w in zip(one.model.trainable_variables, two.model.trainable_variables):
        np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-4, atol=1e-6)


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    whole = make_trainer(tmp_path, strategy, "whole", train_steps=2, optimizer="adamw",
                         learning_rate=1e-3)
    accum = make_trainer(tmp_path, strategy, "accum", train_steps=2, optimizer="adamw",
                         learning_rate=1e-3, grad_accum_steps=4)
    np.testing.assert_allclose(losses(accum.train()), losses(whole.train()), rtol=1e-5)
    for v, w in zip(whole.model.trainable_variables, accum.model.trainable_variables):
        np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-4, atol=1e-6)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    trainer = make_trainer(tmp_path, strategy, "nan", train_steps=6, save_every=2,
                           optimizer="adamw", learning_rate=1e-3)
    original = trainer.train_step
    calls = {"n": 0}

    def poisoned(batch):  # the fourth step's data carries an infinite loss weight
        calls["n"] += 1
        if calls["n"] == 4:
            batch = dict(batch, decoder_loss_weights=batch["decoder_loss_weights"] * np.inf)
        return original(batch)

    trainer.train_step = poisoned
    with pytest.raises(NonFiniteLossError, match="Step 4"):
        trainer.train()
    assert trainer.manager.latest_checkpoint.endswith("ckpt-2")
    reader = tf.train.load_checkpoint(trainer.manager.latest_checkpoint)
    saved = [n for n, _ in tf.train.list_variables(trainer.manager.latest_checkpoint)
             if n.startswith(("model/", "optimizer/"))
             and reader.get_variable_to_dtype_map()[n].is_floating]
    assert len(saved) > len(trainer.model.trainable_variables)
    assert all(np.all(np.isfinite(reader.get_tensor(n))) for n in saved)


def test_skip_nonfinite_skips_the_update(tmp_path):
    strategy = mirrored()
    trainer = make_trainer(tmp_path, strategy, "skip", train_steps=3, skip_nonfinite=True,
                           optimizer="adamw", learning_rate=1e-3)
    batch = next(trainer.train_iterator)
    trainer.train_step(batch)
    before = [v.numpy().copy() for v in trainer.model.trainable_variables]
    bad = dict(batch, decoder_loss_weights=batch["decoder_loss_weights"] * np.inf)
    sums = trainer.train_step(bad)
    assert not np.isfinite(float(sums["loss"]))
    after = [v.numpy() for v in trainer.model.trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(after, before))
    assert trainer.step == 1  # the skipped step did not count
    trainer.train_step(batch)
    assert trainer.step == 2


def test_skip_nonfinite_gives_up_after_max_nonfinite_skips(tmp_path):
    trainer = make_trainer(tmp_path, tf.distribute.OneDeviceStrategy("/cpu:0"), "skips",
                           train_steps=50, skip_nonfinite=True, max_nonfinite_skips=3,
                           optimizer="adamw", learning_rate=1e-3)
    original = trainer.train_step
    calls = {"n": 0}

    def poisoned(batch):  # from the second step on, every loss is infinite: the run is stuck
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError(f"still at step {trainer.step} after {calls['n']} steps")
        if calls["n"] >= 2:
            batch = dict(batch, decoder_loss_weights=batch["decoder_loss_weights"] * np.inf)
        return original(batch)

    trainer.train_step = poisoned
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps"):
        trainer.train()
    assert calls["n"] == 4 and trainer.step == 1


def test_a_checkpoint_of_nonfinite_weights_is_never_written(tmp_path):
    trainer = make_trainer(tmp_path, tf.distribute.OneDeviceStrategy("/cpu:0"), "nanweights",
                           train_steps=4, save_every=1, optimizer="adamw", learning_rate=1e-3)
    original = trainer.train_step
    calls = {"n": 0}

    def breaking(batch):  # the second update leaves a NaN weight behind a finite loss
        calls["n"] += 1
        sums = original(batch)
        if calls["n"] == 2:
            weight = trainer.model.trainable_variables[0]
            weight.assign(np.full(weight.shape, np.nan, np.float32))
        return sums

    trainer.train_step = breaking
    with pytest.raises(NonFiniteWeightsError, match="Step 2: the weights hold NaN"):
        trainer.train()
    assert trainer.manager.latest_checkpoint.endswith("ckpt-1")
    assert not tf.io.gfile.glob(os.path.join(trainer.config.model_dir, "ckpt-2*"))


def test_a_trainer_refuses_a_state_file_naming_checkpoints_outside_its_model_dir(tmp_path):
    outside = tmp_path / "other_run"
    outside.mkdir()
    tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(outside / "ckpt-7"))
    run_dir = tmp_path / "escape"
    run_dir.mkdir()
    CONFIG.to_json(str(run_dir / "config.json"))  # a model_dir of this model, but for the state
    (run_dir / "checkpoint").write_text(
        f'model_checkpoint_path: "{outside}/ckpt-7"\nall_model_checkpoint_paths: '
        f'"{outside}/ckpt-7"\nall_model_checkpoint_timestamps: 1.0\n'
        'last_preserved_timestamp: 0.5\n')
    with pytest.raises(ModelDirError, match="outside .*resumes only from checkpoints inside"):
        make_trainer(tmp_path, tf.distribute.OneDeviceStrategy("/cpu:0"), "escape",
                     keep_checkpoints=1)
    assert sorted(p.name for p in outside.iterdir()) == ["ckpt-7.data-00000-of-00001",
                                                          "ckpt-7.index"]


def test_a_learning_rate_not_finite_in_float32_is_refused_at_flag_time():
    for value in (1e39, -1e39, 5e38):
        with pytest.raises(FlagError, match="--learning_rate=.* is not finite in float32"):
            TrainConfig(learning_rate=value).check()
    with pytest.raises(FlagError, match="--clip_norm=.* is not finite in float32"):
        TrainConfig(clip_norm=1e40).check()
    TrainConfig(learning_rate=3e38).check()  # the float32 maximum is 3.4e38


def test_bad_configurations_fail_before_training(tmp_path):
    strategy = mirrored()
    with pytest.raises(ValueError, match="not divisible by replicas"):
        make_trainer(tmp_path, strategy, "odd", batch_size=7)
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    make_trainer(tmp_path, one, "shared").train()
    with pytest.raises(ModelDirMismatchError, match="d_model: saved 16, now 24"):
        make_trainer(tmp_path, one, "shared", model_config=CONFIG.replace(d_model=24))
    with pytest.raises(ValueError, match="--init_checkpoint=.*does not exist"):
        run(RunOptions(init_checkpoint=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="only one of --task, --mixture, --train_file"):
        run(RunOptions(task="sst2", train_file=__file__))
    vocab = os.path.join(ROOT, "tests", "fixtures", "t5_vocab", "spiece.model")
    with pytest.raises(ValueError, match="32100 ids but the model only 384"):
        run(RunOptions(vocab=vocab))


def _train_cmd(model_dir, *extra):
    return [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--model_dir={model_dir}",
            "--train_steps=30", "--save_every=10", "--eval_every=0", "--eval_examples=4",
            "--log_every=5", "--batch_size=16", "--dropout_rate=0.1", "--progress_bar=false",
            "--inputs_length=24", "--targets_length=12", "--warmup_steps=5", *extra]


def _logged_losses(model_dir):
    """{step: loss}; a resumed run rewrites later steps, and the last record of a step counts."""
    return {record["step"]: record["loss"]
            for record in train_log.read(os.path.join(model_dir, "train_log.jsonl"))
            if "loss" in record}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """{step: loss} of the 30-step run the interrupted runs below must reproduce."""
    model_dir = tmp_path_factory.mktemp("uninterrupted") / "full"
    subprocess.run(_train_cmd(model_dir), check=True, capture_output=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return _logged_losses(model_dir)


def _wait_for_step(model_dir, step, process, timeout=300):
    log, deadline = model_dir / "train_log.jsonl", time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if log.exists() and max(_logged_losses(model_dir), default=0) >= step:
            return
        time.sleep(0.05)
    raise AssertionError(f"{model_dir} never reached step {step}")


def test_kill_9_then_resume_continues_the_loss_curve(tmp_path, uninterrupted):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(_train_cmd(killed_dir), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _wait_for_step(killed_dir, 14, process)  # kill once it is past the step-10 checkpoint
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = max(_logged_losses(killed_dir))
    assert 14 <= interrupted_at < 30
    subprocess.run(_train_cmd(killed_dir), check=True, env=env, capture_output=True)
    resumed = _logged_losses(killed_dir)
    assert sorted(resumed) == list(range(1, 31))
    np.testing.assert_array_equal([resumed[s] for s in range(1, 31)],
                                  [uninterrupted[s] for s in range(1, 31)])


def test_sigterm_saves_the_step_and_the_same_command_resumes_exactly(tmp_path, uninterrupted):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    model_dir = tmp_path / "preempted"
    process = subprocess.Popen(_train_cmd(model_dir), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for_step(model_dir, 14, process)  # past the step-10 checkpoint, before step 20's
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    stopped_at = max(_logged_losses(model_dir))
    assert 14 <= stopped_at < 30
    # The step reached is saved: nothing is lost, and the output says how to go on.
    assert tf.train.latest_checkpoint(str(model_dir)).endswith(f"ckpt-{stopped_at}")
    assert f"Stopped by SIGTERM after step {stopped_at}" in out
    assert "To resume, run the same command again: " in out and "--model_dir=" in out
    assert json.loads((model_dir / "results.json").read_text())["stopped_by"] == "SIGTERM"
    out = subprocess.run(_train_cmd(model_dir), check=True, env=env, capture_output=True,
                         text=True).stdout
    assert f"at step {stopped_at}" in out  # "Resumed from .../ckpt-N at step N"
    resumed = _logged_losses(model_dir)
    assert sorted(resumed) == list(range(1, 31))
    np.testing.assert_array_equal([resumed[s] for s in range(1, 31)],
                                  [uninterrupted[s] for s in range(1, 31)])
    assert "stopped_by" not in json.loads((model_dir / "results.json").read_text())


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# Long enough for a SIGTERM to arrive mid-run and for the workers to agree on a step (the
# preemption handler polls once a second); still a few seconds on two workers.
MW_FLAGS = ["--train_steps=80", "--save_every=0", "--eval_every=0", "--eval_examples=0",
            "--log_every=1", "--batch_size=8", "--progress_bar=false", "--inputs_length=24",
            "--targets_length=12", "--warmup_steps=2", "--schedule=constant"]


def _start_workers(model_dir, flags=MW_FLAGS):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
               f"--model_dir={model_dir}", "--strategy=multi_worker", *flags]
        processes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    return processes


def _finish_workers(processes):
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs[0][-3000:] + outputs[1][-3000:]
    return outputs


@pytest.fixture(scope="module")
def two_workers_uninterrupted(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("mw") / "mw"
    chief_output = _finish_workers(_start_workers(model_dir))[0]
    # The run says what it trains on, so a user sees that both workers joined.
    assert "2 replicas (MultiWorkerMirroredStrategy): --batch_size=8 is the global batch, 4 " \
        "rows per replica" in chief_output
    return _logged_losses(model_dir)


def test_two_workers_with_tf_config_train_and_agree(tmp_path, two_workers_uninterrupted):
    chief = two_workers_uninterrupted
    assert sorted(chief) == list(range(1, 81))
    # The same steps on one device: the two workers computed exactly this.
    single = tmp_path / "single"
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"),
                    f"--model_dir={single}", "--strategy=one_device", *MW_FLAGS[1:],
                    "--train_steps=10"], check=True, capture_output=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    one = _logged_losses(single)
    np.testing.assert_allclose([chief[s] for s in range(1, 11)], [one[s] for s in range(1, 11)],
                               rtol=1e-5)


def _free_port_pair():
    """A port P with P + 1 free too (a Slurm node's two tasks take consecutive ports)."""
    for _ in range(50):
        port = _free_port()
        with socket.socket() as s:
            try:
                s.bind(("localhost", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def test_two_slurm_tasks_train_the_same_steps_as_with_tf_config(tmp_path,
                                                                two_workers_uninterrupted):
    """A two-task srun step on this machine: the Slurm variables srun would set, a stub scontrol
    on PATH (a resolver that asks Slurm for the host names gets this machine's), no TF_CONFIG."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "scontrol"
    stub.write_text("#!/bin/sh\n[ \"$1 $2\" = \"show hostnames\" ] && echo localhost\n")
    stub.chmod(0o755)
    model_dir = tmp_path / "slurm"
    port = _free_port_pair()
    base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    processes = []
    for rank in range(2):
        env = dict(base, SLURM_PROCID=str(rank), SLURM_STEP_NUM_TASKS="2",
                   SLURM_STEP_NODELIST="localhost", SLURM_STEP_TASKS_PER_NODE="2",
                   SLURM_JOB_ID="4242", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                   TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
               f"--model_dir={model_dir}", "--cluster_resolver=slurm",
               f"--slurm_port_base={port}", *MW_FLAGS]
        processes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    _finish_workers(processes)
    losses = _logged_losses(model_dir)
    assert sorted(losses) == list(range(1, 81))
    np.testing.assert_array_equal([losses[s] for s in range(1, 81)],
                                  [two_workers_uninterrupted[s] for s in range(1, 81)])
    # Both tasks took part: the non-chief saved the same last step in its own folder.
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-80")
    assert tf.train.latest_checkpoint(str(model_dir / "worker_1_tmp")).endswith("ckpt-80")


def test_a_cluster_resolver_without_its_environment_is_one_line_before_training(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
           f"--model_dir={tmp_path / 'm'}", "--cluster_resolver=slurm", "--train_steps=1"]
    proc = subprocess.run(cmd, env=dict(env, SLURM_PROCID="0", TF_CPP_MIN_LOG_LEVEL="2"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert ("error: Bad flags: --cluster_resolver=slurm needs the variables srun sets for each task; "
            "missing: SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST, SLURM_STEP_TASKS_PER_NODE"
            ) in proc.stderr
    assert not (tmp_path / "m").exists()


def test_sigterm_to_one_worker_saves_the_same_step_on_both_and_resumes_exactly(
        tmp_path, two_workers_uninterrupted):
    model_dir = tmp_path / "mw_preempted"
    processes = _start_workers(model_dir)
    _wait_for_step(model_dir, 5, processes[0])
    processes[1].send_signal(signal.SIGTERM)  # the non-chief: the chief learns it from the cluster
    chief_out, _ = _finish_workers(processes)  # (only the chief logs)
    saved = tf.train.latest_checkpoint(str(model_dir))
    stopped_at = int(saved.rsplit("-", 1)[1])
    assert 5 <= stopped_at < 80
    assert max(_logged_losses(model_dir)) == stopped_at  # the chief trained no step unsaved
    assert tf.train.latest_checkpoint(str(model_dir / "worker_1_tmp")).endswith(
        f"ckpt-{stopped_at}")  # both workers saved the same step
    assert f"Stopped by the preemption of another worker after step {stopped_at}" in chief_out
    assert "To resume, run the same command again" in chief_out
    outputs = _finish_workers(_start_workers(model_dir))
    assert f"at step {stopped_at}" in outputs[0]
    resumed = _logged_losses(model_dir)
    assert sorted(resumed) == list(range(1, 81))
    np.testing.assert_array_equal([resumed[s] for s in range(1, 81)],
                                  [two_workers_uninterrupted[s] for s in range(1, 81)])


# -- every example counted once, with the same weight --------------------------------------------


def _eval_totals(step, dataset):
    totals = None
    for batch in dataset:
        sums = step(batch)
        totals = sums if totals is None else {k: totals[k] + sums[k] for k in sums}
    return {k: float(v) for k, v in totals.items()}


def test_evaluation_counts_every_example_once_per_token_on_any_layout():
    """The embedded task set's eval batches split over replicas as training's do (7 examples in
    batches of 8 over 2 replicas once lost a row), and the eval loss is the cross-entropy per
    target token whatever the training objective (sequence weighting, z-loss, smoothing):
    equal to one device scoring one example at a time."""
    from t5core.data.trainer_inputs import embedded_inputs
    from t5core.losses import cross_entropy_loss
    from t5core.model_inputs import model_features
    from t5core.training.steps import StepBuilder

    tokenizer = t5core.load_tokenizer("byte")
    config = t5core.T5Config(vocab_size=384, d_model=16, d_kv=4, num_heads=2, d_ff=32,
                             num_layers=1, num_decoder_layers=1, dropout_rate=0.0)
    keras.utils.set_random_seed(0)
    strategy = mirrored()
    with strategy.scope():
        model = t5core.T5Model(config)
    _, eval_data, _ = embedded_inputs(tokenizer, 24, 12, 8, 0, eval_examples=7)
    rows = [{k: v[i:i + 1] for k, v in batch.items()} for batch in eval_data
            for i in range(8) if int(tf.reduce_sum(batch["decoder_loss_weights"][i]))]
    assert len(rows) == 7
    expected = {"loss_sum": 0.0, "num_tokens": 0.0, "correct": 0.0}
    for row in rows:
        _, aux = cross_entropy_loss(model(model_features(row)), row["decoder_target_tokens"],
                                    row["decoder_loss_weights"])
        for key in expected:
            expected[key] += float(aux[key])
    for objective in ({}, {"loss_normalization": "sequences"}, {"z_loss": 1e-2},
                      {"label_smoothing": 0.1}):
        step = StepBuilder(model, keras.optimizers.SGD(0.1), strategy, num_replicas=2,
                           fuse_update=False, **objective).eval_step()
        totals = _eval_totals(step, eval_data)
        assert totals["num_tokens"] == expected["num_tokens"] and \
            totals["correct"] == expected["correct"], objective
        np.testing.assert_allclose(totals["loss_sum"], expected["loss_sum"], rtol=1e-5,
                                   err_msg=str(objective))


def test_a_batch_that_does_not_split_evenly_is_refused_not_cut():
    from t5core.training.distribute import batch_slice

    with pytest.raises(ValueError, match="a batch of 7 rows does not split into 2 equal slices"):
        batch_slice(tf.zeros([7, 3]), 0, 2)
    assert batch_slice(tf.zeros([8, 3]), 1, 2).shape == (4, 3)
