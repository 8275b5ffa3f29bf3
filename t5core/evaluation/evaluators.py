"""Evaluators: predict held-out examples with a model and score the predictions, called as
`evaluator(model) -> (metrics, sample lines)`; `evaluate_task` scores a task's split in one call."""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from t5core.data.pairs import pad_rows
from t5core.data.tasks import task_examples
from t5core.decoding import generate
from t5core.decoding.text import batch_options, is_empty
from t5core.errors import FlagError
from t5core.losses import token_losses
from t5core.metrics import check_metric_packages, compute_metrics
from t5core.model_inputs import shift_right

# The metrics that take the declared label set (labels=).
LABELLED_METRICS = {"f1_macro", "f1_micro", "f1_weighted", "per_class"}


def score_texts(metric_names, targets, predictions, *, postprocess=None, labels=(),
                metric_options=None) -> dict[str, float]:
    """The metrics of predicted texts, by the one rule every evaluation follows (the trainer's
    in-run evaluation, `evaluate_task`, scripts/evaluate.py): `postprocess` (a template's) applied
    to predictions and targets alike, and the label metrics over the declared label set
    `labels` when there is one, never its union with the predictions (a prediction outside it is
    a miss for its true class, not a class of its own)."""
    options = dict(metric_options or {})
    if labels and set(metric_names) & LABELLED_METRICS:
        options["labels"] = list(labels)
    return compute_metrics(metric_names, targets, predictions, postprocess=postprocess, **options)


class DecodeEvaluator:
    """Decodes `inputs` (token id lists; greedy unless generate_options say otherwise) and
    scores the text against `targets`, in batches of one shape (one trace of the loop), by
    `score_texts` (postprocess and score_labels: its arguments)."""

    decodes = True  # predictions are decoded text, which the vocabulary's normalisation shapes

    def __init__(self, inputs, targets, tokenizer, metric_names, inputs_length, max_new_tokens,
                 batch_size=64, postprocess=None, jit_compile=None,
                 metric_options=None, progress=False, score_labels=(), **generate_options):
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        # Before any decoding: a missing package would otherwise stop the run at its first score.
        check_metric_packages(metric_names, "metrics to evaluate", metric_options)
        texts = [t for t in targets if isinstance(t, str)]
        for warning in (tokenizer.unknown_tokens_warning({"inputs": inputs, "targets": texts},
                                                         "the held-out examples"),
                        self.decodes and tokenizer.unwritable_warning(texts,
                                                                      "the held-out targets")):
            if warning:
                print(f"Warning: {warning}", file=sys.stderr)
        self.inputs = pad_rows(inputs, inputs_length)
        self.targets = list(targets)
        self.tokenizer = tokenizer
        self.metric_names = list(metric_names)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.postprocess = postprocess
        self.jit_compile = jit_compile
        self.metric_options = metric_options or {}
        self.score_labels = list(score_labels)
        self.generate_options = generate_options  # method, num_beams, alpha, ...
        self.progress = progress  # a tqdm bar counting examples (evaluate.py: minutes on a CPU)

    def _bar(self, description):
        """A tqdm bar counting examples when `progress`, else None."""
        return tqdm(total=len(self.inputs), unit="example", desc=description) \
            if self.progress else None

    def predict(self, model) -> list[str]:
        predictions = []
        bar = self._bar("decode")
        for start in range(0, len(self.inputs), self.batch_size):
            batch = self.inputs[start:start + self.batch_size]
            real = len(batch)
            if real < self.batch_size:  # keep one shape: pad with copies of the first row
                batch = np.concatenate([batch, np.repeat(batch[:1], self.batch_size - real, 0)])
            tokens, _ = generate(model, batch, self.max_new_tokens, jit_compile=self.jit_compile,
                                 **batch_options(self.generate_options, start, real,
                                                 self.batch_size))
            # An input of EOS alone decodes to "", as at every other door (`is_empty`).
            predictions += ["" if is_empty(np.trim_zeros(ids, "b")) else self.tokenizer.decode(row)
                            for ids, row in zip(self.inputs[start:start + real],
                                                tokens.numpy()[:real])]
            if bar is not None:
                bar.update(real)
        if bar is not None:
            bar.close()
        return predictions

    def __call__(self, model, return_predictions=False):
        predictions = self.predict(model)
        metrics = score_texts(self.metric_names, self.targets, predictions,
                              postprocess=self.postprocess, labels=self.score_labels,
                              metric_options=self.metric_options)
        samples = sample_lines(self.tokenizer, self.inputs, predictions, self.targets)
        if return_predictions:
            return metrics, samples, predictions
        return metrics, samples


