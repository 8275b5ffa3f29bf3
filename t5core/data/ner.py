"""Named entities as text targets (WNUT17), in `t5core.metrics.postprocess`'s format, and back."""

from __future__ import annotations

from collections.abc import Sequence

from t5core.metrics import postprocess as _entities

NO_ENTITIES = _entities.NO_ENTITIES


def bio_entities(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """BIO-tagged tokens -> [(type, entity text)] in sentence order."""
    return _entities.bio_to_entities(list(tokens), list(tags))


def format_entities(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """BIO-tagged tokens -> the target string ("type: text ; type: text", or "none")."""
    return _entities.format_entities(bio_entities(tokens, tags))


def parse_entities(text: str) -> list[tuple[str, str]]:
    """Target or predicted string -> [(type, entity text)]; tolerant of malformed output."""
    return _entities.parse_entities(text)


def wnut17_formatter(tokens: Sequence[str], tags: Sequence[str]) -> dict[str, str]:
    """ConllSource formatter for the WNUT17 task: the tweet text and its entity target."""
    return {"text": " ".join(tokens), "entities": format_entities(tokens, tags)}
