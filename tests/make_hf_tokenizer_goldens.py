"""Writes tests/fixtures/t5_vocab/hf_tokenizer_goldens.json: ids from HF transformers' tokenizers.

Run with a Python that has transformers + sentencepiece (not needed by the test suite itself):
  /work/refvenv/bin/python tests/make_hf_tokenizer_goldens.py
Oracles: T5Tokenizer (slow, default legacy=True) over spiece.model, T5TokenizerFast over
tokenizer.json (with and without add_prefix_space), ByT5Tokenizer. Texts: hand-picked edge
cases plus seeded random Unicode strings with special tokens mixed in.
"""

import json
import os
import random
import warnings

warnings.filterwarnings("ignore")

import transformers
from transformers import ByT5Tokenizer, T5Tokenizer, T5TokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = os.path.join(HERE, "fixtures", "t5_vocab")

EDGE_CASES = [
    "<pad> Today is <unk> nice day </s>", "hi</s>", "</s>", "</s>>", "x</s>y", "x </s> y",
    "The <extra_id_0> walks in <extra_id_1> park", "The<extra_id_0>walks", "a <extra_id_0> . b",
    "<extra_id_99>", "<extra_id_100>", "<extra_id_5", "extra_id_5>", "<<extra_id_3>>",
    "<extra_id_1><extra_id_10><extra_id_2>", "  leading  spaces  ", "", " ", "\u2581",
    "\u2581\u2581a",
    "tab\there\nnewline\r\n", "Hello <unk>world", "\u00e9 \u00df \u4e2d\u6587 \U0001F600",
    "a<pad>b", "a <extra_id_5>,b", "caf\u00e9 vs cafe\u0301", "\uff21\uff22\uff23 \u2460 \ufb01",
    "\u00a0nbsp\u3000ideographic", "I'm 100% sure -- it's \"quoted\".",
    "translate English to German: The house is wonderful.",
    "summarize: studies have shown that owning a dog is good for you",
]

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    " " * 10 + "\t\n", ".,;:!?'\"()[]{}<>/\\-_+=*&^%$#@~`|",
    ("\u00e0\u00e1\u00e2\u00e4\u00e7\u00e8\u00e9\u00ea\u00eb\u00ee"
     "\u00ef\u00f4\u00f6\u00f9\u00fb\u00fc\u00df\u00c4\u00d6\u00dc"),
    "\u03b1\u03b2\u03b3\u03b4\u0430\u0431\u0432\u0433\u0434\u05d0\u05d1\u0627\u0628",
    "\u4e2d\u6587\u65e5\u672c\u8a9e\ud55c\uad6d\uc5b4\u3042\u30a2",
    "\U0001F600\U0001F680\u2764\ufe0f\u0301\u200b\u00a0\u3000\uff21\u2460\ufb01\u00bd",
]
SPECIALS = ["<pad>", "</s>", "<unk>", "<extra_id_0>", "<extra_id_7>", "<extra_id_99>",
            "<extra_id_124>"]


def random_texts(n, seed):
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.15:
                parts.append(rng.choice(SPECIALS))
            else:
                alphabet = rng.choice(ALPHABETS) + ALPHABETS[0] + "    "
                parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))))
        texts.append("".join(parts))
    return texts


def main():
    slow = T5Tokenizer(os.path.join(VOCAB, "spiece.model"))
    fast = T5TokenizerFast(tokenizer_file=os.path.join(VOCAB, "tokenizer.json"))
    # add_prefix_space=False makes HF rebuild the fast tokenizer from the SentencePiece file.
    fast_np = T5TokenizerFast(vocab_file=os.path.join(VOCAB, "spiece.model"),
                              add_prefix_space=False)
    byt5 = ByT5Tokenizer()
    texts = EDGE_CASES + random_texts(300, seed=20240601)
    t5_cases = []
    for t in texts:
        ids = slow.encode(t)  # with eos unless already there (HF _add_eos_if_not_present)
        t5_cases.append({
            "text": t,
            "slow_ids_with_eos": ids,
            "fast_ids_no_eos": fast.encode(t, add_special_tokens=False),
            "fast_decode": fast.decode(fast.encode(t, add_special_tokens=False)),
            "fast_decode_skip_special": fast.decode(fast.encode(t, add_special_tokens=False),
                                                    skip_special_tokens=True),
        })
    no_prefix = [{"text": t, "fast_ids_no_eos": fast_np.encode(t, add_special_tokens=False)}
                 for t in EDGE_CASES]
    byt5_cases = [{"text": t, "ids_with_eos": byt5.encode(t),
                   "decode_skip_special": byt5.decode(byt5.encode(t), skip_special_tokens=True)}
                  for t in texts]
    out = {
        "generator": f"tests/make_hf_tokenizer_goldens.py, transformers {transformers.__version__}",
        "t5": t5_cases,
        "t5_fast_add_prefix_space_false": no_prefix,
        "byt5": byt5_cases,
        "byt5_sentinels": {f"<extra_id_{i}>": byt5.convert_tokens_to_ids(f"<extra_id_{i}>")
                           for i in (0, 1, 124)},
    }
    path = os.path.join(VOCAB, "hf_tokenizer_goldens.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=0)
    print("wrote", path, len(t5_cases), "T5 cases,", len(byt5_cases), "ByT5 cases")


if __name__ == "__main__":
    main()