def evaluate_task(model, task, split, tokenizer, inputs_length, targets_length, data_dir=None,
                  max_examples=0, batch_size=64, bleu_tokenize=None, rouge_tokenize=None,
                  **generate_options):
    """Decodes a task split's examples and scores them with the task's `metrics`.

    Args:
      model: a T5Model (or PromptTunedT5).
      task: a `t5core.data.tasks.Task` (`file_task`, `get_task(name)`).
      split: e.g. "validation".
      tokenizer: the model's `Tokenizer` or `ByteTokenizer`.
      inputs_length: input tokens per example (longer are cut).
      targets_length: the most tokens decoded (and the targets' length when preprocessing).
      data_dir: where the task's source reads, if it needs one (None: its default).
      max_examples: only the first this many; 0: all.
      batch_size: rows per `generate` call.
      bleu_tokenize, rouge_tokenize: see `compute_metrics`; None: from the targets' script.
      **generate_options: `t5core.generate`'s (method, num_beams, ...) and `DecodeEvaluator`'s
        (postprocess, jit_compile, metric_options).

    Returns:
      (metrics, predictions, targets): `compute_metrics`' dict; decoded and target strings in
      the split's order.
    """
    metric_options = dict(generate_options.pop("metric_options", None) or {})
    metric_options.update({k: v for k, v in (("bleu_tokenize", bleu_tokenize),
                                              ("rouge_tokenize", rouge_tokenize)) if v})
    evaluator = task_evaluator(task, split, tokenizer, inputs_length, targets_length, data_dir,
                               max_examples, batch_size=batch_size,
                               metric_options=metric_options, **generate_options)
    metrics, _, predictions = evaluator(model, return_predictions=True)
    return metrics, predictions, evaluator.targets


def make_evaluator(inputs, targets, tokenizer, metric_names, inputs_length, max_new_tokens,
                   labels=(), **options):
    """A RankEvaluator over the label words `labels` when there are any, else a DecodeEvaluator;
    `options` go to it (batch_size, metric_options, generate's options, ...)."""
    if labels:
        return RankEvaluator(inputs, targets, tokenizer, metric_names, inputs_length,
                             max_new_tokens, labels=labels, **options)
    return DecodeEvaluator(inputs, targets, tokenizer, metric_names, inputs_length,
                           max_new_tokens, **options)


def task_evaluator(task, split, tokenizer, inputs_length, targets_length, data_dir=None,
                   max_examples=0, labels=(), **options):
    """`make_evaluator` over a task's split and metrics and, for a templated task, its
    template's postprocess and label words (as scripts/evaluate.py scores); packages checked
    before data is read."""
    check_metric_packages(task.metrics, f"the metrics of {task.name}",
                          options.get("metric_options"))
    lengths = {"inputs": inputs_length, "targets": targets_length}
    inputs, targets = task_examples(task, split, tokenizer, lengths, data_dir, max_examples)
    scoring = template_scoring(getattr(task, "template", None))  # a mixture has none
    # A label set given (the run's --labels) wins over the template's words, as in evaluate.py.
    options = {**scoring, **{k: v for k, v in options.items() if v or k not in scoring}}
    return make_evaluator(inputs, targets, tokenizer, list(task.metrics), inputs_length,
                          targets_length, labels, **options)


def template_scoring(template) -> dict:
    """The `DecodeEvaluator` options a prompt template (or None) sets: its postprocess and, for
    a label template, its label words as the declared label set."""
    if template is None:
        return {}
    return {"postprocess": template.postprocess,
            "score_labels": list(getattr(template, "words", []))}


