"""`generate`: checks its arguments, then runs one compiled search (greedy, beam or sampling).

The search itself (`decode_graph`) is pure TF ops: `generate` wraps it in a tf.function per model
(XLA or plain graph, see `t5core.xla.default_jit_compile`), and the SavedModel export calls it
inside its own serving function.
"""

from __future__ import annotations

import numbers
import weakref

import keras
import numpy as np
import tensorflow as tf

from t5core.config import check_int
from t5core.decoding.beam import beam_search, check_semantics
from t5core.decoding.budget import check_max_new_tokens
from t5core.decoding.cache_ops import start_decoding
from t5core.decoding.sampling import greedy_chooser, sample_loop, sampling_chooser
from t5core.model_inputs import check_token_ids
from t5core.quantization import is_quantized
from t5core.xla import default_jit_compile

METHODS = {"greedy": "greedy", "beam": "beam", "beam_search": "beam", "sample": "sample",
           "sampling": "sample"}
METHOD_NAMES = tuple(dict.fromkeys(METHODS.values()))  # greedy, beam, sample: without aliases


def decode_graph(model, encoder_input_tokens, decoder_prompt, seed, alpha, temperature, top_p,
                 first_row=0, *, method, max_new_tokens, num_beams, top_k, use_top_p, eos_id,
                 beam_semantics="t5x"):
    """The whole search, unchecked: (tokens int32 [B, max_new_tokens], scores [B]). Tensors:
    encoder_input_tokens int32 [B, L], decoder_prompt int32 [B, P], seed int64 [2], alpha,
    temperature, top_p float32, first_row int64 (row 0's index among the rows sampled with this
    seed); keyword arguments are static."""
    cache, token, step = start_decoding(model, encoder_input_tokens, decoder_prompt,
                                        max_new_tokens)
    if method == "beam":
        tokens, scores = beam_search(model, cache, token, step, max_new_tokens, num_beams, alpha,
                                     eos_id, semantics=beam_semantics)
        return tokens[:, 0], scores[:, 0]
    if method == "sample":
        choose = sampling_chooser(seed, temperature, top_k, top_p, use_top_p, first_row)
    else:
        choose = greedy_chooser()
    return sample_loop(model, cache, token, step, max_new_tokens, choose, eos_id)


# One tf.function per (model, jit_compile); it retraces by itself for new static arguments.
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def compiled_decoder(model, jit_compile: bool):
    per_model = _COMPILED.setdefault(model, {})
    if jit_compile not in per_model:
        model_ref = weakref.ref(model)  # a strong reference here would keep the model alive

        def run(tokens, prompt, *args, prompt_length, **static):
            # The prompt's length sizes the cache, so it must stay static when retracing relaxes
            # the other dimensions.
            prompt = tf.ensure_shape(prompt, [None, prompt_length])
            return decode_graph(model_ref(), tokens, prompt, *args, **static)
        # Graph mode relaxes changing batch / input lengths to unknown dims after a retrace; XLA
        # needs static shapes anyway and compiles once per shape. The loops are explicit
        # tf.while_loops, so autograph has nothing to convert.
        per_model[jit_compile] = tf.function(run, jit_compile=jit_compile, autograph=False,
                                             reduce_retracing=not jit_compile)
    return per_model[jit_compile]


# ------------------------------------------------------------------------------- checks


def _id_rows(value, name):
    """The ids in `value` as an array, short rows 0-padded; text is sent to `generate_text`."""
    if isinstance(value, tf.RaggedTensor):
        value = value.to_list()
    if isinstance(value, tf.Tensor):
        return np.asarray(value.numpy())
    rows = value if isinstance(value, (list, tuple)) else None
    if isinstance(value, (str, bytes)) or (rows and isinstance(rows[0], (str, bytes))):
        raise TypeError(f"{name} holds text; generate takes token ids. For strings use "
                        "t5core.generate_text(model, tokenizer, texts), which tokenizes, pads "
                        "and batches them")
    if (rows and all(isinstance(row, (list, tuple, np.ndarray)) for row in rows)
            and len({len(row) for row in rows}) > 1):  # ragged: pad as a model batch is padded
        return keras.utils.pad_sequences(rows, padding="post", dtype="int64")
    return np.asarray(value)


