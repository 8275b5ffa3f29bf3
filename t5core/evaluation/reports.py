"""Scoring a model on a test set given by train.py's data options: metrics, per-class and
per-entity-type reports, as JSON and as aligned tables (`scripts/evaluate.py`)."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from t5core.classifier import T5EncoderClassifier
from t5core.data.option_tasks import option_problems, task_from_options
from t5core.data.pairs import pad_rows
from t5core.data.tasks import task_examples
from t5core.data.templates import DEFAULT_METRICS
from t5core.decoding.text import encode_inputs
from t5core.errors import FlagError, UserFileNotFoundError
from t5core.file_reads import present
from t5core.evaluation.evaluators import make_evaluator, score_texts
from t5core.evaluation.few_shot import few_shot_prompts
from t5core.metrics import check_metric_packages, classification_report, entity_f1
from t5core.metrics.entities import as_entities
from t5core.metrics.scripts import display_width, pad

# The data options, by train.py's flag names, and their values when neither the user nor the run
# gave one.
DATA_DEFAULTS = {"task": "", "data_dir": "", "eval_file": "", "template": "", "template_args": "",
                 "instruction": False, "inputs_field": "inputs", "targets_field": "targets",
                 "inputs_length": 128, "targets_length": 128, "metrics": "",
                 "bleu_tokenize": "auto", "rouge_tokenize": "auto", "squad_lang": "auto",
                 "rank_classification": False, "labels": ""}
SOURCES = ("task", "eval_file")


def data_options(given: dict, run=None) -> dict:
    """The data options: each given one (not None), else the run's, else DATA_DEFAULTS; a given
    --task or --eval_file replaces both of the run's."""
    recorded = dict(run.data) if run is not None else {}
    if run is not None and run.labels:
        recorded["labels"] = ",".join(run.labels)
    if any(given.get(name) for name in SOURCES):
        recorded = {k: v for k, v in recorded.items() if k not in SOURCES}
    options = {}
    for name, default in DATA_DEFAULTS.items():
        value = given.get(name)
        options[name] = value if value is not None else recorded.get(name, default)
    # Not a flag of evaluate's: the seed the run phrased --instruction rows with.
    options["seed"] = recorded.get("seed", 0)
    return options


def label_list(options) -> list[str]:
    return [x for x in options["labels"].split(",") if x]


@dataclasses.dataclass
class TestSet:
    inputs: list  # token ids of each example, EOS included
    targets: list  # the target texts
    metrics: list  # metric names (t5core.metrics)
    labels: list  # the label set, in class order ([] when the targets are free text)
    postprocess: object = None  # the template's, applied to targets and predictions
    entities: bool = False  # targets are entity lists: report per entity type
    description: str = ""
    metric_options: dict = dataclasses.field(default_factory=dict)  # bleu/rouge_tokenize, squad_lang
    note: str = ""  # how the inputs were made, when it is worth saying (few-shot prompts)
    read_note: str = ""  # what reading left out or cut (the predictions follow what is scored)


def check_data_options(options, recorded=()) -> None:
    """Fails on a bad --template(_args), or an --eval_file missing or of an unknown type, before
    model and data are loaded; `recorded`: the options whose value is the run's, so named."""
    problems = option_problems(
        template=options["template"], template_args=options["template_args"],
        instruction=options["instruction"],
        files=[] if options["task"] else [("--eval_file", options["eval_file"])],
        metrics=options["metrics"])
    if problems:
        raise FlagError("; ".join(problems))
    eval_file = options["eval_file"] if not options["task"] else ""
    if eval_file and not present(eval_file):
        raise UserFileNotFoundError(f"--eval_file={eval_file} does not exist" + (
            " (the run's, as its run.json records it; give --eval_file)"
            if "eval_file" in recorded else ""))


def _file_task(options, path, lengths, labels):
    """(task, template or None, labels) of the file `path` (its "train" split), read as training."""
    task, template = task_from_options(
        train_file=path, template=options["template"], template_args=options["template_args"],
        instruction=options["instruction"], seed=options.get("seed", 0),
        inputs_field=options["inputs_field"], targets_field=options["targets_field"],
        lengths=lengths, metrics=[m for m in options["metrics"].split(",") if m], labels=labels)
    if template is not None:
        labels = labels or list(getattr(template, "words", []))
    return task, template, labels


