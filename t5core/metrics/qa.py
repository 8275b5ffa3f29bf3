"""SQuAD v1.1 exact match and token F1, as the official evaluate-v1.1 script."""

from __future__ import annotations

import collections
import re
import string
from typing import Sequence, Union

from t5core.metrics.classification import check_pairs, precision_recall_f1

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1_score(prediction: str, reference: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    overlap = sum((collections.Counter(pred_tokens) & collections.Counter(ref_tokens)).values())
    return precision_recall_f1(overlap, len(pred_tokens), len(ref_tokens))[2]


def squad(
    targets: Sequence[Union[str, Sequence[str]]], predictions: Sequence[str]
) -> dict[str, float]:
    """{"squad_em", "squad_f1"} in percent. A target is one answer or a list of them."""
    check_pairs(targets, predictions)
    em_total = f1_total = 0.0
    for i, (refs, pred) in enumerate(zip(targets, predictions, strict=True)):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError(f"example {i} has no reference answers")
        em_total += max(exact_match_score(pred, r) for r in refs)
        f1_total += max(f1_score(pred, r) for r in refs)
    n = len(targets)
    return {"squad_em": 100.0 * em_total / n, "squad_f1": 100.0 * f1_total / n}
