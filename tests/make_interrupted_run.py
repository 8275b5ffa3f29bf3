"""Writes tests/fixtures/interrupted_run/: a model_dir whose run was killed after step 3.

The fixture pins the training-checkpoint layout (`model/weights/<path with dots>`, dropout seed
states, optimizer slots, data position) that earlier t5core versions wrote, so later versions
are tested to still load and resume it. Run from the repository root:

    python tests/make_interrupted_run.py

It trains the same run twice: once to the end (step 5), recording the loss of every step, and
once killed when step 4 begins (after step 3's checkpoint and evaluation). The second run's
directory is the fixture; `expected.json` holds the first run's losses and the logits of the
step-3 model on `FEATURES`.
"""

import json
import os
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

import t5core
from t5core.data.pairs import batched
from t5core.training.trainer import TrainConfig, Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "interrupted_run")
CONFIG = t5core.T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=2, d_ff=32, num_layers=2,
                         num_decoder_layers=2, feed_forward_proj="gated-gelu",
                         tie_word_embeddings=False, dropout_rate=0.1)
SETTINGS = dict(train_steps=5, batch_size=8, inputs_length=12, targets_length=8, log_every=1,
                save_every=3, eval_every=3, eval_steps=0, progress_bar=False,
                optimizer="adafactor", learning_rate=1e-2, peak_flops=1e11, seed=0)
KILLED_AFTER = 3


def toy_features(n, seed):
    rng = np.random.default_rng(seed)
    enc = rng.integers(2, 64, (n, 12)).astype(np.int32)
    enc[:, -3:] = 0
    tgt = rng.integers(2, 64, (n, 8)).astype(np.int32)
    tgt[: n // 2, -2:] = 0
    return {"encoder_input_tokens": enc, "decoder_target_tokens": tgt,
            "decoder_input_tokens": np.concatenate([np.zeros((n, 1), np.int32), tgt[:, :-1]], 1),
            "decoder_loss_weights": (tgt > 0).astype(np.float32)}


def make_trainer(model_dir):
    """The run the fixture holds; the test builds it again the same way to resume."""
    config = TrainConfig(model_dir=model_dir, **SETTINGS)
    keras.utils.set_random_seed(config.seed)
    train = batched(toy_features(16, seed=0), config.batch_size, seed=1)
    evaluation = batched(toy_features(8, seed=1), config.batch_size, seed=1, repeat=False,
                         shuffle=False)
    return Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"),
                   lambda: t5core.T5Model(CONFIG), train, evaluation, log=lambda *a: None)


class Killed(Exception):
    pass


def main():
    scratch = tempfile.mkdtemp()
    whole = make_trainer(os.path.join(scratch, "whole"))
    losses = {r["step"]: r["loss"] for r in whole.train() if "loss" in r}

    killed = make_trainer(os.path.join(scratch, "killed"))
    original, calls = killed.train_step, []

    def step(batch):
        calls.append(1)
        if len(calls) > KILLED_AFTER:
            raise Killed
        return original(batch)

    killed.train_step = step
    try:
        killed.train()
    except Killed:
        pass
    features = {k: v[:2] for k, v in toy_features(2, seed=2).items()
                if k in ("encoder_input_tokens", "decoder_input_tokens")}
    logits = killed.model(features, training=False).numpy()
    shutil.rmtree(FIXTURE, ignore_errors=True)
    shutil.copytree(killed.config.model_dir, FIXTURE,
                    ignore=shutil.ignore_patterns("train", "eval"))  # (event files name the host)
    expected = {"killed_after_step": KILLED_AFTER, "losses": losses,
                "features": {k: v.tolist() for k, v in features.items()},
                "logits": logits.tolist(), "t5core_commit": sys.argv[1] if len(sys.argv) > 1
                else ""}
    with open(os.path.join(FIXTURE, "expected.json"), "w") as f:
        json.dump(expected, f)
    shutil.rmtree(scratch)
    print(f"wrote {FIXTURE}: losses {losses}")


if __name__ == "__main__":
    main()
