"""Beam search with T5's length penalty, in one tf.while_loop over a [B*K]-row cache.

Each row keeps K live beams (no EOS yet) and K finished ones. A step extends every live beam by
every token, keeps the 2K best extensions (at most K of them end in EOS, so K live ones always
remain), moves those ending in EOS that rank among the K best to the finished set, scored by
`log p / length_penalty`, and
reorders the self-attention cache to follow the surviving live beams. A row is done once no live
beam can still beat its best finished one; the loop stops when every row is done.
"""

import tensorflow as tf

from t5core.decoding.cache_ops import reorder_self_cache, tile_cache, write_at

NEG_INF = float("-inf")


def length_penalty(length, alpha):
    """T5's (Mesh-TF / T5X) length penalty ((5 + length) / 6) ** alpha (HF's: length ** alpha)."""
    length = tf.cast(length, tf.float32)
    return tf.pow((5.0 + length) / 6.0, tf.cast(alpha, tf.float32))


def _gather_beams(x, index):
    """x [B, M, ...] -> [B, K, ...] picking index [B, K] in each row."""
    return tf.gather(x, index, batch_dims=1)


def beam_search(model, cache, first_token, first_step, max_new_tokens, num_beams, alpha, eos_id):
    """The best beam of each row.

    cache / first_token / first_step: from `start_decoding`, for B rows (tiled here to B*K).
    Lengths count the new tokens, EOS included; a beam that reaches max_new_tokens without EOS is
    finished there. Returns (tokens int32 [B, max_new_tokens], 0 after EOS; scores float32 [B],
    the best beam's log-probability divided by length_penalty(its length, alpha)).
    """
    k = num_beams
    batch = tf.shape(first_token)[0]
    cache = tile_cache(cache, k)
    token = tf.repeat(first_token, k)  # [B*K]
    # At first only one beam per row is real; the others start at -inf so they never win.
    first = tf.concat([[0.0], tf.fill([k - 1], NEG_INF)], axis=0)
    live_log_probs = tf.tile(first[None, :], [batch, 1])  # [B, K]
    live_tokens = tf.zeros([batch, k, max_new_tokens], tf.int32)
    finished_scores = tf.fill([batch, k], NEG_INF)
    finished_tokens = tf.zeros([batch, k, max_new_tokens], tf.int32)
    row_offsets = (tf.range(batch) * k)[:, None]  # [B, 1]
    alpha = tf.cast(alpha, tf.float32)
    longest_penalty = length_penalty(max_new_tokens, alpha)

    def cond(i, token, cache, live_log_probs, live_tokens, finished_scores, finished_tokens):
        # The best any live beam can still reach: log-probs only fall as it grows, so its bound
        # is its current log-prob over the most favourable penalty among the lengths left.
        best_live = live_log_probs[:, 0]
        bound = tf.maximum(best_live / longest_penalty, best_live / length_penalty(i + 1, alpha))
        row_done = finished_scores[:, 0] >= bound
        return (i < max_new_tokens) & ~tf.reduce_all(row_done)

    def body(i, token, cache, live_log_probs, live_tokens, finished_scores, finished_tokens):
        logits, cache = model.decode_step(token, cache, first_step + i)  # [B*K, V]
        vocab = tf.shape(logits)[-1]
        log_probs = tf.reshape(tf.nn.log_softmax(logits, axis=-1), [batch, k, vocab])
        extended = tf.reshape(live_log_probs[:, :, None] + log_probs, [batch, k * vocab])
        top_log_probs, top_index = tf.math.top_k(extended, k=2 * k)  # [B, 2K]
        source_beam = top_index // vocab
        new_token = top_index % vocab
        candidates = write_at(_gather_beams(live_tokens, source_beam), i, new_token)  # [B, 2K, T]

        # Finished: candidates ending in EOS that rank among the K best (as fairseq and HF do, so
        # that one beam is greedy), and at the last step every candidate.
        in_top_k = tf.range(2 * k)[None, :] < k
        ends = (tf.equal(new_token, eos_id) & in_top_k) | tf.equal(i, max_new_tokens - 1)
        candidate_scores = tf.where(ends, top_log_probs / length_penalty(i + 1, alpha), NEG_INF)
        pool_scores = tf.concat([finished_scores, candidate_scores], axis=1)  # [B, 3K]
        pool_tokens = tf.concat([finished_tokens, candidates], axis=1)
        finished_scores, best = tf.math.top_k(pool_scores, k=k)
        finished_tokens = _gather_beams(pool_tokens, best)

        # Live: the K best candidates without EOS.
        live_log_probs, keep = tf.math.top_k(
            tf.where(tf.equal(new_token, eos_id), NEG_INF, top_log_probs), k=k)
        live_tokens = _gather_beams(candidates, keep)
        token = tf.reshape(_gather_beams(new_token, keep), [-1])
        rows = tf.reshape(_gather_beams(source_beam, keep) + row_offsets, [-1])
        cache = reorder_self_cache(cache, rows)
        return i + 1, token, cache, live_log_probs, live_tokens, finished_scores, finished_tokens

    state = (tf.constant(0), token, cache, live_log_probs, live_tokens, finished_scores,
             finished_tokens)
    state = tf.while_loop(cond, body, state)
    finished_scores, finished_tokens = state[5], state[6]
    return finished_tokens[:, 0], finished_scores[:, 0]
