"""One input, every path, the same answer: tables of the paths that turn the same input into
output (decoded text, scores, metrics), compared row by row. A new path or a new kind of input
joins its table."""

import json

import keras
import pytest

from t5core import T5Config
from t5core.classifier import T5EncoderClassifier
from t5core.data.option_tasks import task_from_options
from t5core.evaluation import reports
from t5core.evaluation.evaluators import ClassifierEvaluator, task_evaluator
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
    trainer = ClassifierEvaluator(inputs, targets, labels, ["accuracy", "f1_macro"], 8)
    test = reports.TestSet(inputs=inputs, targets=targets, metrics=["accuracy", "f1_macro"],
                           labels=labels)
    predictions = reports.predict(model, tokenizer, test, {"inputs_length": 8})
    assert "c" not in predictions  # (seed 1) else every path counts "c" and proves little
    assert trainer(model)[0] == pytest.approx(reports.score(test, predictions)["metrics"])
