"""SQuAD exact match and token F1: the official evaluate-v1.1 script on spaced text, MLQA's
Chinese rules where the answers are written without spaces."""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from typing import Sequence, Union

from t5core.metrics.classification import check_pairs, precision_recall_f1
from t5core.metrics.scripts import ROUGE_MODES, holds_unspaced, segment

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _unicode_punctuation(char: str) -> bool:
    # MLQA's punctuation: string.punctuation and every Unicode punctuation mark ("，。！「」").
    return char in _PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_answer(text: str, unspaced: bool = False) -> str:
    """SQuAD v1.1's normalisation; unspaced=True: MLQA's for Chinese (every Unicode punctuation
    mark deleted, no articles, each character of an unspaced script a word of its own)."""
    text = text.lower()
    if unspaced:
        text = "".join(ch for ch in text if not _unicode_punctuation(ch))
        return " ".join(segment(text, str.isspace))
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, reference: str, unspaced: bool = False) -> float:
    return float(normalize_answer(prediction, unspaced) == normalize_answer(reference, unspaced))


def f1_score(prediction: str, reference: str, unspaced: bool = False) -> float:
    pred_tokens = normalize_answer(prediction, unspaced).split()
    ref_tokens = normalize_answer(reference, unspaced).split()
    overlap = sum((collections.Counter(pred_tokens) & collections.Counter(ref_tokens)).values())
    return precision_recall_f1(overlap, len(pred_tokens), len(ref_tokens))[2]


def squad(
    targets: Sequence[Union[str, Sequence[str]]], predictions: Sequence[str],
    squad_tokenize: str | None = None,
) -> dict[str, float]:
    """{"squad_em", "squad_f1"} in percent. A target is one answer or a list of them.

    squad_tokenize: "words" (SQuAD v1.1), "chars" (MLQA's Chinese rules, each character of an
    unspaced script a token), or None / "auto": "chars" when the answers hold an unspaced script.
    """
    check_pairs(targets, predictions)
    if squad_tokenize in (None, "auto"):
        squad_tokenize = "chars" if holds_unspaced(targets) else "words"
    if squad_tokenize not in ROUGE_MODES:
        raise ValueError(f"squad_tokenize must be auto, words or chars (got {squad_tokenize!r})")
    unspaced = squad_tokenize == "chars"
    em_total = f1_total = 0.0
    for i, (refs, pred) in enumerate(zip(targets, predictions, strict=True)):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError(f"example {i} has no reference answers")
        em_total += max(exact_match_score(pred, r, unspaced) for r in refs)
        f1_total += max(f1_score(pred, r, unspaced) for r in refs)
    n = len(targets)
    return {"squad_em": 100.0 * em_total / n, "squad_f1": 100.0 * f1_total / n}
