"""T5's SentencePiece vocabulary (`Tokenizer`): a `spiece.model`, or an HF `tokenizer.json` read as
the SentencePiece model it was converted from (`hf_tokenizer_json`)."""

from __future__ import annotations

import os

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
import tensorflow as tf

from t5core import model_dir as model_dir_lib
from t5core.errors import ConfigError, UserFileNotFoundError
from t5core.file_reads import read_bytes
from t5core.tokenizer.base import BASE_SPECIALS, SPIECE_UNDERLINE, BaseTokenizer
from t5core.tokenizer.hf_tokenizer_json import HFUnigramFile
from t5core.tokenizer.in_graph import InGraphTokenizer

# Unicode's White_Space characters (Rust's char::is_whitespace, which HF tokenizers uses).
_UNICODE_WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
                       + "\u2028\u2029\u202f\u205f\u3000")


def _read_bytes(path: str) -> bytes:
    """Reads a local or remote (gs://, anything tf.io.gfile knows) file."""
    if not tf.io.gfile.exists(path):
        raise UserFileNotFoundError(f"tokenizer file not found: {path!r}")
    return read_bytes(path, ConfigError)


class Tokenizer(BaseTokenizer):
    """T5's SentencePiece vocabulary plus sentinels, as HF `T5Tokenizer` / `T5TokenizerFast`.

    Args:
      path: a SentencePiece model, an HF Unigram tokenizer.json, or a directory holding either
        (spiece.model preferred); local or `gs://...`. `self.path` is the file read.
      extra_ids: sentinels after the SentencePiece ids (default 100); a tokenizer.json's own
        must agree.
      add_prefix_space: SentencePiece prepends "▁" to each text piece (default, T5/HF); False
        turns the dummy prefix off (HF `add_prefix_space=False`).
      model_proto: the model bytes (SentencePiece or tokenizer.json) instead of `path`.
    """

    in_graph_class = InGraphTokenizer

    def __init__(self, path: str | None = None, extra_ids: int | None = None, *,
                 add_prefix_space: bool = True, model_proto: bytes | None = None):
        if (path is None) == (model_proto is None):
            raise ValueError("pass exactly one of path and model_proto")
        if path is not None:
            path = os.fspath(path)
            if tf.io.gfile.isdir(path):
                found = model_dir_lib.find_tokenizer_file(path)
                if found is None:
                    raise UserFileNotFoundError(
                        f"no tokenizer in directory {path!r}: expected "
                        f"{model_dir_lib.SENTENCEPIECE_VOCAB} or {model_dir_lib.HF_TOKENIZER}")
                path = found
        data = model_proto if model_proto is not None else _read_bytes(path)
        name = path or "<model_proto>"
        self.path = path
        self.add_prefix_space = add_prefix_space
        json_text = name.endswith(".json") or data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{"
        hf = HFUnigramFile(data, name) if json_text else None
        if hf is not None:
            if extra_ids is not None and extra_ids != hf.extra_ids:
                raise ConfigError(f"{name}: extra_ids={extra_ids} given, but the file declares "
                                  f"{hf.extra_ids} sentinels <extra_id_N>")
            extra_ids, data = hf.extra_ids, hf.proto
        elif extra_ids is None:
            extra_ids = 100
        self._sp = spm.SentencePieceProcessor()
        try:
            self.model_proto = data if add_prefix_space else _without_dummy_prefix(data)
            self._sp.LoadFromSerializedProto(self.model_proto)
        except Exception as e:  # sentencepiece: a bare RuntimeError/OSError; protobuf: DecodeError
            raise ConfigError(f"not a SentencePiece model or tokenizer.json: {name}: {e}") from e
        self.base_vocab_size = self._sp.get_piece_size()
        if hf is not None:
            self._pieces, special_ids = hf.pieces, hf.added
        else:  # a SentencePiece file: the sentinels follow its pieces, counting down
            try:
                self._pieces = [self._sp.id_to_piece(i) for i in range(self.base_vocab_size)]
            except UnicodeDecodeError as e:  # sentencepiece stores bytes, Python wants text
                raise ConfigError(f"{name}: a piece is not UTF-8 text ({e.reason}); the model "
                                  "file is damaged") from None
            self._pieces += [f"<extra_id_{extra_ids - 1 - k}>" for k in range(extra_ids)]
            special_ids = {p: i for i, p in enumerate(self._pieces)
                           if p in BASE_SPECIALS or i >= self.base_vocab_size}
        for token, i in BASE_SPECIALS.items():
            if self._pieces[i] != token:
                raise ConfigError(f"{name}: id {i} is {self._pieces[i]!r}, T5 expects {token!r}")
        self.vocab_size = len(self._pieces)
        # What each id decodes to, as bytes: a byte-fallback piece ("<0xE4>", vocabularies
        # trained with byte_fallback) is the byte it names, so that a run of them decodes to
        # the character they spell; every other piece is its text.
        self._piece_bytes = [bytes([int(piece[3:5], 16)])
                             if i < self.base_vocab_size and self._sp.is_byte(i)
                             else piece.encode("utf-8") for i, piece in enumerate(self._pieces)]
        # HF's WhitespaceSplit cuts at every Unicode whitespace character left after
        # normalisation; SentencePiece only at spaces. Such characters the charsmap keeps as
        # they are (U+0085 for T5's) become spaces first, so that both split there.
        self._space_chars = "".join(
            c for c in _UNICODE_WHITESPACE
            if hf is not None and hf.splits_whitespace
            and c in self._sp.normalize(f"a{c}b"))
        self._to_space = str.maketrans(dict.fromkeys(self._space_chars, " "))
        super().__init__(extra_ids, special_ids,
                         strip_around=hf.strip_around if hf else (),
                         skip_on_decode=hf.special_ids if hf else None)

    def _encode_text(self, text: str) -> list[int]:
        return self._sp.encode(text.translate(self._to_space), out_type=int)

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
            out.extend([part] if is_special
                       else self._sp.encode(part.translate(self._to_space), out_type=str))
        return out

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text: stops at the first eos, drops pad; ids >= vocab_size decode as unk.
        Byte pieces that do not spell UTF-8 become U+FFFD (Unicode's "maximal subpart" rule,
        which tensorflow-text's transcoding in the in-graph twin follows too)."""
        raw = b"".join(self._piece_bytes[i] for i in self._clean_ids(ids, skip_special_tokens))
        text = raw.decode("utf-8", errors="replace").replace(SPIECE_UNDERLINE, " ")
        if self.add_prefix_space and text.startswith(" "):
            text = text[1:]
        return text


def _without_dummy_prefix(proto: bytes) -> bytes:
    """The SentencePiece model with its dummy "▁" prefix turned off (add_prefix_space=False)."""
    m = sentencepiece_model_pb2.ModelProto()
    m.ParseFromString(proto)
    m.normalizer_spec.add_dummy_prefix = False
    return m.SerializeToString()