def read_shots(options, path, tokenizer) -> list[tuple[str, str]]:
    """The (inputs, targets) texts of every row of the file `path`, read as the test file is
    (the same template or fields): the examples few-shot prompts draw from."""
    if not present(path):
        raise UserFileNotFoundError(f"--shots_file={path} does not exist (without --shots_file: "
                                    "the run's --train_file, as its run.json records it)")
    lengths = {"inputs": options["inputs_length"], "targets": options["targets_length"]}
    task, _, _ = _file_task(options, path, lengths, label_list(options))
    inputs, targets = task_examples(task, "train", tokenizer, lengths, inputs_as_text=True)
    if not inputs:
        raise FlagError(f"--shots_file={path}: no examples")
    return list(zip(inputs, targets))


def load_test_set(options, tokenizer, split="test", max_examples=0, shots=None) -> TestSet:
    """The test set the options describe (a task's split or a file, read as training reads); unset
    options take the run's (`data_options`). `shots` ({"num_shots", "shots_file", "seed"}) makes
    few-shot prompts of that file; those not fitting are counted in TestSet.note."""
    lengths = {"inputs": options["inputs_length"], "targets": options["targets_length"]}
    labels = label_list(options)
    template = None
    if options["task"]:
        task, _ = task_from_options(name=options["task"], lengths=lengths)
        description = f"task {options['task']} ({split})"
    elif options["eval_file"]:
        # A file task's first split is its training file: here, the test file.
        split, path = "train", options["eval_file"]
        task, template, labels = _file_task(options, path, lengths, labels)
        description = f"file {path}"
    else:
        raise FlagError("Nothing to score: give --eval_file (a TSV/JSONL test file) or --task; "
                        "the checkpoint's run.json names neither")
    counter = getattr(task, "counter", None)  # (a mixture's tasks count on their own)
    before = counter.counts() if counter else {}
    inputs, targets = task_examples(task, split, tokenizer, lengths,
                                    options["data_dir"] or None, max_examples)
    if not inputs:
        raise FlagError(f"{description}: no examples to score")
    read_note = _read_note(counter, before, lengths, description) if counter else ""
    metrics = [m for m in options["metrics"].split(",") if m] or list(task.metrics) or (
        DEFAULT_METRICS["classification"] if labels else ["accuracy"])
    metric_options = {name: options[name] for name in ("bleu_tokenize", "rouge_tokenize",
                                                       "squad_lang")}
    check_metric_packages(metrics, f"the metrics of {description}", metric_options)
    note = ""
    if shots and shots["num_shots"]:
        inputs, note = _few_shot_inputs(task, split, tokenizer, lengths, options, max_examples,
                                        shots)
    kind = getattr(template, "task_type", "")
    return TestSet(inputs, targets, metrics, labels,
                   postprocess=template.postprocess if template is not None else None,
                   entities=kind == "ner" or "entity_f1" in metrics, description=description,
                   metric_options=metric_options,
                   note=note, read_note=read_note)


def _read_note(counter, before, lengths, description) -> str:
    """What reading the test set left out or cut (the counter's growth since `before`): the
    predictions then follow the examples scored, not the file's rows one for one."""
    after = counter.counts()
    grown = {k: after[k] - before.get(k, 0) for k in after if k.startswith(("empty", "overlong"))}
    parts = [f"{n} examples of {description} left out, their input or target empty once "
             "tokenized (the predictions follow the examples scored)"
             for n in [grown.get("empty_examples", 0)] if n]
    parts += [f"{grown[f'overlong_{k}']} {k} longer than {n} tokens cut to it (EOS kept; the "
              f"longest {after[f'longest_{k}']})" for k, n in lengths.items()
              if grown.get(f"overlong_{k}")]
    return "; ".join(parts)


