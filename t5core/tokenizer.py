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
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
from collections.abc import Iterable

import numpy as np
import sentencepiece as spm
import tensorflow as tf

from t5core import model_dir as model_dir_lib
from t5core.errors import ConfigError, UserFileNotFoundError

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
_BASE_SPECIALS = {"<pad>": PAD_ID, "</s>": EOS_ID, "<unk>": UNK_ID}
_SPIECE_UNDERLINE = "\u2581"


# Unicode's White_Space characters (Rust's char::is_whitespace, which HF tokenizers uses).
_UNICODE_WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
                       + "\u2028\u2029\u202f\u205f\u3000")

# Python's str.isspace() set as an RE2 character class (RE2's own \s is ASCII only).
_WS_RE2 = "[" + "".join(f"\\x{{{c:x}}}" for c in range(0x3001) if chr(c).isspace()) + "]"


def _read_bytes(path: str) -> bytes:
    """Reads a local or remote (gs://, anything tf.io.gfile knows) file."""
    if not tf.io.gfile.exists(path):
        raise UserFileNotFoundError(f"tokenizer file not found: {path!r}")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def find_tokenizer_file(directory: str) -> str | None:
    """The tokenizer file of a model directory: spiece.model, else tokenizer.json, else None."""
    for name in (model_dir_lib.SENTENCEPIECE_VOCAB, model_dir_lib.HF_TOKENIZER):
        candidate = model_dir_lib.path(directory, name)
        if tf.io.gfile.exists(candidate):
            return candidate
    return None


# Files that are checkpoints, never vocabularies: a tokenizer is looked for beside them.
_CHECKPOINT_SUFFIXES = (".index", ".safetensors", ".bin", ".h5", ".msgpack")


