"""T5's vocabularies, SentencePiece (`Tokenizer`) and bytes (`ByteTokenizer`): Python and in-graph.

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
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import numpy as np
import sentencepiece as spm
import tensorflow as tf

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
_BASE_SPECIALS = {"<pad>": PAD_ID, "</s>": EOS_ID, "<unk>": UNK_ID}
_SPIECE_UNDERLINE = "\u2581"


# Python's str.isspace() set as an RE2 character class (RE2's own \s is ASCII only).
_WS_RE2 = "[" + "".join(f"\\x{{{c:x}}}" for c in range(0x3001) if chr(c).isspace()) + "]"


def _read_bytes(path: str) -> bytes:
    """Reads a local or remote (gs://, anything tf.io.gfile knows) file."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"SentencePiece model not found: {path!r}")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class _BaseTokenizer:
    """Special-token splitting, EOS and decode rules shared by both vocabularies.

    Subclasses set `vocab_size` and define `sentinel_id`, `is_sentinel`, `_encode_text` (plain text
    without specials -> ids), `decode` and `_make_in_graph`.
    """

    pad_id, eos_id, unk_id = PAD_ID, EOS_ID, UNK_ID

    # Specials that swallow the whitespace around them (HF AddedToken lstrip/rstrip=True).
    _strip_around: tuple[str, ...] = ()

    def __init__(self, extra_ids: int):
        if extra_ids < 0:
            raise ValueError(f"extra_ids must be >= 0, got {extra_ids}")
        self.extra_ids = extra_ids
        self._special_ids = dict(_BASE_SPECIALS)
        for i in range(extra_ids):
            self._special_ids[f"<extra_id_{i}>"] = self.sentinel_id(i)
        # One regex (valid in Python `re` and in RE2 for the in-graph split) matching a special
        # token with, for `_strip_around` ones, the whitespace on both sides. Longest names first
        # so that no special is matched as a prefix of a longer one.
        def alternation(names):
            return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        def pattern(ws):
            keep = [n for n in self._special_ids if n not in self._strip_around]
            parts = [alternation(keep)] if keep else []
            if self._strip_around:
                parts.insert(0, f"{ws}*(?:{alternation(self._strip_around)}){ws}*")
            return "|".join(parts)
        self._special_pattern = pattern(_WS_RE2)  # for tensorflow-text's regex_split (RE2)
        self._special_re = re.compile(pattern(r"\s"))  # Python's \s is exactly str.isspace()
        self._in_graph = None

    # -- to be provided by subclasses
    vocab_size: int

    def sentinel_id(self, i: int) -> int:
        raise NotImplementedError

    def _encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    # -- shared API
    @property
    def padded_vocab_size(self) -> int:
        """Embedding rows a model uses for this vocabulary (vocab_size rounded up to 128)."""
        return _round_up(self.vocab_size, 128)

    def is_sentinel(self, token_id: int) -> bool:
        return any(self.sentinel_id(i) == token_id for i in range(self.extra_ids))

    def _split(self, text: str, split_special_tokens: bool = False):
        """Yields (piece, is_special): the text cut at literal special tokens (HF's split)."""
        if split_special_tokens:
            yield text, False
            return
        start = 0
        for m in self._special_re.finditer(text):
            if m.start() > start:
                yield text[start:m.start()], False
            yield m.group(0).strip(), True  # strip: see _strip_around
            start = m.end()
        if start < len(text):
            yield text[start:], False

    def encode(self, text: str, add_eos: bool = False,
               split_special_tokens: bool = False) -> list[int]:
        """Text -> ids. split_special_tokens=True encodes `<pad>`, `</s>`, ... as ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        ids = []
        for part, is_special in self._split(text, split_special_tokens):
            if is_special:
                ids.append(self._special_ids[part])
            else:
                ids.extend(self._encode_text(part))
        if add_eos and (not ids or ids[-1] != self.eos_id):
            ids.append(self.eos_id)
        return ids

    def encode_batch(self, texts: Iterable[str], add_eos: bool = False) -> list[list[int]]:
        return [self.encode(t, add_eos=add_eos) for t in texts]

    def _clean_ids(self, ids, skip_special_tokens: bool) -> list[int]:
        """Cuts at the first eos, drops pad, maps out-of-range ids to unk, optionally drops
        unk and sentinels."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == self.eos_id:
                break
            if i == self.pad_id:
                continue
            if i < 0 or i >= self.vocab_size:
                i = self.unk_id
            if skip_special_tokens and (i == self.unk_id or self.is_sentinel(i)):
                continue
            out.append(i)
        return out

    def decode_batch(self, batch, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in batch]

    def in_graph(self) -> InGraphTokenizer:
        """The tf.Module twin of this tokenizer (cached)."""
        if self._in_graph is None:
            self._in_graph = self._make_in_graph()
        return self._in_graph


class Tokenizer(_BaseTokenizer):
    """T5's SentencePiece vocabulary plus `extra_ids` sentinels, as HF `T5Tokenizer`.

    Args:
      path: a SentencePiece model file, local or remote (`gs://...`), read with tf.io.gfile.
      extra_ids: number of sentinels appended after the SentencePiece ids (T5: 100).
      add_prefix_space: True (default, T5/HF) lets SentencePiece prepend "▁" to each text piece;
        False turns SentencePiece's dummy prefix off (HF `add_prefix_space=False`; where a
        piece starts with whitespace, HF's fast tokenizer keeps one "▁" for it, which is not
        reproduced).
      model_proto: the model bytes instead of `path`.
    """

    def __init__(self, path: str | None = None, extra_ids: int = 100, *,
                 add_prefix_space: bool = True, model_proto: bytes | None = None):
        if (path is None) == (model_proto is None):
            raise ValueError("pass exactly one of path and model_proto")
        proto = model_proto if model_proto is not None else _read_bytes(path)
        self.path = path
        self.add_prefix_space = add_prefix_space
        if not add_prefix_space:
            proto = _without_dummy_prefix(proto)
        self.model_proto = proto
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(proto)
        except Exception as e:  # sentencepiece raises a bare RuntimeError/OSError
            raise ValueError(f"not a SentencePiece model: {path or '<model_proto>'}: {e}") from e
        self.base_vocab_size = self._sp.get_piece_size()
        for name, i in _BASE_SPECIALS.items():
            if self._sp.id_to_piece(i) != name:
                raise ValueError(
                    f"{path}: id {i} is {self._sp.id_to_piece(i)!r}, T5 expects {name!r}")
        self.vocab_size = self.base_vocab_size + extra_ids
        super().__init__(extra_ids)
        pieces = [self._sp.id_to_piece(i) for i in range(self.base_vocab_size)]
        pieces += [f"<extra_id_{extra_ids - 1 - k}>" for k in range(extra_ids)]
        self._pieces = pieces

    def sentinel_id(self, i: int) -> int:
        """Id of `<extra_id_i>`: the last id of the vocabulary counting down."""
        if not 0 <= i < self.extra_ids:
            raise ValueError(f"sentinel index {i} outside [0, {self.extra_ids})")
        return self.vocab_size - 1 - i

    def is_sentinel(self, token_id: int) -> bool:
        return self.base_vocab_size <= token_id < self.vocab_size

    def _encode_text(self, text: str) -> list[int]:
        return self._sp.encode(text, out_type=int)

    def id_to_piece(self, token_id: int) -> str:
        return self._pieces[token_id]

    def piece_to_id(self, piece: str) -> int:
        if piece in self._special_ids:
            return self._special_ids[piece]
        return self._sp.piece_to_id(piece)

    def tokenize(self, text: str, split_special_tokens: bool = False) -> list[str]:
        """Text -> piece strings as HF `tokenize` (no eos; unknown characters stay as they are)."""
        out = []
        for part, is_special in self._split(text, split_special_tokens):
            out.extend([part] if is_special else self._sp.encode(part, out_type=str))
        return out

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text: stops at the first eos, drops pad; ids >= vocab_size decode as unk."""
        text = "".join(self._pieces[i] for i in self._clean_ids(ids, skip_special_tokens))
        text = text.replace(_SPIECE_UNDERLINE, " ")
        if self.add_prefix_space and text.startswith(" "):
            text = text[1:]
        return text

    def _make_in_graph(self):
        return InGraphTokenizer(self)


class ByteTokenizer(_BaseTokenizer):
    """ByT5's vocabulary: UTF-8 byte b -> id b + 3, then `extra_ids` sentinels (HF `ByT5Tokenizer`).

    Sentinels follow HF transformers (checked on 4.57.1): `<extra_id_i>` = 259 + i. (HF before 4.34
    and the ByT5 paper's pretraining used other numberings; span corruption takes its sentinel ids
    explicitly, see `t5core.data.objectives`.)
    """

    offset = 3
    _strip_around = ("<pad>", "</s>", "<unk>")  # as HF ByT5Tokenizer's AddedTokens

    def __init__(self, extra_ids: int = 125):
        self.vocab_size = 256 + self.offset + extra_ids
        super().__init__(extra_ids)
        table = [b"<pad>", b"</s>", b"<unk>"] + [bytes([b]) for b in range(256)]
        table += [f"<extra_id_{i}>".encode() for i in range(extra_ids)]
        self._byte_table = table

    def sentinel_id(self, i: int) -> int:
        if not 0 <= i < self.extra_ids:
            raise ValueError(f"sentinel index {i} outside [0, {self.extra_ids})")
        return 256 + self.offset + i

    def is_sentinel(self, token_id: int) -> bool:
        return 256 + self.offset <= token_id < self.vocab_size

    def _encode_text(self, text: str) -> list[int]:
        return [b + self.offset for b in text.encode("utf-8")]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text; bytes that are not valid UTF-8 are dropped (errors="ignore", as HF)."""
        raw = b"".join(self._byte_table[i] for i in self._clean_ids(ids, skip_special_tokens))
        return raw.decode("utf-8", errors="ignore")

    def _make_in_graph(self):
        return InGraphByteTokenizer(self)


def _without_dummy_prefix(proto: bytes) -> bytes:
    from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top
    m = sentencepiece_model_pb2.ModelProto()
    m.ParseFromString(proto)
    m.normalizer_spec.add_dummy_prefix = False
    return m.SerializeToString()


# ----------------------------------------------------------------------------- in-graph versions


class _InGraphBase(tf.Module):
    """tokenize(strings) -> int32 ids (RaggedTensor for a vector, Tensor for a scalar);
    detokenize(ids) -> strings. Pure TF ops: usable in tf.data, tf.function and SavedModel."""

    def __init__(self, tok: _BaseTokenizer, name=None):
        super().__init__(name=name)
        self.vocab_size = tok.vocab_size
        self.extra_ids = tok.extra_ids
        self.pad_id, self.eos_id, self.unk_id = tok.pad_id, tok.eos_id, tok.unk_id
        self._special_pattern = tok._special_pattern  # pylint: disable=protected-access
        self._first_sentinel = tok.sentinel_id(0) if tok.extra_ids else 0
        self._sentinel_step = (tok.sentinel_id(1) - tok.sentinel_id(0)) if tok.extra_ids > 1 else -1
        # Traced tokenize functions, kept out of tf.Module tracking: they are a cache, not part
        # of what a SavedModel holding this module should save.
        object.__setattr__(self, "_traced", {})
        self._sentinel_lo = (min(tok.sentinel_id(0), tok.sentinel_id(tok.extra_ids - 1))
                             if tok.extra_ids else 0)

    def _encode_pieces(self, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
        """[B, (P)] strings -> [B, (P), (T)] int32 ids, for text without specials."""
        raise NotImplementedError

    def _special_ids(self, pieces):
        """Id of each piece that is exactly a special token, else -1."""
        flat = pieces.flat_values
        is_special = tf.strings.regex_full_match(flat, self._special_pattern)
        flat = tf.strings.regex_replace(flat, f"^{_WS_RE2}+|{_WS_RE2}+$", "")  # see _strip_around
        number = tf.strings.regex_replace(flat, r"^<extra_id_(\d+)>$", r"\1")
        is_extra = tf.strings.regex_full_match(flat, r"<extra_id_\d+>")
        index = tf.strings.to_number(tf.where(is_extra, number, "0"), tf.int32)
        ids = tf.where(is_extra, self._first_sentinel + self._sentinel_step * index, -1)
        for name, i in _BASE_SPECIALS.items():
            ids = tf.where(tf.equal(flat, name), i, ids)
        return pieces.with_flat_values(tf.where(is_special, ids, -1))

    def tokenize(self, strings, add_eos: bool = False):
        strings = tf.convert_to_tensor(strings, tf.string)
        rank = strings.shape.rank
        if rank in (0, 1):
            # One traced function per (rank, add_eos), reused by every tf.data map / tf.function
            # that tokenizes: tracing the split-and-encode graph is the slow part of building a
            # pipeline.
            key = (rank, bool(add_eos))
            if key not in self._traced:
                self._traced[key] = tf.function(
                    functools.partial(self._tokenize, add_eos=bool(add_eos)),
                    input_signature=[tf.TensorSpec([None] * rank, tf.string)])
            return self._traced[key](strings)
        return self._tokenize(strings, add_eos)

    def _tokenize(self, strings, add_eos: bool):
        scalar = strings.shape.rank == 0
        batch = tf.reshape(strings, [-1])
        import tensorflow_text as tf_text  # pylint: disable=g-import-not-at-top
        pieces = tf_text.regex_split(batch, self._special_pattern, self._special_pattern)
        special = self._special_ids(pieces)                       # [B, (P)]
        is_special = special >= 0
        text_pieces = tf.ragged.map_flat_values(
            lambda p, s: tf.where(s, "", p), pieces, is_special)  # specials encode to []
        encoded = self._encode_pieces(text_pieces)                # [B, (P), (T)]
        special_tok = tf.ragged.boolean_mask(tf.expand_dims(special, -1),
                                             tf.expand_dims(is_special, -1))
        per_piece = tf.concat([encoded, tf.cast(special_tok, tf.int32)], axis=2)
        ids = per_piece.merge_dims(1, 2)                          # [B, (T)]
        if add_eos:
            ids = self._append_eos(ids)
        return ids[0] if scalar else ids

    def _append_eos(self, ids: tf.RaggedTensor) -> tf.RaggedTensor:
        lengths = ids.row_lengths()
        # Empty rows read the appended -1, so they get an eos too.
        flat = tf.concat([ids.flat_values, [-1]], axis=0)
        last_index = tf.where(lengths > 0, ids.row_limits() - 1, tf.size(flat, tf.int64) - 1)
        last = tf.gather(flat, last_index)
        needs = tf.not_equal(last, self.eos_id)
        eos = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(needs, tf.int32))], tf.constant(self.eos_id, tf.int32)),
            tf.cast(needs, tf.int64))
        return tf.concat([ids, eos], axis=1)

    def _clean(self, ids, skip_special_tokens: bool):
        """Same rules as `_BaseTokenizer._clean_ids`, on a [B, T] tensor -> ragged [B, (T)]."""
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(self.pad_id)  # padding is dropped below anyway
        ids = tf.cast(ids, tf.int32)
        ids = tf.where((ids < 0) | (ids >= self.vocab_size), self.unk_id, ids)
        keep = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, self.eos_id), tf.int32), axis=-1), 0)
        keep &= tf.not_equal(ids, self.pad_id)
        if skip_special_tokens:
            keep &= tf.not_equal(ids, self.unk_id)
            if self.extra_ids:
                keep &= ~((ids >= self._sentinel_lo) & (ids < self._sentinel_lo + self.extra_ids))
        return tf.ragged.boolean_mask(ids, keep)

    def detokenize(self, ids, skip_special_tokens: bool = False):
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        scalar = ids.shape.rank == 1
        if scalar:
            ids = ids[tf.newaxis]
        text = self._join(self._clean(ids, skip_special_tokens))
        return text[0] if scalar else text


