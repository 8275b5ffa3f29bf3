"""A user's journeys through a training run's directory, each stage starting from what the last
one wrote: train -> generate, evaluate, export to HF and SavedModel, reload in a fresh process,
train on from it. One journey per kind of run (LoRA, prompt tuning, classifier head), and an HF
snapshot with only tokenizer.json fine-tuned with no --model / --vocab.

train.py and evaluate.py run as commands (subprocesses, as a user runs them; their absl flags
are process-global). generate.py, export.py and convert_checkpoint.py run in this process through
their `main(argv)`, the same code a command runs, to keep the suite fast; every SavedModel is
loaded in a fresh process.
"""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import t5core
from t5core import model_dir
from t5core.decoding.text import generate_text, pad_batch
from t5core.classifier import T5EncoderClassifier, classify_text
from t5core.peft import PromptTunedT5, lora_layers
from t5core.tokenizer import ByteTokenizer
from conftest import FIXTURES

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = {"model_type": "t5", "vocab_size": 384, "d_model": 16, "d_kv": 4, "num_heads": 2,
        "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "dropout_rate": 0.0,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
WORDS = ["good", "bad", "fine", "dull", "great", "poor", "nice", "weak"]
LABELS = ["negative", "positive"]
TEXTS = ["sentence: a good film", "sentence: a dull film"]
# Few steps, no warm-up, one validation batch: the journeys test the seams, not learning.
SHORT = ["--train_steps=3", "--warmup_steps=0", "--batch_size=4", "--inputs_length=32",
         "--targets_length=4", "--eval_every=0", "--eval_steps=1", "--eval_examples=4",
         "--save_every=0", "--log_every=1", "--progress_bar=false", "--peak_flops=1e11",
         "--learning_rate=1e-2"]
NEW_TOKENS = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "tiny.json").write_text(json.dumps(TINY))
    rows = [{"sentence": f"a {w} film", "label": i % 2} for i, w in enumerate(WORDS * 2)]
    (root / "sst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "sst.tsv").write_text("inputs\ttargets\n" + "".join(
        f"a {r['sentence'].split()[1]} film\t{LABELS[r['label']]}\n" for r in rows))
    return root


def template_flags(data):
    return [f"--train_file={data / 'sst.jsonl'}", f"--eval_file={data / 'sst.jsonl'}",
            "--template=classification", f"--template_args={json.dumps({'label_words': LABELS})}",
            "--labels=negative,positive"]


def command(script, *args, cwd=REPO, status=0):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=cwd)
    assert proc.returncode == status, \
        f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def train(model_dir_path, *args):
    return command("train.py", f"--model_dir={model_dir_path}", *SHORT, *args)


def evaluate(checkpoint, tmp_path, *args):
    """evaluate.py's JSON report (--report_file) and its printed tables."""
    report_file = tmp_path / "report.json"
    proc = command("evaluate.py", f"--checkpoint={checkpoint}", f"--report_file={report_file}",
                   f"--predictions_file={tmp_path / 'predictions.txt'}", *args)
    predictions = (tmp_path / "predictions.txt").read_text().splitlines()
    return json.loads(report_file.read_text()), proc.stdout, predictions


