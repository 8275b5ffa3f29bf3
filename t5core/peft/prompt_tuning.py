"""Prompt tuning (Lester et al. 2021): P learned vectors before the embedded encoder input,
everything else frozen (positions, masks and init: docs/architecture.md, Prompt tuning).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from t5core.config import check_int
from t5core.model import T5Model
from t5core.model_inputs import PACKING_FEATURES
from t5core.peft.freezing import freeze_all
from t5core.special_ids import UNK_ID

VOCAB_SAMPLE_LIMIT = 5000
FIRST_ORDINARY_ID = UNK_ID + 1  # the first id after the specials pad, eos and unk


@keras.saving.register_keras_serializable(package="t5core")
class SoftPrompt(keras.layers.Layer):
    """Prepends the `[length, d_model]` prompt to every row of an embedded sequence."""

    def __init__(self, length, d_model, initial_value=None, **kwargs):
        super().__init__(**kwargs)
        self.length = length
        self.d_model = d_model
        self._initial_value = initial_value

    def build(self, input_shape=None):
        if self._initial_value is not None:
            initializer = keras.initializers.Constant(np.asarray(self._initial_value, np.float32))
        else:
            initializer = keras.initializers.RandomUniform(-0.5, 0.5)
        self.embeddings = self.add_weight(name="embeddings", shape=(self.length, self.d_model),
                                          dtype="float32", initializer=initializer)
        self._initial_value = None  # not needed once the variable holds it
        self.built = True

    def call(self, x):
        prompt = tf.cast(self.embeddings, x.dtype)[None]  # [1, P, D]
        prompt = tf.tile(prompt, [tf.shape(x)[0], 1, 1])
        return tf.concat([prompt, x], axis=1)

    def get_config(self):
        return {**super().get_config(), "length": self.length, "d_model": self.d_model}


# How a prompt starts (besides an array): embeddings of random vocabulary entries, or uniform noise.
PROMPT_INITS = ("vocab", "random")


def initial_prompt(model, length, init="vocab", seed=None):
    """The starting value [length, d_model] of a prompt for `model` (see the module docstring)."""
    d_model = model.config.d_model
    # Without a seed, draw one from numpy's global state, which keras.utils.set_random_seed sets.
    rng = np.random.default_rng(np.random.randint(2**31) if seed is None else seed)
    if isinstance(init, str) and init == "vocab":
        high = min(model.config.vocab_size, VOCAB_SAMPLE_LIMIT)
        if high - FIRST_ORDINARY_ID < 1:
            raise ValueError(f"prompt_init='vocab' needs a vocabulary larger than "
                             f"{FIRST_ORDINARY_ID} ids (vocab_size={model.config.vocab_size})")
        ids = rng.integers(FIRST_ORDINARY_ID, high, size=length)
        # Through the layer, not its table: a quantized table holds int8 values without scales.
        return np.asarray(model.shared(tf.constant(ids, tf.int32)), np.float32)
    if isinstance(init, str) and init == "random":
        return None  # the layer's own uniform initializer, seeded by keras' global seed
    if isinstance(init, str):
        raise ValueError(f"prompt_init={init!r}: expected 'vocab', 'random' or an array "
                         f"[{length}, {d_model}]")
    value = np.asarray(init, np.float32)
    if value.shape != (length, d_model):
        raise ValueError(f"prompt_init array has shape {value.shape}; expected "
                         f"[prompt_length, d_model] = [{length}, {d_model}]")
    return value


@keras.saving.register_keras_serializable(package="t5core")
class PromptTunedT5(T5Model):
    """A T5Model whose encoder input is a learned soft prompt followed by the embedded text.

    A given T5Model's layers and variables are *shared* (use the new model from then on).
    Every T5Model entry point works (`encode` returns [B, P + L, D]); only the prompt trains.
    Packed rows are refused.

    Args:
      config_or_model: a T5Model to share (not a PromptTunedT5), or a T5Config / dict.
      prompt_length: P, a positive integer.
      prompt_init: "vocab" (default: embeddings of P random ids among the first 5000 ordinary
        ones), "random" (uniform in [-0.5, 0.5]) or an array [P, d_model].
      dtype: policy of a base built from a config (see T5Model); a given model keeps its own.
      name: of a base built from a config (default "t5").
      seed: of the "vocab" draw; None: numpy's global state (`keras.utils.set_random_seed`).
      **kwargs: `keras.Model` arguments.

    Raises:
      ValueError: prompt_length not a positive integer, a model with a prompt already, or a
        prompt_init neither a known name nor a [P, d_model] array.
    """

    def __init__(self, config_or_model, prompt_length, prompt_init="vocab", dtype=None,
                 name=None, seed=None, **kwargs):
        prompt_length = check_int(prompt_length, "prompt_length")
        base = config_or_model
        if not isinstance(base, T5Model):
            base = T5Model(base, dtype=dtype, name=name or "t5")
        elif isinstance(base, PromptTunedT5):
            raise ValueError("the model already has a soft prompt")
        # Same name as the base, so variable paths ("t5/...") and variables_by_name() agree.
        keras.Model.__init__(self, name=base.name, dtype=base.dtype_policy, **kwargs)
        self.config = base.config
        self.shared, self.encoder, self.decoder = base.shared, base.encoder, base.decoder
        self.lm_head = base.lm_head
        self.prompt_length = prompt_length
        self.prompt_init = prompt_init if isinstance(prompt_init, str) else "array"
        value = initial_prompt(base, prompt_length, prompt_init, seed)
        self.prompt = SoftPrompt(prompt_length, self.config.d_model, value, name="prompt",
                                 dtype=base.dtype_policy)
        with keras.name_scope(self.name):
            self.prompt.build()
        freeze_all(self)
        self.prompt.trainable = True
        self.built = True

    # -- masks over prompt + text -----------------------------------------------------------------
    def _with_prompt_slots(self, tokens):
        """[B, L] ids -> [B, P + L]: a non-pad id in the prompt slots, so masks keep them."""
        tokens = tf.cast(tokens, tf.int32)
        slots = tf.ones([tf.shape(tokens)[0], self.prompt_length], tf.int32)
        return tf.concat([slots, tokens], axis=1)

    def _refuse_packing(self, **features):
        given = sorted(k for k, v in features.items() if v is not None)
        if given:
            raise ValueError(f"Prompt tuning does not support packed examples (got {given}); "
                             "train without packing")

    def _encoder_slots(self, encoder_output, encoder_input_tokens):
        """The prompt-less tokens [B, L] of an `encode` output [B, P + L, D] -> [B, P + L]."""
        encoder_input_tokens = tf.convert_to_tensor(encoder_input_tokens)
        out_len = tf.convert_to_tensor(encoder_output).shape[1]
        tok_len = encoder_input_tokens.shape[1]
        if out_len is not None and tok_len is not None and out_len != tok_len + self.prompt_length:
            raise ValueError(
                f"encoder_output has {out_len} positions but encoder_input_tokens {tok_len} plus "
                f"the {self.prompt_length} prompt positions: pass this model's encode() output "
                "and the original (prompt-less) tokens")
        return self._with_prompt_slots(encoder_input_tokens)

    # -- T5Model entry points that see the encoder length -----------------------------------------
    def _encode(self, tokens, segment_ids, positions, training, **outputs):
        self._refuse_packing(encoder_segment_ids=segment_ids, encoder_positions=positions)
        tokens, x = self._embed(tokens, "encoder_input_tokens")
        return self.encoder(self.prompt(x), self._with_prompt_slots(tokens), training=training,
                            **outputs)

    def decode(self, decoder_input_tokens, encoder_output, encoder_input_tokens,
               segment_ids=None, positions=None, encoder_segment_ids=None, training=False):
        self._refuse_packing(decoder_segment_ids=segment_ids, encoder_segment_ids=encoder_segment_ids)
        return super().decode(decoder_input_tokens, encoder_output,
                              self._encoder_slots(encoder_output, encoder_input_tokens),
                              positions=positions, training=training)

    def forward(self, features, training=False, output_hidden_states=False,
                output_attentions=False):
        """As T5Model.forward; "encoder_output" and encoder outputs include the P prompt slots."""
        self._refuse_packing(**{k: features.get(k) for k in PACKING_FEATURES})
        return super().forward(features, training, output_hidden_states, output_attentions)

    def _cross_keys(self, encoder_tokens):
        return self._with_prompt_slots(encoder_tokens)

    def init_cache(self, encoder_output, encoder_input_tokens, max_length):
        return super().init_cache(encoder_output,
                                  self._encoder_slots(encoder_output, encoder_input_tokens),
                                  max_length)

    def get_config(self):
        if self.prompt_init == "array":
            raise ValueError("A PromptTunedT5 initialised from an array cannot be serialised by "
                             "config; save its weights with tf.train.Checkpoint instead")
        return {**super().get_config(), "prompt_length": self.prompt_length,
                "prompt_init": self.prompt_init}


def add_prompt_tuning(model, prompt_length, prompt_init="vocab", seed=None):
    """A PromptTunedT5 sharing `model`'s layers, only the prompt trainable (an existing prompt is
    kept and made trainable)."""
    if isinstance(model, PromptTunedT5):
        freeze_all(model)
        model.prompt.trainable = True
        return model
    if not isinstance(model, T5Model):
        raise TypeError(f"Prompt tuning needs an encoder-decoder T5Model, got "
                         f"{type(model).__name__}")
    return PromptTunedT5(model, prompt_length, prompt_init, seed=seed)
