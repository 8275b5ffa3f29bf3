"""Entity-level precision/recall/F1: over (type, text) entity lists (`entity_f1`) and over BIO tag
sequences with seqeval (`seqeval_f1`)."""

from __future__ import annotations

import collections
from typing import Sequence

from t5core.metrics._deps import require
from t5core.metrics.classification import check_pairs, precision_recall_f1
from t5core.metrics.postprocess import parse_entities


def as_entities(value, i: int, which: str) -> list[tuple[str, str]]:
    """Example i's (type, text) pairs, from a list of pairs or the text-to-text string form."""
    if isinstance(value, str):
        return parse_entities(value)
    try:
        return [(str(t), str(x)) for t, x in value]
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{which} {i}: expected a string or a list of (type, text) pairs, got {value!r}"
        ) from e


def entity_f1(targets: Sequence, predictions: Sequence, per_type: bool = False) -> dict[str, float]:
    """{"entity_precision", "entity_recall", "entity_f1"} in percent. Per sentence, (type, text)
    pairs or the text-to-text string (postprocess.parse_entities); per_type adds
    "entity_f1/<type>" (and precision/recall) per gold or predicted type."""
    check_pairs(targets, predictions)
    tp = collections.Counter()
    n_pred = collections.Counter()
    n_gold = collections.Counter()
    for i, (gold, pred) in enumerate(zip(targets, predictions, strict=True)):
        gold_c = collections.Counter(as_entities(gold, i, "target"))
        pred_c = collections.Counter(as_entities(pred, i, "prediction"))
        for (etype, _), count in (gold_c & pred_c).items():
            tp[etype] += count
        for (etype, _), count in gold_c.items():
            n_gold[etype] += count
        for (etype, _), count in pred_c.items():
            n_pred[etype] += count
    p, r, f = precision_recall_f1(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    out = {"entity_precision": 100.0 * p, "entity_recall": 100.0 * r, "entity_f1": 100.0 * f}
    if per_type:
        for etype in sorted(set(n_gold) | set(n_pred)):
            p, r, f = precision_recall_f1(tp[etype], n_pred[etype], n_gold[etype])
            out[f"entity_precision/{etype}"] = 100.0 * p
            out[f"entity_recall/{etype}"] = 100.0 * r
            out[f"entity_f1/{etype}"] = 100.0 * f
    return out


def seqeval_f1(
    targets: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]
) -> dict[str, float]:
    """seqeval's default-mode micro P/R/F1 over tag sequences, in percent."""
    check_pairs(targets, predictions)
    for i, (t, p) in enumerate(zip(targets, predictions, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} gold tags but {len(p)} predicted tags")
    metrics = require("seqeval.metrics", "seqeval")
    t, p = [list(x) for x in targets], [list(x) for x in predictions]
    return {
        "seqeval_precision": 100.0 * float(metrics.precision_score(t, p, zero_division=0)),
        "seqeval_recall": 100.0 * float(metrics.recall_score(t, p, zero_division=0)),
        "seqeval_f1": 100.0 * float(metrics.f1_score(t, p, zero_division=0)),
    }
