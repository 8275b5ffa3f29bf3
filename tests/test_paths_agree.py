"""One input, every path, the same answer: tables of the paths that turn the same input into
output (decoded text, scores, metrics), compared row by row. A new path or a new kind of input
joins its table."""

import json

import keras
import pytest
import tensorflow as tf

from t5core import T5Config, T5Model
from t5core.classifier import T5EncoderClassifier
from t5core.data.option_tasks import task_from_options
from t5core.decoding.text import encode_inputs
from t5core.evaluation import reports
from t5core.evaluation.evaluators import ClassifierEvaluator, DecodeEvaluator, task_evaluator
from t5core.tokenizer import ByteTokenizer

# Per template: rows of its test file, the metrics, and predictions a model could make (a label
# with spaces around it, a word outside the label set, entity text with odd spacing).
SCORING_CASES = {
    "classification": dict(
        args={"label_words": ["negative", "positive"]},
        rows=[{"sentence": s, "label": l} for s, l in
              [("a fine film", "positive"), ("dull", "negative"), ("boring", "negative"),
               ("great", "positive")]],
        predictions=[" positive", "neutral", "negative ", "negative"]),
    "ner": dict(
        args={},
        rows=[{"tokens": ["Anna", "lives", "in", "Rome"], "tags": ["B-PER", "O", "O", "B-LOC"]},
              {"tokens": ["Bob", "left"], "tags": ["B-PER", "O"]}],
        predictions=["PER: Anna ; LOC: Rome ", " none"]),
    "translation": dict(
        args={},
        rows=[{"en": "the house", "de": "das Haus"}, {"en": "a cat", "de": "eine Katze"}],
        predictions=[" das Haus ", "eine Katze"]),
}


def _score_by_every_path(tmp_path, template, case):
    """{path name: metrics} for one test file and one list of predictions."""
    path = tmp_path / f"{template}.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in case["rows"]))
    lengths = {"inputs": 32, "targets": 16}
    tokenizer = ByteTokenizer()
    args = json.dumps(case["args"])
    predictions = case["predictions"]

    # scripts/evaluate.py: the test set its data options describe, scored by reports.score.
    options = reports.data_options({"eval_file": str(path), "template": template,
                                    "template_args": args, "inputs_length": 32,
                                    "targets_length": 16})
    test = reports.load_test_set(options, tokenizer)
    scored = {"evaluate.py": reports.score(test, predictions)["metrics"]}

    # The trainer's in-run evaluation (and evaluate_task): the task's own evaluator.
    task, _ = task_from_options(train_file=str(path), template=template, template_args=args,
                                lengths=lengths)
    evaluator = task_evaluator(task, "train", tokenizer, 32, 16)
    evaluator.predict = lambda model: list(predictions)  # the paths' scoring, not a model's
    scored["trainer in-run"] = evaluator(model=None)[0]
    return scored


@pytest.mark.parametrize("template", sorted(SCORING_CASES))
def test_every_evaluation_path_scores_the_same_predictions_alike(tmp_path, template):
    scored = _score_by_every_path(tmp_path, template, SCORING_CASES[template])
    reference = scored.pop("evaluate.py")
    assert reference, "no metrics: the comparison proves nothing"
    for path, metrics in scored.items():
        assert metrics == pytest.approx(reference), (template, path)


def test_classification_scores_over_the_declared_labels_only(tmp_path):
    """The case the table guards: a prediction outside the label set is a miss, never a class."""
    scored = _score_by_every_path(tmp_path, "classification", SCORING_CASES["classification"])
    # positive: 1 of 2 found, precision 1; negative: 1 of 2 found, 1 of 2 said right; "neutral"
    # is a miss for positive, not a third class.
    f1_positive, f1_negative = 2 / 3, 0.5
    for path, metrics in scored.items():
        assert metrics["f1_macro"] == pytest.approx(100 * (f1_positive + f1_negative) / 2), path
        assert metrics["accuracy"] == pytest.approx(50.0), path


def test_classifier_head_scores_over_its_declared_labels():
    # A class no example holds still counts in the macro average, as evaluate.py's report counts
    # it: the trainer's ClassifierEvaluator and evaluate.py's score, on one classifier's labels.
    keras.utils.set_random_seed(1)
    labels = ["a", "b", "c"]
    model = T5EncoderClassifier(T5Config(vocab_size=384, d_model=8, d_kv=4, num_heads=2, d_ff=16,
                                         num_layers=1, dropout_rate=0.0), num_classes=3,
                                labels=labels)
    tokenizer = ByteTokenizer()
    inputs = [tokenizer.encode(t, add_eos=True) for t in ("one", "two", "three")]
    targets = ["a", "a", "b"]
    trainer = ClassifierEvaluator(inputs, targets, labels, ["accuracy", "f1_macro"], 8, tokenizer)
    test = reports.TestSet(inputs=inputs, targets=targets, metrics=["accuracy", "f1_macro"],
                           labels=labels)
    predictions = reports.predict(model, tokenizer, test, {"inputs_length": 8})
    assert "c" not in predictions  # (seed 1) else every path counts "c" and proves little
    metrics, samples = trainer(model)
    assert metrics == pytest.approx(reports.score(test, predictions)["metrics"])
    # Its samples show each input, as a seq2seq run's do.
    assert samples[0].startswith("'one' -> "), samples


