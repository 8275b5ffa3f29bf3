"""The templates of each task type: classification, named entities, question answering,
translation, summarization and dialogue. Default formats follow the T5 paper ("sst2 sentence:
...", "question: ... context: ...", "translate English to German: ...", "summarize: ...").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence

import regex

from t5core.data.templates.fields import (Template, check_target, get_field, get_text, get_texts,
                                          join_nonempty, where)
from t5core.errors import DataError, json_kind
from t5core.metrics.postprocess import (
    bio_to_entities,
    format_entities,
    parse_entities,
    string_to_label,
)


# --------------------------------------------------------------------------
# Text classification with label words (the candidates of rank classification).


def _label_table(label_words) -> dict[str, str]:
    """Raw label (str) -> word; a list accepts each word and its index ("positive", 1, "1")."""
    if isinstance(label_words, Mapping):
        table = {str(k): str(v) for k, v in label_words.items()}
    else:
        words = [str(w) for w in label_words]
        table = {w: w for w in words}
        for i, w in enumerate(words):
            if table.get(str(i), w) != w:
                raise ValueError(f"label word {table[str(i)]!r} is also the index of {w!r}")
            table[str(i)] = w
    if not table or any(not w.strip() for w in table.values()):
        raise ValueError(f"label words must be non-empty strings, got {label_words!r}")
    return table


@dataclasses.dataclass(frozen=True)
class Classification(Template):
    """T5 GLUE style: "<prefix> <field>: <text> <field>: <text>" -> label word. label_words:
    {raw label: word} or a list; prefix: task name ("sst2") or ""."""

    label_words: Any
    text_fields: Sequence[str] = ("sentence",)
    label_field: str = "label"
    prefix: str = ""
    task_type = "classification"

    @property
    def words(self) -> list[str]:
        """The distinct label words, in label order: rank classification's candidates."""
        return list(dict.fromkeys(_label_table(self.label_words).values()))

    def input_fields(self, example):
        fields = {name: get_text(example, name) for name in self.text_fields}
        fields["text"] = (fields[self.text_fields[0]] if len(self.text_fields) == 1 else
                          " ".join(f"{n}: {fields[n]}" for n in self.text_fields))
        fields["options"] = ", ".join(self.words)
        return fields

    def render_inputs(self, fields):
        return join_nonempty(self.prefix, *(f"{n}: {fields[n]}" for n in self.text_fields))

    def target(self, example):
        raw = get_field(example, self.label_field)
        if raw is None or isinstance(raw, (bool, Mapping, list, tuple)):
            raise DataError(
                f"label field {self.label_field!r} should be a label word or index, got "
                f"{json_kind(raw)}{where(example)}"
            )
        table = _label_table(self.label_words)
        key = str(raw).strip()
        if key not in table:
            raise DataError(
                f"label {raw!r} (field {self.label_field!r}) is not in the label set "
                f"{sorted(table)}{where(example)}"
            )
        return check_target(table[key], example, self.label_field)

    def postprocess(self, prediction):
        """Label word, or INVALID_LABEL for text that is not one (counted wrong)."""
        return string_to_label(prediction, self.words)


# --------------------------------------------------------------------------
# Named entities as text: "tokens" -> "type: text ; type: text" (or "none").


@dataclasses.dataclass(frozen=True)
class NamedEntities(Template):
    """BIO-tagged tokens -> entity list text (t5core.metrics.postprocess format); a type not in
    `entity_types` (when given) is an error."""

    tokens_field: str = "tokens"
    tags_field: str = "tags"
    prefix: str = "ner:"
    entity_types: Optional[Sequence[str]] = None
    task_type = "ner"

    def _tokens(self, example) -> list[str]:
        return get_texts(example, self.tokens_field)

    def input_fields(self, example):
        return {"text": " ".join(self._tokens(example))}

    def render_inputs(self, fields):
        return join_nonempty(self.prefix, fields["text"])

    def entities(self, example) -> list[tuple[str, str]]:
        tokens = self._tokens(example)
        tags = get_texts(example, self.tags_field)
        try:
            entities = bio_to_entities(tokens, tags)
        except ValueError as e:
            raise DataError(f"field {self.tags_field!r}: {e}{where(example)}") from None
        if self.entity_types is not None:
            for entity_type, text in entities:
                if entity_type not in self.entity_types:
                    raise DataError(
                        f"entity type {entity_type!r} of {text!r} is not in the label set "
                        f"{sorted(self.entity_types)}{where(example)}"
                    )
        return entities

    def target(self, example):
        if not self._tokens(example):
            raise DataError(
                f"empty target: no tokens in field {self.tokens_field!r}{where(example)}"
            )
        return format_entities(self.entities(example))

    def postprocess(self, prediction):
        return parse_entities(prediction)


