"""A classification head on the T5 encoder: pooled encoder output -> Dense(num_classes), trained
through the trainer's `loss_sums` (loss and metrics: docs/architecture.md, Classifier).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from t5core import quantization
from t5core.config import T5Config, check_int
from t5core.decoding.text import encode_inputs, is_empty, pad_batch
from t5core.layers.dropout import Dropout
from t5core.layers.stacks import Encoder
from t5core.losses import cross_entropy_loss
from t5core.model import T5Model, float32_head, from_keras_config
from t5core.model_inputs import check_token_ids

POOLINGS = ("mean", "first")


@keras.saving.register_keras_serializable(package="t5core")
class T5EncoderClassifier(keras.Model):
    """A classifier on the T5 encoder: pooled encoder output -> Dense(num_classes) logits.

    `model(inputs)` maps the features dict (int32 "encoder_input_tokens" [B, L]) or the ids
    themselves to float32 logits [B, C]; packed rows are refused. A given model's embedding and
    encoder are *shared*, not copied; variable paths match T5Model's (docs/architecture.md,
    Classifier).

    Args:
      config_or_model: a T5Model or T5EncoderClassifier to share, or a T5Config / dict to build
        a fresh embedding and encoder from.
      num_classes: C, an integer >= 2.
      pooling: "mean" (default) over non-pad tokens (id != 0), or "first" (position 0).
      dtype: policy of a model built from a config (see T5Model); a given model's is kept.
      name: default: a given model's, else "t5", so variable paths match.
      labels: the class names in id order, if known; `predict_labels` and a SavedModel return
        them.
      **kwargs: `keras.Model` arguments.

    Raises:
      ValueError: num_classes not an integer >= 2, an unknown pooling, or a label count other
        than num_classes.
    """

    encoder_only = True  # the trainer's figures (FLOPs, positions) count no decoder

    def __init__(self, config_or_model, num_classes, pooling="mean", dtype=None, name=None,
                 labels=None, **kwargs):
        base = config_or_model if isinstance(config_or_model, (T5Model, T5EncoderClassifier)) \
            else None
        if base is not None:
            config = base.config
            dtype = base.dtype_policy
            name = name or base.name
        else:
            config = T5Config.of(config_or_model)
        super().__init__(name=name or "t5", dtype=dtype, **kwargs)
        num_classes = check_int(num_classes, "num_classes", 2)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
        if labels is not None:
            labels = tuple(str(x) for x in labels)
            if len(labels) != num_classes:
                raise ValueError(f"{len(labels)} labels {list(labels)} for {num_classes} classes")
        self.config = config
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.labels = labels
        policy = self.dtype_policy  # Keras sub-layers do not inherit it by themselves
        if base is not None:
            self.shared, self.encoder = base.shared, base.encoder
        else:
            self.shared = keras.layers.Embedding(
                config.vocab_size, config.d_model, name="shared", dtype=policy,
                embeddings_initializer=keras.initializers.RandomNormal(
                    stddev=config.initializer_factor))
            self.encoder = Encoder(config, config.num_layers, name="encoder", dtype=policy)
        self.dropout = Dropout(config.dropout_rate, dtype=policy)
        self.classifier = keras.layers.Dense(
            self.num_classes, name="classifier", dtype=policy,
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=config.initializer_factor * config.d_model ** -0.5))
        self.build()

    def build(self, input_shape=None):
        # Adopted layers are built already; building them again would make new variables.
        if not self.shared.built:
            self.shared.build()
        if not self.encoder.built:
            self.encoder.build()
        self.classifier.build((None, self.config.d_model))
        self.built = True

    def peft_head_layers(self):
        """Layers that stay trainable under every PEFT mode: the new head."""
        return [self.classifier]

    # -- forward --------------------------------------------------------------------------------
    def _tokens(self, inputs):
        if isinstance(inputs, dict):
            if "encoder_input_tokens" not in inputs:
                raise ValueError(f"Missing feature 'encoder_input_tokens' (got {sorted(inputs)})")
            if inputs.get("encoder_segment_ids") is not None:
                raise ValueError("The classification head does not support packed examples "
                                 "(encoder_segment_ids); train without packing")
            inputs = inputs["encoder_input_tokens"]
        tokens = tf.convert_to_tensor(inputs)
        if not tokens.dtype.is_integer or tokens.shape.rank != 2:
            raise ValueError(f"encoder_input_tokens must be integer ids [B, L], got "
                             f"{tokens.dtype.name} {tokens.shape}")
        tokens = tf.cast(tokens, tf.int32)
        check_token_ids(tokens, self.config.vocab_size, "encoder_input_tokens")
        return tokens

    def encode(self, encoder_input_tokens, training=False):
        """The encoder's final output, float32 [B, L, d_model]."""
        tokens = self._tokens(encoder_input_tokens)
        output, _, _ = self.encoder(self.shared(tokens), tokens, training=training)
        return tf.cast(output, tf.float32)

    def pool(self, encoded, tokens):
        if self.pooling == "first":
            return encoded[:, 0, :]
        # float32: a bf16 sum over a long row, or its count past 256, would be rounded.
        encoded = tf.cast(encoded, tf.float32)
        mask = tf.cast(tf.not_equal(tokens, 0), tf.float32)[:, :, None]  # [B, L, 1]
        count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)  # an all-pad row pools to zeros
        return tf.reduce_sum(encoded * mask, axis=1) / count

    def call(self, inputs, training=False):
        """inputs: the features dict or the token ids [B, L]. Returns float32 logits [B, C]."""
        tokens = self._tokens(inputs)
        encoded, _, _ = self.encoder(self.shared(tokens), tokens, training=training)
        pooled = self.dropout(self.pool(encoded, tokens), training=training)
        return float32_head(self.classifier, pooled)

    # -- training and evaluation ------------------------------------------------------------------
    def _labels(self, features):
        if "label" not in features:
            raise ValueError(f"The classification head needs a 'label' feature (int class ids "
                             f"[B]); the batch has {sorted(features)}")
        labels = tf.convert_to_tensor(features["label"])
        if not labels.dtype.is_integer or labels.shape.rank != 1:
            raise ValueError(f"'label' must be integer class ids [B], got {labels.dtype.name} "
                             f"{labels.shape}")
        labels = tf.cast(labels, tf.int32)
        if tf.executing_eagerly():
            bad = labels.numpy()[(labels.numpy() < 0) | (labels.numpy() >= self.num_classes)]
            if bad.size:
                raise ValueError(f"'label' holds {sorted(set(bad.tolist()))}, outside the "
                                 f"{self.num_classes} classes [0, {self.num_classes})")
            return labels
        # Graph mode: a clear failure instead of a gather error (XLA drops the check).
        checks = [tf.debugging.assert_non_negative(labels, message="label < 0"),
                  tf.debugging.assert_less(labels, self.num_classes,
                                           message="label >= num_classes")]
        with tf.control_dependencies(checks):
            return tf.identity(labels)

    def loss_sums(self, features, training=False, label_smoothing=0.0, z_loss=0.0,
                  loss_normalization="tokens"):
        """The trainer's per-replica sums (float32 scalars) for one batch."""
        labels = self._labels(features)
        logits = self(features, training=training)
        # An all-padding row (the filler of a short last evaluation batch) weighs nothing.
        real = tf.reduce_any(tf.not_equal(self._tokens(features), 0), axis=-1)
        weights = tf.cast(real, tf.float32)[:, None]
        _, aux = cross_entropy_loss(logits[:, None, :], labels[:, None], weights,
                                    label_smoothing=label_smoothing, z_loss=z_loss,
                                    loss_normalization=loss_normalization)
        return aux

    @tf.function
    def _predict_batch(self, tokens):
        return tf.argmax(self(tokens, training=False), axis=-1, output_type=tf.int32)

    def predict(self, encoder_input_tokens, batch_size=64, **unused):
        """Class ids int32 [N] of token ids [N, L] (batched; replaces keras' Model.predict)."""
        if unused:
            raise TypeError(f"T5EncoderClassifier.predict got unexpected {sorted(unused)}")
        tokens = self._tokens(encoder_input_tokens)
        parts = [self._predict_batch(tokens[i:i + batch_size]).numpy()
                 for i in range(0, int(tf.shape(tokens)[0]), batch_size)]
        return np.concatenate(parts) if parts else np.zeros([0], np.int32)

    def probabilities(self, encoder_input_tokens):
        """Class probabilities float32 [N, num_classes] (softmax of the logits)."""
        return tf.nn.softmax(self(self._tokens(encoder_input_tokens), training=False), axis=-1)

    def predict_labels(self, encoder_input_tokens, batch_size=64):
        """The label of each row of token ids [N, L] (needs `labels`)."""
        if self.labels is None:
            raise ValueError("this classifier has no labels; use predict() for class ids")
        return [self.labels[i] for i in self.predict(encoder_input_tokens, batch_size)]

    @property
    def label_names(self) -> tuple:
        """The class names: `labels`, or the class ids "0", "1", ... of a classifier without."""
        return self.labels or tuple(str(i) for i in range(self.num_classes))

    # -- introspection ----------------------------------------------------------------------------
    variables_by_name = T5Model.variables_by_name

    def get_config(self):
        return {"config": self.config.to_kwargs(), "num_classes": self.num_classes,
                "pooling": self.pooling, "name": self.name,
                "labels": list(self.labels) if self.labels is not None else None,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy),
                **quantization.config_entry(self)}

    from_config = classmethod(from_keras_config)


def classify_text(model, tokenizer, texts, *, batch_size=64, max_input_length=512,
                  truncate=False, source="input"):
    """Yields (label, probability) of each text's likeliest class; an empty text: ("", 0)."""
    texts = list(texts)
    labels = model.label_names
    for start in range(0, len(texts), batch_size):
        encoded = encode_inputs(tokenizer, texts[start:start + batch_size], max_input_length,
                                truncate, start, source)
        probabilities = model.probabilities(pad_batch(encoded, len(encoded))).numpy()
        for ids, row in zip(encoded, probabilities):
            best = int(np.argmax(row))
            yield ("", 0.0) if is_empty(ids) else (labels[best], float(row[best]))
