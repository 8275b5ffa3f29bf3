"""The T5 paper's text-to-text formats (Raffel et al. 2020, appendix D), as dataset -> dataset maps.

Each returns examples {"inputs": str, "targets": str}. Written to reproduce the strings of the
T5 repo's `t5/data/preprocessors.py` (glue, stsb, squad, summarize, translate) exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE

# English names of language codes, as T5 spells them (babel's `Locale(code[:2]).english_name`):
# the languages of WMT and of mT5's evaluation sets.
LANGUAGE_NAMES = {
    "en": "English", "de": "German", "fr": "French", "ro": "Romanian", "es": "Spanish",
    "it": "Italian", "cs": "Czech", "ru": "Russian", "zh": "Chinese", "ja": "Japanese",
    "ko": "Korean", "th": "Thai", "vi": "Vietnamese", "id": "Indonesian", "hi": "Hindi",
    "ar": "Arabic", "he": "Hebrew", "tr": "Turkish", "fi": "Finnish", "et": "Estonian",
    "lv": "Latvian", "lt": "Lithuanian", "kk": "Kazakh", "gu": "Gujarati", "uk": "Ukrainian",
    "pl": "Polish", "pt": "Portuguese", "nl": "Dutch", "el": "Greek", "bg": "Bulgarian"}


def _as_number(label, dtype):
    """A numeric label as `dtype`, from a number tensor or a numeric string (TSV/JSONL sources)."""
    if label.dtype == tf.string:
        return tf.strings.to_number(label, dtype)
    return tf.cast(label, dtype)


def _glue_inputs(x, benchmark_name, keys):
    """"<benchmark> <key1>: <text1> <key2>: <text2> ..." from the example's fields `keys`."""
    parts = [benchmark_name] + [part for k in keys for part in (f"{k}:", x[k])]
    return tf.strings.join(parts, separator=" ")


def glue(ds: tf.data.Dataset, benchmark_name: str, label_names: Sequence[str],
         feature_names: Sequence[str] | None = None) -> tf.data.Dataset:
    """"<benchmark> <key1>: <text1> <key2>: <text2>" -> label name ("<unk>" for -1); keys default
    to the text fields sorted by name, as T5 ("mnli hypothesis: ... premise: ...")."""
    names = tf.constant(list(label_names))

    def fn(x):
        keys = list(feature_names) if feature_names else sorted(set(x) - {"label", "idx"})
        label = _as_number(x["label"], tf.int64)
        target = tf.cond(tf.equal(label, -1), lambda: tf.constant("<unk>"),
                         lambda: tf.gather(names, label))
        return {"inputs": _glue_inputs(x, benchmark_name, keys), "targets": target}
    return ds.map(fn, num_parallel_calls=AUTOTUNE)


def stsb(ds: tf.data.Dataset) -> tf.data.Dataset:
    """STS-B as a 26-class problem: the score rounded to the nearest 0.2, with one decimal."""
    def fn(x):
        label = _as_number(x["label"], tf.float32)
        target = tf.strings.as_string(tf.round(label * 5) / 5, precision=1)
        return {"inputs": _glue_inputs(x, "stsb", ("sentence1", "sentence2")), "targets": target}
    return ds.map(fn, num_parallel_calls=AUTOTUNE)


def pad_punctuation(text):
    """Spaces around every non-word character (RE2's ASCII \\W), whitespace collapsed, as T5."""
    text = tf.strings.regex_replace(text, r"(\W)", r" \1 ")
    return tf.strings.regex_replace(text, r"\s+", " ")


def _string_join(parts):
    return tf.strings.regex_replace(tf.strings.join(parts, separator=" "), r"\s+", " ")


def squad(ds: tf.data.Dataset, include_context: bool = True) -> tf.data.Dataset:
    """SQuAD: "question: <q> context: <c>" -> first answer, punctuation padded (T5's format)."""
    def fn(x):
        answers = pad_punctuation(x["answers"]["text"])
        q, c = pad_punctuation(x["question"]), pad_punctuation(x["context"])
        if include_context:
            inputs = _string_join(["question:", q, "context:", c])
        else:
            inputs = _string_join(["squad trivia question:", q])
        return {"inputs": inputs, "targets": answers[0]}
    return ds.map(fn, num_parallel_calls=AUTOTUNE)


def summarize(ds: tf.data.Dataset, article_key: str = "article",
              summary_key: str = "highlights") -> tf.data.Dataset:
    """"summarize: <article>" -> summary."""
    return prefix_text(ds, "summarize: ", article_key, summary_key)


def translate(ds: tf.data.Dataset, source_language: str, target_language: str,
              names: Mapping[str, str] = LANGUAGE_NAMES) -> tf.data.Dataset:
    """"translate English to German: <en>" -> <de>."""
    for lang in (source_language, target_language):
        if lang[:2] not in names:
            raise ValueError(f"no English name for language {lang!r}; pass names={{...}}")
    prefix = f"translate {names[source_language[:2]]} to {names[target_language[:2]]}: "
    return prefix_text(ds, prefix, source_language, target_language)


def prefix_text(ds: tf.data.Dataset, prefix: str, inputs_key: str = "inputs",
                targets_key: str = "targets") -> tf.data.Dataset:
    """"<prefix><inputs>" -> targets, for file tasks that name their input and target fields."""
    return ds.map(lambda x: {"inputs": tf.strings.join([prefix, x[inputs_key]]),
                             "targets": x[targets_key]}, num_parallel_calls=AUTOTUNE)
