"""Does `transformers.AutoTokenizer` read t5core's HF export as t5core encodes? (not in the suite)

Two steps, two environments (t5core needs TensorFlow, the check needs transformers):

  # 1. with t5core: export each tokenizer kind and record t5core's ids
  PYTHONPATH=. python tests/check_hf_tokenizer_export.py write /tmp/hf_tok
  # 2. with transformers: load each export with AutoTokenizer and compare
  /work/refvenv-zhmetrics/bin/python tests/check_hf_tokenizer_export.py check /tmp/hf_tok

The kinds: the T5 spiece.model and tokenizer.json of tests/fixtures/t5_vocab, a small Chinese +
English SentencePiece model trained here (so Chinese text meets real pieces, not <unk>), and the
byte-level vocabulary. Step 2 prints one line per kind and text, and exits 1 on any difference.
"""

import json
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
TEXTS = [
    "translate English to German: The house is wonderful.",
    "今天天气很好，我们去公园散步吧。",
    "我用 TensorFlow 训练 T5 模型，batch size 是 64。",
    "摘要: 机器翻译的质量越来越高了 <extra_id_0> 对吧",
    "  spaces   and\ttabs, Ünïcödé, emoji 🙂 ",
    "",
]
# Training text for the Chinese SentencePiece model.
CORPUS = [
    "今天天气很好，我们去公园散步吧。", "机器翻译的质量越来越高了。", "我爱北京天安门。",
    "我用 TensorFlow 训练 T5 模型。", "请把这段文字翻译成英文。", "这部电影非常好看，推荐大家去看。",
    "The quick brown fox jumps over the lazy dog.", "batch size and learning rate matter.",
    "中文分词和摘要是常见的自然语言处理任务。", "模型在验证集上的准确率是百分之九十。",
] * 20


def train_chinese_spiece(folder: pathlib.Path) -> str:
    import sentencepiece as spm

    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    prefix = folder / "zh_spiece"
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=120, model_type="unigram",
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        minloglevel=2)
    return str(prefix) + ".model"


def write(out: pathlib.Path) -> None:
    from t5core.checkpoints.export import export_hf_tokenizer
    from t5core.tokenizer import load_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    kinds = {"t5_spiece": str(HERE / "fixtures" / "t5_vocab" / "spiece.model"),
             "t5_tokenizer_json": str(HERE / "fixtures" / "t5_vocab" / "tokenizer.json"),
             "zh_spiece": train_chinese_spiece(out),
             "byte": "byte"}
    expected = {}
    for kind, vocab in kinds.items():
        tokenizer = load_tokenizer(vocab)
        files = export_hf_tokenizer(str(out / kind), vocab, tokenizer)
        expected[kind] = {"files": files,
                          "ids": [tokenizer.encode(t, add_eos=True) for t in TEXTS]}
    (out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {', '.join(kinds)} under {out}")


def check(out: pathlib.Path) -> int:
    import transformers
    from transformers import AutoTokenizer

    expected = json.loads((out / "expected.json").read_text(encoding="utf-8"))
    print(f"transformers {transformers.__version__}")
    failures = 0
    for kind, want in expected.items():
        tok = AutoTokenizer.from_pretrained(str(out / kind))
        print(f"{kind}: files {', '.join(want['files'])} -> {type(tok).__name__}")
        for text, ids in zip(TEXTS, want["ids"]):
            got = tok(text)["input_ids"]
            same = got == ids
            failures += not same
            print(f"  {'same' if same else 'DIFFERENT'} {len(ids):3d} ids  {text!r}"
                  + ("" if same else f"\n    t5core {ids}\n    hf     {got}"))
    print("all equal" if not failures else f"{failures} text(s) differ")
    return 1 if failures else 0


if __name__ == "__main__":
    step, folder = sys.argv[1], pathlib.Path(sys.argv[2])
    if step == "write":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        write(folder)
    else:
        sys.exit(check(folder))
