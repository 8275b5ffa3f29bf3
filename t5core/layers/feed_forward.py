"""T5's feed-forward sub-layer: relu (v1.0) or gated GELU/SiLU (v1.1, mT5, UMT5, UL2)."""

import keras
import tensorflow as tf

from t5core.layers.attention import dense_projection
from t5core.layers.dropout import Dropout


def gelu_tanh(x):
    # The tanh approximation: T5 v1.1 was trained with it, not with the exact erf GELU.
    return tf.nn.gelu(x, approximate=True)


_ACTIVATIONS = {"relu": tf.nn.relu, "gated-gelu": gelu_tanh, "gated-silu": tf.nn.silu}


@keras.saving.register_keras_serializable(package="t5core")
class FeedForward(keras.layers.Layer):
    """`wo(act(wi x))`, or `wo(act(wi_0 x) * wi_1 x)` when gated."""

    def __init__(self, d_model, d_ff, feed_forward_proj="relu", dropout_rate=0.0,
                 initializer_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        if feed_forward_proj not in _ACTIVATIONS:
            raise ValueError(f"feed_forward_proj {feed_forward_proj!r} is not one of "
                             f"{', '.join(_ACTIVATIONS)}")
        self.d_model = d_model
        self.d_ff = d_ff
        self.feed_forward_proj = feed_forward_proj
        self.dropout_rate = dropout_rate
        self.initializer_factor = initializer_factor
        self.gated = feed_forward_proj.startswith("gated-")
        self.activation = _ACTIVATIONS[feed_forward_proj]
        in_std = initializer_factor * d_model ** -0.5
        policy = self.dtype_policy  # sub-layers do not inherit it by themselves
        if self.gated:
            self.wi_0 = dense_projection(d_ff, in_std, "wi_0", policy)
            self.wi_1 = dense_projection(d_ff, in_std, "wi_1", policy)
        else:
            self.wi = dense_projection(d_ff, in_std, "wi", policy)
        self.wo = dense_projection(d_model, initializer_factor * d_ff ** -0.5, "wo", policy)
        self.dropout = Dropout(dropout_rate, dtype=policy)

    def build(self, input_shape=None):
        for layer in ([self.wi_0, self.wi_1] if self.gated else [self.wi]):
            layer.build((None, self.d_model))
        self.wo.build((None, self.d_ff))
        self.built = True

    def call(self, x, training=False):
        if self.gated:
            h = self.activation(self.wi_0(x)) * self.wi_1(x)
        else:
            h = self.activation(self.wi(x))
        return self.wo(self.dropout(h, training=training))

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "d_ff": self.d_ff,
                "feed_forward_proj": self.feed_forward_proj, "dropout_rate": self.dropout_rate,
                "initializer_factor": self.initializer_factor}
