"""Greedy decoding and ancestral sampling: one token per row per step in a tf.while_loop.

Greedy is the argmax limit of sampling, so both share the loop and differ only in how the next
token is chosen. The loop ends early once every row has emitted EOS.
"""

import tensorflow as tf

from t5core.decoding.cache_ops import write_at

NEG_INF = float("-inf")


def filter_logits(logits, temperature, top_k, top_p, use_top_p):
    """Logits [B, V] over temperature, tokens outside top-k / the top-p nucleus at -inf. top_k:
    static int, 0 no limit; top_p: float32 tensor in (0, 1] (the top token always kept);
    use_top_p: static, False skips the sort when top_p == 1."""
    logits = logits / tf.cast(temperature, logits.dtype)
    if top_k:
        kth_best = tf.math.top_k(logits, k=top_k).values[:, -1:]  # [B, 1]
        logits = tf.where(logits < kth_best, NEG_INF, logits)
    if use_top_p:
        ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
        before = tf.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
        # Keep a token while the mass of the tokens ranked above it is still short of top_p.
        keep = (before < tf.cast(top_p, before.dtype)) | tf.equal(tf.range(tf.shape(ordered)[1]), 0)
        smallest_kept = tf.reduce_min(tf.where(keep, ordered, float("inf")), axis=-1, keepdims=True)
        logits = tf.where(logits < smallest_kept, NEG_INF, logits)
    return logits


def first_argmax(logits):
    """int32 [B]: the first index of each row's maximum, as tf.argmax gives it."""
    size = tf.shape(logits)[-1]
    best = tf.reduce_max(logits, axis=-1, keepdims=True)
    index = tf.reduce_min(tf.where(logits == best, tf.range(size)[None, :], size), axis=-1)
    return tf.minimum(index, size - 1)  # a row of NaNs matches nothing: keep the id in range


def greedy_chooser():
    return lambda logits, step: first_argmax(logits)


def stateless_uniform(seed, shape, first_row=0):
    """Uniform float32 [rows, width] in [0, 1) from a stateless int64 [2] seed, the same in graph
    mode and under XLA (docs/architecture.md, Decoding numerics).

    Row r is drawn from the Philox blocks of row `first_row + r` alone, so a row's numbers depend
    on the seed and its index among all the rows decoded with that seed, never on how those rows
    were cut into batches (`generate_text`'s batch_size, a served request's size).
    """
    rows, width = shape[0], shape[1]
    blocks = (tf.cast(width, tf.int64) + 3) // 4  # Philox gives 4 uint32 per counter value
    seed = tf.reshape(tf.cast(seed, tf.int64), [2])
    start = seed[1] + tf.cast(first_row, tf.int64) * blocks
    bits = tf.bitcast(tf.stack([seed[0], start]), tf.uint64)
    counter = tf.stack([bits[1], tf.constant(0, tf.uint64)])
    raw = tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=tf.stack([tf.cast(rows, tf.int64), blocks * 4]), key=bits[:1], counter=counter,
        alg=1, dtype=tf.uint32)[:, :width]  # alg 1: Philox
    return tf.cast(tf.bitwise.right_shift(raw, 8), tf.float32) * (2.0 ** -24)


def sampling_chooser(seed, temperature, top_k, top_p, use_top_p, first_row=0):
    """Draws from the filtered distribution by Gumbel-max (an exact categorical draw); step `i`
    uses the stateless seed fold_in(seed, i), row r the numbers of row first_row + r."""
    def choose(logits, step):
        filtered = filter_logits(logits, temperature, top_k, top_p, use_top_p)
        step_seed = tf.random.experimental.stateless_fold_in(seed, step, alg="philox")
        uniform = stateless_uniform(step_seed, tf.shape(filtered), first_row)
        gumbel = -tf.math.log(-tf.math.log(uniform))  # u = 0 gives -inf: never chosen
        return tf.argmax(filtered + gumbel, axis=-1, output_type=tf.int32)
    return choose


def sample_loop(model, cache, first_token, first_step, max_new_tokens, choose, eos_id):
    """Decodes up to max_new_tokens tokens per row; returns (tokens, scores) as `generate`."""
    batch = tf.shape(first_token)[0]

    def cond(i, token, cache, tokens, scores, done):
        return (i < max_new_tokens) & ~tf.reduce_all(done)

    def body(i, token, cache, tokens, scores, done):
        logits, cache = model.decode_step(token, cache, first_step + i)  # [B, V] float32
        new = tf.where(done, 0, choose(logits, i))
        # log p(new) = logit - logsumexp, without the full [B, V] log-softmax.
        token_log_prob = (tf.gather(logits, new, batch_dims=1)
                          - tf.reduce_logsumexp(logits, axis=-1))
        scores += tf.where(done, 0.0, token_log_prob)
        tokens = write_at(tokens, i, new)
        done |= tf.equal(new, eos_id)
        return i + 1, new, cache, tokens, scores, done

    state = (tf.constant(0), first_token, cache, tf.zeros([batch, max_new_tokens], tf.int32),
             tf.zeros([batch], tf.float32), tf.zeros([batch], tf.bool))
    _, _, _, tokens, scores, _ = tf.while_loop(cond, body, state)
    return tokens, scores
