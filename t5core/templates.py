"""Task templates: a raw example dict -> {"inputs": str, "targets": str}.

Pure Python, no TensorFlow: the data pipeline maps these over raw examples
before tokenising. Each template is a small frozen dataclass that is
- callable: `template(example) -> {"inputs", "targets"}` (training/eval),
- `template.inputs(example)`: the input text alone (inference, no target needed),
- `template.fields(example)`: the named pieces the text is made of, used by
    the Flan-style `Instruction` wrapper to re-phrase the same example,
- `template.postprocess(prediction)`: decoded text -> what the metric scores.

Default formats follow the T5 paper ("sst2 sentence: ...", "question: ...
context: ...", "translate English to German: ...", "summarize: ...").

Bad data fails loudly with a DataError (a ValueError) naming the field and, when
the loader put them in the example, its file and line (keys "_source" and
"_line"): a field the data lacks, a field of the wrong type (null, a boolean,
an object where text belongs), an empty target, a label outside the label set.
Text fields take strings, and numbers as their text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Any, Callable, Mapping, Optional, Sequence

from t5core.errors import DataError, json_kind
from t5core.metrics.postprocess import (
    bio_to_entities,
    format_entities,
    parse_entities,
    string_to_label,
)

Example = Mapping[str, Any]


# --------------------------------------------------------------------------
# Field access with errors that point at the data.


def where(example: Example) -> str:
    """' (train.tsv line 12)' from the loader's _source/_line keys, or ''."""
    source, line = example.get("_source"), example.get("_line")
    if source is not None and line is not None:
        return f" ({source} line {line})"
    if source is not None:
        return f" ({source})"
    if line is not None:
        return f" (line {line})"
    return ""


def get_field(example: Example, name: str) -> Any:
    if name not in example:
        present = sorted(k for k in example if not str(k).startswith("_"))
        raise DataError(
            f"template field {name!r} is missing from the example{where(example)}; "
            f"the example has fields {present}"
        )
    return example[name]


def get_text(example: Example, name: str) -> str:
    value = get_field(example, name)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(
            f"template field {name!r} should be text, got {json_kind(value)}{where(example)}"
        )
    return value


def get_texts(example: Example, name: str) -> list[str]:
    """A list of texts (or one string, split on whitespace), e.g. NER tokens or tags."""
    value = get_field(example, name)
    if isinstance(value, str):
        return value.split()
    if not isinstance(value, (list, tuple)):
        raise DataError(
            f"template field {name!r} should be a list of texts or a string, got "
            f"{json_kind(value)}{where(example)}"
        )
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise DataError(
                f"template field {name!r} holds {json_kind(item)}; expected texts{where(example)}"
            )
    return [str(item) for item in value]


def check_target(text: str, example: Example, name: str) -> str:
    if not text.strip():
        raise DataError(f"empty target in field {name!r}{where(example)}")
    return text


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


class Template:
    """Base: subclasses give input_fields(), target() and render_inputs()."""

    task_type = ""

    def input_fields(self, example: Example) -> dict[str, str]:
        raise NotImplementedError

    def target(self, example: Example) -> str:
        raise NotImplementedError

    def render_inputs(self, fields: Mapping[str, str]) -> str:
        raise NotImplementedError

    def fields(self, example: Example, with_target: bool = True) -> dict[str, str]:
        fields = self.input_fields(example)
        if with_target:
            fields["target"] = self.target(example)
        return fields

    def inputs(self, example: Example) -> str:
        return self.render_inputs(self.input_fields(example))

    def __call__(self, example: Example) -> dict[str, str]:
        return {"inputs": self.inputs(example), "targets": self.target(example)}

    def postprocess(self, prediction: str) -> Any:
        return prediction.strip()


# --------------------------------------------------------------------------
# Text classification with label words (and rank classification).


