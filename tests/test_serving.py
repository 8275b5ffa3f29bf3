"""The SavedModel and the generate script, each run in a fresh process."""

import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import t5core
from t5core import cli
from t5core.commands import export as export_command
from t5core.decoding import generate
from t5core.decoding.text import encode_inputs, generate_text, pad_batch
from t5core.errors import FlagError
from t5core.serving import export_saved_model
from t5core.tokenizer import ByteTokenizer, Tokenizer
from conftest import FIXTURES, REFERENCE

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB = FIXTURES / "t5_vocab" / "spiece.model"
MAX_INPUT, MAX_NEW = 9, 6
TEXTS = ["translate English to German: The house is wonderful.",  # longer than 9: truncated
         "Hello <extra_id_0> world</s>",
         "summarize: crews came",
         "x"]


def run_python(code, *args, stdin=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args] if code is None else
                          [sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, input=stdin, timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def tiny_model():
    # A random model over the real 32128-row vocabulary; the expected outputs are computed from
    # it in this process, never hard-coded.
    keras.utils.set_random_seed(0)
    config = t5core.T5Config(vocab_size=32128, d_model=16, d_kv=4, num_heads=2, d_ff=32,
                             num_layers=1, num_decoder_layers=2, relative_attention_num_buckets=8,
                             relative_attention_max_distance=16, dropout_rate=0.0,
                             feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    return t5core.T5Model(config)


SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # registers the SentencePiece ops the SavedModel uses
    texts = json.loads(sys.argv[1])
    result = {}
    for name, path in zip(("greedy", "beam"), sys.argv[2:]):
        serve = tf.saved_model.load(path).signatures["serving_default"]
        out = serve(inputs=tf.constant(texts))
        result[name] = {"outputs": [s.decode("utf-8") for s in out["outputs"].numpy()],
                        "scores": out["scores"].numpy().tolist(),
                        "truncated": out["truncated"].numpy().tolist()}
        with_empty = serve(inputs=tf.constant(["", "x", "   "]))
        result[name]["with_empty"] = {
            "outputs": [s.decode("utf-8") for s in with_empty["outputs"].numpy()],
            "scores": with_empty["scores"].numpy().tolist()}
        try:
            serve(inputs=tf.constant([], tf.string))
            result[name]["empty_batch"] = "no error"
        except tf.errors.InvalidArgumentError as e:
            result[name]["empty_batch"] = str(e)
    print("RESULT " + json.dumps(result))
""")


def test_saved_model_in_fresh_process_equals_generate_and_decode(tiny_model, tmp_path):
    tok = Tokenizer(str(VOCAB))
    settings = {"greedy": dict(method="greedy"), "beam": dict(method="beam", num_beams=3)}
    paths = []
    for name, kwargs in settings.items():
        paths.append(str(tmp_path / name))
        export_saved_model(tiny_model, tok, paths[-1], max_input_length=MAX_INPUT,
                           max_new_tokens=MAX_NEW, **kwargs)
    proc = run_python(SERVE_SCRIPT, json.dumps(TEXTS), *paths)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert "truncated (rows [0] )" in proc.stderr  # the stated truncation warning

    encoded = encode_inputs(tok, TEXTS, MAX_INPUT, truncate=True)
    for name, kwargs in settings.items():
        tokens, scores = generate(tiny_model, pad_batch(encoded, len(TEXTS)), MAX_NEW, **kwargs)
        expected = [tok.decode(row) for row in tokens.numpy()]
        assert served[name]["outputs"] == expected, name
        assert any(expected), "all outputs empty: the comparison proves little"
        np.testing.assert_allclose(served[name]["scores"], scores.numpy(), rtol=1e-4)
        too_long = [len(tok.encode(t, add_eos=True)) > MAX_INPUT for t in TEXTS]
        assert served[name]["truncated"] == too_long == [True, False, False, False]
        assert "empty request" in served[name]["empty_batch"]
        # An empty string gets an empty output; its batch's other rows are served as alone.
        with_empty = served[name]["with_empty"]
        assert with_empty["outputs"] == ["", expected[TEXTS.index("x")], ""], name
        assert with_empty["scores"][0] == with_empty["scores"][2] == 0.0


def test_export_refuses_a_non_empty_directory(tiny_model, tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        export_saved_model(tiny_model, Tokenizer(str(VOCAB)), str(tmp_path))
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1"):
        export_saved_model(tiny_model, Tokenizer(str(VOCAB)), str(tmp_path / "new"),
                           max_new_tokens=0)
    with pytest.raises(FlagError, match=r"max_new_tokens=1000000000 would need .* at most"):
        export_saved_model(tiny_model, Tokenizer(str(VOCAB)), str(tmp_path / "new"),
                           max_new_tokens=10**9)
    # A prompt per row cannot follow a request's rows: refused, never joined into one prompt.
    with pytest.raises(ValueError, match=r"one prompt \[prompt_length\] for every input"):
        export_saved_model(tiny_model, Tokenizer(str(VOCAB)), str(tmp_path / "new"),
                           decoder_prompt=[[5, 6], [7, 8]])


def test_export_overwrite_replaces_the_previous_savedmodel_only_once_the_new_one_is_written(
        tmp_path, capsys):
    # The checks that may refuse agree, and run before anything is removed: a refusal half-way
    # (here the decoding settings) keeps the previous SavedModel.
    def export(*argv):
        return cli.command(export_command.define_flags, export_command.export, [
            f"--checkpoint={REFERENCE / 'gated_silu'}", "--vocab=byte", f"--output_dir={out}",
            "--max_new_tokens=2", *argv])

    out = tmp_path / "exp"
    export()
    (out / "README.txt").write_text("note")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(FlagError, match="max_new_tokens"):
        export("--overwrite", "--max_new_tokens=1000000000")
    assert sorted(p.name for p in out.iterdir()) == before
    export("--overwrite")
    assert "--overwrite: replaced assets, fingerprint.pb, saved_model.pb, variables" in \
        capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temp folder left
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "README.txt").read_text() == "note"
    assert t5core.serving.load(str(out)).signatures["serving_default"] is not None


def test_outputs_that_reach_max_new_tokens_are_noted_once_and_kept_as_they_are():
    # A byte-level output cut inside a character's UTF-8 bytes decodes without it, maybe to "":
    # the user is told the limit cut outputs rather than left with a silent empty line.
    model, notes = t5core.load_pretrained(str(REFERENCE / "gated_silu")), []
    # "hello" ends at once (EOS first), "ab" is cut, "" decodes to "" without a search.
    texts = ["hello", "ab", ""]
    kept = list(generate_text(model, ByteTokenizer(), texts, max_new_tokens=1, batch_size=2,
                              jit_compile=False, note=notes.append))
    assert kept == list(generate_text(model, ByteTokenizer(), texts, max_new_tokens=1,
                                      batch_size=2, jit_compile=False))
    assert notes == ["1 output(s) reached max_new_tokens=1 before ending, so may be cut short "
                     "(a character whose bytes were cut is left out)"]


def test_generate_script_writes_one_line_per_input_and_empty_lines_stay_empty(
        tmp_path, monkeypatch, capsys):
    # The gated_silu fixture (vocabulary 128) with ByT5's byte vocabulary: ASCII letters map to
    # ids below 128.
    checkpoint = str(REFERENCE / "gated_silu")
    texts = ["hello world", "abc", "the quick brown fox", "z"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    out_file = tmp_path / "out.txt"
    flags = ["scripts/generate.py", "--checkpoint", checkpoint, "--vocab", "byte",
             "--max_new_tokens", "5", "--batch_size", "3", "--jit_compile", "false"]
    proc = run_python(None, *flags, "--input_file", str(tmp_path / "in.txt"),
                      "--output_file", str(out_file))
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = t5core.load_pretrained(checkpoint)
    expected = list(generate_text(model, ByteTokenizer(), texts, batch_size=3, max_new_tokens=5,
                                  jit_compile=False))
    lines = out_file.read_text(encoding="utf-8").split("\n")
    assert lines == [e.replace("\n", "\\n") for e in expected] + [""]
    assert "4/4" in proc.stderr  # the progress bar counted every input

    # Bad input, in this process (a second interpreter start would double the test's time).
    spec = importlib.util.spec_from_file_location("generate_script", REPO / "scripts/generate.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "stdin", io.StringIO("abc\n\nz\n"))
    capsys.readouterr()
    assert script.main(flags[1:]) is None  # an empty line is an input with an empty output
    assert capsys.readouterr().out.split("\n") == [
        expected[1].replace("\n", "\\n"), "", expected[3].replace("\n", "\\n"), ""]
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    # A user's mistake ends in an `error:` line and status 2, in this process too.
    assert script.main(flags[1:]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: no input lines in stdin"
    assert script.main(flags[1:] + ["--input_file", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error:") and "does not exist" in err[0]
