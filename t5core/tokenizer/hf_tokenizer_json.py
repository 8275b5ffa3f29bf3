"""An HF `tokenizer.json` holding a Unigram model, read as the SentencePiece model it was converted
from, so the same SentencePiece code serves it (`HFUnigramFile`)."""

from __future__ import annotations

import base64
import binascii
import re

from t5core.errors import ConfigError, json_kind
from t5core.file_reads import BUDGETS, parse_json, shown
from t5core.tokenizer.base import SPIECE_UNDERLINE


class HFUnigramFile:
    """An HF tokenizer.json holding a SentencePiece Unigram model, as that model; any other
    layout would tokenize unlike SentencePiece and is refused, naming what it lacks.

    Attributes: proto (ModelProto bytes), pieces (id -> piece, added included), added (added
    token -> id), special_ids, strip_around (added tokens swallowing whitespace), extra_ids
    (declared `<extra_id_N>`), splits_whitespace (a WhitespaceSplit pre-tokenizer).
    """

    def __init__(self, data: bytes, name: str):
        self._name = name
        spec = parse_json(data, name, ConfigError)
        # Every value below comes from a file: each is type-checked (`_object`, `_list`) before
        # it is used, so a field of the wrong type is a ConfigError naming it.
        spec = self._object(spec, "the file")
        model = self._object(spec.get("model"), "model")
        if model.get("type") != "Unigram":
            self._refuse(f"model type {model.get('type')!r} (only Unigram, as T5 and mT5 use)")
        if model.get("byte_fallback"):
            self._refuse("model.byte_fallback=true")
        vocab = model.get("vocab")
        if not isinstance(vocab, list) or not vocab:
            self._refuse("model.vocab is missing or empty")
        self._check_vocab(vocab)
        charsmap, cleans_whitespace = self._read_normalizer(spec.get("normalizer"))
        self.splits_whitespace = splits_whitespace = self._read_pre_tokenizer(
            spec.get("pre_tokenizer"))
        if not (cleans_whitespace or splits_whitespace):
            self._refuse("no whitespace cleanup (neither Strip + Replace(' {2,}') in the "
                         "normalizer nor WhitespaceSplit in the pre-tokenizer)")
        self._check_metaspace(spec.get("decoder"), "decoder")
        self.proto = self._sentencepiece_proto(vocab, model.get("unk_id"), charsmap)
        self._read_added_tokens(self._list(spec.get("added_tokens"), "added_tokens"),
                                [p for p, _ in vocab])

    def _object(self, value, where: str) -> dict:
        """`value`, a JSON object (absent: {}), else a refusal naming `where`."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self._refuse(f"{where} is {json_kind(value)}, not an object")
        return value

    def _list(self, value, where: str) -> list:
        """`value`, a JSON list of objects (absent: []), else a refusal naming `where`."""
        if value is None:
            return []
        if not isinstance(value, list):
            self._refuse(f"{where} is {json_kind(value)}, not a list")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self._refuse(f"{where}[{i}] is {json_kind(item)}, not an object")
        if len(value) > BUDGETS["vocab_entries"]:
            self._refuse(f"{where} has {len(value):,} entries (at most "
                         f"{BUDGETS['vocab_entries']:,})")
        return value

    def _check_vocab(self, vocab: list):
        if len(vocab) > BUDGETS["vocab_entries"]:
            self._refuse(f"model.vocab has {len(vocab):,} pieces (at most "
                         f"{BUDGETS['vocab_entries']:,})")
        for i, entry in enumerate(vocab):
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                    and entry[0] and isinstance(entry[1], (int, float))
                    and not isinstance(entry[1], bool) and abs(entry[1]) < _FLOAT32_MAX):
                self._refuse(f"model.vocab[{i}] is {shown(entry)}, not [piece, score] (a "
                             "string and a finite float32)")

    def _refuse(self, what: str):
        raise ConfigError(f"{self._name}: unsupported tokenizer.json: {what}; t5core reads the "
                          "Unigram tokenizer.json files HF writes for SentencePiece models")

    def _read_normalizer(self, normalizer) -> tuple[bytes, bool]:
        """(precompiled charsmap, whether it also strips and collapses whitespace)."""
        normalizer = self._object(normalizer, "normalizer")
        steps = self._list(normalizer.get("normalizers"), "normalizer.normalizers") \
            if normalizer.get("type") == "Sequence" else [normalizer]
        if not steps or steps[0].get("type") != "Precompiled":
            self._refuse(f"normalizer {describe_step(normalizer)} (expected Precompiled, "
                         "optionally followed by Strip(right) and Replace(' {2,}', '▁'))")
        encoded = steps[0].get("precompiled_charsmap") or ""
        try:
            if not isinstance(encoded, str):
                raise TypeError(json_kind(encoded))
            charsmap = base64.b64decode(encoded, validate=True)
        except (TypeError, ValueError, binascii.Error) as e:
            self._refuse(f"normalizer precompiled_charsmap is not base64 ({shown(str(e))})")
        rest = [describe_step(step) for step in steps[1:]]
        cleanup = ["Strip(left=False, right=True)", "Replace(' {2,}' -> '▁')"]
        if rest not in ([], cleanup):
            self._refuse(f"normalizer steps {rest} after Precompiled (expected none or {cleanup})")
        return charsmap, bool(rest)

    def _read_pre_tokenizer(self, pre_tokenizer) -> bool:
        """Checks the Metaspace pre-tokenizer; True when WhitespaceSplit comes before it."""
        pre_tokenizer = self._object(pre_tokenizer, "pre_tokenizer")
        steps = (self._list(pre_tokenizer.get("pretokenizers"), "pre_tokenizer.pretokenizers")
                 if pre_tokenizer.get("type") == "Sequence" else [pre_tokenizer])
        if [step.get("type") for step in steps] not in (
                ["Metaspace"], ["WhitespaceSplit", "Metaspace"]):
            self._refuse(f"pre_tokenizer {describe_step(pre_tokenizer)} (expected Metaspace, or "
                         "WhitespaceSplit then Metaspace)")
        self._check_metaspace(steps[-1], "pre_tokenizer")
        if steps[-1].get("split") is False:
            self._refuse("pre_tokenizer Metaspace with split=false")
        return len(steps) == 2

    def _check_metaspace(self, step, where: str):
        step = self._object(step, where)
        if step.get("type") != "Metaspace" or step.get("replacement") != SPIECE_UNDERLINE:
            self._refuse(f"{where} {describe_step(step)} "
                         "(expected Metaspace with replacement '▁')")
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
        if not isinstance(unk_id, int) or isinstance(unk_id, bool) \
                or not 0 <= unk_id < len(vocab):
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
            if not isinstance(content, str) or not isinstance(i, int) \
                    or isinstance(i, bool) or i < 0:
                self._refuse(f"added token {shown(token)} without a content string and an id")
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
        # (A number of more digits than any id is out of order without converting it.)
        numbers = [m[1] for t in self.added if (m := re.fullmatch(r"<extra_id_(\d+)>", t))]
        if any(len(d) > len(str(n)) or int(d) >= n for d in numbers):
            self._refuse(f"sentinels <extra_id_N> not numbered 0..N-1 (<extra_id_{n}> missing)")
        self.extra_ids = n


_FLOAT32_MAX = 3.4028234663852886e38


def describe_step(step, depth: int = 0) -> str:
    """A normalizer / pre-tokenizer / decoder step of a tokenizer.json, in one short phrase."""
    if not isinstance(step, dict) or depth > 3:
        return shown(step)
    kind = step.get("type")
    if kind == "Strip":
        return f"Strip(left={step.get('strip_left')}, right={step.get('strip_right')})"
    if kind == "Replace":
        pattern = step.get("pattern") if isinstance(step.get("pattern"), dict) else {}
        found = pattern.get("Regex", pattern.get("String"))
        return f"Replace({found!r} -> {step.get('content')!r})"
    if kind == "Sequence":
        inner = step.get("normalizers") or step.get("pretokenizers") or step.get("decoders") or []
        if not isinstance(inner, list):
            return f"Sequence of {json_kind(inner)}"
        return "Sequence[" + ", ".join(describe_step(x, depth + 1) for x in inner[:8]) + "]"
    return kind if isinstance(kind, str) and len(kind) <= 60 else shown(kind)
