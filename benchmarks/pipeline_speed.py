"""Throughput of the input pipelines, in model rows per second.

Two pipelines on real text (Multi30k, ../shared/data/multi30k):
- "span_corruption": English captions grouped into documents, tokenized, span-corrupted
  (568 -> 512/114) and packed into 512/114 rows: the pretraining pipeline.
- "translation" / "translation_packed": the multi30k_en_de task to 128/128 rows, padded or packed.
Used by benchmarks/benchmark_data.py and benchmarks/speed.py.
"""

from __future__ import annotations

import os
import time

import tensorflow as tf

from t5core.data import objectives
from t5core.data import preprocessors as prep
from t5core.data.features import to_model_features
from t5core.data.tasks import get_task

PIPELINES = ("span_corruption", "translation", "translation_packed")


def span_corruption_rows(multi30k_dir: str, tokenizer, lines_per_document: int = 50,
                         lengths=None, seed: int = 0) -> tf.data.Dataset:
    """Endless packed 512/114 span-corruption rows from train.en.gz captions."""
    lengths = dict(lengths or {"inputs": 512, "targets": 114})
    ds = tf.data.TextLineDataset(os.path.join(multi30k_dir, "train.en.gz"), compression_type="GZIP")
    ds = ds.filter(lambda line: tf.strings.length(tf.strings.strip(line)) > 0)
    ds = ds.map(lambda line: {"text": line}).repeat()
    # Consecutive captions joined into one "document" of plain English text.
    ds = ds.batch(lines_per_document).map(
        lambda x: {"targets": tf.strings.reduce_join(x["text"], separator=" ")})
    ds = prep.tokenize(ds, tokenizer, keys=("targets",))
    ds = objectives.span_corruption(ds, tokenizer, seed=seed, lengths=lengths)
    ds = prep.append_eos(ds)
    return to_model_features(ds, lengths, pack=True)


def translation_rows(multi30k_dir: str, tokenizer, pack: bool, lengths=None, seed: int = 0):
    """Endless multi30k_en_de rows (128/128), shuffled, padded or packed."""
    task = get_task("multi30k_en_de")
    lengths = dict(lengths or task.output_lengths)
    ds = task.get_dataset("train", tokenizer, lengths=lengths, data_dir=multi30k_dir, shuffle=True,
                          seed=seed, num_epochs=None)
    return to_model_features(ds, lengths, pack=pack)


def pipeline_rows_per_second(pipeline: str, multi30k_dir: str, tokenizer, *, batch_size: int = 8,
                             num_batches: int = 200, warmup_batches: int = 5,
                             seed: int = 0) -> dict:
    """Rows/s of one pipeline (timed after `warmup_batches`), with its settings and fill rate."""
    if pipeline == "span_corruption":
        ds = span_corruption_rows(multi30k_dir, tokenizer, seed=seed)
    elif pipeline in ("translation", "translation_packed"):
        ds = translation_rows(multi30k_dir, tokenizer, pack=pipeline.endswith("packed"), seed=seed)
    else:
        raise ValueError(f"unknown pipeline {pipeline!r}; choose from {PIPELINES}")
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    it = iter(ds)
    for _ in range(warmup_batches):
        next(it)
    tokens = nonpad = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(it)
        enc = batch["encoder_input_tokens"]
        tokens += int(tf.size(enc))
        nonpad += int(tf.math.count_nonzero(enc))
    seconds = time.perf_counter() - start
    rows = num_batches * batch_size
    return {"pipeline": pipeline, "rows": rows, "seconds": round(seconds, 3),
            "rows_per_second": round(rows / seconds, 1),
            "row_shape": {k: int(v.shape[-1]) for k, v in batch.items()
                          if k in ("encoder_input_tokens", "decoder_target_tokens")},
            "encoder_fill": round(nonpad / tokens, 3), "cpu_count": os.cpu_count()}