def _int_tokens(value, name, vocab_size):
    array = _id_rows(value, name)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {array.dtype}")
    array = array.astype(np.int64)
    check_token_ids(array, vocab_size, name)
    return array.astype(np.int32)


def _check_encoder_tokens(tokens, vocab_size, max_input_length):
    tokens = _int_tokens(tokens, "encoder_input_tokens", vocab_size)
    if tokens.ndim != 2:
        raise ValueError(f"encoder_input_tokens must be [batch, length], got shape {tokens.shape}"
                         " (for one sequence pass tokens[None])")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"encoder_input_tokens is empty (shape {tokens.shape}): nothing to decode")
    nonzero = tokens != 0
    empty_rows = np.flatnonzero(~nonzero.any(axis=1))
    if empty_rows.size:
        raise ValueError(f"encoder_input_tokens rows {empty_rows[:10].tolist()} are all padding "
                         "(id 0): empty inputs cannot be decoded")
    if max_input_length is not None:
        lengths = tokens.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)  # up to the last non-pad
        too_long = np.flatnonzero(lengths > max_input_length)
        if too_long.size:
            row = int(too_long[0])
            raise ValueError(f"encoder_input_tokens row {row} has {int(lengths[row])} tokens, more "
                             f"than max_input_length={max_input_length} (rows "
                             f"{too_long[:10].tolist()}); truncate them first")
    return tokens


def _check_prompt(prompt, batch, vocab_size):
    if prompt is None:
        return np.zeros([batch, 0], np.int32)
    prompt = _int_tokens(prompt, "decoder_prompt", vocab_size)
    if prompt.ndim == 1:
        prompt = np.broadcast_to(prompt[None, :], (batch, prompt.shape[0]))
    if prompt.ndim != 2 or prompt.shape[0] != batch:
        raise ValueError(f"decoder_prompt must be [prompt_length] or [batch={batch}, "
                         f"prompt_length], got shape {prompt.shape}")
    return np.ascontiguousarray(prompt)


def search_settings(model, method, max_new_tokens, num_beams, alpha, temperature, top_k, top_p,
                    beam_semantics, rows, prompt_length):
    """Checks the settings `generate` and `serving.Server` share, resolving method aliases and
    temperature 0 (argmax whatever top_k and top_p say, as T5X).

    Args:
      model, method, max_new_tokens, num_beams, alpha, temperature, top_k, top_p,
        beam_semantics: as `generate` takes them.
      rows: inputs per call (before beams), for the memory check.
      prompt_length: forced decoder prompt tokens per row.

    Returns:
      `decode_graph`'s static keyword arguments but eos_id.
    """
    name = METHODS.get(method) if isinstance(method, str) else None
    if name is None:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", 1)
    num_beams = check_int(num_beams, "num_beams", 1)
    top_k = check_int(top_k, "top_k", 0)
    if not isinstance(temperature, numbers.Real) or not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature!r}")
    if name == "sample" and temperature == 0:
        name = "greedy"
    if not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if not isinstance(alpha, numbers.Real) or not np.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    check_semantics(beam_semantics)
    beams = num_beams if name == "beam" else 1
    dtype_bytes = tf.as_dtype(getattr(model, "compute_dtype", "float32")).size
    check_max_new_tokens(model.config, max_new_tokens, rows * beams, prompt_length, dtype_bytes,
                         beam=name == "beam")
    return dict(method=name, max_new_tokens=max_new_tokens, num_beams=beams,
                top_k=min(top_k, model.config.vocab_size) if name == "sample" else 0,
                use_top_p=name == "sample" and top_p < 1.0,
                beam_semantics=beam_semantics if name == "beam" else "t5x")