# --------------------------------------------------------------------------
# Question answering, translation, summarization.


def _answers(value, example, name) -> list[str]:
    """A string, a list of strings, or SQuAD's {"text": [...], ...}."""
    if isinstance(value, Mapping):
        value = value.get("text", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(a, str) for a in value):
        kinds = json_kind(value) if not isinstance(value, (list, tuple)) else "a list of non-texts"
        raise DataError(
            f"answers field {name!r} should be a string, a list of strings or "
            f'{{"text": [...]}}, got {kinds}{where(example)}'
        )
    answers = [a for a in value if a.strip()]
    if not answers:
        raise DataError(f"empty target: no answer in field {name!r}{where(example)}")
    return answers


@dataclasses.dataclass(frozen=True)
class QuestionAnswering(Template):
    """SQuAD format "question: <q> context: <c>" -> the first answer; extractive=True: an
    answer that is not a substring of the context is an error."""

    question_field: str = "question"
    context_field: str = "context"
    answers_field: str = "answers"
    extractive: bool = False
    task_type = "qa"

    def input_fields(self, example):
        return {
            "question": get_text(example, self.question_field),
            "context": get_text(example, self.context_field),
        }

    def render_inputs(self, fields):
        return f"question: {fields['question']} context: {fields['context']}"

    def references(self, example) -> list[str]:
        """All reference answers, for metrics.squad."""
        answers = _answers(get_field(example, self.answers_field), example, self.answers_field)
        if self.extractive:
            context = get_text(example, self.context_field)
            for a in answers:
                if a not in context:
                    raise DataError(f"answer {a!r} is not in the context{where(example)}")
        return answers

    def target(self, example):
        return self.references(example)[0]


@dataclasses.dataclass(frozen=True)
class Translation(Template):
    """ "translate English to German: <source>" -> target sentence."""

    source_field: str = "en"
    target_field: str = "de"
    source_language: str = "English"
    target_language: str = "German"
    task_type = "translation"

    def input_fields(self, example):
        return {
            "text": get_text(example, self.source_field),
            "source_language": self.source_language,
            "target_language": self.target_language,
        }

    def render_inputs(self, fields):
        return (
            f"translate {fields['source_language']} to {fields['target_language']}: "
            f"{fields['text']}"
        )

    def target(self, example):
        return check_target(get_text(example, self.target_field), example, self.target_field)


@dataclasses.dataclass(frozen=True)
class Summarization(Template):
    """ "summarize: <document>" -> summary."""

    document_field: str = "document"
    summary_field: str = "summary"
    prefix: str = "summarize:"
    task_type = "summarization"

    def input_fields(self, example):
        return {"document": get_text(example, self.document_field)}

    def render_inputs(self, fields):
        return join_nonempty(self.prefix, fields["document"])

    def target(self, example):
        return check_target(get_text(example, self.summary_field), example, self.summary_field)


# --------------------------------------------------------------------------
# Multi-turn dialogue.


