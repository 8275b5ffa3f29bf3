"""Encoder and decoder stacks: blocks, attention masks, position biases and the final norm."""

import keras
import tensorflow as tf

from t5core.config import T5Config
from t5core.layers.attention import MASK_VALUE
from t5core.layers.blocks import DecoderBlock, EncoderBlock
from t5core.layers.dropout import Dropout
from t5core.layers.norm import RMSNorm


def mask_to_bias(allowed):
    """bool [B, Q, K] -> float32 [B, 1, Q, K]: 0 where attention is allowed, MASK_VALUE elsewhere."""
    return tf.where(allowed, 0.0, MASK_VALUE)[:, None, :, :]


def key_padding_allowed(tokens, segment_ids):
    """bool [B, 1, K]: keys that are real tokens (segment > 0 when packed, else token != 0)."""
    valid = segment_ids > 0 if segment_ids is not None else tf.not_equal(tokens, 0)
    return valid[:, None, :]


def same_segment(query_segments, key_segments):
    return tf.equal(query_segments[:, :, None], key_segments[:, None, :])  # [B, Q, K]


def default_positions(tokens):
    return tf.range(tf.shape(tokens)[1], dtype=tf.int32)[None, :]  # [1, L], broadcasts over B


class _Stack(keras.layers.Layer):
    block_class = None

    def __init__(self, config, num_blocks, remat=False, **kwargs):
        super().__init__(**kwargs)
        self.config = T5Config.of(config)
        self.num_blocks = num_blocks
        self.remat = remat
        c = self.config
        # T5/mT5: only block 0 owns a bias table and every block reuses its bias. UMT5: all do.
        self.blocks = [
            self.block_class(c, has_relative_bias=(i == 0 or c.per_layer_position_bias),
                             name=f"block_{i}", dtype=self.dtype_policy)
            for i in range(num_blocks)]
        # Keras tracks a list of layers, TensorFlow's object tracking does not: name each block as
        # an attribute too, so a plain tf.train.Checkpoint(model=...) holds every weight. (t5core's
        # own checkpoints hold variables by path: t5core.checkpoints.model_state.)
        for block in self.blocks:
            setattr(self, block.name, block)
        self.final_layer_norm = RMSNorm(c.d_model, c.layer_norm_epsilon, name="final_layer_norm",
                                        dtype=self.dtype_policy)
        self.dropout = Dropout(c.dropout_rate, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        for block in self.blocks:
            block.build()
        self.final_layer_norm.build()
        self.built = True

    def _biases(self, query_positions, key_positions, mask_bias):
        """Yields each block's self-attention bias: its own table's, or the last one computed."""
        bias = None
        for block in self.blocks:
            if block.has_relative_bias:
                table = block.self_attention.relative_attention_bias
                bias = table(query_positions, key_positions) + mask_bias
            yield block, bias

    def _run_blocks(self, x, positions, mask_bias, block_inputs, training, output_hidden_states,
                    output_attentions):
        """Dropout, the blocks (remat when `_remat_active`; each takes (x, bias, *block_inputs)),
        final norm, dropout. Returns (output, hidden states or None, attention weights)."""
        x = self.dropout(x, training=training)
        hidden_states, weights = [x], []
        remat = self._remat_active(training, output_hidden_states, output_attentions)
        for block, bias in self._biases(positions, positions, mask_bias):
            if remat:  # keeps only the block's inputs; the backward pass recomputes the rest
                x = tf.recompute_grad(lambda x, bias, *inputs, block=block:
                                      block(x, bias, *inputs, training=True)[0])(
                                          x, bias, *block_inputs)
                continue
            x, *block_weights = block(x, bias, *block_inputs, training=training)
            hidden_states.append(x)
            weights.append(block_weights)
        x = self.dropout(self.final_layer_norm(x), training=training)
        return x, hidden_states if output_hidden_states else None, weights

    def _remat_active(self, training, output_hidden_states, output_attentions):
        if not (self.remat and training):
            return False
        if self.config.dropout_rate > 0:
            raise ValueError(
                f"remat=True with dropout_rate={self.config.dropout_rate}: the recomputed blocks "
                "would draw different dropout masks. Train with dropout_rate=0 or remat=False.")
        # Attention weights and hidden states are outputs of the block; asking for them means
        # keeping them, so remat would save nothing.
        return not (output_hidden_states or output_attentions)

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_kwargs(),
                "num_blocks": self.num_blocks, "remat": self.remat}


