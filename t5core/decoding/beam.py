"""Beam search with T5's length penalty, in one tf.while_loop over a [B*K]-row cache, under T5X's
or HF's finishing rules (`semantics`: "t5x" or "hf"; docs/architecture.md, Beam search).
"""

import tensorflow as tf

from t5core.decoding.cache_ops import reorder_self_cache, tile_cache, write_at

NEG_INF = float("-inf")
SEMANTICS = ("t5x", "hf")
# The log-probability the absent beams start with: t5x.decoding.NEG_INF, HF's beam-score init.
ABSENT_BEAM = {"t5x": -1.0e7, "hf": -1.0e9}


def length_penalty(length, alpha):
    """T5's (Mesh-TF / T5X) length penalty ((5 + length) / 6) ** alpha (HF's: length ** alpha)."""
    length = tf.cast(length, tf.float32)
    return tf.pow((5.0 + length) / 6.0, tf.cast(alpha, tf.float32))


def check_semantics(semantics):
    if semantics not in SEMANTICS:
        raise ValueError(f"beam_semantics must be one of {', '.join(SEMANTICS)}, "
                         f"got {semantics!r}")
    return semantics


def _gather_beams(x, index):
    """x [B, M, ...] -> [B, K, ...] picking index [B, K] in each row."""
    return tf.gather(x, index, batch_dims=1)


def beam_search(model, cache, first_token, first_step, max_new_tokens, num_beams, alpha, eos_id,
                semantics="t5x", num_results=1):
    """The best `num_results` beams of each row, best first.

    cache / first_token / first_step: `start_decoding`'s for B rows (tiled here to B*K). Lengths
    count new tokens with EOS (plus the prompt under "t5x"). Returns (tokens int32
    [B, num_results, max_new_tokens], 0 after EOS; scores float32 [B, num_results]: log p over
    length_penalty(length, alpha), or under "t5x" for a row where nothing finished the live
    beam's log p; unfilled slots -inf).
    """
    check_semantics(semantics)
    k = num_beams
    if not 1 <= num_results <= k:
        raise ValueError(f"num_results must be in [1, num_beams={k}], got {num_results}")
    batch = tf.shape(first_token)[0]
    cache = tile_cache(cache, k)
    token = tf.repeat(first_token, k)  # [B*K]
    # At first only one beam per row is real; the others start far below it (see the docstring).
    first = tf.concat([[0.0], tf.fill([k - 1], ABSENT_BEAM[semantics])], axis=0)
    live_log_probs = tf.tile(first[None, :], [batch, 1])  # [B, K]
    live_tokens = tf.zeros([batch, k, max_new_tokens], tf.int32)
    finished_scores = tf.fill([batch, k], NEG_INF)
    finished_tokens = tf.zeros([batch, k, max_new_tokens], tf.int32)
    row_offsets = (tf.range(batch) * k)[:, None]  # [B, 1]
    alpha = tf.cast(alpha, tf.float32)
    counted_prompt = tf.cast(first_step, tf.int32) if semantics == "t5x" else 0
    # T5X stores beams worst first, so among extensions of equal log-probability its top-k (which
    # prefers the lower index) keeps the one from the worse beam. Here beams are stored best
    # first; under "t5x" the top-k's see them in T5X's order, so exact ties resolve as in T5X.
    worst_first = semantics == "t5x"

    def penalty(new_tokens):
        return length_penalty(counted_prompt + new_tokens, alpha)

    def cond(i, token, cache, live_log_probs, live_tokens, finished_scores, finished_tokens):
        # The best any live beam can still reach: log-probs only fall as it grows, so its bound
        # is its current log-prob over the most favourable penalty among the lengths left (the
        # penalty is monotone in the length, so one of the two ends).
        best_live = live_log_probs[:, 0]
        bound = tf.maximum(best_live / penalty(max_new_tokens), best_live / penalty(i + 1))
        row_done = finished_scores[:, num_results - 1] >= bound
        return (i < max_new_tokens) & ~tf.reduce_all(row_done)

    def body(i, token, cache, live_log_probs, live_tokens, finished_scores, finished_tokens):
        logits, cache = model.decode_step(token, cache, first_step + i)  # [B*K, V]
        vocab = tf.shape(logits)[-1]
        log_probs = tf.reshape(tf.nn.log_softmax(logits, axis=-1), [batch, k, vocab])
        extended = live_log_probs[:, :, None] + log_probs  # [B, K, V]
        if worst_first:
            extended = tf.reverse(extended, axis=[1])
        top_log_probs, top_index = tf.math.top_k(tf.reshape(extended, [batch, k * vocab]),
                                                 k=2 * k)  # [B, 2K]
        source_beam = top_index // vocab
        if worst_first:
            source_beam = k - 1 - source_beam
        new_token = top_index % vocab
        candidates = write_at(_gather_beams(live_tokens, source_beam), i, new_token)  # [B, 2K, T]
        is_eos = tf.equal(new_token, eos_id)

        # Live: the K best candidates without EOS.
        live_log_probs, keep = tf.math.top_k(tf.where(is_eos, NEG_INF, top_log_probs), k=k)

        # Finished: the candidates the rule set lets finish, joined with the finished set.
        if semantics == "t5x":
            ends = is_eos & (top_log_probs > NEG_INF)
        else:
            ranks = tf.range(2 * k)[None, :]
            ends = is_eos & (ranks < k)
            kept_live = tf.reduce_any(tf.equal(ranks[:, :, None], keep[:, None, :]), axis=-1)
            ends |= kept_live & tf.equal(i, max_new_tokens - 1)
        candidate_scores = tf.where(ends, top_log_probs / penalty(i + 1), NEG_INF)
        if worst_first:
            finished_scores = tf.reverse(finished_scores, axis=[1])
            finished_tokens = tf.reverse(finished_tokens, axis=[1])
        pool_scores = tf.concat([finished_scores, candidate_scores], axis=1)  # [B, 3K]
        pool_tokens = tf.concat([finished_tokens, candidates], axis=1)
        finished_scores, best = tf.math.top_k(pool_scores, k=k)
        finished_tokens = _gather_beams(pool_tokens, best)

        live_tokens = _gather_beams(candidates, keep)
        token = tf.reshape(_gather_beams(new_token, keep), [-1])
        rows = tf.reshape(_gather_beams(source_beam, keep) + row_offsets, [-1])
        cache = reorder_self_cache(cache, rows)
        return i + 1, token, cache, live_log_probs, live_tokens, finished_scores, finished_tokens

    state = (tf.constant(0), token, cache, live_log_probs, live_tokens, finished_scores,
             finished_tokens)
    state = tf.while_loop(cond, body, state)
    live_log_probs, live_tokens, finished_scores, finished_tokens = state[3:]
    if semantics == "t5x":
        none_finished = tf.equal(finished_scores[:, 0], NEG_INF)  # [B]
        finished_tokens = tf.where(none_finished[:, None, None], live_tokens, finished_tokens)
        finished_scores = tf.where(none_finished[:, None], live_log_probs, finished_scores)
    return finished_tokens[:, :num_results], finished_scores[:, :num_results]