def _label_table(label_words) -> dict[str, str]:
    """Raw label (as str) -> label word. A list of words accepts each word and
    its index, so both "positive" and 1 / "1" name ["negative", "positive"][1]."""
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
    """T5 GLUE style: "<prefix> <field>: <text> <field>: <text>" -> label word.

    label_words: {raw label: word} (e.g. {"0": "negative", "1": "positive"}) or a
    list of words. prefix: task name ("sst2") or "" for none.
    """

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
        fields["text"] = " ".join(f"{n}: {fields[n]}" for n in self.text_fields)
        if len(self.text_fields) == 1:
            fields["text"] = fields[self.text_fields[0]]
        fields["options"] = ", ".join(self.words)
        return fields

    def render_inputs(self, fields):
        return _join(self.prefix, *(f"{n}: {fields[n]}" for n in self.text_fields))

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

    def rank_candidates(self, example) -> dict[str, Any]:
        """Inputs plus every label word to score; label_index is the gold word's
        position among them, or None when the example has no label."""
        out = {"inputs": self.inputs(example), "candidates": self.words, "label_index": None}
        if self.label_field in example:
            out["label_index"] = self.words.index(self.target(example))
        return out

    def rank_predict(self, scores: Sequence[float]) -> str:
        """The label word with the highest score (e.g. summed log-likelihood)."""
        if len(scores) != len(self.words):
            raise ValueError(f"{len(scores)} scores for {len(self.words)} label words")
        return self.words[max(range(len(scores)), key=lambda i: scores[i])]


# --------------------------------------------------------------------------
# Named entities as text: "tokens" -> "type: text ; type: text" (or "none").


@dataclasses.dataclass(frozen=True)
class NamedEntities(Template):
    """BIO-tagged tokens -> entity list text (t5core.metrics.postprocess format).

    entity_types: if given, a tag whose type is not among them is an error.
    """

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
        return _join(self.prefix, fields["text"])

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
    """SQuAD format "question: <q> context: <c>" -> the first answer.

    Abstractive QA uses the same format with free-text answers. With
    extractive=True an answer that is not a substring of the context is an
    error, which catches misaligned fields early.
    """

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
        return _join(self.prefix, fields["document"])

    def target(self, example):
        return check_target(get_text(example, self.summary_field), example, self.summary_field)


# --------------------------------------------------------------------------
# Multi-turn dialogue.


