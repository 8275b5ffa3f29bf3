"""Token cross-entropy for T5 as T5X computes it, with an explicit normalisation (`NORMALIZATIONS`).

The formulas, the normalisers and their use under tf.distribute: docs/architecture.md, "The loss".
"""

import math

import tensorflow as tf

from t5core.dataclass_flags import FRACTION, NONNEGATIVE, check_bound

NORMALIZATIONS = ("tokens", "total_tokens", "sequences", "none", "constant:<N>")


def parse_loss_normalization(loss_normalization):
    """(kind, the constant normaliser): ('none', 1.0), ('constant', N) for a number N, or
    ('tokens'|'total_tokens'|'sequences', None)."""
    value = loss_normalization
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ("tokens", "total_tokens", "sequences", "none"):
            return key, 1.0 if key == "none" else None
        if key.startswith("constant:"):
            value = key.split(":", 1)[1]
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"unknown loss_normalization {loss_normalization!r}; valid: "
                             f"{', '.join(NORMALIZATIONS)} or a positive number.") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"loss_normalization must be a string or a number, got "
                         f"{loss_normalization!r}; valid: {', '.join(NORMALIZATIONS)}.")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"a constant loss_normalization must be a positive finite number, got "
                         f"{loss_normalization!r}.")
    return "constant", float(value)


def _per_sequence_weights(weights, segment_ids):
    """weights / (weight sum of the token's sequence or packed segment), 0 where that is 0 and
    on padding (segment 0) whatever its weight, as T5X."""
    if segment_ids is None:
        per_token_total = tf.reduce_sum(weights, axis=-1, keepdims=True)
    else:
        weights = tf.where(tf.not_equal(segment_ids, 0), weights, tf.zeros_like(weights))
        # One segment slot per (row, segment id): ids are < T + 1 in a row of length T.
        batch, length = tf.shape(segment_ids)[0], tf.shape(segment_ids)[1]
        segment_ids = tf.cast(segment_ids, tf.int32)
        rows = tf.range(batch, dtype=tf.int32)[:, None] * (length + 1)
        slots = tf.clip_by_value(segment_ids, 0, length) + rows
        totals = tf.math.unsorted_segment_sum(weights, slots, batch * (length + 1))
        per_token_total = tf.gather(totals, slots)
    return tf.math.divide_no_nan(weights, per_token_total)


def token_losses(logits, targets, label_smoothing=0.0, z_loss=0.0):
    """Per-token (loss, z_loss term, correct), float32 [B, T]; loss already includes z-loss."""
    logits = tf.cast(logits, tf.float32)
    targets = tf.cast(targets, tf.int32)
    vocab_size = logits.shape[-1]
    if not label_smoothing:
        # One fused kernel reads the [B, T, V] logits once and leaves the gradient (softmax -
        # one-hot) ready, where logsumexp minus the gathered target logit costs more passes and
        # a backward scatter into a fresh [B, T, V] zero tensor (timings: BUILD_NOTES.md, "Speed").
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        log_z = tf.reduce_logsumexp(logits, axis=-1) if z_loss else None
        return _with_z_loss(loss, log_z, z_loss, logits, targets)
    log_z = tf.reduce_logsumexp(logits, axis=-1)                          # [B, T]
    target_logit = tf.gather(logits, targets, axis=-1, batch_dims=targets.shape.rank)
    confidence = 1.0 - label_smoothing
    low = label_smoothing / (vocab_size - 1)
    # entropy of the smoothed target (1e-20 as in T5X; only matters when low is 0)
    entropy = -(confidence * math.log(confidence)
                + (vocab_size - 1) * low * math.log(low + 1e-20))
    expected_logit = low * tf.reduce_sum(logits, axis=-1) + (confidence - low) * target_logit
    return _with_z_loss(log_z - expected_logit - entropy, log_z, z_loss, logits, targets)


def _with_z_loss(loss, log_z, z_loss, logits, targets):
    """(loss + z-loss term, z-loss term, correct) from the cross-entropy and the logsumexp."""
    z_term = z_loss * tf.square(log_z) if z_loss else tf.zeros_like(loss)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets),
                      tf.float32)
    return loss + z_term, z_term, correct