def load_tokenizer(spec: str) -> Tokenizer | ByteTokenizer:
    """"byte" -> ByteTokenizer; a spiece.model / tokenizer.json file -> Tokenizer; a checkpoint
    (a directory such as an HF snapshot, a training run's model_dir or its best/, a checkpoint
    prefix or file) -> the tokenizer that goes with it (`t5core.model_dir.find_tokenizer`: a
    run's own, "byte" included; else spiece.model or tokenizer.json beside it)."""
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


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class _BaseTokenizer:
    """Special-token splitting, EOS and decode rules shared by both vocabularies.

    Subclasses set `vocab_size` and define `_encode_text` (plain text without specials -> ids),
    `decode` and `_make_in_graph`, and may override `sentinel_id` (default: as declared in
    `special_ids`).
    """

    pad_id, eos_id, unk_id = PAD_ID, EOS_ID, UNK_ID

    def __init__(self, extra_ids: int, special_ids: dict[str, int] | None = None,
                 strip_around: Iterable[str] = (), skip_on_decode: Iterable[int] | None = None):
        """special_ids: every literal token cut out of the text before encoding, with its id
        (default: pad/eos/unk and `<extra_id_i>` = `sentinel_id(i)`); strip_around: those of
        them that swallow the whitespace on both sides (HF AddedToken lstrip/rstrip=True);
        skip_on_decode: ids that decode(skip_special_tokens=True) drops besides pad and unk
        (default: the sentinels)."""
        if extra_ids < 0:
            raise ValueError(f"extra_ids must be >= 0, got {extra_ids}")
        self.extra_ids = extra_ids
        if special_ids is None:
            special_ids = dict(_BASE_SPECIALS)
            for i in range(extra_ids):
                special_ids[f"<extra_id_{i}>"] = self.sentinel_id(i)
        self._special_ids = dict(special_ids)
        self._sentinel_ids = [self._special_ids[f"<extra_id_{i}>"] for i in range(extra_ids)]
        self._sentinel_set = frozenset(self._sentinel_ids)
        skip = self._sentinel_set if skip_on_decode is None else skip_on_decode
        self._skip_ids = frozenset(skip) | {self.unk_id}
        strip_around = set(strip_around)
        # One regex (valid in Python `re` and in RE2 for the in-graph split) matching a special
        # token with, for `strip_around` ones, the whitespace on both sides. Longest names first
        # so that no special is matched as a prefix of a longer one.
        def pattern(ws):
            names = sorted(self._special_ids, key=len, reverse=True)
            return "|".join(f"{ws}*{re.escape(n)}{ws}*" if n in strip_around else re.escape(n)
                            for n in names)
        self._special_pattern = pattern(_WS_RE2)  # for tensorflow-text's regex_split (RE2)
        self._special_re = re.compile(pattern(r"\s"))  # Python's \s is exactly str.isspace()
        self._in_graph = None

    # -- to be provided by subclasses
    vocab_size: int

    def sentinel_id(self, i: int) -> int:
        """Id of `<extra_id_i>`."""
        if not 0 <= i < self.extra_ids:
            raise ValueError(f"sentinel index {i} outside [0, {self.extra_ids})")
        return self._sentinel_ids[i]

    def _encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    # -- shared API
    @property
    def padded_vocab_size(self) -> int:
        """Embedding rows a model uses for this vocabulary (vocab_size rounded up to 128)."""
        return _round_up(self.vocab_size, 128)

    def is_sentinel(self, token_id: int) -> bool:
        return token_id in self._sentinel_set

    def _split(self, text: str, split_special_tokens: bool = False):
        """Yields (piece, is_special): the text cut at literal special tokens (HF's split)."""
        if split_special_tokens:
            yield text, False
            return
        start = 0
        for m in self._special_re.finditer(text):
            if m.start() > start:
                yield text[start:m.start()], False
            yield m.group(0).strip(), True  # strip: see strip_around
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
        unk, sentinels and the other special tokens."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == self.eos_id:
                break
            if i == self.pad_id:
                continue
            if i < 0 or i >= self.vocab_size:
                i = self.unk_id
            if skip_special_tokens and i in self._skip_ids:
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
    """T5's SentencePiece vocabulary plus its sentinels, as HF `T5Tokenizer` / `T5TokenizerFast`.

    Args:
      path: a SentencePiece model file, an HF tokenizer.json with a Unigram model, or a directory
        holding either (spiece.model preferred); local or remote (`gs://...`), read with
        tf.io.gfile. `self.path` is the file actually read.
      extra_ids: number of sentinels appended after the SentencePiece ids (default 100, T5's).
        A tokenizer.json declares its own sentinels among its added tokens; a value given here
        must agree with it.
      add_prefix_space: True (default, T5/HF) lets SentencePiece prepend "▁" to each text piece;
        False turns SentencePiece's dummy prefix off (HF `add_prefix_space=False`; where a
        piece starts with whitespace, HF's fast tokenizer keeps one "▁" for it, which is not
        reproduced).
      model_proto: the model bytes (SentencePiece or tokenizer.json) instead of `path`.
    """

    def __init__(self, path: str | None = None, extra_ids: int | None = None, *,
                 add_prefix_space: bool = True, model_proto: bytes | None = None):
        if (path is None) == (model_proto is None):
            raise ValueError("pass exactly one of path and model_proto")
        if path is not None:
            path = os.fspath(path)
            if tf.io.gfile.isdir(path):
                found = find_tokenizer_file(path)
                if found is None:
                    raise UserFileNotFoundError(
                        f"no tokenizer in directory {path!r}: expected "
                        f"{model_dir_lib.SENTENCEPIECE_VOCAB} or {model_dir_lib.HF_TOKENIZER}")
                path = found
        data = model_proto if model_proto is not None else _read_bytes(path)
        name = path or "<model_proto>"
        self.path = path
        self.add_prefix_space = add_prefix_space
        hf = _HFUnigramFile(data, name) if data.lstrip()[:1] == b"{" else None
        if hf is not None:
            if extra_ids is not None and extra_ids != hf.extra_ids:
                raise ConfigError(f"{name}: extra_ids={extra_ids} given, but the file declares "
                                  f"{hf.extra_ids} sentinels <extra_id_N>")
            extra_ids, data = hf.extra_ids, hf.proto
        elif extra_ids is None:
            extra_ids = 100
        self.model_proto = data if add_prefix_space else _without_dummy_prefix(data)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self.model_proto)
        except Exception as e:  # sentencepiece raises a bare RuntimeError/OSError
            raise ConfigError(f"not a SentencePiece model or tokenizer.json: {name}: {e}") from e
        self.base_vocab_size = self._sp.get_piece_size()
        if hf is not None:
            self._pieces, special_ids = hf.pieces, hf.added
        else:  # a SentencePiece file: the sentinels follow its pieces, counting down
            self._pieces = [self._sp.id_to_piece(i) for i in range(self.base_vocab_size)]
            self._pieces += [f"<extra_id_{extra_ids - 1 - k}>" for k in range(extra_ids)]
            special_ids = {p: i for i, p in enumerate(self._pieces)
                           if p in _BASE_SPECIALS or i >= self.base_vocab_size}
        for token, i in _BASE_SPECIALS.items():
            if self._pieces[i] != token:
                raise ConfigError(f"{name}: id {i} is {self._pieces[i]!r}, T5 expects {token!r}")
        self.vocab_size = len(self._pieces)
        # HF's WhitespaceSplit cuts at every Unicode whitespace character left after
        # normalisation; SentencePiece only at spaces. Such characters the charsmap keeps as
        # they are (U+0085 for T5's) become spaces first, so that both split there.
        self._space_chars = "".join(
            c for c in _UNICODE_WHITESPACE
            if hf is not None and hf.splits_whitespace
            and c in self._sp.normalize(f"a{c}b"))
        super().__init__(extra_ids, special_ids,
                         strip_around=hf.strip_around if hf else (),
                         skip_on_decode=hf.special_ids if hf else None)

    def _sentencepiece_input(self, text: str) -> str:
        for c in self._space_chars:
            text = text.replace(c, " ")
        return text

    def _encode_text(self, text: str) -> list[int]:
        return self._sp.encode(self._sentencepiece_input(text), out_type=int)

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
                       else self._sp.encode(self._sentencepiece_input(part), out_type=str))
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

    def __init__(self, extra_ids: int = 125):
        self.vocab_size = 256 + self.offset + extra_ids
        # pad/eos/unk swallow the whitespace around them, as HF ByT5Tokenizer's AddedTokens.
        super().__init__(extra_ids, strip_around=_BASE_SPECIALS)
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