def script_main(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def in_process(name, argv, capsys):
    """(status, stdout, stderr) of a script's main(argv) run here."""
    capsys.readouterr()
    status = script_main(name)([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


FRESH = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import t5core.serving  # t5core.serving.load registers the ops; no tensorflow_text import
    serve = t5core.serving.load(sys.argv[1]).signatures["serving_default"]
    out = serve(inputs=tf.constant(json.loads(sys.argv[2])))
    print("RESULT " + json.dumps({k: v.numpy().tolist() if v.dtype != tf.string
                                  else [s.decode() for s in v.numpy()] for k, v in out.items()}))
""")


def serve_in_fresh_process(saved_model, texts):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", FRESH, str(saved_model), json.dumps(texts)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def weights(model):
    return {k: v.numpy() for k, v in model.variables_by_name().items()}


def check_label_report(report, stdout, predictions, examples):
    """A per-class report over exactly the label set, consistent with the predictions."""
    assert report["examples"] == examples == len(predictions)
    per_class = report["per_class"]
    assert set(LABELS) <= set(per_class) and "" not in per_class
    assert set(per_class) - set(LABELS) <= {"macro avg", "weighted avg", "micro avg"}
    assert sum(per_class[label]["support"] for label in LABELS) == examples
    targets = [LABELS[i % 2] for i in range(examples)]
    accuracy = 100.0 * np.mean([p == t for p, t in zip(predictions, targets)])
    assert report["metrics"]["accuracy"] == pytest.approx(accuracy)  # percent, as T5 reports
    table = stdout[stdout.index("\nclass ") + 1:].splitlines()
    assert table[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert len({len(line) for line in table[:3]}) == 1  # aligned columns


def test_lora_run_journey(data, tmp_path, capsys):
    run = tmp_path / "lora"
    train(run, f"--model={data / 'tiny.json'}", *template_flags(data), "--rank_classification",
          "--peft=lora", "--lora_rank=4", "--lora_alpha=8", "--lora_targets=q,v,wo")
    described = model_dir.read_run(str(run))
    assert (described.lora_rank, described.lora_alpha, described.lora_targets) == (4, 8.0, "q,v,wo")
    assert described.tokenizer == "byte" and described.data["template"] == "classification"

    # Loaded merged by default; kept LoRA computes the same function, and it was trained.
    merged = t5core.load_pretrained(str(run))
    kept = t5core.load_pretrained(str(run / "best"), merge_lora=False)
    assert type(merged) is t5core.T5Model and not lora_layers(merged)
    assert max(np.abs(layer.lora_b.numpy()).max() for layer in lora_layers(kept).values()) > 0
    features = {"encoder_input_tokens": np.array([[7, 8, 9, 1]]),
                "decoder_input_tokens": np.array([[0, 5, 6]])}
    np.testing.assert_allclose(kept(features).numpy(), merged(features).numpy(), atol=1e-5)

    # generate.py: no --vocab (the run's byte tokenizer), the merged model.
    expected = list(generate_text(merged, ByteTokenizer(), TEXTS, max_new_tokens=NEW_TOKENS))
    status, out, _ = in_process("generate", ["--checkpoint", run, "--input", TEXTS[0], "--input",
                                             TEXTS[1], f"--max_new_tokens={NEW_TOKENS}"], capsys)
    assert out.splitlines() == [e.replace("\n", "\\n") for e in expected]

    # evaluate.py: the test file only; template, labels, rank classification from run.json.
    report, stdout, predictions = evaluate(run, tmp_path, f"--eval_file={data / 'sst.jsonl'}")
    assert set(predictions) <= set(LABELS)  # rank classification was used
    check_label_report(report, stdout, predictions, 16)

    # HF export merges LoRA; the SavedModel decodes as the merged model does.
    status, out, _ = in_process("convert_checkpoint", ["--input", run, "--output",
                                                       tmp_path / "hf", "--quiet"], capsys)
    assert status == 0
    hf = weights(t5core.load_pretrained(str(tmp_path / "hf")))
    for name, value in weights(merged).items():
        np.testing.assert_array_equal(hf[name], value)
    status, out, _ = in_process("export", ["--checkpoint", run, "--output_dir", tmp_path / "sm",
                                           f"--max_new_tokens={NEW_TOKENS}"], capsys)
    assert "t5core.serving.load(" in out
    served = serve_in_fresh_process(tmp_path / "sm", TEXTS)
    assert served["outputs"] == expected

    # Train on from the run: its config and tokenizer, a new LoRA over the merged weights.
    proc = train(tmp_path / "lora2", f"--init_checkpoint={run}", *template_flags(data),
                 "--peft=lora", "--lora_rank=2")
    assert "Tokenizer" not in proc.stdout  # byte-level: nothing to report
    assert model_dir.read_run(str(tmp_path / "lora2")).lora_rank == 2
    assert model_dir.read_config(str(tmp_path / "lora2")) == merged.config
    continued = weights(t5core.load_pretrained(str(tmp_path / "lora2")))
    before = weights(merged)
    # Frozen under LoRA: equal to the first run's; LoRA-wrapped q: moved on from it.
    np.testing.assert_array_equal(continued["shared/embeddings"], before["shared/embeddings"])
    q = "encoder/block_0/self_attention/q/kernel"
    assert not np.array_equal(continued[q], before[q])


def test_prompt_tuned_run_journey(data, tmp_path, capsys):
    run = tmp_path / "prompt"
    train(run, f"--model={data / 'tiny.json'}", *template_flags(data), "--peft=prompt",
          "--prompt_length=3")
    model = t5core.load_pretrained(str(run))
    assert isinstance(model, PromptTunedT5) and model.prompt_length == 3
    assert model_dir.read_run(str(run)).prompt_length == 3

    expected = list(generate_text(model, ByteTokenizer(), TEXTS, max_new_tokens=NEW_TOKENS))
    status, out, _ = in_process("generate", ["--checkpoint", run, "--input", TEXTS[0], "--input",
                                             TEXTS[1], f"--max_new_tokens={NEW_TOKENS}"], capsys)
    assert out.splitlines() == [e.replace("\n", "\\n") for e in expected]

    # evaluate.py with only --checkpoint: the run's own evaluation file and options.
    report, stdout, predictions = evaluate(run, tmp_path, "--max_examples=6")
    assert report["test_set"] == f"file {data / 'sst.jsonl'}" and report["examples"] == 6
    assert "per_class" in report and "" not in report["per_class"]

    # HF has no soft prompt: a clear refusal; the TF format keeps it.
    status, _, err = in_process("convert_checkpoint", ["--input", run, "--output",
                                                       tmp_path / "hf", "--quiet"], capsys)
    assert status != 0 and "HF T5 has no soft prompt" in err
    status, _, _ = in_process("convert_checkpoint", ["--input", run, "--output", tmp_path / "tf",
                                                     "--format=tf", "--quiet"], capsys)
    assert status == 0
    converted = t5core.load_pretrained(str(tmp_path / "tf"))
    assert isinstance(converted, PromptTunedT5)
    np.testing.assert_array_equal(converted.prompt.embeddings.numpy(),
                                  model.prompt.embeddings.numpy())

    # The SavedModel decodes with the prompt: the prompt model's scores, not the bare model's.
    in_process("export", ["--checkpoint", run, "--output_dir", tmp_path / "sm",
                          f"--max_new_tokens={NEW_TOKENS}"], capsys)
    served = serve_in_fresh_process(tmp_path / "sm", TEXTS)
    tokens = pad_batch([ByteTokenizer().encode(t, add_eos=True) for t in TEXTS], len(TEXTS))
    _, with_prompt = t5core.generate(model, tokens, NEW_TOKENS)
    bare = t5core.T5Model(model.config)
    for name, variable in bare.variables_by_name().items():
        variable.assign(model.variables_by_name()[name])
    _, without = t5core.generate(bare, tokens, NEW_TOKENS)
    assert served["outputs"] == expected
    np.testing.assert_allclose(served["scores"], with_prompt.numpy(), rtol=1e-4)
    assert not np.allclose(served["scores"], without.numpy(), rtol=1e-4)

    # Train on: the run's prompt (3 vectors) goes on training; nothing else moves.
    proc = train(tmp_path / "prompt2", f"--init_checkpoint={run}", *template_flags(data),
                 "--peft=prompt")
    assert "soft prompt of --init_checkpoint (3 vectors)" in proc.stdout
    continued = t5core.load_pretrained(str(tmp_path / "prompt2"))
    assert continued.prompt_length == 3
    after, before = weights(continued), weights(model)
    assert not np.array_equal(after.pop("prompt/embeddings"), before.pop("prompt/embeddings"))
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value)


def test_classifier_head_run_journey(data, tmp_path, capsys):
    run = tmp_path / "classifier"
    tsv = data / "sst.tsv"
    train(run, f"--model={data / 'tiny.json'}", f"--train_file={tsv}", f"--eval_file={tsv}",
          "--head=classifier", "--labels=negative,positive", "--peft=lora", "--lora_rank=2")
    model = t5core.load_pretrained(str(run))
    assert isinstance(model, T5EncoderClassifier) and model.labels == tuple(LABELS)
    assert not lora_layers(model)

    # generate.py prints each input's label and its probability.
    expected = list(classify_text(model, ByteTokenizer(), ["a good film", "a dull film"]))
    status, out, _ = in_process("generate", ["--checkpoint", run, "--input", "a good film",
                                             "--input", "a dull film"], capsys)
    assert out.splitlines() == [f"{label}\t{p:.4f}" for label, p in expected]

    report, stdout, predictions = evaluate(run, tmp_path, f"--eval_file={tsv}")
    check_label_report(report, stdout, predictions, 16)

    status, _, err = in_process("convert_checkpoint", ["--input", run, "--output",
                                                       tmp_path / "hf", "--quiet"], capsys)
    assert status != 0 and "classifier-head model" in err
    status, out, _ = in_process("export", ["--checkpoint", run, "--output_dir", tmp_path / "sm"],
                                capsys)
    assert 'out["labels"], out["probabilities"]' in out
    served = serve_in_fresh_process(tmp_path / "sm", ["a good film", "a dull film"])
    assert served["labels"] == [label for label, _ in expected]
    tokens = np.array([ByteTokenizer().encode(t, add_eos=True) for t in
                       ["a good film", "a dull film"]])
    np.testing.assert_allclose(served["probabilities"], model.probabilities(tokens).numpy(),
                               atol=1e-5)

    # Train on with the run's classes (no --labels) and its head.
    train(tmp_path / "classifier2", f"--init_checkpoint={run}", f"--train_file={tsv}",
          "--head=classifier", "--peft=lora", "--lora_rank=2")
    continued = t5core.load_pretrained(str(tmp_path / "classifier2"))
    assert continued.labels == tuple(LABELS)
    np.testing.assert_array_equal(continued.shared.embeddings.numpy(),
                                  model.shared.embeddings.numpy())


def hf_snapshot(directory, tokenizer_file):
    """An HF-style directory: config.json + model.safetensors of a tiny random T5 over the T5
    vocabulary, and one tokenizer file."""
    import keras

    keras.utils.set_random_seed(0)
    config = t5core.T5Config(vocab_size=32128, d_model=8, d_kv=4, num_heads=2, d_ff=16,
                             num_layers=1, num_decoder_layers=1, dropout_rate=0.0,
                             feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    model = t5core.T5Model(config)
    t5core.export_hf(model, str(directory))
    shutil.copy(FIXTURES / "t5_vocab" / tokenizer_file, directory / tokenizer_file)
    return model


@pytest.mark.parametrize("tokenizer_file", ["tokenizer.json", "spiece.model"])
def test_hf_snapshot_fine_tunes_with_its_own_config_and_tokenizer(data, tmp_path, tokenizer_file):
    snapshot = tmp_path / "snapshot"
    model = hf_snapshot(snapshot, tokenizer_file)
    run = tmp_path / "run"
    proc = train(run, f"--init_checkpoint={snapshot}", *template_flags(data), "--peft=lora")
    assert f"Tokenizer: {snapshot / tokenizer_file} (from --init_checkpoint)" in proc.stdout
    assert model_dir.read_config(str(run)) == model.config  # not the embedded byte model
    described = model_dir.read_run(str(run))
    assert described.tokenizer == tokenizer_file
    assert (run / tokenizer_file).read_bytes() == (snapshot / tokenizer_file).read_bytes()
    trained = t5core.load_pretrained(str(run))
    np.testing.assert_array_equal(trained.shared.embeddings.numpy(),
                                  model.shared.embeddings.numpy())  # frozen under LoRA


def test_a_chinese_run_directory_is_handed_on_from_any_working_directory(data, tmp_path):
    """A stranger's Chinese walk: data files with a BOM, CRLF ends and full-width punctuation,
    in folders named in Chinese, given relative to where train.py ran; every later program runs
    elsewhere with only the run directory, which records every path absolute and reads as UTF-8.
    A metric name that is none stops train.py before any work."""
    work = tmp_path / "工作"
    (work / "数据").mkdir(parents=True)
    rows = [(f"评论{i}：{'很好看！' if i % 2 else '太无聊了。'}", "正面" if i % 2 else "负面")
            for i in range(16)]
    for name in ("训练.tsv", "验证.tsv"):
        text = "inputs\ttargets\r\n" + "".join(f"{x}\t{y}\r\n" for x, y in rows)
        (work / "数据" / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    files = ["--train_file=数据/训练.tsv", "--eval_file=数据/验证.tsv", "--inputs_length=96",
             "--targets_length=8", f"--model={data / 'tiny.json'}"]
    refused = command("train.py", "--model_dir=运行/坏", *SHORT, *files,
                      "--metrics=accuracy,exact_match", cwd=work, status=2)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "unknown metric 'exact_match'" in errors[0]
    assert "Traceback" not in refused.stderr
    assert not (work / "运行" / "坏").exists()  # stopped before the run directory was made
    command("train.py", "--model_dir=运行/情感", *SHORT, *files, "--metrics=accuracy,bleu,rouge",
            cwd=work)
    run = work / "运行" / "情感"
    recorded = model_dir.read_run(str(run))
    assert recorded.data["train_file"] == str(work / "数据" / "训练.tsv")
    assert recorded.data_files["eval_file"]["path"] == str(work / "数据" / "验证.tsv")
    assert "数据" in (run / "run.json").read_text(encoding="utf-8")  # not \\u escapes
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert os.path.isabs(results["best_checkpoint"])
    elsewhere = tmp_path / "别处"
    elsewhere.mkdir()
    # The shots come from the run's training file, the test set from its evaluation file.
    proc = command("evaluate.py", f"--checkpoint={run}", "--num_shots=1",
                   "--report_file=报告.json", cwd=elsewhere)
    report = json.loads((elsewhere / "报告.json").read_text(encoding="utf-8"))
    assert report["examples"] == len(rows) and set(report["metrics"]) >= {"accuracy", "bleu"}
    assert f"{len(rows)}/{len(rows)}" in proc.stderr  # decoding showed its progress
    assert "验证.tsv" in proc.stdout and "验证.tsv" in (elsewhere / "报告.json").read_text(
        encoding="utf-8")


def test_the_main_jobs_run_directory_is_scored_with_only_its_path(data, tmp_path):
    """train.py without a data flag trains on the embedded set and records its name, so
    evaluate.py scores the held-out examples with only --checkpoint."""
    run = tmp_path / "default"
    command("train.py", f"--model_dir={run}", *SHORT, "--inputs_length=24", "--targets_length=12",
            f"--model={data / 'tiny.json'}")  # (a flag given twice: the last value counts)
    assert model_dir.read_run(str(run)).data["task"] == "embedded"
    proc = command("evaluate.py", f"--checkpoint={run}", "--max_examples=4", cwd=tmp_path)
    assert "task embedded (test): 4 examples" in proc.stdout
    assert "accuracy" in proc.stdout
