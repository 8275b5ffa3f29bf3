"""The shared token embedding, also a tied T5's (v1.0) output projection; `project` is the one
read of the table, so an int8 table is never read without its scales (docs/architecture.md,
Layers)."""

import keras
import tensorflow as tf

from t5core import compat

# Quantization modes whose stored table `project` knows how to read.
PROJECTABLE_MODES = ("int8",)


@keras.saving.register_keras_serializable(package="t5core")
class SharedEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` that can also project hidden states back onto the vocabulary."""

    def project(self, x):
        """Logits `[..., V]` = x `[..., D]` times the table's transpose, in x's dtype (int8 with
        int32 accumulation when quantized, as Keras' int8 Dense)."""
        mode = self.quantization_mode
        if mode is None:
            table = tf.cast(tf.convert_to_tensor(self.embeddings), x.dtype)
            return tf.einsum("...d,vd->...v", x, table)
        if mode != "int8":
            raise NotImplementedError(f"{self.name}: no output projection for a {mode} table")
        shape = tf.shape(x)
        flat = tf.reshape(x, [-1, self.output_dim])
        x_int8, x_scale = keras.quantizers.abs_max_quantize(flat, axis=-1)  # scale [N, 1]
        table, row_scale = compat.int8_weights(self)  # int8 [V, D], float [V]
        products = tf.linalg.matmul(x_int8, tf.convert_to_tensor(table), transpose_b=True,
                                    output_type=tf.int32)
        row_scale = tf.cast(tf.convert_to_tensor(row_scale), tf.float32)
        logits = tf.cast(products, tf.float32) / (tf.cast(x_scale, tf.float32) * row_scale)
        logits = tf.reshape(logits, tf.concat([shape[:-1], [self.input_dim]], axis=0))
        return tf.cast(logits, x.dtype)

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras' Embedding quantizes only its exact class; this subclass adds `project`, which
        # reads the quantized table for the modes in PROJECTABLE_MODES. Any other mode is refused
        # with NotImplementedError, which `Model.quantize` reports and skips, leaving the table
        # in float (correct, just not smaller).
        if mode not in PROJECTABLE_MODES:
            raise NotImplementedError(
                f"{self.name}: {mode} quantization of the shared embedding is not supported "
                f"(only {', '.join(PROJECTABLE_MODES)}); it stays in float")
        super().quantize(mode, type_check=False, config=config)