# -- the programs on one run directory ------------------------------------------------------------

TINY_RUN = {"model_type": "t5", "vocab_size": 384, "d_model": 16, "d_kv": 4, "num_heads": 2,
            "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "dropout_rate": 0.0,
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
# One of each kind of input; the run's inputs_length (16 bytes with EOS) cuts the longer ones.
INPUTS = {"english": "say hello", "chinese": "今天天气很好", "sentinel": "a <extra_id_0> b",
          "spaces": "  padded  ", "longer than inputs_length": "the quick brown fox jumps over"}


def _program_outputs(tmp_path, capsys):
    """{path name: [output text of each of INPUTS]} of one run directory, every program with
    its length flags left out."""
    from t5core.commands import evaluate, export, generate
    from t5core.serving import load
    from t5core.training.run import RunOptions, run
    from t5core.training.trainer import TrainConfig

    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_RUN))
    texts = list(INPUTS.values())
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"inputs": t, "targets": "ok"}, ensure_ascii=False) + "\n"
                            for t in texts))
    run_dir = str(tmp_path / "run")
    train = TrainConfig(model_dir=run_dir, train_steps=1, batch_size=2, inputs_length=16,
                        targets_length=4, eval_every=0, eval_steps=1, save_every=1, log_every=1,
                        progress_bar=False, peak_flops=1e11)
    run(RunOptions(train_file=str(data), model=str(config), eval_examples=0,
                   train=train), log=lambda *a: None)

    outputs = {}
    predictions = tmp_path / "evaluate.txt"
    assert evaluate.main(["--checkpoint", run_dir, "--eval_file", str(data),
                          "--predictions_file", str(predictions)]) is None
    outputs["evaluate.py"] = predictions.read_text(encoding="utf-8").split("\n")[:-1]
    capsys.readouterr()
    args = ["--checkpoint", run_dir, "--truncate", "--jit_compile", "false"]
    assert generate.main(args + [f"--input={t}" for t in texts]) is None
    outputs["generate.py"] = capsys.readouterr().out.split("\n")[:-1]
    assert export.main(["--checkpoint", run_dir, "--output_dir", str(tmp_path / "saved")]) is None
    serve = load(str(tmp_path / "saved")).signatures["serving_default"]
    served = serve(inputs=tf.constant(texts))
    outputs["export.py (SavedModel)"] = [s.decode("utf-8") for s in served["outputs"].numpy()]
    assert served["truncated"].numpy().tolist() == [
        len(ByteTokenizer().encode(t, add_eos=True)) > 16 for t in texts] != [False] * len(texts)
    return outputs


def test_every_program_gives_one_run_directory_the_same_answers(tmp_path, capsys):
    outputs = _program_outputs(tmp_path, capsys)
    reference = outputs.pop("evaluate.py")
    assert len(reference) == len(INPUTS) and any(reference)
    for path, texts in outputs.items():
        for kind, expected, got in zip(INPUTS, reference, texts):
            assert got == expected, (path, kind)


# -- sampling: a text's draw depends on the seed and its place among the texts only ---------------

def test_a_sampled_text_is_the_same_whatever_the_batching_and_path():
    from t5core.decoding.text import generate_text
    from t5core.serving import Server

    keras.utils.set_random_seed(0)
    model = T5Model(T5Config.from_dict(TINY_RUN))
    tokenizer = ByteTokenizer()
    texts = list(INPUTS.values()) + [INPUTS["english"]]  # the same text twice: two draws
    settings = dict(max_new_tokens=6, method="sample", seed=3)
    paths = {f"generate_text batch_size={n}": list(generate_text(
        model, tokenizer, texts, batch_size=n, max_input_length=16, truncate=True,
        jit_compile=False, **settings)) for n in (1, 2, len(texts))}
    paths["generate_text under XLA"] = list(generate_text(
        model, tokenizer, texts, batch_size=4, max_input_length=16, truncate=True,
        jit_compile=True, **settings))
    # evaluate_task's and the trainer's decoding: ids cut as every door cuts them.
    evaluator = DecodeEvaluator(encode_inputs(tokenizer, texts, 16, truncate=True), texts,
                                tokenizer, ["accuracy"], 16, jit_compile=False, batch_size=3,
                                **settings)
    paths["DecodeEvaluator batch_size=3"] = evaluator.predict(model)
    served = Server(model, tokenizer, max_input_length=16, **settings).serve(tf.constant(texts))
    paths["SavedModel's serve"] = [s.decode("utf-8") for s in served["outputs"].numpy()]
    reference = paths.pop(f"generate_text batch_size={len(texts)}")
    assert reference[0] != reference[-1] or reference[1] != reference[2], "no draw differs"
    for path, outputs in paths.items():
        for kind, expected, got in zip(list(INPUTS) + ["english again"], reference, outputs):
            assert got == expected, (path, kind)
