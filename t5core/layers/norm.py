"""RMS norm as T5 defines it: no mean subtraction, no bias, computed in float32."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="t5core")
class RMSNorm(keras.layers.Layer):
    """`x * rsqrt(mean(x^2) + epsilon) * scale`, in float32 inside (bf16 loses too much in the mean
    of squares); the result is cast back to the compute dtype."""

    def __init__(self, hidden_size, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.epsilon = epsilon

    def build(self, input_shape=None):
        # autocast=False keeps the scale float32 under a mixed policy.
        self.scale = self.add_weight(name="scale", shape=(self.hidden_size,),
                                     initializer="ones", autocast=False)
        self.built = True

    def call(self, x):
        x32 = tf.cast(x, tf.float32)
        variance = tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True)
        # The scale is float32 except under a pure bfloat16 policy, which stores it in bf16.
        y = x32 * tf.math.rsqrt(variance + self.epsilon) * tf.cast(self.scale, tf.float32)
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "epsilon": self.epsilon}
