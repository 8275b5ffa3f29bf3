"""The embedded default task set: small text-to-text skills generated from seeded RNGs, no files."""

from __future__ import annotations

import numpy as np

from t5core.data.sources import ListSource, Source

# The registered name of the set (t5core.data), which a run trained on it records, so that
# evaluate.py scores its held-out examples with only --checkpoint.
EMBEDDED_TASK = "embedded"

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def _word(rng, low=3, high=7):
    return "".join(rng.choice(LETTERS, rng.integers(low, high + 1)))


def _reverse(rng):
    word = _word(rng)
    return f"reverse: {word}", word[::-1]


def _sort(rng):
    digits = rng.integers(0, 10, rng.integers(3, 6))
    return "sort: " + " ".join(map(str, digits)), " ".join(map(str, sorted(digits)))


def _add(rng):
    a, b = rng.integers(0, 100, 2)
    return f"add: {a}+{b}", str(a + b)


def _upper(rng):
    word = _word(rng)
    return f"upper: {word}", word.upper()


SKILLS = {"reverse": _reverse, "sort": _sort, "add": _add, "upper": _upper}


def embedded_examples(split: str, count: int | None = None) -> list[tuple[str, str]]:
    """(inputs, targets) pairs of the "train" (40,000) or "validation" (400) split."""
    if split not in ("train", "validation"):
        raise ValueError(f"Unknown split {split!r} of the embedded tasks (train, validation)")
    count = count or (40_000 if split == "train" else 400)
    seed = 20261128 if split == "train" else 7
    rng = np.random.default_rng(seed)
    skills = list(SKILLS.values())
    examples = [skills[i % len(skills)](rng) for i in range(count)]
    if split == "validation":
        seen = set(embedded_examples("train"))
        examples = [e for e in examples if e not in seen]
    return examples


class EmbeddedSource(Source):
    """The embedded set as a task's source; "test" is the held-out "validation" split (the
    examples the main job scores), made only when a split is asked for."""

    splits = ("train", "validation", "test")

    def get_dataset(self, split, data_dir=None, counter=None):
        self.check_split(split)
        pairs = embedded_examples("validation" if split == "test" else split)
        examples = [{"inputs": inputs, "targets": targets} for inputs, targets in pairs]
        return ListSource({split: examples}).get_dataset(split, data_dir, counter)
