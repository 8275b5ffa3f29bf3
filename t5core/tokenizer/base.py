"""What both vocabularies share: the special ids, splitting text at literal special tokens, the
EOS rule and the decode cleanup (HF transformers' slow tokenizers' rules)."""

from __future__ import annotations

import collections
import re
import unicodedata
from collections.abc import Iterable, Mapping

import numpy as np

from t5core.errors import DataError
from t5core.file_reads import shown, unencodable
from t5core.special_ids import EOS_ID, PAD_ID, UNK_ID

BASE_SPECIALS = {"<pad>": PAD_ID, "</s>": EOS_ID, "<unk>": UNK_ID}
SPIECE_UNDERLINE = "\u2581"  # SentencePiece's word-start marker, "▁"

# Above this share of <unk> among a field's tokens, the vocabulary is taken not to spell the
# data's script (T5's English vocabulary on Chinese makes nearly every token <unk>).
UNKNOWN_SHARE_WARNED = 0.01

# Python's str.isspace() set as an RE2 character class (RE2's own \s is ASCII only).
WS_RE2 = "[" + "".join(f"\\x{{{c:x}}}" for c in range(0x3001) if chr(c).isspace()) + "]"


class BaseTokenizer:
    """Special-token splitting, EOS and decode rules of both vocabularies; subclasses set
    `vocab_size`, `in_graph_class`, and define `_encode_text` (no specials) and `decode`."""

    pad_id, eos_id, unk_id = PAD_ID, EOS_ID, UNK_ID

    def __init__(self, extra_ids: int, special_ids: dict[str, int],
                 strip_around: Iterable[str] = (), skip_on_decode: Iterable[int] | None = None):
        """special_ids: every literal token cut out before encoding -> its id (pad/eos/unk and
        sentinels included); strip_around: those swallowing whitespace on both sides (HF
        lstrip/rstrip); skip_on_decode: ids skip_special_tokens drops besides pad and unk
        (default: the sentinels)."""
        if extra_ids < 0:
            raise ValueError(f"extra_ids must be >= 0, got {extra_ids}")
        self.extra_ids = extra_ids
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
            # No special token (a tokenizer.json without added tokens): a class nothing matches,
            # not the empty pattern, which matches everywhere (RE2 has no lookahead).
            return "|".join(f"{ws}*{re.escape(n)}{ws}*" if n in strip_around else re.escape(n)
                            for n in names) or r"[^\s\S]"
        self._special_pattern = pattern(WS_RE2)  # for tensorflow-text's regex_split (RE2)
        self._special_re = re.compile(pattern(r"\s"))  # Python's \s is exactly str.isspace()
        self._in_graph = None

    # -- to be provided by subclasses
    vocab_size: int
    in_graph_class: type  # the tf.Module twin (`t5core.tokenizer.in_graph`)

    def sentinel_id(self, i: int) -> int:
        """Id of `<extra_id_i>`."""
        if not 0 <= i < self.extra_ids:
            raise ValueError(f"sentinel index {i} outside [0, {self.extra_ids})")
        return self._sentinel_ids[i]

    def _encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    # -- shared API
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
        problem = unencodable(text)
        if problem:
            raise DataError(f"the text {shown(text)}: {problem}")
        ids = []
        for part, is_special in self._split(text, split_special_tokens):
            if is_special:
                ids.append(self._special_ids[part])
            else:
                ids.extend(self._encode_text(part))
        if add_eos and (not ids or ids[-1] != self.eos_id):
            ids.append(self.eos_id)
        return ids

    def unknown_tokens_warning(self, texts_by_field: Mapping[str, Iterable], where: str) -> str:
        """What is wrong when this vocabulary cannot spell the texts: the share of <unk> among
        each field's tokens above UNKNOWN_SHARE_WARNED, and characters that become <unk>; ""
        when every share stays under it. A model can neither learn nor write what became
        <unk>, so training on such text learns nothing, with no error. where: the texts, as
        the message names them ("the first 200 train examples"). A field's items are texts or,
        where only they are at hand, token id rows (pad ids ignored)."""
        shares, seen = {}, collections.Counter()
        for field, items in texts_by_field.items():
            items = list(items)
            texts = [item for item in items if isinstance(item, str)]
            ids = [i for text in texts for i in self.encode(text)]
            ids += [i for row in items if not isinstance(row, str) for i in row if i != self.pad_id]
            seen.update(c for text in texts for c in text if not c.isspace())
            if ids and ids.count(self.unk_id) / len(ids) > UNKNOWN_SHARE_WARNED:
                shares[field] = ids.count(self.unk_id) / len(ids)
        if not shares:
            return ""
        unknown = [c for c, _ in seen.most_common() if self.unk_id in self.encode(c)][:10]
        fields = ", ".join(f"{share:.0%} of the tokens of field {field!r}"
                           for field, share in shares.items())
        return (f"{fields} in {where} are <unk>: the vocabulary cannot spell characters such as "
                f"{' '.join(unknown)}, so the model can neither learn nor write them. Use a "
                "vocabulary that covers the data's script (e.g. an mT5 spiece.model) or the "
                "byte vocabulary.")

    def unwritable_warning(self, texts: Iterable[str], where: str) -> str:
        """What is wrong when texts read back otherwise through this vocabulary, spacing aside
        (its normalisation: "ｐｏｓｉｔｉｖｅ" reads back "positive", "…" "..."): a model writes
        only the read-back form, so exact match can never reach them; "" when all read back.
        Texts holding <unk> are `unknown_tokens_warning`'s."""
        texts = list(texts)
        changed = []
        for text in texts:
            ids = self.encode(text)
            back = self.decode(ids)
            if self.unk_id not in ids and back.split() != text.split():
                changed.append((text, back))
        if not changed:
            return ""
        text, back = changed[0]
        # Forms that print alike (decomposed accents) are told apart by their code points.
        show = ascii if unicodedata.normalize("NFC", text) == back else shown
        return (f"{len(changed)} of the {len(texts)} texts of {where} read back otherwise "
                f"through the vocabulary (e.g. {show(text)} reads back as {show(back)}): a "
                "model can only write the latter, so exact match cannot reach them")

    def _clean_ids(self, ids, skip_special_tokens: bool) -> list[int]:
        """Cuts at the first eos, drops pad, maps unknown ids to unk; optionally drops specials."""
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

    def in_graph(self):
        """The tf.Module twin of this tokenizer (cached; `t5core.tokenizer.in_graph`)."""
        if self._in_graph is None:
            self._in_graph = self.in_graph_class(self)
        return self._in_graph