def score_candidates(model, encoder_tokens, candidates, targets_length, batch_size=64,
                     on_batch=None):
    """Log-likelihood float32 [N, C] of each candidate target (token lists) for each input,
    each candidate teacher-forced in one forward pass (rank classification); `on_batch(rows)`
    after each batch of inputs."""
    # Each candidate is scored whole: cut to targets_length, labels sharing their first tokens
    # would tie, and a label's score would depend on the decoding length.
    targets = pad_rows(candidates, max([targets_length, *map(len, candidates)]))  # [C, T]
    decoder_inputs = shift_right(targets, model.config.decoder_start_token_id).numpy()
    scores = np.zeros((len(encoder_tokens), len(candidates)), np.float32)
    for start in range(0, len(encoder_tokens), batch_size):
        enc = encoder_tokens[start:start + batch_size]
        encoded = model.encode(enc)
        for c in range(len(candidates)):
            rows = len(enc)
            logits = model.decode(np.repeat(decoder_inputs[c:c + 1], rows, 0), encoded, enc)
            losses, _, _ = token_losses(logits, tf.constant(np.repeat(targets[c:c + 1], rows, 0)))
            weights = (targets[c] > 0).astype(np.float32)
            scores[start:start + rows, c] = -np.sum(losses.numpy() * weights, axis=-1)
        if on_batch:
            on_batch(len(enc))
    return scores


class RankEvaluator(DecodeEvaluator):
    """Like DecodeEvaluator, but predicts the label word whose likelihood is highest."""

    decodes = False  # predictions are the label words themselves

    def __init__(self, *args, labels, **kwargs):
        kwargs["score_labels"] = kwargs.get("score_labels") or labels
        super().__init__(*args, **kwargs)
        self.labels = list(labels)
        self.label_tokens = [self.tokenizer.encode(label, add_eos=True) for label in labels]
        # Labels that are the same targets once cut are the same to a model trained on them.
        scored = {}
        for label, tokens in zip(self.labels, self.label_tokens):
            cut = tokens[:self.max_new_tokens]
            other = scored.setdefault(tuple(cut), label)
            if other != label:
                raise FlagError(
                    f"--labels {other!r} and {label!r} are the same tokens "
                    f"({self.tokenizer.decode(cut)!r}) once tokenized and cut to the targets' "
                    f"length {self.max_new_tokens}, as training cuts its targets: a model cannot "
                    f"learn to tell them apart. Give label words the vocabulary spells "
                    f"apart, or a targets length of at least "
                    f"{max(map(len, self.label_tokens))} (the longest label with its EOS)")

    def predict(self, model):
        bar = self._bar("rank")
        scores = score_candidates(model, self.inputs, self.label_tokens, self.max_new_tokens,
                                  self.batch_size, on_batch=bar.update if bar else None)
        if bar is not None:
            bar.close()
        return [self.labels[i] for i in np.argmax(scores, axis=-1)]


def sample_lines(tokenizer, inputs, predictions, targets, count=8):
    """The first `count` examples as training prints them: "'input' -> 'output' (target ...)",
    every head alike."""
    return [f"{tokenizer.decode(i)!r} -> {p!r} (target {t!r})"
            for i, p, t in zip(inputs[:count], predictions, targets)]


class ClassifierEvaluator:
    """Scores `model.predict` (class ids) as label words with the task's metrics."""

    def __init__(self, inputs, targets, labels, metric_names, inputs_length, tokenizer):
        check_metric_packages(metric_names, "metrics to evaluate")
        self.tokenizer = tokenizer  # to show each sample's input
        self.inputs = pad_rows(inputs, inputs_length)
        self.targets, self.labels, self.metric_names = list(targets), list(labels), metric_names

    def __call__(self, model):
        predictions = [self.labels[i] for i in np.asarray(model.predict(self.inputs))]
        metrics = score_texts(self.metric_names, self.targets, predictions, labels=self.labels)
        samples = sample_lines(self.tokenizer, self.inputs, predictions, self.targets)
        return metrics, samples