def cross_entropy_loss(logits, targets, weights=None, label_smoothing=0.0, z_loss=0.0,
                       loss_normalization="tokens", segment_ids=None, normalizer=None):
    """Weighted token cross-entropy, normalised as `loss_normalization` says.

    Args:
      logits: float [B, T, V] (computed in float32).
      targets: int [B, T].
      weights: float [B, T]; None means `targets > 0`.
      label_smoothing: in [0, 1).
      z_loss: coefficient >= 0 of logsumexp^2.
      loss_normalization: see the module docstring.
      segment_ids: int [B, T] of packed rows; "sequences" then normalises per segment.
      normalizer: overrides the normaliser (under tf.distribute, `global_normalizer(...)`);
        "sequences" still re-weights tokens within each sequence.

    Returns:
      (loss, aux): loss = loss_sum / normalizer (0 when that is 0); aux's float32 scalars:
      loss_sum (incl. z-loss), normalizer, z_loss_sum, z_loss, cross_entropy_sum, num_tokens
      (sum of weights), correct (weighted argmax == target), accuracy.
    """
    logits = tf.convert_to_tensor(logits)
    targets = tf.convert_to_tensor(targets)
    if logits.shape.rank != 3 or targets.shape.rank != 2:
        raise ValueError(f"cross_entropy_loss: logits must be [B, T, V] and targets [B, T]; got "
                         f"logits {logits.shape} and targets {targets.shape}.")
    if not logits.shape[:2].is_compatible_with(targets.shape):
        raise ValueError(f"cross_entropy_loss: logits {logits.shape} and targets "
                         f"{targets.shape} disagree on [B, T].")
    if not logits.dtype.is_floating or not targets.dtype.is_integer:
        raise ValueError(f"cross_entropy_loss: need float logits and int targets; got "
                         f"{logits.dtype.name} and {targets.dtype.name}.")
    check_bound("label_smoothing", label_smoothing, FRACTION)
    check_bound("z_loss", z_loss, NONNEGATIVE)
    if label_smoothing and logits.shape[-1] is None:
        raise ValueError("cross_entropy_loss: label smoothing needs a static vocabulary size.")
    kind, constant = parse_loss_normalization(loss_normalization)

    if weights is None:
        weights = tf.cast(targets > 0, tf.float32)
    weights = tf.cast(weights, tf.float32)
    if weights.shape.rank != 2 or not weights.shape.is_compatible_with(targets.shape):
        raise ValueError(f"cross_entropy_loss: weights {weights.shape} must match targets "
                         f"{targets.shape}.")

    loss, z_term, correct = token_losses(logits, targets, label_smoothing, z_loss)
    num_tokens = tf.reduce_sum(weights)
    loss_weights = _per_sequence_weights(weights, segment_ids) if kind == "sequences" else weights
    if constant is not None:  # constant, or none (1)
        local_normalizer = tf.constant(constant)
    elif kind == "total_tokens":
        local_normalizer = tf.cast(tf.size(targets), tf.float32)
    else:  # tokens, or sequences (whose weights sum to 1 in each sequence)
        local_normalizer = tf.reduce_sum(loss_weights)
    if normalizer is None:
        normalizer = local_normalizer
    normalizer = tf.cast(normalizer, tf.float32)

    loss_sum = tf.reduce_sum(loss * loss_weights)
    z_loss_sum = tf.reduce_sum(z_term * loss_weights)
    correct_sum = tf.reduce_sum(correct * weights)
    aux = {
        "loss_sum": loss_sum,
        "normalizer": local_normalizer,
        "z_loss_sum": z_loss_sum,
        "z_loss": tf.math.divide_no_nan(z_loss_sum, normalizer),
        "cross_entropy_sum": loss_sum - z_loss_sum,
        "num_tokens": num_tokens,
        "correct": correct_sum,
        "accuracy": tf.math.divide_no_nan(correct_sum, num_tokens),
    }
    return tf.math.divide_no_nan(loss_sum, normalizer), aux


def global_normalizer(local_normalizer, loss_normalization):
    """The whole batch's normaliser, inside a `strategy.run` replica function: counts are summed
    over replicas (and micro-batches); a constant is returned as it is (1 for "none")."""
    constant = parse_loss_normalization(loss_normalization)[1]
    if constant is not None:
        return tf.constant(constant, tf.float32)
    context = tf.distribute.get_replica_context()
    if context is None:
        raise ValueError("global_normalizer must be called in a replica context "
                         "(inside strategy.run), not in cross-replica context.")
    if context.num_replicas_in_sync == 1:
        return local_normalizer
    return context.all_reduce(tf.distribute.ReduceOp.SUM, local_normalizer)
