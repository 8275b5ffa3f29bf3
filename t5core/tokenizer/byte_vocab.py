"""ByT5's vocabulary (`ByteTokenizer`): UTF-8 bytes, then sentinels."""

from __future__ import annotations

from t5core.tokenizer.base import BASE_SPECIALS, BaseTokenizer
from t5core.tokenizer.in_graph import InGraphByteTokenizer


class ByteTokenizer(BaseTokenizer):
    """ByT5's vocabulary: byte b -> id b + 3, then sentinels `<extra_id_i>` = 259 + i, as HF's
    `ByT5Tokenizer`.

    Args:
      extra_ids: sentinels (default 125, ByT5's); `vocab_size` is 259 + extra_ids.
    """

    offset = 3
    in_graph_class = InGraphByteTokenizer

    def __init__(self, extra_ids: int = 125):
        self.vocab_size = 256 + self.offset + extra_ids
        sentinels = [f"<extra_id_{i}>" for i in range(extra_ids)]
        # pad/eos/unk swallow the whitespace around them, as HF ByT5Tokenizer's AddedTokens.
        super().__init__(extra_ids, {**BASE_SPECIALS, **{name: 256 + self.offset + i
                                                         for i, name in enumerate(sentinels)}},
                         strip_around=BASE_SPECIALS)
        self._byte_table = ([b"<pad>", b"</s>", b"<unk>"] + [bytes([b]) for b in range(256)]
                            + [name.encode() for name in sentinels])

    def _encode_text(self, text: str) -> list[int]:
        return [b + self.offset for b in text.encode("utf-8")]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text; bytes that are not valid UTF-8 are dropped (errors="ignore", as HF)."""
        raw = b"".join(self._byte_table[i] for i in self._clean_ids(ids, skip_special_tokens))
        return raw.decode("utf-8", errors="ignore")