@keras.saving.register_keras_serializable(package="t5core")
class Encoder(_Stack):
    block_class = EncoderBlock

    def call(self, x, tokens, segment_ids=None, positions=None, training=False,
             output_hidden_states=False, output_attentions=False):
        """x: embedded tokens [B, L, D]. Returns (output, hidden states, attention weights)."""
        allowed = key_padding_allowed(tokens, segment_ids)
        if segment_ids is not None:
            allowed = allowed & same_segment(segment_ids, segment_ids)
        positions = default_positions(tokens) if positions is None else positions
        x, hidden_states, weights = self._run_blocks(
            x, positions, mask_to_bias(allowed), (), training, output_hidden_states,
            output_attentions)
        return x, hidden_states, [w for w, in weights] if output_attentions else None


@keras.saving.register_keras_serializable(package="t5core")
class Decoder(_Stack):
    block_class = DecoderBlock

    def call(self, x, encoder_output, encoder_tokens, segment_ids=None, positions=None,
             encoder_segment_ids=None, training=False, output_hidden_states=False,
             output_attentions=False):
        """x: embedded decoder inputs [B, T, D]. Returns (output, hidden states, attentions)."""
        length = tf.shape(x)[1]
        causal = tf.range(length)[None, :, None] >= tf.range(length)[None, None, :]  # [1, T, T]
        if segment_ids is not None:
            causal = causal & same_segment(segment_ids, segment_ids)
        self_mask = mask_to_bias(causal)
        cross_allowed = key_padding_allowed(encoder_tokens, encoder_segment_ids)
        if segment_ids is not None and encoder_segment_ids is not None:
            cross_allowed = cross_allowed & same_segment(segment_ids, encoder_segment_ids)
        cross_bias = mask_to_bias(cross_allowed)
        positions = default_positions(x) if positions is None else positions
        x, hidden_states, weights = self._run_blocks(
            x, positions, self_mask, (encoder_output, cross_bias), training, output_hidden_states,
            output_attentions)
        attentions = tuple(map(list, zip(*weights))) if output_attentions else None
        return x, hidden_states, attentions

    def init_cache(self, encoder_output, max_length, dtype):
        """Per block: cross keys/values once, self keys/values zeros; heads-major [B, N, T, H]."""
        batch = tf.shape(encoder_output)[0]
        c = self.config
        cache = []
        for block in self.blocks:
            cross_key, cross_value = block.cross_attention.project_key_value(encoder_output)
            empty = tf.zeros([batch, c.num_heads, max_length, c.d_kv], dtype=dtype)
            cache.append({"key": empty, "value": empty, "cross_key": cross_key,
                          "cross_value": cross_value})
        return cache

    def call_cached(self, x, cache, step, cross_bias):
        """x: [B, 1, D] embedded token at position `step`. Returns (output [B, 1, D], cache)."""
        max_length = tf.shape(cache[0]["key"])[2]
        key_positions = tf.range(max_length, dtype=tf.int32)[None, :]
        query_position = tf.reshape(tf.cast(step, tf.int32), [1, 1])
        future = key_positions[:, None, :] > query_position[:, :, None]  # [1, 1, T]
        self_mask = mask_to_bias(tf.logical_not(future))
        new_cache = []
        for (block, bias), block_cache in zip(
                self._biases(query_position, key_positions, self_mask), cache):
            x, block_cache = block.call_cached(x, block_cache, step, bias, cross_bias)
            new_cache.append(block_cache)
        return self.final_layer_norm(x), new_cache
