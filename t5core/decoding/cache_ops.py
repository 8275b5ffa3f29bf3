"""Decoder state shared by every search: encode once, build the cache, feed a forced prompt.

All functions here are pure TF ops on tensors, usable eagerly, in a tf.function graph and under
XLA. The cache is the dict of `T5Model.init_cache`: {"layers": [per block {"key", "value"
[B, N, T, H] preallocated, "cross_key", "cross_value" [B, N, L, H]}], "cross_bias" [B, 1, 1, L]}
(heads-major, the layout attention reads).
"""

import tensorflow as tf

SELF_KEYS = ("key", "value")


def start_decoding(model, encoder_input_tokens, decoder_prompt, max_new_tokens):
    """Runs the encoder and the cross keys/values once, and feeds the forced prompt.

    encoder_input_tokens: int32 [B, L]; decoder_prompt: int32 [B, P] (static P, may be 0); the
    cache holds P + max_new_tokens positions. Returns (cache, next_token int32 [B], next_step
    int32 = P): the token whose logits give the first new token.
    """
    prompt_length = decoder_prompt.shape[1]
    encoder_output = model.encode(encoder_input_tokens)
    cache = model.init_cache(encoder_output, encoder_input_tokens, prompt_length + max_new_tokens)
    batch = tf.shape(encoder_input_tokens)[0]
    # Position 0 holds the decoder start id; position j holds prompt token j - 1.
    start = tf.fill([batch, 1], tf.constant(model.config.decoder_start_token_id, tf.int32))
    inputs = tf.concat([start, tf.cast(decoder_prompt, tf.int32)], axis=1)  # [B, P + 1]
    if prompt_length:
        def feed(step, cache):
            _, cache = model.decode_step(inputs[:, step], cache, step)
            return step + 1, cache
        _, cache = tf.while_loop(lambda step, _: step < prompt_length, feed,
                                 (tf.constant(0), cache))
    return cache, inputs[:, prompt_length], tf.constant(prompt_length, tf.int32)


def tile_cache(cache, times):
    """Repeats every row `times` times: row b becomes rows b*times ... b*times + times - 1."""
    return tf.nest.map_structure(lambda x: tf.repeat(x, times, axis=0), cache)


def reorder_self_cache(cache, rows):
    """Self-attention keys/values gathered by `rows` int32 [B*K] (beams); cross ones stay."""
    layers = [{**layer, **{k: tf.gather(layer[k], rows) for k in SELF_KEYS}}
              for layer in cache["layers"]]
    return {**cache, "layers": layers}


def write_at(buffer, index, values):
    """buffer [..., T] with values [...] written at `index` (static shapes, XLA-friendly)."""
    at = tf.equal(tf.range(tf.shape(buffer)[-1]), index)
    return tf.where(at, values[..., None], buffer)
