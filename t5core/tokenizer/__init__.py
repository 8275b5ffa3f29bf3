"""T5's vocabularies, SentencePiece (`Tokenizer`) and bytes (`ByteTokenizer`): Python and in-graph.

`Tokenizer` reads a SentencePiece `spiece.model`, an HF `tokenizer.json` holding a Unigram model
(what most HF T5 snapshots ship), or a directory with either; `load_tokenizer` also takes "byte"
and any checkpoint (a training run's model_dir names its own tokenizer).
A tokenizer.json is turned into the SentencePiece model it was converted from (its Unigram
pieces and scores, its normalizer's precompiled charsmap, the Metaspace settings): the same
SentencePiece code then serves Python and the in-graph op, and the ids are those of HF's fast
tokenizer on that file. Its added tokens (T5: `<pad>`, `</s>`, `<unk>`, the sentinels) keep the
ids the file gives them.

Both follow HF transformers' slow tokenizers (the reference most checkpoints are used with):
- ids: pad 0, eos 1, unk 2. T5: SentencePiece ids, then 100 sentinels `<extra_id_0>` = 32099
  counting down to `<extra_id_99>` = 32000 (vocab_size 32100; models have 32128 embedding rows,
  see `padded_vocab_size`). ByT5: byte b -> b + 3, `<extra_id_i>` = 259 + i (125 of them, 384 rows).
- literal `<pad>`, `</s>`, `<unk>`, `<extra_id_N>` in text become their ids: the text is split on
  them and each piece between is encoded on its own (so SentencePiece adds its dummy "▁" prefix to
  each piece, as HF `T5Tokenizer` with the default legacy=True and `T5TokenizerFast` do).
- `add_eos=True` appends eos unless the ids already end with it (HF `_add_eos_if_not_present`).
- `decode` stops at the first eos, drops padding, renders sentinels/unk as their literal text
  (or drops them with skip_special_tokens=True), like HF's fast decoder.

`Tokenizer.in_graph()` / `ByteTokenizer.in_graph()` return a `tf.Module` with the same ids for use
in tf.data, tf.function and SavedModel (tensorflow-text's SentencePiece op for T5).

The parts: `base` (the special ids and the rules both vocabularies share), `sentencepiece_vocab`
(`Tokenizer`), `hf_tokenizer_json` (a tokenizer.json as a SentencePiece model), `byte_vocab`
(`ByteTokenizer`), `in_graph` (the tf.Module twins); `load_tokenizer` is here.
"""

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
    """The tokenizer a spec names: "byte", a vocabulary file, or a checkpoint.

    Args:
      spec: "byte" -> ByteTokenizer; a spiece.model / tokenizer.json file -> Tokenizer; a
        checkpoint (a directory such as an HF snapshot, a training run's model_dir or its
        best/, a checkpoint prefix or file) -> the tokenizer that goes with it
        (`t5core.model_dir.find_tokenizer`: a run's own, "byte" included; else spiece.model or
        tokenizer.json beside it). Local or remote (`gs://...`).

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


__all__ = [
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "ByteTokenizer",
    "InGraphByteTokenizer",
    "InGraphTokenizer",
    "Tokenizer",
    "find_tokenizer_file",
    "load_tokenizer",
]

