"""T5 multi-head attention: no logit scaling, float32 softmax, optional key/value cache.

Einsum letters: b batch, q query positions, k key positions, n heads, h head dim, d model dim.
"""

import keras
import tensorflow as tf

from t5core import compat
from t5core.layers.dropout import Dropout
from t5core.layers.position import RelativePositionBias

# Added to the logits of masked keys. Finite, so a row with every key masked (a padding query in
# a packed row) gives uniform weights instead of NaN; its output is never used.
MASK_VALUE = -1e9


def dense_projection(units, stddev, name, dtype=None):
    """A bias-free Dense with T5's normal initialiser, as every projection of a block."""
    return keras.layers.Dense(units, use_bias=False, name=name, dtype=dtype,
                              kernel_initializer=keras.initializers.RandomNormal(stddev=stddev))


@keras.saving.register_keras_serializable(package="t5core")
class Attention(keras.layers.Layer):
    """Self- or cross-attention with q, k, v, o projections of width num_heads * d_kv; logits are
    not divided by sqrt(d_kv) (docs/architecture.md, Layers)."""

    def __init__(self, d_model, num_heads, d_kv, dropout_rate=0.0, has_relative_bias=False,
                 bidirectional=True, num_buckets=32, max_distance=128, initializer_factor=1.0,
                 **kwargs):
        super().__init__(**kwargs)
        # Keras would cast every floating call argument to the compute dtype, rounding the
        # float32 position bias to bf16 under a mixed policy; inputs arrive in the right dtype.
        compat.keep_call_argument_dtypes(self)
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_kv = d_kv
        self.dropout_rate = dropout_rate
        self.has_relative_bias = has_relative_bias
        self.bidirectional = bidirectional
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.initializer_factor = initializer_factor
        inner = num_heads * d_kv
        f = initializer_factor
        policy = self.dtype_policy  # sub-layers do not inherit it by themselves
        self.q = dense_projection(inner, f * (d_model * d_kv) ** -0.5, "q", policy)
        self.k = dense_projection(inner, f * d_model ** -0.5, "k", policy)
        self.v = dense_projection(inner, f * d_model ** -0.5, "v", policy)
        self.o = dense_projection(d_model, f * inner ** -0.5, "o", policy)
        self.dropout = Dropout(dropout_rate, dtype=policy)
        self.relative_attention_bias = None
        if has_relative_bias:
            self.relative_attention_bias = RelativePositionBias(
                num_buckets, max_distance, num_heads, bidirectional,
                initializer_stddev=f * d_model ** -0.5, name="relative_attention_bias",
                dtype=policy)

    def build(self, input_shape=None):
        for layer in (self.q, self.k, self.v):
            layer.build((None, self.d_model))
        self.o.build((None, self.num_heads * self.d_kv))
        if self.relative_attention_bias is not None:
            self.relative_attention_bias.build()
        self.built = True

    def _split_heads(self, x):
        """[b, l, n * h] -> heads-major [b, n, l, h], the layout of every attention operand."""
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], self.num_heads, self.d_kv])
        return tf.transpose(x, [0, 2, 1, 3])

    def project_key_value(self, x):
        """Keys and values, heads-major `[B, N, K, H]`, of x (the encoder output, for
        cross-attention; the decoding cache keeps them in this layout)."""
        return self._split_heads(self.k(x)), self._split_heads(self.v(x))

    def _attend(self, q, k, v, bias, training):
        # Heads-major [b, n, l, h] operands and batched matmuls with transpose_b, rather than
        # the einsums "bqnh,bknh->bnqk" / "bnqk,bknh->bqnh": the same products, but TF's einsum
        # lowering adds its own transposes and reshapes around each of them, forward and
        # backward (BUILD_NOTES.md, "Speed", has the step times).
        # Keys and values arrive heads-major, so a decoding step reads its cache as stored
        # (a [b, l, n, h] cache cost two whole-cache transposes per layer and step).
        scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32)  # [b, n, q, k]
        if bias is not None:
            # The bias is float32 (call arguments are not converted, see __init__); the cast
            # only guards callers that pass it in another dtype.
            scores += tf.cast(bias, tf.float32)
        weights = tf.nn.softmax(scores, axis=-1)  # float32, whatever the compute dtype
        dropped = tf.cast(self.dropout(weights, training=training), v.dtype)
        context = tf.transpose(tf.matmul(dropped, v), [0, 2, 1, 3])  # [b, q, n, h]
        shape = tf.shape(context)
        context = tf.reshape(context, [shape[0], shape[1], self.num_heads * self.d_kv])
        return self.o(context), weights

    def call(self, x, bias=None, key_value_input=None, key_value=None, training=False):
        """Returns (output [B, Q, D], weights float32 [B, N, Q, K]). bias: float32 to
        [B, N, Q, K], position bias plus mask; key_value_input: cross-attention's sequence
        (None: x); key_value: `project_key_value`'s (keys, values), which wins over both."""
        q = self._split_heads(self.q(x))
        if key_value is None:
            key_value = self.project_key_value(x if key_value_input is None else key_value_input)
        return self._attend(q, *key_value, bias, training)

    def call_cached(self, x, cache_key, cache_value, step, bias):
        """One causal self-attention step at `step` over a preallocated cache: x [B, 1, D];
        cache_key/value heads-major [B, N, T, H], later positions masked by `bias`. Returns
        (output [B, 1, D], new cache_key, new cache_value)."""
        q = self._split_heads(self.q(x))
        k_new, v_new = self.project_key_value(x)  # [B, N, 1, H]
        at_step = tf.one_hot(step, tf.shape(cache_key)[2], dtype=cache_key.dtype)[:, None]
        cache_key = cache_key + (k_new - cache_key) * at_step
        cache_value = cache_value + (v_new - cache_value) * at_step
        output, _ = self._attend(q, cache_key, cache_value, bias, training=False)
        return output, cache_key, cache_value

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "d_kv": self.d_kv, "dropout_rate": self.dropout_rate,
                "has_relative_bias": self.has_relative_bias, "bidirectional": self.bidirectional,
                "num_buckets": self.num_buckets, "max_distance": self.max_distance,
                "initializer_factor": self.initializer_factor}
