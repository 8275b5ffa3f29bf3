"""BLEU (sacreBLEU) and ROUGE (rouge-score) for generated text."""

from __future__ import annotations

from typing import Sequence, Union

from t5core.metrics._deps import require
from t5core.metrics.classification import check_pairs
from t5core.metrics.scripts import BLEU_AUTO, ROUGE_MODES, CharTokenizer, bleu_tokenizer, \
    rouge_tokenizer

Reference = Union[str, Sequence[str]]

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _reference_streams(targets: Sequence[Reference]) -> list[list[str]]:
    """[ref per example] or [[refs] per example] -> sacrebleu's list of streams."""
    if all(isinstance(t, str) for t in targets):
        return [list(targets)]
    counts = {len(t) for t in targets if not isinstance(t, str)}
    if any(isinstance(t, str) for t in targets) or len(counts) != 1:
        raise ValueError(
            "with several references, every example needs a list of "
            f"the same number of references (found {sorted(counts)})"
        )
    n = counts.pop()
    return [[t[k] for t in targets] for k in range(n)]


def bleu(
    targets: Sequence[Reference],
    predictions: Sequence[str],
    tokenize: str = BLEU_AUTO,
    lowercase: bool = False,
) -> dict[str, float]:
    """{"bleu": corpus BLEU in [0, 100]}; `tokenize`: a sacreBLEU tokenizer name, or "auto" /
    None: from the references' script (`bleu_tokenizer`)."""
    check_pairs(targets, predictions)
    sacrebleu = require("sacrebleu", "sacrebleu")
    if tokenize in (None, BLEU_AUTO):
        tokenize = bleu_tokenizer(targets)
    result = sacrebleu.corpus_bleu(
        list(predictions), _reference_streams(targets), tokenize=tokenize, lowercase=lowercase
    )
    return {"bleu": float(result.score)}


def mark_sentences(text: str) -> str:
    """T5's rougeLsum preparation: a newline after each " . " sentence end."""
    return text.replace(" . ", " .\n")


def rouge(
    targets: Sequence[Reference],
    predictions: Sequence[str],
    rouge_keys: Sequence[str] = ROUGE_KEYS,
    use_stemmer: bool = False,
    rouge_tokenize: str | None = None,
) -> dict[str, float]:
    """{key: mean F-measure x100} for each of rouge_keys; several references: the best per key
    (score_multi). rouge_tokenize: "words" (rouge-score's), "chars" (unspaced scripts per
    character), or None / "auto": from the references (`rouge_tokenizer`)."""
    check_pairs(targets, predictions)
    rouge_scorer = require("rouge_score.rouge_scorer", "rouge-score")
    if rouge_tokenize in (None, "auto"):
        rouge_tokenize = rouge_tokenizer(targets)
    if rouge_tokenize not in ROUGE_MODES:
        raise ValueError(f"rouge_tokenize must be auto, words or chars (got {rouge_tokenize!r})")
    tokenizer = None
    if rouge_tokenize == "chars":
        porter = require("nltk.stem.porter", "rouge-score")  # rouge-score's own stemmer
        tokenizer = CharTokenizer(porter.PorterStemmer() if use_stemmer else None)
    scorer = rouge_scorer.RougeScorer(list(rouge_keys), use_stemmer=use_stemmer,
                                      tokenizer=tokenizer)
    totals = dict.fromkeys(rouge_keys, 0.0)
    for target, prediction in zip(targets, predictions, strict=True):
        prediction = mark_sentences(prediction)
        if isinstance(target, str):
            scores = scorer.score(target=mark_sentences(target), prediction=prediction)
        else:
            scores = scorer.score_multi([mark_sentences(t) for t in target], prediction)
        for key in rouge_keys:
            totals[key] += scores[key].fmeasure
    return {key: 100.0 * total / len(targets) for key, total in totals.items()}
