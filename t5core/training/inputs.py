"""Turning examples into the trainer's inputs: batched feature datasets and an evaluator."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from t5core.training.evaluation import DecodeEvaluator, pad_rows


def encode_pairs(pairs, tokenizer, inputs_length, targets_length, source="examples",
                 decoder_start_token_id=0):
    """(inputs text, targets text) pairs -> padded feature arrays (targets end with EOS).

    Over-long rows are truncated to the lengths (the EOS is kept); the count is returned so the
    caller can report it.
    """
    enc, tgt, truncated = [], [], 0
    for inputs, targets in pairs:
        e = tokenizer.encode(inputs, add_eos=True)
        t = tokenizer.encode(targets, add_eos=True)
        if len(e) > inputs_length or len(t) > targets_length:
            truncated += 1
            e = e[:inputs_length - 1] + [1] if len(e) > inputs_length else e
            t = t[:targets_length - 1] + [1] if len(t) > targets_length else t
        enc.append(e)
        tgt.append(t)
    if not enc:
        raise ValueError(f"{source}: no examples")
    targets = pad_rows(tgt, targets_length)
    features = {
        "encoder_input_tokens": pad_rows(enc, inputs_length),
        "decoder_target_tokens": targets,
        # Teacher forcing: the decoder sees the targets shifted right, after the start id.
        "decoder_input_tokens": np.concatenate(
            [np.full_like(targets[:, :1], decoder_start_token_id), targets[:, :-1]], axis=1),
        "decoder_loss_weights": (targets > 0).astype(np.float32),
    }
    return features, truncated


def batched(features, batch_size, seed, repeat=True, shuffle=True):
    """A tf.data pipeline over in-memory features; its iterator can be checkpointed."""
    dataset = tf.data.Dataset.from_tensor_slices(features)
    if shuffle:
        # reshuffle_each_iteration with a fixed seed keeps the stream reproducible and resumable.
        dataset = dataset.shuffle(len(features["encoder_input_tokens"]), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=True).prefetch(2)


def embedded_inputs(tokenizer, inputs_length, targets_length, batch_size, seed,
                    eval_examples=400, decoder_start_token_id=0):
    """Train and eval datasets and an exact-match evaluator for the embedded task set."""
    from t5core.embedded_tasks import embedded_examples

    train, _ = encode_pairs(embedded_examples("train"), tokenizer, inputs_length,
                            targets_length, "embedded train", decoder_start_token_id)
    validation = embedded_examples("validation")[:eval_examples]
    eval_features, _ = encode_pairs(validation, tokenizer, inputs_length, targets_length,
                                    "embedded validation", decoder_start_token_id)
    evaluator = DecodeEvaluator(
        [tokenizer.encode(i, add_eos=True) for i, _ in validation], [t for _, t in validation],
        tokenizer, ["accuracy"], inputs_length, targets_length, batch_size=100)
    eval_batch = min(batch_size, len(validation))
    return (batched(train, batch_size, seed),
            batched(eval_features, eval_batch, seed, repeat=False, shuffle=False),
            evaluator)
