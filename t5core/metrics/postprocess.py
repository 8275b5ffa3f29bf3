"""Decoded model text -> values metrics score (labels, floats, entity lists); unparsable output
becomes a sentinel scored as wrong, never an error. Pure Python."""

from __future__ import annotations

import math
import re
from typing import Collection, Iterable, Sequence

# A prediction that is not one of the label words. Metrics exclude it from the
# averaged label set, so it counts as a miss for the true class but is not a
# class of its own (sklearn semantics with an explicit `labels` argument).
INVALID_LABEL = "<invalid>"

# A regression prediction that does not parse as a finite float. T5 uses -1 for
# STS-B (scores lie in [0, 5]), so the value is scored, and scored as wrong.
INVALID_FLOAT = -1.0

# Target text of an NER example without entities: a target may not be empty.
NO_ENTITIES = "none"
# "type: text ; type: text". The separator has spaces on both sides so that
# tweet text such as "&amp;" inside an entity does not split it.
ENTITY_SEPARATOR = " ; "
ENTITY_TYPE_SEPARATOR = ": "
INVALID_ENTITY_TYPE = "<invalid>"
# Parsing accepts any run of whitespace around the ";".
_ENTITY_SPLIT = re.compile(r"\s+;\s+")


def string_to_label(text: str, label_words: Collection[str]) -> str:
    """The label word `text` names (surrounding whitespace ignored), else INVALID_LABEL."""
    word = text.strip()
    return word if word in label_words else INVALID_LABEL


def string_to_float(text: str, default: float = INVALID_FLOAT) -> float:
    """`text` as a finite float, else `default`."""
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        return default
    return value if math.isfinite(value) else default


def format_entities(entities: Iterable[tuple[str, str]]) -> str:
    """[(type, text), ...] -> "type: text ; type: text", or NO_ENTITIES if empty."""
    parts = [f"{entity_type}{ENTITY_TYPE_SEPARATOR}{text}" for entity_type, text in entities]
    return ENTITY_SEPARATOR.join(parts) if parts else NO_ENTITIES


def parse_entities(text: str) -> list[tuple[str, str]]:
    """Inverse of format_entities; a segment without "type:" is (INVALID_ENTITY_TYPE, segment)."""
    text = text.strip()
    if not text or text == NO_ENTITIES:
        return []
    entities = []
    for segment in _ENTITY_SPLIT.split(text):
        segment = segment.strip()
        if not segment:
            continue
        entity_type, sep, entity_text = segment.partition(ENTITY_TYPE_SEPARATOR.strip())
        if not sep or not entity_type.strip() or not entity_text.strip():
            entities.append((INVALID_ENTITY_TYPE, segment))
        else:
            entities.append((entity_type.strip(), entity_text.strip()))
    return entities


def _split_tag(tag: str) -> tuple[str, str]:
    """ "B-creative-work" -> ("B", "creative-work"); "O" -> ("O", "")."""
    if tag == "O":
        return "O", ""
    prefix, sep, entity_type = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not entity_type:
        raise ValueError(
            f"invalid entity tag {tag!r}: expected 'O' or B-/I-/E-/S- followed by a type"
        )
    return prefix, entity_type


def bio_to_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans (type, first, last), inclusive, chunked as seqeval's default mode (IOB/IOBES)."""
    spans = []
    start = None
    prev_prefix, prev_type = "O", ""
    for i, tag in enumerate(tags):
        prefix, entity_type = _split_tag(tag)
        continues = prefix in ("I", "E") and prev_prefix in ("B", "I") and entity_type == prev_type
        if start is not None and not continues:
            spans.append((prev_type, start, i - 1))
            start = None
        if prefix != "O" and not continues:
            start = i
        if prefix in ("E", "S") and start is not None:
            # The chunk closes at this token.
            spans.append((entity_type, start, i))
            start = None
        prev_prefix, prev_type = prefix, entity_type
    if start is not None:
        spans.append((prev_type, start, len(tags) - 1))
    return spans


def bio_to_entities(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """[(type, "space joined tokens"), ...] in order of appearance."""
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    return [(t, " ".join(tokens[a : b + 1])) for t, a, b in bio_to_spans(tags)]
