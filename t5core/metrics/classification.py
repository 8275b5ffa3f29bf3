"""Classification and regression metrics over decoded label strings, to scikit-learn's definitions
without scikit-learn; the correlations use scipy."""

from __future__ import annotations

import collections
import math
from typing import Any, Sequence

from t5core.metrics._deps import require
from t5core.metrics.postprocess import INVALID_LABEL, string_to_float
from t5core.metrics.scripts import display_width, pad


def check_pairs(targets: Sequence, predictions: Sequence) -> None:
    """Raises ValueError unless targets and predictions pair up and are not empty."""
    if len(targets) != len(predictions):
        raise ValueError(
            f"{len(targets)} targets but {len(predictions)} predictions: they must pair up"
        )
    if not targets:
        raise ValueError("no examples to score (targets and predictions are empty)")


def checked_labels(targets: Sequence, predictions: Sequence, labels=None) -> list:
    """The label set to score: `labels`, else every label seen but INVALID_LABEL, sorted."""
    check_pairs(targets, predictions)
    if labels is None:
        return sorted((set(targets) | set(predictions)) - {INVALID_LABEL}, key=str)
    return list(labels)


def accuracy(targets: Sequence, predictions: Sequence) -> dict[str, float]:
    check_pairs(targets, predictions)
    correct = sum(t == p for t, p in zip(targets, predictions))
    return {"accuracy": 100.0 * correct / len(targets)}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0  # scikit-learn's zero_division=0


def _counts(targets, predictions, labels):
    """Per label: (true positives, predicted count, true count), as int lists in label order."""
    hits, predicted, true = (collections.Counter() for _ in range(3))
    for t, p in zip(targets, predictions):
        true[t] += 1
        predicted[p] += 1
        if t == p:
            hits[t] += 1
    return ([hits[x] for x in labels], [predicted[x] for x in labels], [true[x] for x in labels])


def precision_recall_f1(tp, n_pred, n_true) -> tuple[float, float, float]:
    # F1 as scikit-learn computes it, 2 tp / (2 tp + fp + fn), which is 0 when both are 0; every
    # ratio with an empty denominator is 0 (scikit-learn's and seqeval's zero_division).
    return _ratio(tp, n_pred), _ratio(tp, n_true), _ratio(2 * tp, n_pred + n_true)


def _per_label(targets, predictions, labels):
    """[(precision, recall, f1, support)] for each label, in [0, 1]."""
    return [(*precision_recall_f1(tp, n_pred, n_true), n_true)
            for tp, n_pred, n_true in zip(*_counts(targets, predictions, labels))]


def _average(targets, predictions, labels, average: str) -> tuple[float, float, float]:
    """(precision, recall, f1) in [0, 1], averaged as scikit-learn's `average=`."""
    if average == "micro":
        return precision_recall_f1(*(sum(c) for c in _counts(targets, predictions, labels)))
    rows = _per_label(targets, predictions, labels)
    weights = [1.0] * len(rows) if average == "macro" else [row[3] for row in rows]
    total = sum(weights)
    return tuple(_ratio(sum(w * row[i] for w, row in zip(weights, rows)), total)
                 for i in range(3))


def _averaged_metric(average: str, doc: str):
    """The metric `f1_<average>`: {"precision_<average>", "recall_<average>", "f1_<average>"}."""
    def metric(targets, predictions, labels=None) -> dict[str, float]:
        p, r, f = _average(targets, predictions, checked_labels(targets, predictions, labels),
                           average)
        return {f"precision_{average}": 100.0 * p, f"recall_{average}": 100.0 * r,
                f"f1_{average}": 100.0 * f}
    metric.__name__ = metric.__qualname__ = f"f1_{average}"
    metric.__doc__ = doc
    return metric


f1_macro = _averaged_metric("macro", "Unweighted mean over classes of per-class precision, "
                            "recall and F1.")
f1_micro = _averaged_metric("micro", "Precision/recall/F1 from counts pooled over classes: equal "
                            "to accuracy unless some predictions fall outside `labels` (invalid).")
f1_weighted = _averaged_metric("weighted", "Per-class scores averaged with weights = class "
                               "support.")


def f1_binary(targets, predictions, pos_label: Any = None) -> dict[str, float]:
    """F1 of the positive class (GLUE MRPC/QQP style). Invalid predictions miss."""
    check_pairs(targets, predictions)
    if pos_label is None:
        raise ValueError("metric 'f1' needs pos_label=<the positive label word>")
    # Only pos_label's counts: exact binary F1, even when the data hold more than two values.
    _, _, f = _per_label(targets, predictions, [pos_label])[0][:3]
    return {"f1": 100.0 * f}


