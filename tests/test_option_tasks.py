"""One reading of the data options: training (data/trainer_inputs.py) and scoring
(evaluation/reports.py) both turn them into a Task through t5core.data.option_tasks."""

import ast
import json
import pathlib

import pytest

from t5core.data.option_tasks import task_from_options
from t5core.data.tasks import task_examples
from t5core.errors import FlagError
from t5core.evaluation import reports
from t5core.tokenizer import ByteTokenizer

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "t5core"
# Building a Task from options: only option_tasks calls these (the modules that define them aside).
TASK_BUILDERS = {"file_task", "templated_task", "make_template"}


def test_only_option_tasks_builds_a_task_from_options():
    callers = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in TASK_BUILDERS:
                    callers.add(str(path.relative_to(PACKAGE)))
    assert callers == {"data/option_tasks.py"}


def test_unknown_task_names_the_flag_that_gave_it():
    with pytest.raises(FlagError, match="--task/--mixture: "):
        task_from_options(name="no_such_task", lengths={}, name_flag="--task/--mixture")
    options = reports.data_options({"task": "no_such_task"})
    with pytest.raises(FlagError, match="--task: "):
        reports.load_test_set(options, tokenizer=None)


def test_a_test_file_is_read_as_training_reads_its_train_file(tmp_path):
    rows = [{"sentence": "good film", "label": "1"}, {"sentence": "dull", "label": "0"}]
    path = tmp_path / "sst.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = ByteTokenizer()
    template = "classification"
    args = json.dumps({"label_words": {"0": "negative", "1": "positive"}, "prefix": "sst2"})
    lengths = {"inputs": 32, "targets": 8}
    task, rendered = task_from_options(train_file=str(path), template=template,
                                       template_args=args, lengths=lengths)
    trained = task_examples(task, "train", tok, lengths, None, 0)
    test = reports.load_test_set(
        reports.data_options({"eval_file": str(path), "template": template,
                              "template_args": args, "inputs_length": 32,
                              "targets_length": 8}), tok)
    assert (test.inputs, test.targets) == tuple(trained)
    assert test.labels == list(rendered.words) == ["negative", "positive"]
