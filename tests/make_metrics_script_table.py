"""Prints BUILD_NOTES' table of BLEU / ROUGE on Chinese, mixed and English text, beside
sacreBLEU's and rouge-score's own scores (not part of the suite).

  PYTHONPATH=. python tests/make_metrics_script_table.py
"""

import sacrebleu
from rouge_score import rouge_scorer

import t5core.metrics as M
from t5core.metrics.scripts import bleu_tokenizer, rouge_tokenizer

CASES = {
    "Chinese, identical": (["我爱北京天安门。", "今天天气很好，我们去公园散步吧。"],
                           ["我爱北京天安门。", "今天天气很好，我们去公园散步吧。"]),
    "Chinese, partial": (["我爱北京天安门。", "今天天气很好，我们去公园散步吧。",
                          "机器翻译的质量越来越高了。"],
                         ["我爱北京。", "今天天气不错，我们去公园吧。", "机器翻译质量越来越好。"]),
    "mixed zh-en, partial": (["我用 TensorFlow 训练 T5 模型。", "请把 README 翻译成中文。",
                              "GPU 上的 batch size 是 64。"],
                             ["我用 TensorFlow 训练模型。", "请把 readme 翻译为中文。",
                              "GPU 上 batch size 为 64。"]),
    "Japanese, identical": (["今日はとても良い天気ですね。"], ["今日はとても良い天気ですね。"]),
    "Thai, identical": (["วันนี้อากาศดีมาก ฉันชอบกินข้าวผัด"], ["วันนี้อากาศดีมาก ฉันชอบกินข้าวผัด"]),
    "English, partial": (["The cat is sitting on the mat.", "A man plays the guitar on a stage .",
                          "Two dogs are running in a field of snow.", "Hello world"],
                         ["The cat sat on the mat.", "A man is playing guitar on the stage .",
                          "Two dogs run through a snowy field.", "Hello, world!"]),
}


def rouge_score_own(refs, hyps):
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    totals = [0.0, 0.0, 0.0]
    for r, h in zip(refs, hyps):
        s = scorer.score(r, h)
        for i, k in enumerate(("rouge1", "rouge2", "rougeL")):
            totals[i] += s[k].fmeasure
    return [100 * t / len(refs) for t in totals]


def main():
    print("| case | BLEU tokenizer | t5core BLEU | sacreBLEU (same tokenizer) | sacreBLEU 13a "
          "(before) | ROUGE tokens | t5core R-1 / R-2 / R-L | rouge-score default (before) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (refs, hyps) in CASES.items():
        tok = bleu_tokenizer(refs)
        ours = M.compute_metrics(["bleu", "rouge"], refs, hyps)
        theirs = sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok).score
        before = sacrebleu.corpus_bleu(hyps, [refs]).score
        r_before = rouge_score_own(refs, hyps)
        print(f"| {name} | {tok} | {ours['bleu']:.2f} | {theirs:.2f} | {before:.2f} | "
              f"{rouge_tokenizer(refs)} | {ours['rouge1']:.2f} / {ours['rouge2']:.2f} / "
              f"{ours['rougeL']:.2f} | {' / '.join(f'{v:.2f}' for v in r_before)} |")


if __name__ == "__main__":
    main()
