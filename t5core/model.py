"""T5Model: the shared embedding, the two stacks and the output projection.

The model computes logits and nothing else: losses (`t5core.losses`), decoding
(`t5core.decoding`) and training (`t5core.training`) live beside it; the features it reads are
`t5core.model_inputs`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from t5core import compat, quantization
from t5core.config import T5Config
from t5core.layers.embedding import SharedEmbedding
from t5core.layers.stacks import Decoder, Encoder, key_padding_allowed, mask_to_bias
from t5core.model_inputs import check_features, check_token_ids
from t5core.variable_layout import counts_by_module


def from_keras_config(cls, config):
    """Rebuilds a model whose get_config holds a T5Config dict and a serialised dtype policy
    (and, for an int8 model, its quantization, so that Keras fills the int8 weights it saved)."""
    config = dict(config)
    dtype = config.pop("dtype", None)
    if isinstance(dtype, dict):
        dtype = keras.dtype_policies.deserialize(dtype)
    quantize = config.pop("quantize", None)
    model = cls(config.pop("config"), dtype=dtype, **config)
    if quantize is not None:
        quantization.quantize_structure(model, quantize)
    return model


def float32_head(dense, x):
    """An output layer's float32 logits of `x`, from its weights as stored, whatever the policy
    (bf16 logits would be off by up to a bf16 step of the largest); an int8 layer computes as
    Keras' int8 Dense."""
    x = tf.cast(x, tf.float32)
    if dense.quantization_mode is not None:
        return tf.cast(dense(x), tf.float32)
    with compat.stored_dtype_reads():
        # `call`, not `__call__`, which would round x and the kernel to bf16 again.
        return tf.cast(dense.call(x), tf.float32)


