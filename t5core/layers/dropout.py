"""Inverted dropout that draws 16 random bits per element instead of a 32-bit float (half the
generator's work; the rate resolved to 1/65536, the scale its exact inverse): docs/architecture.md,
Layers.
"""

import keras
import tensorflow as tf

from t5core.dataclass_flags import FRACTION, check_bound

_LEVELS = 1 << 16


@keras.saving.register_keras_serializable(package="t5core")
class Dropout(keras.layers.Layer):
    """Drop-in for `keras.layers.Dropout(rate, seed=...)` in T5's layers (no noise_shape)."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_bound("Dropout rate", rate, FRACTION)
        self.rate = float(rate)
        self.seed = seed
        self.threshold = round(self.rate * _LEVELS)
        if self.threshold == _LEVELS:
            raise ValueError(f"Dropout rate {rate!r} rounds to 1 at a resolution of 1/65536.")
        self.scale = _LEVELS / (_LEVELS - self.threshold)
        if self.rate > 0:  # as Keras' Dropout: the seed state is a variable of the layer
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def _keep_mask(self, x):
        # Keras keeps its seed state in int64; TF's stateless ops want int32 (as Keras casts).
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Every replica holds the same seed state: without its id each would drop the same
            # units of its rows as the others, not an independent mask per example.
            seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
        last = x.shape[-1] if x.shape.rank else None
        if last is not None and last % 2 == 0:
            shape = tf.concat([tf.shape(x)[:-1], [last // 2]], axis=0)
            bits = tf.random.stateless_uniform(shape, seed, minval=None, maxval=None,
                                               dtype=tf.uint32)
            halves = tf.reshape(tf.bitcast(bits, tf.uint16), tf.shape(x))  # [..., last/2, 2]
            return halves >= self.threshold
        # Odd or unknown last dimension: one draw per element, its high 16 bits compared.
        bits = tf.random.stateless_uniform(tf.shape(x), seed, minval=None, maxval=None,
                                           dtype=tf.uint32)
        return bits >= (self.threshold << 16)

    def call(self, x, training=False):
        if not training or self.threshold == 0:
            return x
        x = tf.convert_to_tensor(x)
        return tf.where(self._keep_mask(x), x * tf.cast(self.scale, x.dtype), tf.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