class _HFUnigramFile:
    """An HF tokenizer.json holding a SentencePiece Unigram model, as that SentencePiece model.

    HF converts a SentencePiece Unigram model to tokenizer.json without loss: the pieces and their
    scores, the normalizer's precompiled charsmap, the "▁" Metaspace pre-tokenizer and decoder,
    and whitespace cleanup (Strip + Replace, or WhitespaceSplit) for SentencePiece's
    remove_extra_whitespaces. Only those layouts are accepted; any other would tokenize unlike
    SentencePiece, so it is refused, naming what is unsupported.

    Attributes: proto (SentencePiece ModelProto bytes), pieces (id -> piece, added tokens
    included), added (every added token -> id), special_ids (ids of the special added tokens),
    strip_around (added tokens that swallow the whitespace around them), extra_ids (how many
    `<extra_id_N>` the file declares), splits_whitespace (a WhitespaceSplit pre-tokenizer).
    """

    def __init__(self, data: bytes, name: str):
        self._name = name
        try:
            spec = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{name}: not valid JSON: {e}") from e
        model = spec.get("model") or {}
        if model.get("type") != "Unigram":
            self._refuse(f"model type {model.get('type')!r} (only Unigram, as T5 and mT5 use)")
        if model.get("byte_fallback"):
            self._refuse("model.byte_fallback=true")
        vocab = model.get("vocab")
        if not isinstance(vocab, list) or not vocab:
            self._refuse("model.vocab is missing or empty")
        charsmap, cleans_whitespace = self._read_normalizer(spec.get("normalizer"))
        self.splits_whitespace = splits_whitespace = self._read_pre_tokenizer(
            spec.get("pre_tokenizer"))
        if not (cleans_whitespace or splits_whitespace):
            self._refuse("no whitespace cleanup (neither Strip + Replace(' {2,}') in the "
                         "normalizer nor WhitespaceSplit in the pre-tokenizer)")
        self._check_metaspace(spec.get("decoder"), "decoder")
        self.proto = self._sentencepiece_proto(vocab, model.get("unk_id"), charsmap)
        self._read_added_tokens(spec.get("added_tokens") or [], [p for p, _ in vocab])

    def _refuse(self, what: str):
        raise ConfigError(f"{self._name}: unsupported tokenizer.json: {what}; t5core reads the "
                          "Unigram tokenizer.json files HF writes for SentencePiece models")

    def _read_normalizer(self, normalizer) -> tuple[bytes, bool]:
        """(precompiled charsmap, whether it also strips and collapses whitespace)."""
        steps = (normalizer or {}).get("normalizers") if (normalizer or {}).get(
            "type") == "Sequence" else [normalizer]
        if not steps or (steps[0] or {}).get("type") != "Precompiled":
            self._refuse(f"normalizer {_describe(normalizer)} (expected Precompiled, "
                         "optionally followed by Strip(right) and Replace(' {2,}', '▁'))")
        charsmap = base64.b64decode(steps[0].get("precompiled_charsmap") or "")
        rest = [_describe(step) for step in steps[1:]]
        cleanup = ["Strip(left=False, right=True)", "Replace(' {2,}' -> '▁')"]
        if rest not in ([], cleanup):
            self._refuse(f"normalizer steps {rest} after Precompiled (expected none or {cleanup})")
        return charsmap, bool(rest)

    def _read_pre_tokenizer(self, pre_tokenizer) -> bool:
        """Checks the Metaspace pre-tokenizer; True when WhitespaceSplit comes before it."""
        pre_tokenizer = pre_tokenizer or {}
        steps = (pre_tokenizer.get("pretokenizers") if pre_tokenizer.get("type") == "Sequence"
                 else [pre_tokenizer])
        if [(step or {}).get("type") for step in steps] not in (
                ["Metaspace"], ["WhitespaceSplit", "Metaspace"]):
            self._refuse(f"pre_tokenizer {_describe(pre_tokenizer)} (expected Metaspace, or "
                         "WhitespaceSplit then Metaspace)")
        self._check_metaspace(steps[-1], "pre_tokenizer")
        if steps[-1].get("split") is False:
            self._refuse("pre_tokenizer Metaspace with split=false")
        return len(steps) == 2

    def _check_metaspace(self, step, where: str):
        step = step or {}
        if step.get("type") != "Metaspace" or step.get("replacement") != _SPIECE_UNDERLINE:
            self._refuse(f"{where} {_describe(step)} (expected Metaspace with replacement '▁')")
        scheme = step.get("prepend_scheme", "always" if step.get("add_prefix_space", True)
                          else "never")
        if scheme != "always":
            # "first" (HF legacy=False) adds "▁" only before the text's first piece, "never"
            # nowhere; SentencePiece's dummy prefix goes before every piece between specials.
            self._refuse(f"{where} Metaspace prepend_scheme={scheme!r} (only 'always', "
                         "HF's legacy T5 behaviour)")

    def _sentencepiece_proto(self, vocab, unk_id, charsmap: bytes) -> bytes:
        # pylint: disable-next=g-import-not-at-top
        from sentencepiece import sentencepiece_model_pb2 as pb
        if not isinstance(unk_id, int) or not 0 <= unk_id < len(vocab):
            self._refuse(f"model.unk_id {unk_id!r} is not an id of its vocab")
        m = pb.ModelProto()
        for i, (piece, score) in enumerate(vocab):
            # Every piece stays in the Unigram lattice, specials included, as in HF's Unigram:
            # text that normalises to "</s>" (e.g. fullwidth "＜/s＞") becomes that piece there.
            m.pieces.add(piece=piece, score=score,
                         type=pb.ModelProto.SentencePiece.UNKNOWN if i == unk_id
                         else pb.ModelProto.SentencePiece.NORMAL)
        m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
        m.trainer_spec.vocab_size = len(vocab)
        m.trainer_spec.unk_id = unk_id
        m.trainer_spec.bos_id = m.trainer_spec.eos_id = m.trainer_spec.pad_id = -1
        m.normalizer_spec.name = "tokenizer.json"
        m.normalizer_spec.precompiled_charsmap = charsmap
        m.normalizer_spec.add_dummy_prefix = True
        m.normalizer_spec.remove_extra_whitespaces = True
        m.normalizer_spec.escape_whitespaces = True
        return m.SerializeToString()

    def _read_added_tokens(self, added_tokens, pieces: list[str]):
        self.added, self.special_ids, self.strip_around = {}, set(), set()
        beyond = {}
        for token in added_tokens:
            content, i = token.get("content"), token.get("id")
            if not isinstance(content, str) or not isinstance(i, int) or i < 0:
                self._refuse(f"added token {token!r} without a content string and an id")
            if token.get("normalized") or token.get("single_word"):
                self._refuse(f"added token {content!r} with normalized or single_word set")
            if bool(token.get("lstrip")) != bool(token.get("rstrip")):
                self._refuse(f"added token {content!r} strips on one side only")
            if i < len(pieces) and pieces[i] != content:
                self._refuse(f"added token {content!r} has id {i}, which the vocab gives to "
                             f"{pieces[i]!r}")
            if i >= len(pieces):
                beyond[i] = content
            self.added[content] = i
            if token.get("special"):
                self.special_ids.add(i)
            if token.get("lstrip"):
                self.strip_around.add(content)
        if sorted(beyond) != list(range(len(pieces), len(pieces) + len(beyond))):
            self._refuse(f"added tokens beyond the vocab leave gaps in the ids ({sorted(beyond)})")
        self.pieces = pieces + [beyond[i] for i in sorted(beyond)]
        n = 0
        while f"<extra_id_{n}>" in self.added:
            n += 1
        if any(re.fullmatch(r"<extra_id_(\d+)>", t) and int(t[10:-1]) >= n for t in self.added):
            self._refuse(f"sentinels <extra_id_N> not numbered 0..N-1 (<extra_id_{n}> missing)")
        self.extra_ids = n


