"""Evaluation by decoding: generate predictions for held-out examples and score them."""

from __future__ import annotations

import numpy as np

from t5core.metrics import compute_metrics


def pad_rows(rows, length):
    """list of int lists -> int32 [N, length] padded with 0 (rows must already fit)."""
    out = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


class DecodeEvaluator:
    """Greedy-decodes `inputs` (token id lists) and scores the decoded text against `targets`.

    Batches have a fixed shape, so the compiled decoding loop is traced once for all of them.
    Returns (metrics, sample lines) as `Trainer` expects.
    """

    def __init__(self, inputs, targets, tokenizer, metric_names, inputs_length, max_new_tokens,
                 batch_size=64, max_examples=None, postprocess=None, jit_compile=None,
                 metric_options=None):
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        if max_examples:
            inputs, targets = inputs[:max_examples], targets[:max_examples]
        self.inputs = pad_rows([row[:inputs_length] for row in inputs], inputs_length)
        self.targets = list(targets)
        self.tokenizer = tokenizer
        self.metric_names = list(metric_names)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.postprocess = postprocess
        self.jit_compile = jit_compile
        self.metric_options = metric_options or {}

    def predict(self, model) -> list[str]:
        from t5core.decoding import generate

        predictions = []
        for start in range(0, len(self.inputs), self.batch_size):
            batch = self.inputs[start:start + self.batch_size]
            real = len(batch)
            if real < self.batch_size:  # keep one shape: pad with copies of the first row
                batch = np.concatenate([batch, np.repeat(batch[:1], self.batch_size - real, 0)])
            tokens, _ = generate(model, batch, self.max_new_tokens, jit_compile=self.jit_compile)
            predictions += [self.tokenizer.decode(row) for row in tokens.numpy()[:real]]
        return predictions

    def __call__(self, model):
        predictions = self.predict(model)
        metrics = compute_metrics(self.metric_names, self.targets, predictions,
                                  postprocess=self.postprocess, **self.metric_options)
        inputs_text = [self.tokenizer.decode(row) for row in self.inputs[:8]]
        samples = [f"{i!r} -> {p!r} (target {t!r})"
                   for i, p, t in zip(inputs_text, predictions, self.targets)]
        return metrics, samples
