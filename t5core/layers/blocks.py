"""Pre-norm residual blocks: encoder (self-attention, feed-forward) and decoder (+ cross)."""

import keras

from t5core import compat
from t5core.config import T5Config
from t5core.layers.attention import Attention
from t5core.layers.dropout import Dropout
from t5core.layers.feed_forward import FeedForward
from t5core.layers.norm import RMSNorm


def _attention(config, name, has_relative_bias, bidirectional, dtype):
    return Attention(config.d_model, config.num_heads, config.d_kv, config.dropout_rate,
                     has_relative_bias=has_relative_bias, bidirectional=bidirectional,
                     num_buckets=config.relative_attention_num_buckets,
                     max_distance=config.relative_attention_max_distance,
                     initializer_factor=config.initializer_factor, name=name, dtype=dtype)


class _Block(keras.layers.Layer):
    """Shared plumbing: a config, the feed-forward half and residual dropout."""

    def __init__(self, config, has_relative_bias=False, **kwargs):
        super().__init__(**kwargs)
        compat.keep_call_argument_dtypes(self)  # keep the float32 bias float32 (see Attention)
        self.config = T5Config.of(config)
        self.has_relative_bias = has_relative_bias
        c = self.config
        policy = self.dtype_policy  # sub-layers do not inherit it by themselves
        self.ffn_norm = RMSNorm(c.d_model, c.layer_norm_epsilon, name="ffn_norm", dtype=policy)
        self.ffn = FeedForward(c.d_model, c.d_ff, c.feed_forward_proj, c.dropout_rate,
                               c.initializer_factor, name="ffn", dtype=policy)
        self.dropout = Dropout(c.dropout_rate, dtype=policy)

    def _feed_forward(self, x, training):
        return x + self.dropout(self.ffn(self.ffn_norm(x), training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_kwargs(),
                "has_relative_bias": self.has_relative_bias}


@keras.saving.register_keras_serializable(package="t5core")
class EncoderBlock(_Block):
    def __init__(self, config, has_relative_bias=False, **kwargs):
        super().__init__(config, has_relative_bias, **kwargs)
        c = self.config
        self.self_attention_norm = RMSNorm(c.d_model, c.layer_norm_epsilon,
                                           name="self_attention_norm", dtype=self.dtype_policy)
        self.self_attention = _attention(c, "self_attention", has_relative_bias, True,
                                         self.dtype_policy)

    def build(self, input_shape=None):
        for layer in (self.self_attention_norm, self.self_attention, self.ffn_norm, self.ffn):
            layer.build()
        self.built = True

    def call(self, x, bias, training=False):
        """Returns (x, self-attention weights)."""
        h, weights = self.self_attention(self.self_attention_norm(x), bias=bias, training=training)
        x = x + self.dropout(h, training=training)
        return self._feed_forward(x, training), weights


@keras.saving.register_keras_serializable(package="t5core")
class DecoderBlock(_Block):
    def __init__(self, config, has_relative_bias=False, **kwargs):
        super().__init__(config, has_relative_bias, **kwargs)
        c = self.config
        policy = self.dtype_policy
        self.self_attention_norm = RMSNorm(c.d_model, c.layer_norm_epsilon,
                                           name="self_attention_norm", dtype=policy)
        self.self_attention = _attention(c, "self_attention", has_relative_bias, False, policy)
        self.cross_attention_norm = RMSNorm(c.d_model, c.layer_norm_epsilon,
                                            name="cross_attention_norm", dtype=policy)
        self.cross_attention = _attention(c, "cross_attention", False, True, policy)

    def build(self, input_shape=None):
        for layer in (self.self_attention_norm, self.self_attention, self.cross_attention_norm,
                      self.cross_attention, self.ffn_norm, self.ffn):
            layer.build()
        self.built = True

    def call(self, x, self_bias, encoder_output, cross_bias, training=False,
             cross_key_value=None):
        """Returns (x, self-attention weights, cross-attention weights)."""
        h, self_weights = self.self_attention(self.self_attention_norm(x), bias=self_bias,
                                              training=training)
        x = x + self.dropout(h, training=training)
        h, cross_weights = self.cross_attention(
            self.cross_attention_norm(x), bias=cross_bias, key_value_input=encoder_output,
            key_value=cross_key_value, training=training)
        x = x + self.dropout(h, training=training)
        return self._feed_forward(x, training), self_weights, cross_weights

    def call_cached(self, x, cache, step, self_bias, cross_bias):
        """One decoding step; cache holds this block's "key", "value", "cross_key", "cross_value"."""
        h, key, value = self.self_attention.call_cached(
            self.self_attention_norm(x), cache["key"], cache["value"], step, self_bias)
        x = x + h
        h, _ = self.cross_attention(self.cross_attention_norm(x), bias=cross_bias,
                                    key_value=(cache["cross_key"], cache["cross_value"]))
        x = x + h
        return self._feed_forward(x, False), {**cache, "key": key, "value": value}
