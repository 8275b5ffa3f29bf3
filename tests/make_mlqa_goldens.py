"""Scores answers with mT5's own MLQA metric and writes the scores as test goldens.

    python tests/make_mlqa_goldens.py --mt5_metrics=FILE --t5_qa_utils=FILE \
        --output=tests/fixtures/mlqa/zh_goldens.json
    python tests/make_mlqa_goldens.py --mt5_metrics=FILE --t5_qa_utils=FILE --lang=LANG \
        --output=tests/fixtures/mlqa/LANG_goldens.json   # for LANG in en es de vi ar hi
    python tests/make_mlqa_goldens.py --mt5_metrics=FILE --t5_qa_utils=FILE \
        --beyond_mlqa_range --output=tests/fixtures/mlqa/zh_beyond_range_goldens.json

FILE: multilingual_t5/evaluation/metrics.py of google-research/multilingual-t5 (`mlqa`, with
lang="zh": MLQA's normalisation, every Han character a token) and t5/evaluation/qa_utils.py of
google-research/text-to-text-transfer-transformer (`qa_metrics`, which it calls), each loaded on
its own (the packages' __init__ files import far more). Needs numpy and absl-py.
The answers are hand-written cases (full-width punctuation, spaces between characters, Latin
words and digits inside Chinese, several references) and seeded random strings drawn from Han
characters of MLQA's range (U+4E00..U+9FA5), ASCII words, digits, spaces and punctuation.
"""

import argparse
import importlib.util
import json
import random
import sys
import types

CASES = [
    (["北京。"], "北京"),
    (["“北京烤鸭”"], "北京 烤鸭"),
    (["东京"], "东京是首都"),
    (["NBA总冠军"], "nba 总冠军！"),
    (["the Beatles乐队"], "Beatles乐队"),
    (["1998年"], "1998年，"),
    (["长江", "长江流域"], "长江中下游"),
    (["《红楼梦》"], "红楼梦"),
    (["约100万人"], "100万"),
    (["上海"], ""),
    (["孙中山（孙文）"], "孙文"),
    (["第二次世界大战"], "二战"),
]
PUNCTUATION = "，。！？、；：“”‘’（）《》【】…—,.!?;:'\"()-"
# Unspaced text outside MLQA's Han range (U+4E00..U+9FA5), which its Chinese rule keeps in
# whitespace words: rarer Han (U+9FA6.., extensions A and B), kana, Hangul, Thai
# (--beyond_mlqa_range).
BEYOND_CASES = [
    (["鿏鿔元素"], "鿏元素"), (["㐀㐁"], "㐀"), (["𠀀𠀁字"], "𠀀字"), (["東京タワー"], "東京"),
    (["서울특별시"], "서울"), (["กรุงเทพ"], "กรุง"), (["北京ラーメン"], "北京"),
]
BEYOND_CHARS = [*range(0x9FA6, 0x9FB0), *range(0x3400, 0x3410), *range(0x20000, 0x20008),
                *range(0x30A2, 0x30B0), *range(0xAC00, 0xAC08), *range(0x0E01, 0x0E08),
                *range(0x4E00, 0x4E08)]

# The spaced languages: hand cases (articles, Unicode punctuation, case) and the words the
# random answers are drawn from (each language's articles among them).
SPACED_CASES = {
    "en": [(["the Beatles"], "Beatles"), (["“Paris”"], "Paris"), (["a dog"], "the dog"),
           (["An Apple a day"], "apple day!"), (["theatre"], "atre")],
    "es": [(["el Papa"], "Papa"), (["¿Dónde?"], "dónde"), (["Los Ángeles"], "ángeles"),
           (["unos 100 años"], "100 años"), (["«la casa»"], "una casa")],
    "de": [(["der Rhein"], "Rhein"), (["„Faust“"], "Faust"), (["einem Jahr"], "Jahr"),
           (["Dieser Mann"], "mann"), (["das Haus"], "des Hauses")],
    "vi": [(["của Hà Nội"], "Hà Nội"), (["những người"], "người"), (["Việt Nam."], "việt nam"),
           (["chiếc xe"], "xe đạp")],
    "ar": [(["القاهرة"], "قاهرة"), (["مصر،"], "مصر"), (["«النيل»"], "النيل"),
           (["البحر الأحمر"], "بحر أحمر")],
    "hi": [(["भारत।"], "भारत"), (["नई दिल्ली"], "दिल्ली"), (["“गंगा”"], "गंगा नदी")],
}
SPACED_WORDS = {
    "en": ["the", "a", "an", "Beatles", "river", "1998", "Paris", "there", "anthem"],
    "es": ["el", "la", "los", "unas", "Ángeles", "río", "ciudad", "1998", "Ñandú", "elefante"],
    "de": ["der", "die", "das", "einem", "Straße", "Fluss", "Über", "1998", "dieser", "Einheit"],
    "vi": ["của", "là", "cái", "những", "Hà", "Nội", "sông", "1998", "người", "Cái"],
    "ar": ["ال", "القاهرة", "مصر", "نهر", "1998", "البحر", "كتاب", "سال"],
    "hi": ["भारत", "नदी", "दिल्ली", "1998", "गंगा", "का", "की"],
}
SPACED_PUNCTUATION = "¿¡«»„“”‚‘’،؟।…—,.!?;:'\"()-"


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_answer(rng, beyond=False):
    parts = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.55:
            size = rng.randint(1, 4)
            parts.append("".join(chr(rng.choice(BEYOND_CHARS) if beyond else
                                     rng.randint(0x4E00, 0x4E40)) for _ in range(size)))
        elif kind < 0.7:
            parts.append(rng.choice(["GDP", "iPhone", "the", "A", "Python", "NBA", "x"]))
        elif kind < 0.8:
            parts.append(str(rng.randint(0, 2000)))
        elif kind < 0.9:
            parts.append(rng.choice(PUNCTUATION))
        else:
            parts.append(" ")
    return "".join(parts)


