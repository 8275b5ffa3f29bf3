"""Flan-style instructions: the same example phrased in several ways, the phrasing chosen
per example deterministically."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Mapping, Optional, Sequence

from t5core.data.templates.fields import Template


# Several phrasings per task type, over the fields each template's input_fields()
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
    """Re-phrases another template's example with an instruction: phrasings[index % n], or
    without `index` one picked per example by a seeded stable hash of its input fields."""

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