@dataclasses.dataclass(frozen=True)
class Dialogue(Template):
    """Last turns as "speaker: text ..." then the responder's tag.

    turns: strings (speakers alternate from speakers[0]), {"speaker", "text"} dicts or pairs.
    max_turns keeps the last K; max_length (by length_fn, default characters) drops the oldest
    turns, then the latest turn's beginning (whole words, then whole characters of a word
    longer than the room left).
    """

    turns_field: str = "turns"
    response_field: str = "response"
    speakers: Sequence[str] = ("user", "assistant")
    respond_as: str = "assistant"
    max_turns: Optional[int] = None
    max_length: Optional[int] = None
    length_fn: Callable[[str], int] = len
    prefix: str = "dialogue:"
    task_type = "dialogue"

    def _turns(self, example) -> list[str]:
        turns = get_field(example, self.turns_field)
        if not isinstance(turns, (list, tuple)):
            raise DataError(
                f"field {self.turns_field!r} should be a list of turns, got "
                f"{json_kind(turns)}{where(example)}"
            )
        out = []
        for i, turn in enumerate(turns):
            if isinstance(turn, str):
                speaker, text = self.speakers[i % len(self.speakers)], turn
            elif isinstance(turn, Mapping) and all(
                isinstance(turn.get(k), (str, int, float)) and not isinstance(turn.get(k), bool)
                for k in ("speaker", "text")
            ):
                speaker, text = str(turn["speaker"]), str(turn["text"])
            elif (isinstance(turn, (list, tuple)) and len(turn) == 2
                  and all(isinstance(x, str) for x in turn)):
                speaker, text = turn
            else:
                raise DataError(
                    f"turn {i} of field {self.turns_field!r} should be a string, "
                    f'{{"speaker", "text"}} or [speaker, text], got {json_kind(turn)}'
                    f"{where(example)}"
                )
            out.append(f"{speaker}: {' '.join(str(text).split())}")
        return out

    def _fits(self, context: str) -> bool:
        return (
            self.max_length is None
            or self.length_fn(self.render_inputs({"context": context, "speaker": self.respond_as}))
            <= self.max_length
        )

    def input_fields(self, example):
        turns = self._turns(example)
        if self.max_turns is not None:
            turns = turns[-self.max_turns :] if self.max_turns > 0 else []
        if not self._fits(""):
            raise ValueError(
                f"max_length={self.max_length} leaves no room for any turn{where(example)}"
            )
        while len(turns) > 1 and not self._fits(" ".join(turns)):
            turns = turns[1:]
        if turns and not self._fits(turns[0]):
            # One turn left and still too long: keep its speaker tag and cut whole
            # words from the start of its text, then characters of the first word left.
            tag, _, text = turns[0].partition(": ")
            words = text.split()
            while len(words) > 1 and not self._fits(f"{tag}: {' '.join(words)}"):
                words = words[1:]
            # Characters, because text without spaces (Chinese, Japanese, Thai) is a single
            # "word", and dropping that word would drop the whole turn.
            rest = " ".join(words[1:])
            first = _longest_fitting_tail(
                words[0] if words else "",
                lambda tail: self._fits(f"{tag}: {' '.join(filter(None, [tail, rest]))}"))
            kept = " ".join(filter(None, [first, rest]))
            turns = [f"{tag}: {kept}"] if kept else []
        return {"context": " ".join(turns), "speaker": self.respond_as}

    def render_inputs(self, fields):
        return join_nonempty(self.prefix, fields["context"], f"{fields['speaker']}:")

    def target(self, example):
        return check_target(get_text(example, self.response_field), example, self.response_field)


def _character_starts(text: str) -> list[int]:
    """Where `text`'s user-perceived characters start: Unicode's extended grapheme clusters
    (UAX #29: a letter with its marks, a flag's two regional indicators, an emoji sequence, a
    Hangul syllable of jamo, an Indic conjunct), from the `regex` package, which carries the
    Unicode tables the standard library lacks."""
    return [m.start() for m in regex.finditer(r"\X", text)]


def _longest_fitting_tail(text: str, fits: Callable[[str], bool]) -> str:
    """The longest end of `text` that starts a whole character and `fits` ("" if none);
    a binary search, as a shorter tail never measures longer."""
    starts = _character_starts(text)
    lo, hi = 0, len(starts)  # the answer is starts[lo] ("" when lo == len(starts))
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(text[starts[mid]:]):
            hi = mid
        else:
            lo = mid + 1
    return text[starts[lo]:] if lo < len(starts) else ""
