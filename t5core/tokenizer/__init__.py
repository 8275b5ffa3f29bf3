"""T5's vocabularies, SentencePiece (`Tokenizer`) and bytes (`ByteTokenizer`), in Python and
in-graph, following HF transformers' slow tokenizers; `load_tokenizer` finds one from a spec."""

from __future__ import annotations

import os

import tensorflow as tf

from t5core import model_dir as model_dir_lib
from t5core.model_dir import find_tokenizer_file
from t5core.errors import UserFileNotFoundError
from t5core.tokenizer.base import EOS_ID, PAD_ID, UNK_ID
from t5core.tokenizer.byte_vocab import ByteTokenizer
from t5core.tokenizer.in_graph import InGraphByteTokenizer, InGraphTokenizer
from t5core.tokenizer.sentencepiece_vocab import Tokenizer

# Files that are checkpoints, never vocabularies: a tokenizer is looked for beside them.
_CHECKPOINT_SUFFIXES = (".index", ".safetensors", ".bin", ".h5", ".msgpack")


def load_tokenizer(spec: str) -> Tokenizer | ByteTokenizer:
    """The tokenizer a spec names.

    Args:
      spec: "byte" -> ByteTokenizer; a spiece.model / tokenizer.json -> Tokenizer; a checkpoint
        (HF snapshot, model_dir, best/, prefix or file) -> its tokenizer
        (`t5core.model_dir.find_tokenizer`). Local or `gs://...`.

    Returns:
      A `Tokenizer` (default sentinels) or a `ByteTokenizer`.

    Raises:
      UserFileNotFoundError: nothing at `spec`, or a checkpoint with no tokenizer beside it.
    """
    if spec == "byte":
        return ByteTokenizer()
    spec = os.fspath(spec)
    if tf.io.gfile.exists(spec) and not tf.io.gfile.isdir(spec) \
            and not spec.endswith(_CHECKPOINT_SUFFIXES):
        return Tokenizer(spec)
    found = model_dir_lib.find_tokenizer(spec)
    if found is None:
        if not (tf.io.gfile.exists(spec) or tf.io.gfile.exists(spec + ".index")):
            raise UserFileNotFoundError(f"no tokenizer or checkpoint at {spec!r}")
        raise UserFileNotFoundError(
            f"no tokenizer with the checkpoint {spec!r} (looked for "
            f"{model_dir_lib.SENTENCEPIECE_VOCAB}, {model_dir_lib.HF_TOKENIZER} and a "
            f"{model_dir_lib.RUN} naming one); give the vocabulary (--vocab)")
    return ByteTokenizer() if found == "byte" else Tokenizer(found)


__all__ = ["EOS_ID", "PAD_ID", "UNK_ID", "ByteTokenizer", "InGraphByteTokenizer",
           "InGraphTokenizer", "Tokenizer", "find_tokenizer_file", "load_tokenizer"]