def random_spaced_answer(rng, lang):
    parts = []
    for _ in range(rng.randint(1, 5)):
        parts.append(rng.choice(SPACED_WORDS[lang]) if rng.random() < 0.8
                     else rng.choice(SPACED_PUNCTUATION))
        parts.append(rng.choice([" ", " ", " ", "", "  "]))
    return "".join(parts).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mt5_metrics", required=True)
    parser.add_argument("--t5_qa_utils", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--lang", default="zh", choices=["zh", *SPACED_CASES])
    parser.add_argument("--beyond_mlqa_range", action="store_true",
                        help="zh only: answers of unspaced text outside MLQA's Han range")
    args = parser.parse_args()
    evaluation = types.ModuleType("t5.evaluation")
    evaluation.qa_utils = load("t5.evaluation.qa_utils", args.t5_qa_utils)
    sys.modules.update({"t5": types.ModuleType("t5"), "t5.evaluation": evaluation,
                        "t5.evaluation.qa_utils": evaluation.qa_utils})
    metrics = load("mt5_metrics", args.mt5_metrics)
    lang = args.lang
    rng = random.Random(0)
    if lang == "zh" and args.beyond_mlqa_range:
        pairs, punctuation = list(BEYOND_CASES), PUNCTUATION
        answer_of = lambda rng: random_answer(rng, beyond=True)  # noqa: E731
    elif lang == "zh":
        pairs, answer_of, punctuation = list(CASES), random_answer, PUNCTUATION
    else:
        pairs, punctuation = list(SPACED_CASES[lang]), SPACED_PUNCTUATION
        answer_of = lambda rng: random_spaced_answer(rng, lang)  # noqa: E731
    for _ in range(200):
        answer = answer_of(rng)
        # A prediction near the answer: cut, extended, respaced or repunctuated.
        change = rng.choice(["cut", "extend", "space", "punctuate", "other"])
        if change == "cut" and len(answer) > 1:
            start = rng.randrange(len(answer))
            prediction = answer[start:start + rng.randint(1, len(answer))]
        elif change == "extend":
            prediction = answer + answer_of(rng)
        elif change == "space":
            prediction = " ".join(answer)
        elif change == "punctuate":
            prediction = rng.choice(punctuation) + answer + rng.choice(punctuation)
        else:
            prediction = answer_of(rng)
        references = [answer] + [answer_of(rng) for _ in range(rng.randint(0, 2))]
        pairs.append((references, prediction))
    goldens = []
    for references, prediction in pairs:
        scores = metrics.mlqa([references], [prediction], lang=lang)
        goldens.append({"references": references, "prediction": prediction,
                        "em": float(scores["em"]), "f1": float(scores["f1"])})
    corpus = metrics.mlqa([r for r, _ in pairs], [p for _, p in pairs], lang=lang)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"source": f"multilingual_t5 metrics.mlqa(lang='{lang}') over t5 "
                             "qa_utils.qa_metrics",
                   "corpus": {"em": float(corpus["em"]), "f1": float(corpus["f1"])},
                   "examples": goldens}, f, ensure_ascii=False, indent=1)
    print(f"wrote {args.output}: {len(goldens)} examples, corpus {corpus}")


if __name__ == "__main__":
    main()
