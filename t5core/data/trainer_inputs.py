"""The trainer's inputs from the run options: (train dataset, eval dataset, evaluator)."""

from __future__ import annotations

import collections
import logging

import tensorflow as tf

from t5core.data.embedded_tasks import embedded_examples
from t5core.data.option_tasks import task_from_options
from t5core.data.pairs import batched, encode_pairs, pad_batches
from t5core.data.tasks import Mixture, make_model_dataset, task_examples
from t5core.evaluation.evaluators import ClassifierEvaluator, DecodeEvaluator, task_evaluator

log = logging.getLogger(__name__)


def make_trainer_inputs(options, tokenizer, decoder_start_token_id: int = 0, counter=None):
    """(train dataset, eval dataset or None, evaluator or None) for the options' data source;
    `counter` (a DropCounter) counts the training rows that `options.overlong` cuts."""
    c = options.train
    if not (options.task or options.mixture or options.train_file):
        return embedded_inputs(tokenizer, c.inputs_length, c.targets_length, c.batch_size,
                               c.seed, options.eval_examples,
                               decoder_start_token_id=decoder_start_token_id)
    lengths = {"inputs": c.inputs_length, "targets": c.targets_length}
    task, _ = task_from_options(
        name=options.task or options.mixture, train_file=options.train_file,
        eval_file=options.eval_file, template=options.template,
        template_args=options.template_args, instruction=options.instruction, seed=c.seed,
        inputs_field=options.inputs_field, targets_field=options.targets_field, lengths=lengths,
        metrics=options.metric_list, labels=options.label_list, name_flag="--task/--mixture")
    data_dir = options.data_dir or None
    warning = unknown_tokens_warning(task, "train", tokenizer, data_dir)
    if warning:
        log.warning("%s", warning)
    if options.head == "classifier":
        return classifier_inputs(task, tokenizer, c, options.label_list, data_dir=data_dir,
                                 eval_examples=options.eval_examples, overlong=options.overlong,
                                 counter=counter)
    train = make_model_dataset(task, "train", tokenizer, batch_size=c.batch_size,
                               lengths=lengths, pack=options.pack, shuffle=True, seed=c.seed,
                               num_epochs=None, data_dir=data_dir,
                               decoder_start_token_id=decoder_start_token_id,
                               overlong=options.overlong, counter=counter)
    split = eval_split_of(task)
    if split is None:
        return train, None, None
    eval_data = pad_batches(make_model_dataset(
        task, split, tokenizer, batch_size=c.batch_size, lengths=lengths, pack=False,
        shuffle=False, seed=c.seed, num_epochs=1, data_dir=data_dir, drop_remainder=False,
        decoder_start_token_id=decoder_start_token_id), c.batch_size)
    evaluator = None
    if task.metrics and options.eval_examples:
        evaluator = task_evaluator(
            task, split, tokenizer, c.inputs_length, c.targets_length, data_dir,
            options.eval_examples, batch_size=64,
            labels=options.label_list if options.rank_classification else [],
            score_labels=options.label_list,
            metric_options={"bleu_tokenize": options.bleu_tokenize,
                            "rouge_tokenize": options.rouge_tokenize,
                            "squad_lang": options.squad_lang})
    return train, eval_data, evaluator


def unknown_tokens_warning(task, split, tokenizer, data_dir=None, examples: int = 200) -> str:
    """`tokenizer.unknown_tokens_warning` over the text fields of the split's first `examples`
    source examples (of each task of a mixture): "" unless the vocabulary cannot spell them."""
    texts = collections.defaultdict(list)
    tasks = [t for t, _ in task.resolved()] if isinstance(task, Mixture) else [task]
    for t in tasks:
        rows = t.source.get_dataset(split, data_dir=data_dir).take(examples)
        for example in rows.as_numpy_iterator():
            for field, value in example.items():
                if isinstance(value, bytes):
                    texts[field].append(value.decode("utf-8"))
    return tokenizer.unknown_tokens_warning(texts, f"the first {examples} {split} examples")


def embedded_inputs(tokenizer, inputs_length, targets_length, batch_size, seed,
                    eval_examples=400, decoder_start_token_id=0):
    """Train and eval datasets and an exact-match evaluator for the embedded task set
    (eval_examples=0: eval dataset and evaluator None)."""
    train, _ = encode_pairs(embedded_examples("train"), tokenizer, inputs_length,
                            targets_length, "embedded train", decoder_start_token_id)
    if not eval_examples:
        return batched(train, batch_size, seed), None, None
    validation = embedded_examples("validation")[:eval_examples]
    eval_features, _ = encode_pairs(validation, tokenizer, inputs_length, targets_length,
                                    "embedded validation", decoder_start_token_id)
    evaluator = DecodeEvaluator(
        [tokenizer.encode(i, add_eos=True) for i, _ in validation], [t for _, t in validation],
        tokenizer, ["accuracy"], inputs_length, targets_length, batch_size=100)
    # Full batches (the last padded with rows of no weight), which split over the replicas
    # as training's do.
    return (batched(train, batch_size, seed),
            batched(eval_features, batch_size, seed, repeat=False, shuffle=False),
            evaluator)


def eval_split_of(task):
    splits = getattr(task, "splits", ("validation",))
    for name in ("validation", "test"):
        if name in splits:
            return name
    return None


def _labelled(task, split, tokenizer, lengths, labels, data_dir, shuffle, seed, num_epochs,
              overlong="cut", counter=None):
    """(encoder tokens, label id) examples; a target outside `labels` is an error naming it."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(labels), tf.range(len(labels))), -1)
    ds = task.get_dataset(split, tokenizer, lengths=lengths, data_dir=data_dir, shuffle=shuffle,
                          seed=seed, num_epochs=num_epochs, keep_text=True, overlong=overlong,
                          counter=counter)

    def to_features(x):
        label = table.lookup(x["targets_pretokenized"])
        tf.debugging.assert_non_negative(
            label, message=f"{task.name} ({split}): a target is not one of the labels {labels}")
        tokens = x["inputs"][:lengths["inputs"]]
        tokens = tf.pad(tokens, [[0, lengths["inputs"] - tf.shape(tokens)[0]]])
        return {"encoder_input_tokens": tf.ensure_shape(tokens, [lengths["inputs"]]),
                "label": tf.cast(label, tf.int32)}

    return ds.map(to_features, num_parallel_calls=tf.data.AUTOTUNE)


def classifier_inputs(task, tokenizer, config, labels, *, data_dir, eval_examples,
                      overlong="cut", counter=None):
    """(train dataset, eval dataset or None, evaluator or None) for the classification head:
    encoder tokens and the label id of each example's target word."""
    lengths = {"inputs": config.inputs_length, "targets": config.targets_length}
    train = _labelled(task, "train", tokenizer, lengths, labels, data_dir, True, config.seed,
                      None, overlong, counter)
    train = train.batch(config.batch_size, drop_remainder=True).prefetch(2)
    split = eval_split_of(task)
    if split is None:
        return train, None, None
    eval_data = pad_batches(_labelled(task, split, tokenizer, lengths, labels, data_dir, False,
                                      config.seed, 1).batch(config.batch_size), config.batch_size)
    inputs, targets = task_examples(task, split, tokenizer, lengths, data_dir, eval_examples)
    metrics = list(getattr(task, "metrics", ())) or ["accuracy"]
    return train, eval_data, ClassifierEvaluator(inputs, targets, labels, metrics,
                                                 config.inputs_length, tokenizer)
