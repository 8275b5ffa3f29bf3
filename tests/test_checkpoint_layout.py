"""Training checkpoints written by an earlier t5core still load and resume.

`fixtures/interrupted_run/` is a model_dir that `tests/make_interrupted_run.py` wrote with the
code of the commit named in its `expected.json`, killed after step 3: its checkpoints hold the
model under `model/weights/<path with dots>` with the dropout seed states under
`model/rng_states/`.
"""

import json
import shutil

import numpy as np
import tensorflow as tf

import t5core
from make_interrupted_run import FIXTURE, make_trainer

EXPECTED = json.load(open(f"{FIXTURE}/expected.json"))


def _logits(model):
    features = {k: np.asarray(v, np.int32) for k, v in EXPECTED["features"].items()}
    return model(features, training=False).numpy()


def test_the_fixture_holds_the_layout_earlier_versions_wrote():
    names = [n for n, _ in tf.train.list_variables(f"{FIXTURE}/ckpt-3")]
    assert any(n.startswith("model/weights/encoder..block_0..self_attention..q..kernel")
               for n in names), names
    assert sum(n.startswith("model/rng_states/") for n in names) == 16  # one per dropout layer
    assert any(n.startswith("data/") for n in names) and any(n.startswith("optimizer/")
                                                             for n in names)


def test_load_pretrained_reads_an_earlier_run_and_its_best_checkpoint():
    expected = np.asarray(EXPECTED["logits"], np.float32)
    for location in (FIXTURE, f"{FIXTURE}/best"):
        model = t5core.load_pretrained(location)
        # float32 precision relative to the logits' scale: the expected values were computed on
        # another CPU, whose matmul kernels sum in another order.
        np.testing.assert_allclose(_logits(model), expected, rtol=1e-5,
                                   atol=1e-5 * float(np.abs(expected).max()), err_msg=location)


def test_an_earlier_run_resumes_where_it_stopped(tmp_path):
    model_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, model_dir)
    trainer = make_trainer(str(model_dir))
    logged = []
    trainer.log = logged.append
    history = trainer.train()
    assert any("at step 3" in line for line in logged), logged  # "Resumed from ... at step 3"
    resumed = {r["step"]: r["loss"] for r in history if "loss" in r}
    assert sorted(resumed) == [4, 5]
    # The same losses as the run that was never interrupted: weights, optimizer slots, data
    # position and dropout seeds all came back.
    np.testing.assert_allclose([resumed[4], resumed[5]],
                               [EXPECTED["losses"]["4"], EXPECTED["losses"]["5"]], rtol=1e-6)