class InGraphTokenizer(_InGraphBase):
    """In-graph `Tokenizer` (tensorflow-text SentencepieceTokenizer + the same special handling)."""

    def __init__(self, tok: Tokenizer, name=None):
        super().__init__(tok, name=name)
        import tensorflow_text as tf_text  # pylint: disable=g-import-not-at-top
        self.add_prefix_space = tok.add_prefix_space
        self._sp = tf_text.SentencepieceTokenizer(model=tok.model_proto, out_type=tf.int32)
        self._pieces = tf.constant(tok._pieces)  # pylint: disable=protected-access

    def _encode_pieces(self, pieces):
        return tf.ragged.map_flat_values(self._sp.tokenize, pieces)

    def _join(self, ids):
        text = tf.strings.reduce_join(tf.gather(self._pieces, ids), axis=-1)
        text = tf.strings.regex_replace(text, _SPIECE_UNDERLINE, " ")
        if self.add_prefix_space:
            text = tf.strings.regex_replace(text, "^ ", "")
        return text


class InGraphByteTokenizer(_InGraphBase):
    """In-graph `ByteTokenizer`."""

    def __init__(self, tok: ByteTokenizer, name=None):
        super().__init__(tok, name=name)
        self._table = tf.constant(tok._byte_table)  # pylint: disable=protected-access

    def _encode_pieces(self, pieces):
        def to_ids(flat_pieces):
            chars = tf.strings.bytes_split(flat_pieces)            # [N, (bytes)] of 1-byte strings
            values = tf.reshape(tf.io.decode_raw(chars.flat_values, tf.uint8), [-1])
            return chars.with_flat_values(tf.cast(values, tf.int32) + ByteTokenizer.offset)
        return tf.ragged.map_flat_values(to_ids, pieces)

    def _join(self, ids):
        raw = tf.strings.reduce_join(tf.gather(self._table, ids), axis=-1)
        return tf.strings.unicode_transcode(raw, "UTF-8", "UTF-8", errors="ignore")


__all__ = [
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "ByteTokenizer",
    "InGraphByteTokenizer",
    "InGraphTokenizer",
    "Tokenizer",
]

