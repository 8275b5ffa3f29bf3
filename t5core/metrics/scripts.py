"""Which tokenization BLEU and ROUGE need, read from the writing system of the references; the
columns text takes on a terminal, for tables of labels in any script."""

from __future__ import annotations

import collections
import unicodedata
from typing import Iterable

from t5core.metrics._deps import BLEU_TOKENIZER_PACKAGES, installed

BLEU_AUTO = "auto"
ROUGE_MODES = ("words", "chars")
# sacreBLEU's tokenizer names (sacrebleu.metrics.bleu._TOKENIZERS), for flags that must list them
# without importing sacreBLEU.
BLEU_TOKENIZERS = ("13a", "intl", "zh", "ja-mecab", "ko-mecab", "char", "none", "spm",
                   "flores101", "flores200")

# Unicode blocks (first, last code point) of the scripts written without spaces between words.
HAN = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))
KANA = ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F))
HANGUL = ((0xAC00, 0xD7AF), (0x1100, 0x11FF), (0x3130, 0x318F))
SOUTHEAST_ASIAN = ((0x0E00, 0x0EFF), (0x1780, 0x17FF), (0x1000, 0x109F), (0x0F00, 0x0FFF))
UNSPACED = HAN + KANA + HANGUL + SOUTHEAST_ASIAN


def display_width(text: str) -> int:
    """Columns `text` takes on a terminal: two for a wide character (Han, kana, Hangul, full-width
    forms), none for a combining mark, one for the rest."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int, right: bool = False) -> str:
    """`text` padded with spaces to `width` columns (`display_width`), on the left if `right`."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def _in(char: str, blocks) -> bool:
    code = ord(char)
    return any(first <= code <= last for first, last in blocks)


def _texts(references: Iterable) -> list[str]:
    """Every reference string: one per example, or a list of them per example."""
    out = []
    for ref in references:
        out.extend([ref] if isinstance(ref, str) else list(ref))
    return out


# A reference's script, by the first of these its letters include (kana before Han: Japanese
# writes both); a reference with none is spaced text.
_SCRIPTS = (("kana", KANA), ("han", HAN), ("hangul", HANGUL), ("southeast_asian", SOUTHEAST_ASIAN))


def _script(text: str) -> str:
    letters = [c for c in text if unicodedata.category(c)[0] == "L"]
    return next((name for name, blocks in _SCRIPTS if any(_in(c, blocks) for c in letters)),
                "spaced")


def bleu_tokenizer(references: Iterable) -> str:
    """sacreBLEU's tokenizer name for the script most references are written in (a tie goes
    to the unspaced script; rules in docs/architecture.md). Corpus BLEU has one tokenizer, so
    one reference in another script does not choose it for all."""
    counts = collections.Counter(_script(text) for text in _texts(references))
    chinese_japanese = counts["kana"] + counts["han"]
    most = max(chinese_japanese, counts["hangul"], counts["southeast_asian"], counts["spaced"])
    if chinese_japanese and chinese_japanese == most:
        if counts["kana"] >= counts["han"]:
            return "ja-mecab" if installed(*BLEU_TOKENIZER_PACKAGES["ja-mecab"][0]) else "char"
        return "zh"
    if counts["hangul"] and counts["hangul"] == most:
        return "ko-mecab" if installed(*BLEU_TOKENIZER_PACKAGES["ko-mecab"][0]) else "13a"
    if counts["southeast_asian"] and counts["southeast_asian"] == most:
        return "char"
    return "13a"


def rouge_tokenizer(references: Iterable) -> str:
    """"chars" when the references hold non-ASCII letters or digits (rouge-score drops them),
    else "words"."""
    texts = _texts(references)
    return "chars" if any(not c.isascii() and _word_char(c) for t in texts for c in t) \
        else "words"


def _word_char(char: str) -> bool:
    # Letters, digits and combining marks (the vowel signs of Thai or Devanagari) make words.
    return unicodedata.category(char)[0] in "LNM"


def segment(text: str, is_separator) -> list[str]:
    """`text` cut into tokens: at every character `is_separator` picks (dropped), and around every
    character of an unspaced script, which is a token of its own (a combining mark stays with the
    character before it). The one segmentation of unspaced text that ROUGE and SQuAD share."""
    tokens: list[str] = []
    word = ""
    for char in text:
        if is_separator(char):
            tokens.append(word)
            word = ""
        elif unicodedata.category(char)[0] == "M" and word:
            word += char
        elif _in(char, UNSPACED) or (word and _in(word[0], UNSPACED)):
            tokens.append(word)
            word = char
        else:
            word += char
    tokens.append(word)
    return [t for t in tokens if t]


def mostly_unspaced(examples: Iterable) -> bool:
    """Whether at least half the examples (one reference each, or a list of them) hold letters
    of a script written without spaces: one rule per corpus, which a stray word does not set."""
    unspaced = [any(_script(text) != "spaced" for text in _texts([refs])) for refs in examples]
    return any(unspaced) and 2 * sum(unspaced) >= len(unspaced)


def rouge_char_tokens(text: str, stemmer=None) -> list[str]:
    """ROUGE's "chars" tokens: lowercased words of any script, each character of an unspaced
    script a token of its own (`segment`, cut at everything but letters, digits and marks).

    On ASCII text these are rouge-score's tokens ([a-z0-9] runs; ASCII words longer than 3
    characters stemmed when a stemmer is given).
    """
    tokens = segment(text.lower(), lambda char: not _word_char(char))
    if stemmer is not None:
        tokens = [stemmer.stem(t) if len(t) > 3 and t.isascii() else t for t in tokens]
    return tokens


class CharTokenizer:
    """rouge-score's tokenizer interface (`tokenize(text) -> tokens`) over `rouge_char_tokens`."""

    def __init__(self, stemmer=None):
        self.stemmer = stemmer

    def tokenize(self, text: str) -> list[str]:
        return rouge_char_tokens(text, self.stemmer)