@dataclasses.dataclass(frozen=True)
class Dialogue(Template):
    """Last turns as "speaker: text ..." followed by the responder's tag.

    turns: a list of strings (speakers alternate, starting with speakers[0]),
    of {"speaker", "text"} dicts, or of (speaker, text) pairs.
    max_turns keeps the last K turns. max_length (measured by length_fn, e.g. a
    tokenizer's token count; characters by default) bounds the whole input:
    the oldest turns are dropped first, and if the latest turn alone is too
    long its beginning is cut, since the end is closest to the reply.
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
            # words from the start of its text; drop it if no word fits.
            tag, _, text = turns[0].partition(": ")
            words = text.split()
            while words and not self._fits(f"{tag}: {' '.join(words)}"):
                words = words[1:]
            turns = [f"{tag}: {' '.join(words)}"] if words else []
        return {"context": " ".join(turns), "speaker": self.respond_as}

    def render_inputs(self, fields):
        return _join(self.prefix, fields["context"], f"{fields['speaker']}:")

    def target(self, example):
        return check_target(get_text(example, self.response_field), example, self.response_field)


def expand_dialogue(
    turns: Sequence,
    respond_as: str = "assistant",
    speakers: Sequence[str] = ("user", "assistant"),
    source: Optional[str] = None,
    line: Optional[int] = None,
) -> list[dict[str, Any]]:
    """One {"turns", "response"} example per turn spoken by respond_as."""
    examples = []
    for i, turn in enumerate(turns):
        if isinstance(turn, str):
            speaker, text = speakers[i % len(speakers)], turn
        elif isinstance(turn, Mapping):
            speaker, text = turn.get("speaker"), turn.get("text", "")
        else:
            speaker, text = turn
        if speaker == respond_as:
            example = {"turns": list(turns[:i]), "response": text}
            if source is not None:
                example["_source"] = source
            if line is not None:
                example["_line"] = line
            examples.append(example)
    return examples


# --------------------------------------------------------------------------
# Flan-style instruction phrasings.

# Several phrasings per task type, over the fields each template's fields()
# gives. Like Flan's templates: the answer itself is the target.
INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "classification": (
        "{text}\nWhat is the label of this text? Options: {options}",
        "Classify the following text as one of: {options}.\n{text}",
        "Text: {text}\nWhich of these fits it best: {options}?",
        "Read this and answer with one of {options}.\n{text}",
    ),
    "ner": (
        'List the named entities in this text as "type: entity" separated by '
        '" ; ", or "none": {text}',
        "Which named entities does this text mention? {text}",
        "{text}\nExtract the entities (type: entity ; ...) or answer none.",
    ),
    "qa": (
        "Read the text and answer the question.\n{context}\nQuestion: {question}",
        "{context}\n\nAnswer this question based on the text above: {question}",
        "Question: {question}\nContext: {context}\nAnswer:",
        "Here is a passage: {context}\nUsing it, {question}",
    ),
    "translation": (
        "Translate from {source_language} to {target_language}: {text}",
        "{text}\nHow would you say this in {target_language}?",
        "Translate this {source_language} sentence into {target_language}.\n{text}",
        "{source_language}: {text}\n{target_language}:",
    ),
    "summarization": (
        "Summarize this text: {document}",
        "{document}\nWrite a short summary of the text above.",
        "Text: {document}\nTL;DR:",
        "What is a brief summary of the following? {document}",
    ),
    "dialogue": (
        "Continue the conversation as {speaker}.\n{context}",
        "{context}\nWhat does {speaker} say next?",
        "Here is a conversation: {context}\nWrite {speaker}'s reply.",
    ),
}


@dataclasses.dataclass(frozen=True)
class Instruction(Template):
    """Re-phrases another template's example with an instruction.

    The phrasing is phrasings[index % n] when index is given, else picked per
    example from a hash of (seed, the example's input fields): deterministic
    across runs and processes (unlike Python's salted hash), and varied
    across examples as in Flan.
    """

    base: Template
    phrasings: Optional[Sequence[str]] = None
    index: Optional[int] = None
    seed: int = 0

    @property
    def task_type(self):
        return self.base.task_type

    def _phrasings(self) -> Sequence[str]:
        phrasings = self.phrasings or INSTRUCTIONS.get(self.base.task_type)
        if not phrasings:
            raise ValueError(f"no instruction phrasings for task type {self.base.task_type!r}")
        return phrasings

    def choose(self, fields: Mapping[str, str]) -> str:
        phrasings = self._phrasings()
        if self.index is not None:
            return phrasings[self.index % len(phrasings)]
        key = "\x1f".join([str(self.seed)] + [f"{k}={fields[k]}" for k in sorted(fields)])
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return phrasings[int.from_bytes(digest[:8], "big") % len(phrasings)]

    def input_fields(self, example):
        return self.base.input_fields(example)

    def render_inputs(self, fields):
        pattern = self.choose(fields)
        try:
            return pattern.format_map(fields)
        except KeyError as e:
            raise ValueError(
                f"instruction {pattern!r} uses field {e.args[0]!r}, which "
                f"the {type(self.base).__name__} template does not provide "
                f"(it has {sorted(fields)})"
            ) from None

    def target(self, example):
        return self.base.target(example)

    def postprocess(self, prediction):
        return self.base.postprocess(prediction)


# --------------------------------------------------------------------------
# Few-shot prompts.


def select_demonstrations(
    pool: Sequence[Mapping[str, str]], k: int, seed: int = 0, exclude_inputs: Optional[str] = None
) -> list[Mapping[str, str]]:
    """k rendered examples ({"inputs", "targets"}) drawn without replacement
    with a fixed seed, never the query itself (same inputs)."""
    candidates = [d for d in pool if d["inputs"] != exclude_inputs]
    if k > len(candidates):
        raise ValueError(f"asked for {k} demonstrations but the pool has {len(candidates)}")
    return random.Random(seed).sample(candidates, k)


def build_few_shot_prompt(
    demonstrations: Sequence[Mapping[str, str]],
    query: str,
    *,
    k: Optional[int] = None,
    max_length: Optional[int] = None,
    length_fn: Callable[[str], int] = len,
    demo_format: str = "{inputs}\n{targets}",
    query_format: str = "{inputs}\n",
    separator: str = "\n\n",
) -> str:
    """Up to k demonstrations, in order, then the query.

    max_length (measured by length_fn: characters by default, or a tokenizer's
    token count) bounds the whole prompt; demonstrations are added in order
    while the prompt still fits, so the budget decides how many of the k fit.
    The query always goes in; a query alone over the budget is an error.
    """
    if k is not None:
        demonstrations = list(demonstrations)[:k]
    query_text = query_format.format(inputs=query)
    if max_length is not None and length_fn(query_text) > max_length:
        raise ValueError(
            f"the query alone has length {length_fn(query_text)}, over max_length={max_length}"
        )
    shown: list[str] = []
    for demo in demonstrations:
        for key in ("inputs", "targets"):
            if key not in demo:
                raise ValueError(f"demonstration lacks {key!r}: {dict(demo)!r}")
        candidate = shown + [demo_format.format(inputs=demo["inputs"], targets=demo["targets"])]
        if (
            max_length is not None
            and length_fn(separator.join(candidate + [query_text])) > max_length
        ):
            break
        shown = candidate
    return separator.join(shown + [query_text])
