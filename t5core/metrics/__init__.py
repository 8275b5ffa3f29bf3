"""Evaluation metrics for text-to-text fine-tuning, by name (`compute_metrics`); scores are
percentages, as in T5."""

from __future__ import annotations

import inspect
from typing import Callable, Iterable, Optional, Sequence

from t5core.errors import FlagError
from t5core.metrics._deps import check_installed
from t5core.metrics.classification import (accuracy, check_pairs, classification_report,
                                           f1_binary, f1_macro, f1_micro, f1_weighted, mcc,
                                           pearson, per_class, spearman)
from t5core.metrics.entities import entity_f1, seqeval_f1
from t5core.metrics.generation import bleu, rouge
from t5core.metrics.postprocess import (INVALID_FLOAT, INVALID_LABEL, NO_ENTITIES,
                                        bio_to_entities, bio_to_spans, format_entities,
                                        parse_entities, string_to_float, string_to_label)
from t5core.metrics.qa import normalize_answer, squad
from t5core.metrics.scripts import (BLEU_AUTO, BLEU_TOKENIZERS, ROUGE_MODES, bleu_tokenizer,
                                    rouge_tokenizer)

MetricFn = Callable[..., dict]

METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy,
    "f1_macro": f1_macro,  # + precision_macro, recall_macro
    "f1_micro": f1_micro,
    "f1_weighted": f1_weighted,
    "f1": f1_binary,  # needs pos_label=
    "per_class": per_class,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
    "squad": squad,  # squad_em, squad_f1
    "entity_f1": entity_f1,  # entity_precision, entity_recall, entity_f1
    "seqeval": seqeval_f1,  # over BIO tag sequences
    "bleu": bleu,
    "rouge": rouge,  # rouge1, rouge2, rougeL, rougeLsum
}


def get_metric(name: str) -> MetricFn:
    check_metric_names([name], "metric")
    return METRICS[name]


def check_metric_names(metric_names, where: str = "--metrics") -> None:
    """Raises FlagError (one line) for a name that is no metric."""
    unknown = [name for name in metric_names if name not in METRICS]
    if unknown:
        raise FlagError(f"{where}: unknown metric {', '.join(map(repr, unknown))}; valid "
                        f"metrics: {', '.join(sorted(METRICS))} (accuracy is exact match)")


def check_metric_packages(metric_names, where: str = "--metrics", metric_options=None) -> None:
    """Raises FlagError (one line) for a name that is no metric, a metric whose package is not
    installed, or a BLEU tokenizer (`metric_options`) that cannot be made; called before any
    decoding."""
    check_metric_names(metric_names, where)
    check_installed(metric_names, where, metric_options)


def _options(fn: MetricFn) -> set[str]:
    params = list(inspect.signature(fn).parameters)
    return set(params[2:])  # after (targets, predictions)


def compute_metrics(
    names: Iterable[str],
    targets: Sequence,
    predictions: Sequence,
    *,
    postprocess: Optional[Callable] = None,
    postprocess_targets: bool = True,
    bleu_tokenize: Optional[str] = None,
    rouge_tokenize: Optional[str] = None,
    squad_lang: Optional[str] = None,
    **options,
) -> dict[str, float]:
    """Runs each named metric and merges their dicts.

    Args:
      names: METRICS names ("accuracy", "f1_macro", "squad", "bleu", "rouge", ...), or one.
      targets: one per example: a label, number or string, or a list of reference strings
        where a metric takes several (squad, bleu, rouge).
      predictions: one per example.
      postprocess: applied to every prediction (and string target, with postprocess_targets);
        None: as given.
      postprocess_targets: whether `postprocess` applies to the targets too.
      bleu_tokenize: sacreBLEU's tokenizer ("13a", "zh", "intl", "char", ...); None or "auto":
        from the references' script (`t5core.metrics.scripts`).
      rouge_tokenize: "words" or "chars"; None or "auto": from the references' script.
      squad_lang: the answers' language for squad (MLQA's rules for it, `metrics.qa.squad`);
        None or "auto": SQuAD v1.1's rules, MLQA's Chinese ones for unspaced answers.
      **options: to each metric taking an argument of that name (labels=, pos_label=, ...);
        one no metric takes is an error.

    Returns:
      {metric key: float}, every metric's keys ("accuracy", "precision_macro", "squad_em", ...).

    Raises:
      ValueError: an unknown metric or option, unequal or empty targets and predictions, or two
        metrics reporting the same key.
    """
    names = [names] if isinstance(names, str) else list(names)
    fns = {name: get_metric(name) for name in names}
    if bleu_tokenize is not None and "bleu" in fns:
        if options.get("tokenize", bleu_tokenize) != bleu_tokenize:
            raise ValueError(f"bleu_tokenize={bleu_tokenize!r} contradicts "
                             f"tokenize={options['tokenize']!r}")
        options["tokenize"] = bleu_tokenize
    if rouge_tokenize is not None and "rouge" in fns:
        options["rouge_tokenize"] = rouge_tokenize
    if squad_lang not in (None, "auto") and "squad" in fns:
        options["squad_lang"] = squad_lang
    accepted = set().union(*(_options(fn) for fn in fns.values())) if fns else set()
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(f"option(s) {sorted(unknown)} are not taken by any of the metrics {names}")
    check_pairs(targets, predictions)
    if postprocess is not None:
        predictions = [postprocess(p) for p in predictions]
        if postprocess_targets:
            targets = [postprocess(t) if isinstance(t, str) else t for t in targets]
    results: dict[str, float] = {}
    for fn in fns.values():
        kw = {k: v for k, v in options.items() if k in _options(fn)}
        for key, value in fn(targets, predictions, **kw).items():
            if key in results:
                raise ValueError(f"metrics {names} both report {key!r}")
            results[key] = value
    return results


__all__ = ["METRICS", "get_metric", "compute_metrics", "check_metric_packages",
           "check_metric_names",
           "classification_report", "accuracy", "f1_macro", "f1_micro", "f1_weighted", "f1_binary",
           "per_class", "mcc", "pearson", "spearman", "squad", "normalize_answer", "entity_f1",
           "seqeval_f1", "bleu", "rouge", "BLEU_AUTO", "BLEU_TOKENIZERS", "ROUGE_MODES",
           "bleu_tokenizer", "rouge_tokenizer", "INVALID_LABEL", "INVALID_FLOAT", "NO_ENTITIES",
           "string_to_label", "string_to_float", "format_entities", "parse_entities",
           "bio_to_spans", "bio_to_entities"]