def _check_seed(seed, method):
    if seed is None:
        if method != "sample":
            return np.zeros([2], np.int64)
        # No seed: a fresh one, so repeated calls differ (pass seed= to reproduce a draw).
        return np.random.default_rng().integers(0, 2**62, size=2, dtype=np.int64)
    values = np.asarray(seed).reshape(-1)
    if values.size not in (1, 2) or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"seed must be an int or a pair of ints, got {seed!r}")
    if values.size == 1:
        values = np.array([values[0], 0])
    return values.astype(np.int64)


def generate(model, encoder_input_tokens, max_new_tokens, method="greedy", num_beams=4, alpha=0.6,
             temperature=1.0, top_k=0, top_p=1.0, seed=None, decoder_prompt=None, *,
             jit_compile=None, max_input_length=None, eos_id=None, beam_semantics="t5x",
             first_row=0):
    """Decodes new tokens for each row of `encoder_input_tokens`.

    Args:
      model: a T5Model.
      encoder_input_tokens: int [B, L] padded with 0, or B id lists (padded here); no row all
        padding. For strings, see `generate_text`.
      max_new_tokens: tokens per row (> 0), the result's width.
      method: "greedy", "beam" (alias "beam_search") or "sample" (alias "sampling").
      num_beams: beams per row for "beam" (>= 1, checked for every method).
      alpha: "beam"'s length penalty: log p / ((5 + len) / 6) ** alpha.
      temperature, top_k, top_p: "sample": logits / temperature (> 0), then the top_k tokens
        (0: all), then the smallest nucleus of probability >= top_p (in (0, 1]). Temperature 0
        is greedy whatever top_k and top_p say (as T5X).
      seed: int or pair for "sample" (stateless: same seed, same tokens); None: a fresh one. Row
        r draws from row first_row + r's part of the seed's stream.
      decoder_prompt: int [P] or [B, P] forced after the start id (not in the result).
      jit_compile: True: XLA; False: a plain tf.function; None:
        `t5core.xla.default_jit_compile(rows)`.
      max_input_length: if given, longer rows raise a ValueError.
      eos_id: default model.config.eos_token_id; -1 never ends early.
      beam_semantics: which beams may finish and how they score: "t5x" (default; T5X's and
        Mesh-TF's) or "hf" (transformers' and fairseq's); see docs/architecture.md, Beam search.
      first_row: row 0's index among all rows sampled with this seed (>= 0): `generate_text`
        passes the texts before the batch, so a text's sample does not depend on batching.

    Returns:
      (tokens, scores): tokens int32 [B, max_new_tokens], 0 after each row's EOS (kept); scores
      float32 [B]: greedy and sampling, the tokens' summed log p (temperature 1, unfiltered);
      beam, the best beam's log p over the length penalty (a row where none finished: see
      beam_semantics).
    """
    config = model.config
    if max_input_length is not None:
        max_input_length = check_int(max_input_length, "max_input_length", 1)
    tokens = _check_encoder_tokens(encoder_input_tokens, config.vocab_size, max_input_length)
    prompt = _check_prompt(decoder_prompt, tokens.shape[0], config.vocab_size)
    static = search_settings(model, method, max_new_tokens, num_beams, alpha, temperature, top_k,
                             top_p, beam_semantics, tokens.shape[0], prompt.shape[1])
    seed = _check_seed(seed, static["method"])
    eos_id = config.eos_token_id if eos_id is None else check_int(eos_id, "eos_id", -1)
    first_row = check_int(first_row, "first_row", 0)
    if jit_compile is None:
        jit_compile = default_jit_compile(tokens.shape[0] * static["num_beams"],
                                          is_quantized(model))
    run = compiled_decoder(model, bool(jit_compile))
    return run(tf.constant(tokens), tf.constant(prompt), tf.constant(seed),
               tf.constant(alpha, tf.float32), tf.constant(temperature, tf.float32),
               tf.constant(top_p, tf.float32), tf.constant(first_row, tf.int64),
               prompt_length=prompt.shape[1], eos_id=eos_id,
               **static)
