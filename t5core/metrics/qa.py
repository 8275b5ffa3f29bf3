"""SQuAD v1.1 exact match and token F1, as the official evaluate-v1.1 script; for Chinese answers
as mT5's MLQA metric (`multilingual_t5/evaluation/metrics.py`, `mlqa` with lang="zh")."""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from typing import Sequence, Union

from t5core.metrics.classification import check_pairs, precision_recall_f1
from t5core.metrics.scripts import bleu_tokenizer

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _any_punctuation(char: str) -> bool:
    return char in _PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_chinese_answer(text: str) -> str:
    """MLQA's Chinese normalization: lowercased, every Unicode punctuation mark dropped (the
    full-width ones too), each CJK character a token, other runs split on whitespace."""
    tokens, run = [], ""
    for char in text.lower():
        if _any_punctuation(char):
            continue
        if "\u4e00" <= char <= "\u9fa5":
            tokens += run.split() + [char]
            run = ""
        else:
            run += char
    return " ".join(tokens + run.split())


def exact_match_score(prediction: str, reference: str, normalize=normalize_answer) -> float:
    return float(normalize(prediction) == normalize(reference))


def f1_score(prediction: str, reference: str, normalize=normalize_answer) -> float:
    pred_tokens = normalize(prediction).split()
    ref_tokens = normalize(reference).split()
    overlap = sum((collections.Counter(pred_tokens) & collections.Counter(ref_tokens)).values())
    return precision_recall_f1(overlap, len(pred_tokens), len(ref_tokens))[2]


def squad(
    targets: Sequence[Union[str, Sequence[str]]], predictions: Sequence[str]
) -> dict[str, float]:
    """{"squad_em", "squad_f1"} in percent. A target is one answer or a list of them.

    Where the answers hold Chinese (Han without kana, as BLEU's choice of its zh tokenizer),
    both are MLQA's (`normalize_chinese_answer`): SQuAD's ASCII punctuation and whitespace
    tokens would leave "。" in place and count a whole Chinese answer as one token.
    """
    check_pairs(targets, predictions)
    normalize = normalize_chinese_answer if bleu_tokenizer(targets) == "zh" else normalize_answer
    em_total = f1_total = 0.0
    for i, (refs, pred) in enumerate(zip(targets, predictions, strict=True)):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError(f"example {i} has no reference answers")
        em_total += max(exact_match_score(pred, r, normalize) for r in refs)
        f1_total += max(f1_score(pred, r, normalize) for r in refs)
    n = len(targets)
    return {"squad_em": 100.0 * em_total / n, "squad_f1": 100.0 * f1_total / n}
