"""Named entities as text targets (WNUT17), and back.

One format for the whole project, the one `t5core.metrics.entity_f1` parses (defined in
`t5core.metrics.postprocess`, used here so that targets and metric cannot drift apart):
the entities in sentence order, each "<type>: <entity text>", joined by " ; "; "none" when the
sentence has none. Entity text is its tokens joined by single spaces; BIO chunks as conlleval
(an I- tag that does not continue an entity of its type starts a new one). Example:
  tokens  Empire State Building = ESB . Pretty bad storm
  tags    B-location I-location I-location O B-location O O O O
  target  "location: Empire State Building ; location: ESB"
"""

from __future__ import annotations

from collections.abc import Sequence

from t5core.metrics import postprocess as _entities

NO_ENTITIES = _entities.NO_ENTITIES


def bio_entities(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """BIO-tagged tokens -> [(type, entity text)] in sentence order."""
    return _entities.bio_to_entities(list(tokens), list(tags))


def format_entities(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """BIO-tagged tokens -> the target string (see module docstring)."""
    return _entities.format_entities(bio_entities(tokens, tags))


def parse_entities(text: str) -> list[tuple[str, str]]:
    """Target or predicted string -> [(type, entity text)]; tolerant of malformed output."""
    return _entities.parse_entities(text)


def wnut17_formatter(tokens: Sequence[str], tags: Sequence[str]) -> dict[str, str]:
    """ConllSource formatter for the WNUT17 task: the tweet text and its entity target."""
    return {"text": " ".join(tokens), "entities": format_entities(tokens, tags)}
