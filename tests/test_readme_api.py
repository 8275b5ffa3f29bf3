"""The README's "Python API" section runs as written, block after block, on a tiny checkpoint.

The blocks are read from README.md itself, so the README cannot drift from what works. The only
changes: the checkpoint path points at a tiny random model (with the real T5 SentencePiece
vocabulary), and `dev.jsonl`, which the README says the user has, is written from `dev_pairs`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import t5core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
VOCAB = os.path.join(ROOT, "tests", "fixtures", "t5_vocab", "spiece.model")
CKPT_LINE = 'ckpt = "/ckpt/flan-t5-small"'


def readme_api_blocks():
    with open(README) as f:
        text = f.read()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def tiny_checkpoint(directory):
    """An HF directory (config.json, model.safetensors, spiece.model) of a tiny random T5."""
    import keras

    keras.utils.set_random_seed(0)
    config = t5core.T5Config(vocab_size=32128, d_model=16, d_kv=4, num_heads=2, d_ff=32,
                             num_layers=1, num_decoder_layers=1, feed_forward_proj="gated-gelu",
                             tie_word_embeddings=False, dropout_rate=0.0)
    t5core.export_hf(t5core.T5Model(config), str(directory))
    shutil.copy(VOCAB, directory / "spiece.model")


def test_readme_python_api_runs_as_written(tmp_path):
    blocks = readme_api_blocks()
    assert len(blocks) == 5
    assert blocks[0].count(CKPT_LINE) == 1
    ckpt = tmp_path / "ckpt"
    tiny_checkpoint(ckpt)
    blocks[0] = blocks[0].replace(CKPT_LINE, f"ckpt = {str(ckpt)!r}")
    write_dev_file = textwrap.dedent("""
        with open("dev.jsonl", "w") as f:
            for x, y in dev_pairs:
                f.write(json.dumps({"inputs": x, "targets": y}) + "\\n")
    """)
    evaluate_block = next(i for i, b in enumerate(blocks) if "evaluate_task" in b)
    blocks.insert(evaluate_block, write_dev_file)
    checks = textwrap.dedent("""
        # What the blocks left behind, for the test to check.
        features = next(iter(dev))[0]
        np.save("logits.npy", model.predict(features, verbose=0))
        np.save("features.npy", features["encoder_input_tokens"].numpy())
        np.save("decoder.npy", features["decoder_input_tokens"].numpy())
        summary = {"epochs": len(history.history["loss"]),
                   "val_loss": history.history["val_loss"],
                   "predictions": predictions, "report": report, "table": table,
                   "tokens_shape": list(tokens.shape), "metrics": metrics,
                   "replicas": strategy.num_replicas_in_sync,
                   "reloaded_class": type(reloaded).__name__}
        with open("summary.json", "w") as f:
            json.dump(summary, f)
    """)
    program = "import json\nimport numpy as np\n" + "\n".join(blocks) + checks
    (tmp_path / "notebook.py").write_text(program)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "notebook.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "precision" in result.stdout and "macro avg" in result.stdout  # the printed table

    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    assert 1 <= summary["epochs"] <= 3 and all(np.isfinite(summary["val_loss"]))
    assert len(summary["predictions"]) == 2
    assert {"negative", "positive", "macro avg", "weighted avg"} <= set(summary["report"])
    assert summary["tokens_shape"] == [2, 4]
    assert set(summary["metrics"]) >= {"accuracy", "f1_macro"}
    assert summary["reloaded_class"] == "T5Model"
    run = tmp_path / "runs" / "notebook"
    assert (run / "best.weights.h5").exists() and (run / "logs").is_dir()
    assert (run / "model.keras").exists()
    assert (run / "saved_model" / "saved_model.pb").exists()

    # A fresh process loads the .keras file as the README says.
    reload = textwrap.dedent(f"""
        import numpy as np, t5core
        model = t5core.load_keras_model({str(run / "model.keras")!r})
        features = {{"encoder_input_tokens": np.load("features.npy"),
                     "decoder_input_tokens": np.load("decoder.npy")}}
        np.testing.assert_allclose(model.predict(features, verbose=0), np.load("logits.npy"),
                                   rtol=1e-5, atol=1e-6)
        print("reloaded", type(model).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", reload], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "reloaded T5Model" in result.stdout


def test_generate_pads_ragged_rows_and_refuses_text(tiny_config):
    import keras

    keras.utils.set_random_seed(0)
    model = t5core.T5Model(tiny_config)
    rows = [[5, 6, 7, 1], [9, 1]]
    ragged, _ = t5core.generate(model, rows, max_new_tokens=3)
    padded, _ = t5core.generate(model, np.array([[5, 6, 7, 1], [9, 1, 0, 0]]), max_new_tokens=3)
    np.testing.assert_array_equal(ragged.numpy(), padded.numpy())
    with pytest.raises(TypeError, match="generate_text"):
        t5core.generate(model, ["translate English to German: Hello."], max_new_tokens=3)
    with pytest.raises(TypeError, match=r"for one text pass \[text\]"):
        next(t5core.generate_text(model, t5core.ByteTokenizer(), "one text"))


def test_the_notebook_names_are_reachable_from_the_package():
    for name in ("pairs_dataset", "generate_text", "evaluate_task", "classification_report",
                 "compute_metrics", "export_saved_model", "make_optimizer", "load_keras_model"):
        assert name in t5core.__all__ and callable(getattr(t5core, name)), name
        assert getattr(t5core, name).__doc__, name
