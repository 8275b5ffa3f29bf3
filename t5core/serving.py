"""A SavedModel for TF Serving: a batch of strings in, decoded strings (or a classifier's labels)
out, tokenization in-graph. Load it with `load`; the signature's outputs, empty and over-long
inputs are described in docs/architecture.md (Serving).
"""

from __future__ import annotations

import sys

import keras
import numpy as np
import tensorflow as tf

from t5core import file_writes
from t5core.classifier import T5EncoderClassifier
from t5core.config import check_int
from t5core.decoding.generation import decode_graph, search_settings
from t5core.model_dir import SAVED_MODEL_NAMES


def _truncate(ids: tf.RaggedTensor, max_input_length: int, eos_id: int):
    """ids [B, (T)], every row ending in EOS -> (rows of at most max_input_length tokens, EOS
    last as seqio's trim then append EOS; truncated bool [B])."""
    truncated = ids.row_lengths() > max_input_length
    body = ids[:, :-1][:, :max_input_length - 1]
    eos = tf.fill([ids.nrows(), 1], tf.constant(eos_id, ids.dtype))
    return tf.concat([body, eos], axis=1), truncated


class _TextRequests(tf.Module):
    """Strings in: the in-graph tokenizer, the request checks and truncation both servers share."""

    def __init__(self, model, tokenizer, max_input_length, name):
        super().__init__(name=name)
        self.max_input_length = check_int(max_input_length, "max_input_length", 2)
        self.model = model
        self.tokenizer = tokenizer.in_graph()
        self.eos_id = int(tokenizer.eos_id)

    def _tokens(self, inputs, width=None):
        """inputs: string [B] -> (token ids int32 [B, width or longest], truncated bool [B],
        empty bool [B]: the rows with no token besides EOS, whose outputs are emptied)."""
        ids = self.tokenizer.tokenize(inputs, add_eos=True)  # ragged int32 [B, (T)]
        # An empty string decodes from EOS alone (never an all-padding row), then is blanked.
        empty = ids.row_lengths() <= 1
        checks = [
            tf.debugging.assert_positive(
                tf.size(inputs), message="empty request: the batch holds no strings"),
        ]
        with tf.control_dependencies(checks):
            ids, truncated = _truncate(ids, self.max_input_length, self.eos_id)
        warn = tf.cond(
            tf.reduce_any(truncated),
            lambda: tf.print("t5core serving: warning: inputs longer than max_input_length =",
                             self.max_input_length, "tokens were truncated (rows",
                             tf.where(truncated)[:, 0], ")", output_stream=sys.stderr),
            lambda: tf.no_op())
        with tf.control_dependencies([warn]):
            return ids.to_tensor(0, shape=[None, width]), truncated, empty


class Server(_TextRequests):
    """The serving computation; `export_saved_model` writes it out."""

    def __init__(self, model, tokenizer, *, max_input_length=512, max_new_tokens=64,
                 method="greedy", num_beams=4, alpha=0.6, temperature=1.0, top_k=0, top_p=1.0,
                 seed=0, decoder_prompt=None, jit_compile=False, beam_semantics="t5x"):
        super().__init__(model, tokenizer, max_input_length, name="t5_server")
        prompt = np.zeros([0], np.int32) if decoder_prompt is None else np.asarray(decoder_prompt)
        if prompt.ndim > 1 and prompt.size != prompt.shape[-1]:  # rows would be joined into one
            raise ValueError("decoder_prompt: one prompt [prompt_length] for every input (a "
                             f"request's size is not known at export), got shape {prompt.shape}")
        self._prompt = prompt.astype(np.int32).reshape(-1)
        # Per input of a request: a request's batch size is not known at export.
        self._static = dict(search_settings(model, method, max_new_tokens, num_beams, alpha,
                                            temperature, top_k, top_p, beam_semantics, 1,
                                            self._prompt.size),
                            eos_id=int(model.config.eos_token_id))
        self._floats = (float(alpha), float(temperature), float(top_p))
        self._seed = np.array([int(seed), 0], np.int64)
        self.jit_compile = bool(jit_compile)
        self._search = tf.function(self._search_tokens, jit_compile=self.jit_compile,
                                   autograph=False)

    def _search_tokens(self, tokens):
        batch = tf.shape(tokens)[0]
        prompt = tf.tile(tf.constant(self._prompt)[None, :], [batch, 1])
        alpha, temperature, top_p = (tf.constant(x, tf.float32) for x in self._floats)
        return decode_graph(self.model, tokens, prompt, tf.constant(self._seed), alpha,
                            temperature, top_p, **self._static)

    def serve(self, inputs):
        """inputs: string [B] -> {"outputs": string [B], "scores": [B], "truncated": bool [B]}."""
        # XLA compiles per shape: under XLA inputs are padded to the full max_input_length, in
        # graph mode to the longest input of the batch.
        tokens, truncated, empty = self._tokens(
            inputs, self.max_input_length if self.jit_compile else None)
        new_tokens, scores = self._search(tokens)
        outputs = tf.where(empty, tf.constant(""), self.tokenizer.detokenize(new_tokens))
        return {"outputs": outputs, "scores": tf.where(empty, tf.zeros_like(scores), scores),
                "truncated": truncated}


