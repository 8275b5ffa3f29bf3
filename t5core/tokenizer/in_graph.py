"""The tokenizers' in-graph twins (`Tokenizer.in_graph()`, `ByteTokenizer.in_graph()`): the same
ids from pure TF ops, for tf.data, tf.function and SavedModel (tensorflow-text's SentencePiece op
for T5)."""

from __future__ import annotations

import functools

import tensorflow as tf

from t5core.tokenizer.base import SPIECE_UNDERLINE, WS_RE2, BaseTokenizer


class _InGraphBase(tf.Module):
    """tokenize(strings) -> int32 ids (RaggedTensor for a vector, Tensor for a scalar);
    detokenize(ids) -> strings. Pure TF ops: usable in tf.data, tf.function and SavedModel."""

    def __init__(self, tok: BaseTokenizer, name=None):
        super().__init__(name=name)
        self.vocab_size = tok.vocab_size
        self.extra_ids = tok.extra_ids
        self.pad_id, self.eos_id, self.unk_id = tok.pad_id, tok.eos_id, tok.unk_id
        # pylint: disable=protected-access
        self._special_pattern = tok._special_pattern
        # argmax in `_special_ids` needs a column even without special tokens (none is found
        # then: the pattern matches nothing).
        specials = tok._special_ids or {"": -1}
        self._special_names = tf.constant(list(specials), tf.string)
        self._special_values = tf.constant(list(specials.values()), tf.int32)
        self._skip_on_decode = tf.constant(
            [i in tok._skip_ids for i in range(tok.vocab_size)], tf.bool)
        # pylint: enable=protected-access
        # Traced tokenize functions, kept out of tf.Module tracking: they are a cache, not part
        # of what a SavedModel holding this module should save.
        object.__setattr__(self, "_traced", {})

    def _encode_pieces(self, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
        """[B, (P)] strings -> [B, (P), (T)] int32 ids, for text without specials."""
        raise NotImplementedError

    def _special_ids(self, pieces):
        """Id of each piece that is exactly a special token, else -1."""
        flat = pieces.flat_values
        is_special = tf.strings.regex_full_match(flat, self._special_pattern)
        flat = tf.strings.regex_replace(flat, f"^{WS_RE2}+|{WS_RE2}+$", "")  # see strip_around
        # [N, S] comparisons against the few special names: cheaper to build than a hash table
        # and nothing for a SavedModel to initialise.
        match = tf.equal(tf.expand_dims(flat, 1), self._special_names)
        ids = tf.gather(self._special_values, tf.argmax(tf.cast(match, tf.int32), axis=1))
        return pieces.with_flat_values(tf.where(is_special & tf.reduce_any(match, 1), ids, -1))

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
        # regex_split stops reading a string at a NUL byte: split a copy with NUL -> \x01 (same
        # length, neither whitespace nor in any special) and cut the original at its offsets.
        no_nul = tf.strings.regex_replace(batch, r"\x00", "\x01")
        _, begin, end = tf_text.regex_split_with_offsets(
            no_nul, self._special_pattern, self._special_pattern)
        pieces = begin.with_flat_values(tf.strings.substr(
            tf.gather(batch, begin.value_rowids()), begin.flat_values,
            end.flat_values - begin.flat_values))
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
        needs = ~tf.reduce_any(tf.equal(ids[:, -1:], self.eos_id), axis=1)  # empty rows too
        eos = tf.fill(tf.stack([ids.nrows(), 1]), tf.constant(self.eos_id, tf.int32))
        return tf.concat([ids, tf.ragged.boolean_mask(eos, needs[:, tf.newaxis])], axis=1)

    def _clean(self, ids, skip_special_tokens: bool):
        """Same rules as `BaseTokenizer._clean_ids`, on a [B, T] tensor -> ragged [B, (T)]."""
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(self.pad_id)  # padding is dropped below anyway
        ids = tf.cast(ids, tf.int32)
        ids = tf.where((ids < 0) | (ids >= self.vocab_size), self.unk_id, ids)
        keep = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, self.eos_id), tf.int32), axis=-1), 0)
        keep &= tf.not_equal(ids, self.pad_id)
        if skip_special_tokens:
            keep &= ~tf.gather(self._skip_on_decode, ids)
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
    """In-graph `Tokenizer` (tensorflow-text SentencepieceTokenizer + the same special handling).
    Built by `Tokenizer.in_graph()`, which it sits below: `tok` is that Tokenizer."""

    def __init__(self, tok: BaseTokenizer, name=None):
        super().__init__(tok, name=name)
        import tensorflow_text as tf_text  # pylint: disable=g-import-not-at-top
        self.add_prefix_space = tok.add_prefix_space
        self._sp = tf_text.SentencepieceTokenizer(model=tok.model_proto, out_type=tf.int32)
        self._pieces = tf.constant(tok._piece_bytes)  # pylint: disable=protected-access
        space_chars = tok._space_chars  # pylint: disable=protected-access
        self._space_chars = "".join(f"\\x{{{ord(c):x}}}" for c in space_chars)  # RE2 class body

    def _encode_pieces(self, pieces):
        if self._space_chars:  # as Tokenizer._to_space
            pieces = tf.ragged.map_flat_values(
                tf.strings.regex_replace, pieces, f"[{self._space_chars}]", " ")
        return tf.ragged.map_flat_values(self._sp.tokenize, pieces)

    def _join(self, ids):
        raw = tf.strings.reduce_join(tf.gather(self._pieces, ids), axis=-1)
        # As Tokenizer.decode: byte pieces that do not spell UTF-8 become U+FFFD.
        text = tf.strings.unicode_transcode(raw, "UTF-8", "UTF-8", errors="replace")
        text = tf.strings.regex_replace(text, SPIECE_UNDERLINE, " ")
        if self.add_prefix_space:
            text = tf.strings.regex_replace(text, "^ ", "")
        return text


class InGraphByteTokenizer(_InGraphBase):
    """In-graph `ByteTokenizer`, built by its `in_graph()`: `tok` is that ByteTokenizer."""

    def __init__(self, tok: BaseTokenizer, name=None):
        super().__init__(tok, name=name)
        self._table = tf.constant(tok._byte_table)  # pylint: disable=protected-access
        self._offset = tok.offset

    def _encode_pieces(self, pieces):
        def to_ids(flat_pieces):
            chars = tf.strings.bytes_split(flat_pieces)            # [N, (bytes)] of 1-byte strings
            values = tf.reshape(tf.io.decode_raw(chars.flat_values, tf.uint8), [-1])
            return chars.with_flat_values(tf.cast(values, tf.int32) + self._offset)
        return tf.ragged.map_flat_values(to_ids, pieces)

    def _join(self, ids):
        raw = tf.strings.reduce_join(tf.gather(self._table, ids), axis=-1)
        return tf.strings.unicode_transcode(raw, "UTF-8", "UTF-8", errors="ignore")