def _describe(step) -> str:
    """A normalizer / pre-tokenizer / decoder step of a tokenizer.json, in one short phrase."""
    if not isinstance(step, dict):
        return repr(step)
    kind = step.get("type")
    if kind == "Strip":
        return f"Strip(left={step.get('strip_left')}, right={step.get('strip_right')})"
    if kind == "Replace":
        pattern = step.get("pattern") or {}
        found = pattern.get("Regex", pattern.get("String"))
        return f"Replace({found!r} -> {step.get('content')!r})"
    if kind == "Sequence":
        inner = step.get("normalizers") or step.get("pretokenizers") or step.get("decoders") or []
        return "Sequence[" + ", ".join(_describe(x) for x in inner) + "]"
    return str(kind)


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
        # pylint: disable=protected-access
        self._special_pattern = tok._special_pattern
        self._special_names = tf.constant(list(tok._special_ids), tf.string)
        self._special_values = tf.constant(list(tok._special_ids.values()), tf.int32)
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
        flat = tf.strings.regex_replace(flat, f"^{_WS_RE2}+|{_WS_RE2}+$", "")  # see strip_around
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
    """In-graph `Tokenizer` (tensorflow-text SentencepieceTokenizer + the same special handling)."""

    def __init__(self, tok: Tokenizer, name=None):
        super().__init__(tok, name=name)
        import tensorflow_text as tf_text  # pylint: disable=g-import-not-at-top
        self.add_prefix_space = tok.add_prefix_space
        self._sp = tf_text.SentencepieceTokenizer(model=tok.model_proto, out_type=tf.int32)
        self._pieces = tf.constant(tok._pieces)  # pylint: disable=protected-access
        space_chars = tok._space_chars  # pylint: disable=protected-access
        self._space_chars = "".join(f"\\x{{{ord(c):x}}}" for c in space_chars)  # RE2 class body

    def _encode_pieces(self, pieces):
        if self._space_chars:  # as Tokenizer._sentencepiece_input
            pieces = tf.ragged.map_flat_values(
                tf.strings.regex_replace, pieces, f"[{self._space_chars}]", " ")
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
    "find_tokenizer_file",
    "load_tokenizer",
]