def _few_shot_inputs(task, split, tokenizer, lengths, options, max_examples, shots):
    """(token ids of each example's few-shot prompt, a line saying what was done)."""
    texts, _ = task_examples(task, split, tokenizer, lengths, options["data_dir"] or None,
                             max_examples, inputs_as_text=True)
    pool = read_shots(options, shots["shots_file"], tokenizer)
    made = few_shot_prompts(texts, pool, shots["num_shots"], seed=shots["seed"],
                            tokenizer=tokenizer, inputs_length=options["inputs_length"])
    note = (f"{shots['num_shots']}-shot prompts from {shots['shots_file']} (seed "
            f"{shots['seed']}): {made.shots_used} shots placed, {made.dropped} dropped that did "
            f"not fit --inputs_length={options['inputs_length']}")
    # Cut as every door cuts an over-long input: its first tokens and EOS.
    return encode_inputs(tokenizer, made.prompts, options["inputs_length"], truncate=True), note


def predict(model, tokenizer, test: TestSet, options, batch_size=64, progress=True,
            **generate_options):
    """Every test example's predicted text: a classifier's label, with rank_classification the
    likeliest label word, else decoded (generate_options: method, num_beams, ...); `progress`:
    a bar counting the examples."""
    length = options["inputs_length"]
    if isinstance(model, T5EncoderClassifier):
        tokens = pad_rows(test.inputs, length)
        if model.labels is None:
            return [str(i) for i in model.predict(tokens, batch_size)]
        return model.predict_labels(tokens, batch_size)
    if options["rank_classification"] and len(test.labels) < 2:
        raise FlagError("--rank_classification needs --labels (two or more label words)")
    return make_evaluator(test.inputs, test.targets, tokenizer, test.metrics, length,
                          options["targets_length"],
                          test.labels if options["rank_classification"] else (),
                          batch_size=batch_size, progress=progress,
                          **generate_options).predict(model)


def score(test: TestSet, predictions) -> dict:
    """{"metrics", and when they apply "per_class" (+ "invalid_predictions") and
    "per_entity_type"}; every score a percentage, supports as counts."""
    report = {"metrics": score_texts(test.metrics, test.targets, predictions,
                                     postprocess=test.postprocess, labels=test.labels,
                                     metric_options=test.metric_options)}
    targets = list(test.targets)
    if test.postprocess is not None:
        predictions = [test.postprocess(p) for p in predictions]
        targets = [test.postprocess(t) for t in targets]
    if test.labels:
        table, _ = classification_report(targets, predictions, labels=test.labels)
        report["per_class"] = {
            name: {"precision": row["precision"], "recall": row["recall"],
                   "f1": row["f1-score"], "support": int(row["support"])}
            for name, row in table.items() if isinstance(row, dict)}
        report["invalid_predictions"] = sum(p not in test.labels for p in predictions)
    if test.entities:
        values = entity_f1(targets, predictions, per_type=True)
        support = _entity_support(targets)
        types = sorted({key.split("/", 1)[1] for key in values if "/" in key})
        report["per_entity_type"] = {
            kind: {"precision": values[f"entity_precision/{kind}"],
                   "recall": values[f"entity_recall/{kind}"],
                   "f1": values[f"entity_f1/{kind}"], "support": support.get(kind, 0)}
            for kind in types}
    return report


def _entity_support(targets) -> dict:
    """Gold entities per type."""
    return dict(collections.Counter(kind for i, target in enumerate(targets)
                                    for kind, _ in as_entities(target, i, "target")))


def format_table(rows: dict, columns=("precision", "recall", "f1", "support"),
                 first="") -> str:
    """{row: {column: value}} as aligned text; scores with 2 decimals, counts as integers."""
    def cell(value):
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        return f"{value:.2f}"

    body = [[str(name)] + [cell(values[c]) for c in columns] for name, values in rows.items()]
    header = [first] + list(columns)
    widths = [max(display_width(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = [[pad(r[0], widths[0])] + [pad(v, w, right=True) for v, w in zip(r[1:], widths[1:])]
             for r in [header] + body]
    return "\n".join("  ".join(line).rstrip() for line in lines)


def format_report(report: dict) -> str:
    """The report as the tables evaluate.py prints."""
    parts = [format_table({k: {"value": v} for k, v in report["metrics"].items()},
                          columns=("value",), first="metric (%)")]
    if "per_class" in report:
        parts.append(format_table(report["per_class"], first="class"))
        if report.get("invalid_predictions"):
            parts.append(f"{report['invalid_predictions']} prediction(s) are none of the labels "
                         "(counted as misses)")
    if report.get("per_entity_type"):
        parts.append(format_table(report["per_entity_type"], first="entity type"))
    return "\n\n".join(parts)
