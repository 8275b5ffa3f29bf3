"""Relative position buckets and the learned bias added to attention logits."""

import math

import keras
import tensorflow as tf


def relative_position_bucket(relative_position, bidirectional, num_buckets=32, max_distance=128):
    """`key_pos - query_pos` -> bucket in [0, num_buckets): bidirectional (encoder) gives half to
    each sign, causal (decoder) only the past (docs/architecture.md, Layers)."""
    relative_position = tf.convert_to_tensor(relative_position, dtype=tf.int32)
    buckets = tf.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += tf.cast(relative_position > 0, tf.int32) * num_buckets
        distance = tf.abs(relative_position)
    else:
        distance = -tf.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # max(distance, 1) only avoids log(0) in lanes that `is_small` discards anyway.
    log_ratio = (tf.math.log(tf.cast(tf.maximum(distance, 1), tf.float32) / max_exact)
                 / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    if_large = tf.minimum(max_exact + tf.cast(log_ratio, tf.int32), num_buckets - 1)
    return buckets + tf.where(is_small, distance, if_large)


@keras.saving.register_keras_serializable(package="t5core")
class RelativePositionBias(keras.layers.Layer):
    """A `[num_buckets, num_heads]` table turned into a `[B, N, Q, K]` float32 logit bias."""

    def __init__(self, num_buckets, max_distance, num_heads, bidirectional,
                 initializer_stddev=1.0, **kwargs):
        super().__init__(**kwargs)
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.num_heads = num_heads
        self.bidirectional = bidirectional
        self.initializer_stddev = initializer_stddev

    def build(self, input_shape=None):
        # float32 because the bias joins the logits after they are upcast for the softmax.
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.num_buckets, self.num_heads), autocast=False,
            initializer=keras.initializers.RandomNormal(stddev=self.initializer_stddev))
        self.built = True

    def call(self, query_positions, key_positions):
        """Positions are int32 `[B, Q]` and `[B, K]` (B may be 1 to broadcast)."""
        relative = key_positions[:, None, :] - query_positions[:, :, None]  # [B, Q, K]
        buckets = relative_position_bucket(relative, self.bidirectional, self.num_buckets,
                                           self.max_distance)
        # The cast matters only under a pure bfloat16 policy, where the table is stored in bf16.
        bias = tf.gather(tf.cast(self.embeddings, tf.float32), buckets)  # [B, Q, K, N]
        return tf.transpose(bias, [0, 3, 1, 2])  # [B, N, Q, K]

    def get_config(self):
        return {**super().get_config(), "num_buckets": self.num_buckets,
                "max_distance": self.max_distance, "num_heads": self.num_heads,
                "bidirectional": self.bidirectional,
                "initializer_stddev": self.initializer_stddev}