@keras.saving.register_keras_serializable(package="t5core")
class T5Model(keras.Model):
    """An encoder-decoder T5 of any public variant, built (weights allocated) at construction.

    `model(features)` maps int32 `encoder_input_tokens [B, L]` and `decoder_input_tokens [B, T]`
    (plus segment ids and positions for packed rows) to float32 logits `[B, T, V]`. Weights are
    random; `t5core.load_pretrained` fills them.

    Args:
      config: a T5Config, or a dict of its fields.
      dtype: "float32" (default), "mixed_bfloat16" (bf16 compute, float32 weights: training) or
        "bfloat16" (bf16 weights: half the memory, inference); norms, softmax, the position bias
        and the logits stay float32.
      name: the first part of every variable path ("t5/...").
      remat: rematerialise every block in training (less memory, about a third more compute;
        needs dropout_rate 0).
      **kwargs: `keras.Model` arguments.
    """

    def __init__(self, config: T5Config | dict, dtype=None, name="t5", remat=False, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.config = T5Config.of(config)
        self.remat = bool(remat)
        c = self.config
        # Keras sub-layers do not inherit a policy: hand the model's to each of them.
        policy = self.dtype_policy
        self.shared = SharedEmbedding(
            c.vocab_size, c.d_model, name="shared", dtype=policy,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=c.initializer_factor))
        self.encoder = Encoder(c, c.num_layers, remat=self.remat, name="encoder", dtype=policy)
        self.decoder = Decoder(c, c.num_decoder_layers, remat=self.remat, name="decoder",
                               dtype=policy)
        self.lm_head = None
        if not c.tie_word_embeddings:
            self.lm_head = keras.layers.Dense(
                c.vocab_size, use_bias=False, name="lm_head", dtype=policy,
                kernel_initializer=keras.initializers.RandomNormal(stddev=c.initializer_factor))
        self.build()

    def build(self, input_shape=None):
        self.shared.build()
        self.encoder.build()
        self.decoder.build()
        if self.lm_head is not None:
            self.lm_head.build((None, self.config.d_model))
        self.built = True

    # -- pieces --------------------------------------------------------------------------------
    def _embed(self, tokens, feature_name):
        tokens = tf.convert_to_tensor(tokens)
        # Keras builds a strategy's loss on float ids (see compat.in_shape_inference).
        if not tokens.dtype.is_integer and not compat.in_shape_inference():
            raise TypeError(f"{feature_name} must be integer token ids, got {tokens.dtype.name}")
        tokens = tf.cast(tokens, tf.int32)
        check_token_ids(tokens, self.config.vocab_size, feature_name)
        return tokens, self.shared(tokens)

    def _logits(self, x):
        # float32 inputs and weights whatever the policy, as T5X.
        if self.lm_head is not None:
            return float32_head(self.lm_head, x)
        # Tied (v1.0): rescale by d_model**-0.5 before reusing the embedding as the output;
        # `project` reads the table whether it is float or quantized.
        with compat.stored_dtype_reads():
            return self.shared.project(tf.cast(x, tf.float32) * self.config.d_model ** -0.5)

    def encode(self, encoder_input_tokens, segment_ids=None, positions=None, training=False):
        """The encoder's final output, float32 `[B, L, d_model]`."""
        output, _, _ = self._encode(encoder_input_tokens, segment_ids, positions, training)
        return tf.cast(output, tf.float32)

    def _encode(self, tokens, segment_ids, positions, training, **outputs):
        tokens, x = self._embed(tokens, "encoder_input_tokens")
        return self.encoder(x, tokens, segment_ids=segment_ids, positions=positions,
                            training=training, **outputs)

    def decode(self, decoder_input_tokens, encoder_output, encoder_input_tokens,
               segment_ids=None, positions=None, encoder_segment_ids=None, training=False):
        """Logits float32 `[B, T, V]` of the decoder over a given encoder output."""
        _, x = self._embed(decoder_input_tokens, "decoder_input_tokens")
        encoder_output = tf.cast(encoder_output, self.compute_dtype)
        output, _, _ = self.decoder(x, encoder_output, tf.cast(encoder_input_tokens, tf.int32),
                                    segment_ids=segment_ids, positions=positions,
                                    encoder_segment_ids=encoder_segment_ids, training=training)
        return self._logits(output)

    # -- the whole model -----------------------------------------------------------------------
    def forward(self, features, training=False, output_hidden_states=False,
                output_attentions=False):
        """A dict: "logits", "encoder_output"; with output_hidden_states, "encoder_hidden_states"
        and "decoder_hidden_states" (embedding output, then each block's, before the final
        norm); with output_attentions, "encoder_attentions", "decoder_self_attentions",
        "cross_attentions" (one float32 [B, N, Q, K] per block)."""
        check_features(features)
        get = features.get
        flags = dict(output_hidden_states=output_hidden_states,
                     output_attentions=output_attentions)
        encoder_tokens = tf.cast(features["encoder_input_tokens"], tf.int32)
        encoded, enc_states, enc_attn = self._encode(
            encoder_tokens, get("encoder_segment_ids"), get("encoder_positions"), training, **flags)
        _, x = self._embed(features["decoder_input_tokens"], "decoder_input_tokens")
        decoded, dec_states, dec_attn = self.decoder(
            x, encoded, self._cross_keys(encoder_tokens), segment_ids=get("decoder_segment_ids"),
            positions=get("decoder_positions"), encoder_segment_ids=get("encoder_segment_ids"),
            training=training, **flags)
        return self._result(decoded, encoded, enc_states, dec_states, enc_attn, dec_attn)

    def _cross_keys(self, encoder_tokens):
        """The ids [B, K] that mark which encoder positions cross-attention may read (0: pad)."""
        return encoder_tokens

    def _result(self, decoded, encoded, enc_states, dec_states, enc_attn, dec_attn):
        """forward()'s dict; states and attentions are None unless they were asked for."""
        result = {"logits": self._logits(decoded), "encoder_output": tf.cast(encoded, tf.float32)}
        if enc_states is not None:
            result["encoder_hidden_states"] = enc_states
            result["decoder_hidden_states"] = dec_states
        if enc_attn is not None:
            result["encoder_attentions"] = enc_attn
            result["decoder_self_attentions"], result["cross_attentions"] = dec_attn
        return result

    def call(self, inputs, training=False):
        return self.forward(inputs, training=training)["logits"]

    # -- incremental decoding --------------------------------------------------------------------
    def init_cache(self, encoder_output, encoder_input_tokens, max_length):
        """State for `decode_step`: cross keys/values once, self keys/values preallocated."""
        encoder_output = tf.cast(encoder_output, self.compute_dtype)
        layers = self.decoder.init_cache(encoder_output, max_length, self.compute_dtype)
        cross_bias = mask_to_bias(key_padding_allowed(
            tf.cast(encoder_input_tokens, tf.int32), None))  # [B, 1, 1, L]
        return {"layers": layers, "cross_bias": cross_bias}

    def decode_step(self, token_ids, cache, step):
        """Logits float32 `[B, V]` for the next token after `token_ids [B]` at position `step`."""
        x = self.shared(tf.cast(token_ids, tf.int32)[:, None])  # [B, 1, D]
        output, layers = self.decoder.call_cached(x, cache["layers"], step, cache["cross_bias"])
        return self._logits(output)[:, 0, :], {**cache, "layers": layers}

    # -- int8 serving ----------------------------------------------------------------------------
    def quantize(self, mode=None, config=None, **kwargs):
        """Quantizes every projection and the shared embedding in place (Keras' int8; norms,
        position bias, softmax stay float32); merge LoRA first. `config`: Keras'."""
        quantization.quantize(self, mode, config=config, **kwargs)

    # -- introspection ---------------------------------------------------------------------------
    def variables_by_name(self) -> dict:
        """Model-relative variable paths ("encoder/block_0/self_attention/q/kernel") -> variable."""
        return {v.path.removeprefix(self.name + "/"): v for v in self.weights}

    def parameter_summary(self) -> list[tuple[str, int]]:
        """Parameter counts by module: shared, encoder blocks, decoder blocks, norms, lm_head."""
        return counts_by_module({name: variable.shape
                                 for name, variable in self.variables_by_name().items()})

    def get_config(self):
        return {"config": self.config.to_kwargs(), "name": self.name, "remat": self.remat,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy),
                **quantization.config_entry(self)}

    from_config = classmethod(from_keras_config)
