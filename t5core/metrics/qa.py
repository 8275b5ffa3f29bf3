"""SQuAD exact match and token F1: the official evaluate-v1.1 script on spaced text, MLQA's
Chinese rules where the answers are written without spaces, and MLQA's rules of a named
language (`squad_lang`), as mT5 scores MLQA and XQuAD."""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from typing import Sequence, Union

from t5core.metrics.classification import check_pairs, precision_recall_f1
from t5core.metrics.scripts import ROUGE_MODES, mostly_unspaced, segment

_PUNCTUATION = frozenset(string.punctuation)
# MLQA's words dropped per language (its evaluation script, which mT5's metrics.mlqa follows);
# None: none dropped. Arabic's rule drops the article "ال" wherever it stands, as MLQA's does.
MLQA_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "ar": re.compile(r"\sال^|ال"),
    "hi": None,
    "zh": None,
}
_ARTICLES = MLQA_ARTICLES["en"]  # SQuAD v1.1's articles are English's
# MLQA's Chinese words (mT5's metrics.mlqa, lang "zh"): each character of U+4E00-U+9FA5 alone,
# other text cut at whitespace. Narrower than `segment`'s scripts, which "auto" uses.
_MLQA_ZH_WORDS = re.compile(r"[\u4e00-\u9fa5]|[^\s\u4e00-\u9fa5]+")


def _unicode_punctuation(char: str) -> bool:
    # MLQA's punctuation: string.punctuation and every Unicode punctuation mark ("，。！「」").
    return char in _PUNCTUATION or unicodedata.category(char).startswith("P")


def _check_lang(lang):
    if lang is not None and lang not in MLQA_ARTICLES:
        raise ValueError(f"squad_lang must be one of {', '.join(MLQA_ARTICLES)} (got {lang!r})")


def normalize_answer(text: str, unspaced: bool = False, lang: str | None = None) -> str:
    """SQuAD v1.1's normalisation; unspaced=True: MLQA's for Chinese, widened to every unspaced
    script (every Unicode punctuation mark deleted, no articles, each character of an unspaced
    script a word of its own); lang (a key of MLQA_ARTICLES): MLQA's for that language, as
    mT5's metrics.mlqa (every Unicode punctuation mark deleted, its articles dropped; "zh":
    each character of U+4E00-U+9FA5 a word)."""
    _check_lang(lang)
    text = text.lower()
    if unspaced or lang is not None:
        text = "".join(ch for ch in text if not _unicode_punctuation(ch))
        if lang == "zh":
            return " ".join(_MLQA_ZH_WORDS.findall(text))
        if unspaced:
            return " ".join(segment(text, str.isspace))
        if MLQA_ARTICLES[lang] is not None:
            text = MLQA_ARTICLES[lang].sub(" ", text)
        return " ".join(text.split())
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, reference: str, unspaced: bool = False,
                      lang: str | None = None) -> float:
    return float(normalize_answer(prediction, unspaced, lang)
                 == normalize_answer(reference, unspaced, lang))


def f1_score(prediction: str, reference: str, unspaced: bool = False,
             lang: str | None = None) -> float:
    pred_tokens = normalize_answer(prediction, unspaced, lang).split()
    ref_tokens = normalize_answer(reference, unspaced, lang).split()
    overlap = sum((collections.Counter(pred_tokens) & collections.Counter(ref_tokens)).values())
    return precision_recall_f1(overlap, len(pred_tokens), len(ref_tokens))[2]


def squad(
    targets: Sequence[Union[str, Sequence[str]]], predictions: Sequence[str],
    squad_tokenize: str | None = None, squad_lang: str | None = None,
) -> dict[str, float]:
    """{"squad_em", "squad_f1"} in percent. A target is one answer or a list of them.

    squad_tokenize: "words" (SQuAD v1.1), "chars" (MLQA's Chinese rules, each character of an
    unspaced script a token), or None / "auto": "chars" when at least half the questions'
    answers hold an unspaced script (`mostly_unspaced`: one Chinese answer among English ones
    changes no rule).
    squad_lang: the answers' language, scored by MLQA's rules for it as mT5's metrics.mlqa does
    (en, es, de, vi, ar, hi, zh: Unicode punctuation and that language's articles dropped);
    None: squad_tokenize's rules. The two are not given together.
    """
    check_pairs(targets, predictions)
    if squad_lang is not None and squad_tokenize not in (None, "auto"):
        raise ValueError(f"squad_lang={squad_lang!r} sets the rules; squad_tokenize="
                         f"{squad_tokenize!r} would contradict them, so give one of the two")
    if squad_tokenize in (None, "auto"):
        squad_tokenize = "chars" if mostly_unspaced(targets) else "words"
    if squad_tokenize not in ROUGE_MODES:
        raise ValueError(f"squad_tokenize must be auto, words or chars (got {squad_tokenize!r})")
    _check_lang(squad_lang)
    unspaced = squad_lang is None and squad_tokenize == "chars"
    em_total = f1_total = 0.0
    for i, (refs, pred) in enumerate(zip(targets, predictions, strict=True)):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError(f"example {i} has no reference answers")
        em_total += max(exact_match_score(pred, r, unspaced, squad_lang) for r in refs)
        f1_total += max(f1_score(pred, r, unspaced, squad_lang) for r in refs)
    n = len(targets)
    return {"squad_em": 100.0 * em_total / n, "squad_f1": 100.0 * f1_total / n}
