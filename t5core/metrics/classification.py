"""Classification and regression metrics over decoded label strings.

Thin wrappers over scikit-learn and scipy, so that figures are the ones people
compare against. Values in the metric dicts are percentages (x100), as in T5
and the GLUE leaderboard; `classification_report` keeps sklearn's own [0, 1]
units so that its dict and text are exactly sklearn's.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from t5core.metrics._deps import require
from t5core.metrics.postprocess import INVALID_LABEL, string_to_float


def _check_lengths(targets: Sequence, predictions: Sequence) -> None:
    if len(targets) != len(predictions):
        raise ValueError(
            f"{len(targets)} targets but {len(predictions)} predictions: they must pair up"
        )
    if not targets:
        raise ValueError("no examples to score (targets and predictions are empty)")


def default_labels(targets: Sequence, predictions: Sequence) -> list:
    """Every label seen in targets or predictions except INVALID_LABEL, sorted.

    This is sklearn's default label set (the union) minus the sentinel, so an
    invalid prediction is a miss for its true class but not a class of its own.
    Pass `labels` explicitly to score over a fixed label set.
    """
    return sorted((set(targets) | set(predictions)) - {INVALID_LABEL}, key=str)


def accuracy(targets: Sequence, predictions: Sequence) -> dict[str, float]:
    _check_lengths(targets, predictions)
    metrics = require("sklearn.metrics", "scikit-learn")
    return {"accuracy": 100.0 * float(metrics.accuracy_score(list(targets), list(predictions)))}


def _averaged_prf(targets, predictions, average: str, labels=None) -> dict[str, float]:
    _check_lengths(targets, predictions)
    metrics = require("sklearn.metrics", "scikit-learn")
    if labels is None:
        labels = default_labels(targets, predictions)
    p, r, f, _ = metrics.precision_recall_fscore_support(
        list(targets), list(predictions), labels=list(labels), average=average, zero_division=0
    )
    return {
        f"precision_{average}": 100.0 * float(p),
        f"recall_{average}": 100.0 * float(r),
        f"f1_{average}": 100.0 * float(f),
    }


def f1_macro(targets, predictions, labels=None) -> dict[str, float]:
    """Unweighted mean over classes of per-class precision, recall and F1."""
    return _averaged_prf(targets, predictions, "macro", labels)


def f1_micro(targets, predictions, labels=None) -> dict[str, float]:
    """Precision/recall/F1 from counts pooled over classes.

    Equal to accuracy unless some predictions fall outside `labels` (invalid).
    """
    return _averaged_prf(targets, predictions, "micro", labels)


def f1_weighted(targets, predictions, labels=None) -> dict[str, float]:
    """Per-class scores averaged with weights = class support."""
    return _averaged_prf(targets, predictions, "weighted", labels)


def f1_binary(targets, predictions, pos_label: Any = None) -> dict[str, float]:
    """F1 of the positive class (GLUE MRPC/QQP style). Invalid predictions miss."""
    _check_lengths(targets, predictions)
    if pos_label is None:
        raise ValueError("metric 'f1' needs pos_label=<the positive label word>")
    metrics = require("sklearn.metrics", "scikit-learn")
    # labels=[pos_label] with average="micro" is exactly binary F1 for pos_label,
    # and works when targets/predictions hold more than two distinct values.
    f = metrics.f1_score(
        list(targets), list(predictions), labels=[pos_label], average="micro", zero_division=0
    )
    return {"f1": 100.0 * float(f)}


def per_class(targets, predictions, labels=None) -> dict[str, float]:
    """Flattened per-class scores: {"precision/<label>", "recall/<label>", "f1/<label>",
    "support/<label>"}."""
    _check_lengths(targets, predictions)
    metrics = require("sklearn.metrics", "scikit-learn")
    if labels is None:
        labels = default_labels(targets, predictions)
    p, r, f, s = metrics.precision_recall_fscore_support(
        list(targets), list(predictions), labels=list(labels), average=None, zero_division=0
    )
    out = {}
    for i, label in enumerate(labels):
        out[f"precision/{label}"] = 100.0 * float(p[i])
        out[f"recall/{label}"] = 100.0 * float(r[i])
        out[f"f1/{label}"] = 100.0 * float(f[i])
        out[f"support/{label}"] = float(s[i])
    return out


def classification_report(targets, predictions, labels=None, digits: int = 4) -> tuple[dict, str]:
    """sklearn.metrics.classification_report as (dict, printed text).

    Rows per class plus "macro avg" and "weighted avg"; the pooled (micro)
    figures appear as the "accuracy" row when every prediction is one of
    `labels`, and as a "micro avg" row otherwise (sklearn's convention).
    """
    _check_lengths(targets, predictions)
    metrics = require("sklearn.metrics", "scikit-learn")
    if labels is None:
        labels = default_labels(targets, predictions)
    kwargs = dict(labels=list(labels), target_names=[str(x) for x in labels], zero_division=0)
    report = metrics.classification_report(
        list(targets), list(predictions), output_dict=True, **kwargs
    )
    text = metrics.classification_report(list(targets), list(predictions), digits=digits, **kwargs)
    return report, text


def mcc(targets, predictions) -> dict[str, float]:
    """Matthews correlation x100 (GLUE CoLA). Invalid predictions form their own
    column of the confusion matrix, so they count against the score."""
    _check_lengths(targets, predictions)
    metrics = require("sklearn.metrics", "scikit-learn")
    return {"mcc": 100.0 * float(metrics.matthews_corrcoef(list(targets), list(predictions)))}


def _as_floats(values: Sequence) -> list[float]:
    """Decoded strings parse with string_to_float (invalid -> INVALID_FLOAT)."""
    return [string_to_float(v) if isinstance(v, str) else float(v) for v in values]


def _correlation(name: str, fn_name: str, targets, predictions) -> dict[str, float]:
    _check_lengths(targets, predictions)
    stats = require("scipy.stats", "scipy")
    t, p = _as_floats(targets), _as_floats(predictions)
    if len(t) < 2 or len(set(t)) < 2 or len(set(p)) < 2:
        # Correlation is undefined for a constant input; say so with NaN rather
        # than let scipy warn.
        return {name: math.nan}
    return {name: 100.0 * float(getattr(stats, fn_name)(t, p)[0])}


def pearson(targets, predictions) -> dict[str, float]:
    return _correlation("pearson", "pearsonr", targets, predictions)


def spearman(targets, predictions) -> dict[str, float]:
    return _correlation("spearman", "spearmanr", targets, predictions)
