"""Writes the HF tokenizer goldens under tests/fixtures/t5_vocab/ (the test suite only reads them).

Run with a Python that has HF `tokenizers` (and, for the first file, transformers 4.x +
sentencepiece):
  /work/refvenv/bin/python tests/make_hf_tokenizer_goldens.py [transformers|tokenizers|all]

- hf_tokenizer_goldens.json ("transformers"): T5Tokenizer (slow, default legacy=True) over
  spiece.model, T5TokenizerFast over tokenizer.json (with and without add_prefix_space),
  ByT5Tokenizer. Needs transformers < 5 (5.x dropped the SentencePiece-backed slow T5Tokenizer);
  the committed file was made with 4.57.1.
- hf_tokenizer_json_goldens.json ("tokenizers"): HF's fast tokenizer itself (the `tokenizers`
  library that T5TokenizerFast wraps) over two real tokenizer.json files, the T5 vocabulary's and
  hf-internal-testing/tiny-random-t5's: ids, pieces and decodes of many texts, and decodes of
  random id sequences.
Texts: hand-picked edge cases, the texts of the published goldens, and seeded random Unicode
strings with special tokens mixed in.
"""

import json
import os
import random
import sys
import warnings

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = os.path.join(HERE, "fixtures", "t5_vocab")
TOKENIZER_JSON_FILES = {
    "t5": os.path.join(VOCAB, "tokenizer.json"),
    "tiny_random_t5": os.path.join(HERE, "fixtures", "hf_tiny_random_t5", "tokenizer.json"),
}

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


def transformers_goldens():
    import transformers
    from transformers import ByT5Tokenizer, T5Tokenizer, T5TokenizerFast

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


# Whitespace, normalisation and unknown-character cases for the tokenizer.json comparison.
JSON_EDGE_CASES = [
    "a  b", "a   b   c", "  a", "a  ", "\t\ta\n\nb", " \u3000 x \u3000 ", "x\u2028y\u2029z",
    "a\u0085b", "a\x1cb\x1fc", "a\u200bb", "\u2581", "\u2581\u2581", "a\u2581\u2581b",
    " \u2581a", "a \u2581 b", "\u2581<extra_id_0>\u2581",
    "\uff1c/s\uff1e", "\uff1cextra_id_0\uff1e", "\uff1cunk\uff1e", "\uff1cpad\uff1e",
    "<extra_id_0>", " <extra_id_0> ", "a<extra_id_0>b", "a <extra_id_0>b", "a<extra_id_0> b",
    "<extra_id_0><extra_id_0>", "<extra_id_10><extra_id_1>", "<extra_id_1000>",
    "\u00c5ngstr\u00f6m \u212b \u00bd \u2163 \u337f \ufb03", "e\u0301 \u00e9 \u0065\u0301\u0301",
    "\U0001F600\U0001F600 \U0001F600", "\u4e2d\u6587 \u65e5\u672c\u8a9e", "\ud55c\uad6d\uc5b4",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u0928\u092e\u0938\u094d\u0924\u0947",
    "\u00ff\u0100\u017f", "\u0000a\u0001b", "\ufffd\ufeffx", "a\r\nb\rc",
    "</s></s>", "</s> </s>", "<pad><pad>x", "<unk><unk>", " </s>", "x </s>  ",
]


def random_unicode(n, seed):
    """Random strings over many Unicode blocks, with special tokens and whitespace mixed in."""
    rng = random.Random(seed)
    pools = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
             (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00),
             (0xFF00, 0xFFEF), (0x1F300, 0x1F64F), (0x0, 0x1F)]
    specials = ["<pad>", "</s>", "<unk>", "<extra_id_0>", "<extra_id_1>", "<extra_id_42>",
                "<extra_id_99>", "<extra_id_100>", "\u2581", " ", "  ", "\t", "\n", "\u3000"]
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(0, 30)):
            if rng.random() < 0.12:
                s.append(rng.choice(specials))
            else:
                lo, hi = rng.choice(pools)
                s.append(chr(rng.randint(lo, hi)))
        out.append("".join(s))
    return out


def published_texts():
    with open(os.path.join(VOCAB, "published_goldens.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    texts = []
    for c in cases:
        texts += [c["text"]] if "text" in c else []
        texts += c.get("texts", [])
    return texts


def random_ids(tokenizer, n, seed):
    """Random id rows mixing ordinary pieces with the file's added tokens, without pad/eos
    (t5core stops at eos and drops pad, HF keeps both)."""
    rng = random.Random(seed)
    size = tokenizer.get_vocab_size()
    added = [i for i in tokenizer.get_added_tokens_decoder() if i > 1]
    rows = []
    for _ in range(n):
        rows.append([rng.choice(added) if rng.random() < 0.15 else rng.randrange(2, size)
                     for _ in range(rng.randint(1, 20))])
    return rows


def _one_case_per_line(obj, indent=""):
    """JSON with every list of cases written one case per line: small, and readable in a diff."""
    if isinstance(obj, dict):
        items = [f'{indent} {json.dumps(k)}: {_one_case_per_line(v, indent + " ")}'
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        rows = [indent + "  " + json.dumps(x, separators=(",", ":")) for x in obj]
        return "[\n" + ",\n".join(rows) + "\n" + indent + "]"
    return json.dumps(obj)


def tokenizer_json_goldens():
    import tokenizers

    texts = (JSON_EDGE_CASES + EDGE_CASES + published_texts() + random_texts(300, seed=20240601)
             + random_unicode(400, seed=7))
    out = {"generator": "tests/make_hf_tokenizer_goldens.py, tokenizers "
                        f"{tokenizers.__version__} (Tokenizer.from_file)"}
    for name, path in TOKENIZER_JSON_FILES.items():
        tok = tokenizers.Tokenizer.from_file(path)
        cases = []
        for t in texts:
            enc = tok.encode(t, add_special_tokens=False)
            normalized = tok.normalizer.normalize_str(t)
            cases.append({
                "text": t,
                # what HF's normalizer made of the text, where it changed it: explains the
                # few texts on which HF's Precompiled normalizer and SentencePiece's differ
                **({"hf_normalized": normalized} if normalized != t else {}),
                "ids": enc.ids,
                "decode": tok.decode(enc.ids, skip_special_tokens=False),
                "decode_skip_special": tok.decode(enc.ids, skip_special_tokens=True),
            })
        id_rows = [{"ids": ids, "decode": tok.decode(ids, skip_special_tokens=False),
                    "decode_skip_special": tok.decode(ids, skip_special_tokens=True)}
                   for ids in random_ids(tok, 300, seed=11)]
        out[name] = {"file": os.path.relpath(path, HERE), "texts": cases, "id_rows": id_rows}
    path = os.path.join(VOCAB, "hf_tokenizer_json_goldens.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(_one_case_per_line(out))
    print("wrote", path, len(texts), "texts x", len(TOKENIZER_JSON_FILES), "files")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which not in ("all", "transformers", "tokenizers"):
        sys.exit(f"usage: {sys.argv[0]} [transformers|tokenizers|all]")
    if which in ("all", "tokenizers"):
        tokenizer_json_goldens()
    if which in ("all", "transformers"):
        import transformers
        if int(transformers.__version__.split(".")[0]) >= 5 and which == "all":
            print("skipped hf_tokenizer_goldens.json: needs transformers < 5, found",
                  transformers.__version__)
        else:
            transformers_goldens()