def per_class(targets, predictions, labels=None) -> dict[str, float]:
    """{"precision/<label>", "recall/<label>", "f1/<label>", "support/<label>"} per class."""
    labels = checked_labels(targets, predictions, labels)
    out = {}
    for label, (p, r, f, s) in zip(labels, _per_label(targets, predictions, labels)):
        out[f"precision/{label}"] = 100.0 * p
        out[f"recall/{label}"] = 100.0 * r
        out[f"f1/{label}"] = 100.0 * f
        out[f"support/{label}"] = float(s)
    return out


_REPORT_HEADERS = ("precision", "recall", "f1-score", "support")


def _percent(row):
    """(precision, recall, f1, support) with the three ratios in percent."""
    return (*(100.0 * value for value in row[:3]), row[3])


def classification_report(targets, predictions, labels=None, digits: int = 2) -> tuple[dict, str]:
    """scikit-learn's `classification_report` in percent, as (dict, text), without scikit-learn:
    per class, "macro avg", "weighted avg", and the pooled figures as "accuracy" when every
    prediction is one of `labels`, else "micro avg".

    Args:
      targets: the true labels (any hashable values).
      predictions: the predicted labels.
      labels: the rows, in order; None: every label seen but INVALID_LABEL, sorted.
      digits: decimals in the text.

    Returns:
      (report, text): report maps each label (as a string) and average to {"precision",
      "recall", "f1-score", "support"} ("accuracy": one percentage); text is the printed table.

    Raises:
      ValueError: targets and predictions of different lengths, or none at all.
    """
    labels = checked_labels(targets, predictions, labels)
    names = [str(x) for x in labels]
    rows = [_percent(row) for row in _per_label(targets, predictions, labels)]
    support = sum(row[3] for row in rows)
    micro_is_accuracy = set(labels) >= set(targets) | set(predictions)
    averages = []
    for average in ("micro", "macro", "weighted"):
        heading = "accuracy" if average == "micro" and micro_is_accuracy else average + " avg"
        averages.append((heading, _percent((*_average(targets, predictions, labels, average),
                                            support))))

    report = {name: dict(zip(_REPORT_HEADERS, map(float, row))) for name, row in zip(names, rows)}
    for heading, row in averages:
        report[heading] = dict(zip(_REPORT_HEADERS, map(float, row)))
    if "accuracy" in report:
        report["accuracy"] = report["accuracy"]["precision"]

    # Columns by display width: a Chinese label takes two columns a character.
    width = max(max(map(display_width, names)), len("weighted avg"), digits)
    text = pad("", width) + (" " + " {:>9}" * 4).format(*_REPORT_HEADERS) + "\n\n"
    row_format = "{} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    for name, row in zip(names, rows):
        text += row_format.format(pad(name, width, right=True), *row, digits=digits)
    text += "\n"
    for heading, row in averages:
        if heading == "accuracy":
            text += ("{} " + " {:>9}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
                pad(heading, width, right=True), "", "", row[2], row[3], digits=digits)
        else:
            text += row_format.format(pad(heading, width, right=True), *row, digits=digits)
    return report, text


def mcc(targets, predictions) -> dict[str, float]:
    """Matthews correlation x100 (GLUE CoLA); invalid predictions count against the score."""
    check_pairs(targets, predictions)
    # The multiclass form (Gorodkin's R_K), as scikit-learn's matthews_corrcoef.
    classes = sorted(set(targets) | set(predictions), key=str)
    tp, n_pred, n_true = _counts(targets, predictions, classes)
    n, correct = len(targets), sum(tp)
    cov_tp = correct * n - sum(t * p for t, p in zip(n_true, n_pred))
    cov_pp = n * n - sum(p * p for p in n_pred)
    cov_tt = n * n - sum(t * t for t in n_true)
    if cov_pp * cov_tt == 0:
        return {"mcc": 0.0}
    return {"mcc": 100.0 * cov_tp / math.sqrt(cov_tt * cov_pp)}


def _as_floats(values: Sequence) -> list[float]:
    """Decoded strings parse with string_to_float (invalid -> INVALID_FLOAT)."""
    return [string_to_float(v) if isinstance(v, str) else float(v) for v in values]


def _correlation(name: str, fn_name: str):
    """The metric `name`: scipy.stats' `fn_name` x100 over the parsed floats."""
    def metric(targets, predictions) -> dict[str, float]:
        check_pairs(targets, predictions)
        stats = require("scipy.stats", "scipy")
        t, p = _as_floats(targets), _as_floats(predictions)
        if len(t) < 2 or len(set(t)) < 2 or len(set(p)) < 2:
            # Correlation is undefined for a constant input; say so with NaN rather
            # than let scipy warn.
            return {name: math.nan}
        return {name: 100.0 * float(getattr(stats, fn_name)(t, p)[0])}
    metric.__name__ = metric.__qualname__ = name
    return metric


pearson = _correlation("pearson", "pearsonr")
spearman = _correlation("spearman", "spearmanr")