class ClassifierServer(_TextRequests):
    """The serving computation of a `T5EncoderClassifier`: strings in, labels out."""

    def __init__(self, model, tokenizer, *, max_input_length=512):
        super().__init__(model, tokenizer, max_input_length, name="t5_classifier_server")
        self._labels = tf.constant(list(model.label_names))

    def serve(self, inputs):
        """string [B] -> {"labels": string [B], "probabilities": float32 [B, C], "truncated"}."""
        tokens, truncated, empty = self._tokens(inputs)
        probabilities = tf.nn.softmax(self.model(tokens, training=False), axis=-1)
        best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        probabilities = tf.where(empty[:, None], tf.zeros_like(probabilities), probabilities)
        return {"labels": tf.where(empty, tf.constant(""), tf.gather(self._labels, best)),
                "probabilities": probabilities, "truncated": truncated}


def export_saved_model(model, tokenizer, export_dir, overwrite=False, **server_kwargs):
    """Writes the SavedModel (reload it with `load`).

    Its "serving_default" returns {"outputs", "scores", "truncated"} (a classifier: {"labels",
    "probabilities", "truncated"}).

    Args:
      model: a T5Model or PromptTunedT5 (decodes), or a T5EncoderClassifier (labels).
      tokenizer: a `Tokenizer` or `ByteTokenizer`; its in-graph form goes in the SavedModel.
      export_dir: a new or empty directory, local or `gs://...`.
      overwrite: export_dir may hold a previous SavedModel, which the new one replaces once it is
        written, and other files, which are kept (`file_writes.new_output_dir`).
      **server_kwargs: `Server`'s decoding settings, fixed at export (max_input_length,
        max_new_tokens, method, num_beams, alpha, temperature, top_k, top_p, seed,
        decoder_prompt, jit_compile, beam_semantics); a classifier: `ClassifierServer`'s.

    Returns:
      export_dir.

    Raises:
      FileExistsError: export_dir exists and is not empty (without overwrite).
      ValueError: a decoding setting out of range.
    """
    server_class = ClassifierServer if isinstance(model, T5EncoderClassifier) else Server
    server = server_class(model, tokenizer, **server_kwargs)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(server.tokenizer)
    archive.add_endpoint("serve", server.serve,
                         input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    with file_writes.new_output_dir(export_dir, overwrite, SAVED_MODEL_NAMES,
                                    flag="overwrite=True") as stage:
        archive.write_out(stage, verbose=False)
    return export_dir


def load(export_dir):
    """The SavedModel at export_dir, loaded in this process with the ops it needs registered.

        model = t5core.serving.load("export/1")
        out = model.signatures["serving_default"](inputs=tf.constant(["translate ...: Hi."]))
        out["outputs"]  # (a classifier: out["labels"], out["probabilities"])
    """
    import tensorflow_text  # noqa: F401  (registers SentencepieceOp and the other text ops)

    if not tf.io.gfile.exists(export_dir):
        raise FileNotFoundError(f"No SavedModel at {export_dir}")
    file_writes.check_complete(export_dir)
    return tf.saved_model.load(export_dir)


__all__ = ["Server", "ClassifierServer", "export_saved_model", "load"]
