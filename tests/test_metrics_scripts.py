"""BLEU and ROUGE on text written without spaces (Chinese, Japanese, Thai) and on mixed text,
checked against sacreBLEU computed here and against a direct n-gram / LCS count."""

import collections
import json
import pathlib

import pytest
import sacrebleu
from rouge_score import tokenize as rouge_score_tokenize

import t5core.metrics as M
from t5core.errors import FlagError
from conftest import FIXTURES
from t5core.metrics.scripts import bleu_tokenizer, rouge_char_tokens, rouge_tokenizer

ZH_REFS = ["我爱北京天安门。", "今天天气很好，我们去公园散步吧。", "机器翻译的质量越来越高了。"]
ZH_HYPS = ["我爱北京。", "今天天气不错，我们去公园吧。", "机器翻译质量越来越好。"]
MIXED_REFS = ["我用 TensorFlow 训练 T5 模型。", "请把 README 翻译成中文。",
              "GPU 上的 batch size 是 64。"]
MIXED_HYPS = ["我用 TensorFlow 训练模型。", "请把 readme 翻译为中文。", "GPU 上 batch size 为 64。"]
# English, scored by the code before scripts were told apart (commit df68cc4): must not move.
EN_REFS = ["The cat is sitting on the mat.", "A man plays the guitar on a stage .",
           "Two dogs are running in a field of snow.", "Hello world"]
EN_HYPS = ["The cat sat on the mat.", "A man is playing guitar on the stage .",
           "Two dogs run through a snowy field.", "Hello, world!"]
EN_GOLDEN = {"bleu": 18.951655991848575, "rouge1": 75.48076923076923,
             "rouge2": 49.35064935064935, "rougeL": 72.35576923076923,
             "rougeLsum": 72.35576923076923}
EN_GOLDEN_STEMMED = {"rouge1": 81.73076923076923, "rouge2": 49.35064935064935,
                     "rougeL": 78.60576923076923, "rougeLsum": 78.60576923076923}


def _f1(overlap, n_ref, n_hyp):
    if not overlap:
        return 0.0
    p, r = overlap / n_hyp, overlap / n_ref
    return 2 * p * r / (p + r)


def _ngrams(tokens, n):
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1],
                                                                     table[i + 1][j])
    return table[-1][-1]


def _direct_rouge(refs, hyps, tokens):
    """ROUGE-1/2/L F-measures x100 counted by hand from each text's tokens."""
    totals = collections.Counter()
    for ref, hyp in zip(refs, hyps):
        r, h = tokens(ref), tokens(hyp)
        for n in (1, 2):
            overlap = sum((_ngrams(r, n) & _ngrams(h, n)).values())
            totals[f"rouge{n}"] += _f1(overlap, max(len(r) - n + 1, 0), max(len(h) - n + 1, 0))
        totals["rougeL"] += _f1(_lcs(r, h), len(r), len(h))
    return {k: 100 * v / len(refs) for k, v in totals.items()}


def _hand_tokens(text):
    """Chinese characters one by one, ASCII words lowercased, punctuation dropped."""
    out, word = [], ""
    for c in text.lower():
        if c.isascii() and c.isalnum():
            word += c
            continue
        if word:
            out.append(word)
            word = ""
        if "\u4e00" <= c <= "\u9fff":
            out.append(c)
    return out + ([word] if word else [])


def test_identical_chinese_scores_100():
    out = M.compute_metrics(["bleu", "rouge"], ZH_REFS, ZH_REFS)
    assert out == pytest.approx({"bleu": 100.0, "rouge1": 100.0, "rouge2": 100.0,
                                 "rougeL": 100.0, "rougeLsum": 100.0})


@pytest.mark.parametrize("refs,hyps", [(ZH_REFS, ZH_HYPS), (MIXED_REFS, MIXED_HYPS)])
def test_bleu_equals_sacrebleu_zh(refs, hyps):
    expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score
    assert 0 < expected < 100
    assert M.compute_metrics("bleu", refs, hyps)["bleu"] == pytest.approx(expected, abs=0.01)
    # Several references per example: the script is read from all of them.
    multi = [[r, r[::-1]] for r in refs]
    expected = sacrebleu.corpus_bleu(hyps, [refs, [r[::-1] for r in refs]], tokenize="zh").score
    assert M.bleu(multi, hyps)["bleu"] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("refs,hyps", [(ZH_REFS, ZH_HYPS), (MIXED_REFS, MIXED_HYPS)])
def test_chinese_rouge_equals_a_direct_character_count(refs, hyps):
    out = M.compute_metrics("rouge", refs, hyps)
    expected = _direct_rouge(refs, hyps, _hand_tokens)
    assert 0 < expected["rouge2"] < expected["rouge1"] < 100
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-9), key


def test_mixed_text_keeps_english_words_whole():
    assert rouge_char_tokens("我用 TensorFlow 训练T5模型, café_au-lait") == [
        "我", "用", "tensorflow", "训", "练", "t5", "模", "型", "café", "au", "lait"]
    # A wrong English word costs one token, not one per letter.
    one_word_off = M.rouge(["我用 TensorFlow 训练"], ["我用 PyTorch 训练"])["rouge1"]
    assert one_word_off == pytest.approx(100 * 4 / 5)


def test_english_scores_as_before():
    out = M.compute_metrics(["bleu", "rouge"], EN_REFS, EN_HYPS)
    assert out == EN_GOLDEN
    stemmed = M.compute_metrics("rouge", EN_REFS, EN_HYPS, use_stemmer=True)
    assert stemmed == EN_GOLDEN_STEMMED
    # Forcing the character tokenizer on ASCII text changes nothing either.
    assert M.compute_metrics("rouge", EN_REFS, EN_HYPS, use_stemmer=True,
                             rouge_tokenize="chars") == pytest.approx(EN_GOLDEN_STEMMED)
    assert bleu_tokenizer(EN_REFS) == "13a" and rouge_tokenizer(EN_REFS) == "words"


def test_explicit_tokenization_overrides_the_choice():
    forced = M.compute_metrics("bleu", ZH_REFS, ZH_HYPS, bleu_tokenize="13a")["bleu"]
    assert forced == pytest.approx(sacrebleu.corpus_bleu(ZH_HYPS, [ZH_REFS]).score)
    char = M.compute_metrics("bleu", ZH_REFS, ZH_HYPS, bleu_tokenize="char")["bleu"]
    assert char == pytest.approx(
        sacrebleu.corpus_bleu(ZH_HYPS, [ZH_REFS], tokenize="char").score)
    # rouge-score's own tokenizer drops Chinese: the "words" mode is exactly that.
    words = M.compute_metrics("rouge", ZH_REFS, ZH_REFS, rouge_tokenize="words")
    assert words["rouge1"] == 0.0
    # Options for a metric that is not named are ignored (training passes both flags).
    assert set(M.compute_metrics("accuracy", ["a"], ["a"], bleu_tokenize="zh",
                                 rouge_tokenize="chars")) == {"accuracy"}
    with pytest.raises(ValueError, match="rouge_tokenize"):
        M.compute_metrics("rouge", ZH_REFS, ZH_HYPS, rouge_tokenize="letters")
    with pytest.raises(ValueError, match="contradicts"):
        M.compute_metrics("bleu", ZH_REFS, ZH_HYPS, bleu_tokenize="zh", tokenize="13a")


@pytest.mark.parametrize("text", [
    ["今日はとても良い天気ですね。", "東京タワーに行きました。"],  # Japanese
    ["วันนี้อากาศดีมาก", "ฉันชอบกินข้าวผัด"],  # Thai
    ["오늘 날씨가 정말 좋네요", "저는 서울에 살아요"],  # Korean
    ["Сегодня очень хорошая погода", "Я живу в Москве"],  # Russian
])
def test_identical_text_scores_100_in_every_script(text):
    out = M.compute_metrics(["bleu", "rouge"], text, text)
    assert out == pytest.approx(dict.fromkeys(out, 100.0))


def test_thai_partial_bleu_is_sacrebleu_char():
    refs, hyps = ["วันนี้อากาศดีมาก"], ["วันนี้อากาศดี"]
    assert bleu_tokenizer(refs) == "char"
    assert M.bleu(refs, hyps)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs], tokenize="char").score, abs=0.01)


def _echo_targets(monkeypatch):
    """Decoding replaced by the targets themselves: a perfect model, without a model."""
    from t5core.evaluation.evaluators import DecodeEvaluator

    monkeypatch.setattr(DecodeEvaluator, "predict", lambda self, model: list(self.targets))


@pytest.mark.parametrize("rouge_tokenize,expected", [("auto", 100.0), ("words", 0.0)])
def test_training_time_evaluation_takes_the_flags(tmp_path, monkeypatch, rouge_tokenize,
                                                   expected):
    import json

    from t5core.data.trainer_inputs import make_trainer_inputs
    from t5core.tokenizer import load_tokenizer
    from t5core.training.run import RunOptions
    from t5core.training.trainer import TrainConfig

    path = tmp_path / "zh.jsonl"
    path.write_text("".join(json.dumps({"inputs": f"翻译: {t}", "targets": t}, ensure_ascii=False)
                            + "\n" for t in ZH_REFS), encoding="utf-8")
    options = RunOptions(train_file=str(path), eval_file=str(path), metrics="bleu,rouge",
                         rouge_tokenize=rouge_tokenize,
                         train=TrainConfig(batch_size=2, inputs_length=64, targets_length=64))
    _echo_targets(monkeypatch)
    _, _, evaluator = make_trainer_inputs(options, load_tokenizer("byte"))
    metrics, _ = evaluator(None)
    assert metrics["bleu"] == pytest.approx(100.0)
    assert metrics["rouge1"] == pytest.approx(expected)


def test_evaluate_task_takes_the_tokenization(monkeypatch):
    from t5core.evaluation.evaluators import evaluate_task
    from t5core.tokenizer import load_tokenizer

    monkeypatch.setattr("t5core.evaluation.evaluators.task_examples",
                        lambda *args: ([[5, 1]] * len(ZH_REFS), list(ZH_REFS)))
    _echo_targets(monkeypatch)
    fake = type("FakeTask", (), {"name": "zh_echo", "metrics": ("bleu", "rouge")})()
    tokenizer = load_tokenizer("byte")
    auto, _, _ = evaluate_task(None, fake, "validation", tokenizer, 8, 8)
    assert auto["bleu"] == pytest.approx(100.0) and auto["rougeL"] == pytest.approx(100.0)
    forced, _, _ = evaluate_task(None, fake, "validation", tokenizer, 8, 8,
                                 bleu_tokenize="13a", rouge_tokenize="words")
    assert forced["rougeL"] == 0.0


def test_evaluate_reuses_the_runs_tokenization_unless_given():
    from t5core import model_dir
    from t5core.evaluation import reports

    run = model_dir.RunDescription(data={"bleu_tokenize": "char", "rouge_tokenize": "words"})
    options = reports.data_options({"bleu_tokenize": None, "rouge_tokenize": "chars"}, run)
    assert (options["bleu_tokenize"], options["rouge_tokenize"]) == ("char", "chars")
    older = reports.data_options({"bleu_tokenize": None, "rouge_tokenize": None},
                                 model_dir.RunDescription())
    assert (older["bleu_tokenize"], older["rouge_tokenize"]) == ("auto", "auto")
    test = reports.TestSet(inputs=[[1]] * 3, targets=ZH_REFS, metrics=["rouge"], labels=[],
                           metric_options={"rouge_tokenize": "words"})
    assert reports.score(test, ZH_REFS)["metrics"]["rouge1"] == 0.0
    test.metric_options = {"rouge_tokenize": "auto"}
    assert reports.score(test, ZH_REFS)["metrics"]["rouge1"] == pytest.approx(100.0)


# -- SQuAD: the same rule (unspaced text counted per character) -----------------------------


@pytest.mark.parametrize("reference,prediction,em,f1", [
    ("北京。", "北京", 100.0, 100.0),  # full-width punctuation is punctuation
    ("“北京烤鸭”", "北京 烤鸭", 100.0, 100.0),  # spaces between characters do not count
    ("东京", "东京是首都", 0.0, 100 * 2 * (2 / 5) / (1 + 2 / 5)),  # 2 of 5 characters right
    ("NBA总冠军", "nba 总冠军！", 100.0, 100.0),  # words of spaced scripts stay words
    ("the Beatles乐队", "Beatles乐队", 0.0, 100 * 2 * (3 / 3) * (3 / 4) / (3 / 3 + 3 / 4)),
])
def test_chinese_squad_is_mlqa_s(reference, prediction, em, f1):
    # MLQA's Chinese rules: every Unicode punctuation mark deleted, no English articles removed,
    # each Han character a token.
    out = M.compute_metrics("squad", [reference], [prediction])
    assert out == pytest.approx({"squad_em": em, "squad_f1": f1})


def test_english_squad_stays_the_official_v1_1():
    # Curly quotes are not in string.punctuation: v1.1 keeps them, so these differ.
    assert M.squad(["“the answer”"], ["answer"]) == {"squad_em": 0.0, "squad_f1": 0.0}
    assert M.squad(["The answer!"], ["answer"]) == {"squad_em": 100.0, "squad_f1": 100.0}
    forced = M.compute_metrics("squad", ["北京。"], ["北京"], squad_tokenize="words")
    assert forced == {"squad_em": 0.0, "squad_f1": 0.0}
    with pytest.raises(ValueError, match="squad_tokenize"):
        M.squad(["a"], ["a"], squad_tokenize="letters")


# Metrics over labels, numbers or tags: an answer is right or wrong as a whole.
WHOLE_VALUE_METRICS = {"accuracy", "f1_macro", "f1_micro", "f1_weighted", "f1", "per_class",
                       "mcc", "pearson", "spearman", "entity_f1", "seqeval"}
# Metrics that count tokens of generated text, each with the options it needs.
TOKEN_METRICS = {"bleu": "bleu", "rouge": "rouge1", "squad": "squad_f1"}
UNSPACED_PAIRS = {
    "Chinese": ("今天天气很好，我们去公园散步吧。", "今天天气不错，我们去公园散步吧。"),
    "Japanese": ("東京タワーに行きました。", "東京タワーへ行きました。"),
    "Thai": ("ฉันชอบกินข้าวผัดมาก", "ฉันชอบกินข้าวผัด"),
}


def test_every_metric_is_either_whole_value_or_token_counting():
    # A new metric over generated text must join TOKEN_METRICS, and so the checks below.
    assert set(M.METRICS) == WHOLE_VALUE_METRICS | set(TOKEN_METRICS)


@pytest.mark.parametrize("script", sorted(UNSPACED_PAIRS))
@pytest.mark.parametrize("metric", sorted(TOKEN_METRICS))
def test_token_metrics_count_unspaced_text_per_character(metric, script):
    reference, near_miss = UNSPACED_PAIRS[script]
    key = TOKEN_METRICS[metric]
    identical = M.compute_metrics(metric, [reference] * 2, [reference] * 2)[key]
    close = M.compute_metrics(metric, [reference] * 2, [near_miss] * 2)[key]
    assert identical == pytest.approx(100.0)
    assert 40.0 < close < 100.0, (metric, script, close)


# -- inputs a checker feeds: every script, empty and blank lines, emoji, full-width forms ------

HOSTILE = {
    "chinese": (["今天天气很好。", "我喜欢北京烤鸭！"], ["今天天气很好。", "我喜欢吃北京烤鸭"]),
    "japanese": (["今日はいい天気です。", "東京に行きます"], ["今日はいい天気ですね", "東京へ行きます"]),
    "korean": (["오늘 날씨가 좋습니다.", "서울에 갑니다"], ["오늘 날씨 좋네요.", "서울에 갑니다"]),
    "thai": (["วันนี้อากาศดี", "ฉันชอบกินข้าว"], ["วันนี้อากาศดีมาก", "ฉันชอบข้าว"]),
    "arabic": (["الطقس جميل اليوم.", "أحب القراءة"], ["الطقس جميل.", "أحب القراءة كثيرا"]),
    "mixed": (["我用Python写代码。", "Tokyo是日本的首都"], ["我用 Python 写代码", "东京是日本的首都"]),
    "emoji": (["I love it 😀!", "ok 👍"], ["I love it😀", "ok👍"]),
    "full_width": (["你好，世界！", "ＡＢＣ１２３"], ["你好,世界!", "ABC123"]),
    "empty_predictions": (["hello world", "foo bar"], ["", ""]),
    "empty_references": (["", ""], ["hello", "x"]),
    "blank_lines": (["   ", "\t"], ["  ", "a"]),
    "case": (["Hello World", "FOO"], ["hello world", "foo"]),
    "one_sentence": (["a b c d e"], ["a b c d e"]),
    "long_line": (["word " * 3000 + "end"], ["word " * 2999 + "end"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_bleu_equals_sacrebleu_on_hostile_inputs_with_every_tokenizer(case):
    refs, hyps = HOSTILE[case]
    auto = sacrebleu.corpus_bleu(hyps, [refs], tokenize=bleu_tokenizer(refs)).score
    assert M.bleu(refs, hyps)["bleu"] == auto
    for tokenizer in ("13a", "intl", "zh", "char", "none"):
        expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenizer).score
        assert M.bleu(refs, hyps, tokenize=tokenizer)["bleu"] == expected, tokenizer


@pytest.mark.parametrize("case", sorted(set(HOSTILE) - {"long_line"}))  # rouge-score's LCS: n^2
def test_rouge_on_hostile_inputs_is_a_direct_count_of_its_tokens(case):
    refs, hyps = HOSTILE[case]
    tokens = rouge_char_tokens if rouge_tokenizer(refs) == "chars" else _rouge_score_tokens
    out = M.rouge(refs, hyps)
    for key, value in _direct_rouge(refs, hyps, tokens).items():
        assert out[key] == pytest.approx(value, abs=1e-9), key


def _rouge_score_tokens(text):
    return rouge_score_tokenize.tokenize(text, None)


def test_chinese_squad_equals_mt5_s_own_mlqa_metric():
    # Goldens from mT5's metrics.mlqa(lang="zh") itself (tests/make_mlqa_goldens.py): hand cases
    # and seeded random answers with near-miss predictions, one to three references each.
    goldens = json.loads((FIXTURES / "mlqa" / "zh_goldens.json").read_text(encoding="utf-8"))
    examples = goldens["examples"]
    for example in examples:
        out = M.squad([example["references"]], [example["prediction"]], squad_tokenize="chars")
        assert out == pytest.approx({"squad_em": example["em"], "squad_f1": example["f1"]},
                                    abs=1e-9), example
    corpus = M.squad([e["references"] for e in examples], [e["prediction"] for e in examples])
    assert corpus == pytest.approx({"squad_em": goldens["corpus"]["em"],
                                    "squad_f1": goldens["corpus"]["f1"]}, abs=1e-9)
    assert 0 < goldens["corpus"]["em"] < goldens["corpus"]["f1"] < 100


@pytest.mark.parametrize("goldens", ["zh_goldens.json", "zh_beyond_range_goldens.json"])
def test_squad_lang_zh_equals_mt5_s_own_mlqa_metric_beyond_its_han_range(goldens):
    # squad_lang="zh" is mT5's rule exactly: only Han of U+4E00..U+9FA5 split per character;
    # rarer Han, kana, Hangul and Thai stay whitespace words (tests/make_mlqa_goldens.py
    # --beyond_mlqa_range). "auto" splits every unspaced script, by design.
    goldens = json.loads((FIXTURES / "mlqa" / goldens).read_text(encoding="utf-8"))
    examples = goldens["examples"]
    for example in examples:
        out = M.squad([example["references"]], [example["prediction"]], squad_lang="zh")
        assert out == pytest.approx({"squad_em": example["em"], "squad_f1": example["f1"]},
                                    abs=1e-9), example
    corpus = M.squad([e["references"] for e in examples], [e["prediction"] for e in examples],
                     squad_lang="zh")
    assert corpus == pytest.approx({"squad_em": goldens["corpus"]["em"],
                                    "squad_f1": goldens["corpus"]["f1"]}, abs=1e-9)


def test_squad_s_rules_follow_most_questions():
    """One answer in an unspaced script does not choose the rules of a corpus: English answers
    keep v1.1's article removal beside a Chinese one; Chinese answers beside one English one
    keep MLQA's."""
    answers = ["the Eiffel Tower", "a cat", "Paris", "Mao Zedong (毛泽东)"]
    predictions = ["Eiffel Tower", "cat", "Paris", "Mao Zedong (毛泽东)"]
    assert M.squad(answers, predictions) == {"squad_em": 100.0, "squad_f1": 100.0}
    assert M.squad(answers, predictions, squad_tokenize="chars")["squad_em"] == 50.0
    chinese = ["北京", "长江", "上海", "the Beatles"]
    assert M.squad(chinese, ["北京。", "长江！", "上海", "the Beatles"])["squad_em"] == 100.0
    assert M.squad(chinese, ["北京。", "长江！", "上海", "Beatles"])["squad_em"] == 75.0


@pytest.mark.parametrize("refs,expected", [
    # One reference in another script does not choose the corpus' tokenizer.
    (["Der Hund läuft im Park.", "Wir essen ラーメン heute.", "Das Wetter ist gut.",
      "Ich lese ein Buch."], "13a"),
    (["Der Hund läuft im Park.", "Ein Wort: กรุงเทพ", "Das Wetter ist gut."], "13a"),
    (["我爱北京天安门。", "今天天气很好・我们去公园散步吧。", "东京的ラーメン很好吃。",
      "机器翻译的质量越来越高了。"], "zh"),
    (["ทุกวันนี้อากาศดีมาก", "ฉันชอบกินข้าวผัด", "I like fried rice."], "char"),
    # A tie goes to the unspaced script (zh equals 13a on the other text).
    (["我爱北京。", "I love Beijing."], "zh"),
])
def test_bleu_s_tokenizer_follows_most_references(refs, expected, monkeypatch):
    assert bleu_tokenizer(refs) == expected
    hyps = [r[: len(r) * 2 // 3] for r in refs]
    assert M.bleu(refs, hyps)["bleu"] == sacrebleu.corpus_bleu(hyps, [refs],
                                                               tokenize=expected).score


@pytest.mark.parametrize("tokenize,packages", [("ja-mecab", True), ("char", False)])
def test_japanese_is_told_from_chinese_by_its_kana(tokenize, packages, monkeypatch):
    """Kana in as many references as Han alone: Japanese (MeCab when installed, else
    characters); a Korean corpus with one kana word stays Korean."""
    from t5core.metrics import scripts

    monkeypatch.setattr(scripts, "installed", lambda *names: packages)
    assert bleu_tokenizer(["今日はいい天気です", "東京大学", "猫が好きです"]) == tokenize
    assert bleu_tokenizer(["오늘 날씨가 좋네요", "저는 ラーメン 좋아요", "서울에 살아요"]) == (
        "ko-mecab" if packages else "13a")


@pytest.mark.parametrize("lang", ["en", "es", "de", "vi", "ar", "hi"])
def test_squad_lang_equals_mt5_s_own_mlqa_metric(lang):
    # Goldens from mT5's metrics.mlqa(lang=...) itself (tests/make_mlqa_goldens.py --lang):
    # articles of each language, Unicode punctuation (¿ « „ ، ।), case, near-miss predictions.
    goldens = json.loads((FIXTURES / "mlqa" / f"{lang}_goldens.json").read_text(encoding="utf-8"))
    examples = goldens["examples"]
    for example in examples:
        out = M.squad([example["references"]], [example["prediction"]], squad_lang=lang)
        assert out == pytest.approx({"squad_em": example["em"], "squad_f1": example["f1"]},
                                    abs=1e-9), example
    corpus = M.compute_metrics("squad", [e["references"] for e in examples],
                               [e["prediction"] for e in examples], squad_lang=lang)
    assert corpus == pytest.approx({"squad_em": goldens["corpus"]["em"],
                                    "squad_f1": goldens["corpus"]["f1"]}, abs=1e-9)
    # (EM may pass F1: two answers of only articles both normalise to "", EM 1 and F1 0.)
    assert 0 < goldens["corpus"]["em"] < 100 and 0 < goldens["corpus"]["f1"] < 100
    # Without the language, the hand cases score by SQuAD v1.1's English rules, and some differ.
    hand = examples[:3]
    assert any(M.squad([e["references"]], [e["prediction"]])["squad_em"] != e["em"] for e in hand)


def test_squad_lang_is_checked_and_not_given_with_squad_tokenize():
    with pytest.raises(ValueError, match="squad_lang must be one of en, es, de"):
        M.squad(["a"], ["a"], squad_lang="fr")
    with pytest.raises(ValueError, match="give one of the two"):
        M.squad(["a"], ["a"], squad_lang="de", squad_tokenize="words")
    assert M.squad(["北京。"], ["北京"], squad_lang="zh") == {"squad_em": 100.0, "squad_f1": 100.0}


# Spanish answers whose predictions miss only an article: EM 0 by SQuAD v1.1's English rules,
# 100 by MLQA's Spanish ones.
ES_ANSWERS = ["el Papa", "la casa blanca"]
ES_PREDICTIONS = ["Papa", "casa blanca"]


def test_squad_lang_reaches_training_time_and_evaluate_s_scoring(tmp_path, monkeypatch):
    from t5core.data.trainer_inputs import make_trainer_inputs
    from t5core.evaluation import reports
    from t5core.evaluation.evaluators import DecodeEvaluator
    from t5core.tokenizer import load_tokenizer
    from t5core.training.run import RunOptions, run_description
    from t5core.training.trainer import TrainConfig

    path = tmp_path / "es.jsonl"
    path.write_text("".join(json.dumps({"inputs": f"pregunta: {a}", "targets": a}) + "\n"
                            for a in ES_ANSWERS), encoding="utf-8")
    answer = dict(zip(ES_ANSWERS, ES_PREDICTIONS))
    monkeypatch.setattr(DecodeEvaluator, "predict",
                        lambda self, model: [answer[t] for t in self.targets])
    tokenizer = load_tokenizer("byte")
    for lang, expected in (("auto", 0.0), ("es", 100.0)):
        options = RunOptions(train_file=str(path), eval_file=str(path), metrics="squad",
                             squad_lang=lang, train=TrainConfig(batch_size=2))
        _, _, evaluator = make_trainer_inputs(options, tokenizer)
        assert evaluator(None)[0]["squad_em"] == expected, lang
    # evaluate.py: the run recorded the language, and scores by it unless told otherwise.
    run = run_description(options, "byte")
    for given, expected in ((None, 100.0), ("auto", 0.0)):
        data = reports.data_options({"squad_lang": given, "eval_file": str(path)}, run)
        test = reports.load_test_set(data, tokenizer, "test", 0)
        assert reports.score(test, ES_PREDICTIONS)["metrics"]["squad_em"] == expected, given
    # Beside metrics that do not take it, the language is no error.
    assert set(M.compute_metrics("accuracy", ["a"], ["a"], squad_lang="es")) == {"accuracy"}


def test_chinese_squad_is_mt5s_mlqa_metric():
    """SQuAD's EM/F1 strip only ASCII punctuation and count whitespace tokens: on Chinese answers
    "北京。" missed "北京" and a half-right answer scored 0. Where the answers hold Chinese they
    are mT5's MLQA metric (lang="zh"): every Unicode punctuation mark dropped, one token per
    CJK character, English words whole."""
    assert M.squad(["北京"], ["北京。"]) == {"squad_em": 100.0, "squad_f1": 100.0}
    half = M.squad(["北京"], ["北京大学"])  # 2 of 4 predicted characters, 2 of 2 referenced
    assert half["squad_em"] == 0.0 and half["squad_f1"] == pytest.approx(100 * 2 / 3)
    assert M.squad([["NBA 总冠军", "冠军"]], ["nba总冠军！"])["squad_em"] == 100.0
    assert M.squad(["Paris"], ["the Paris."])["squad_em"] == 100.0  # English: SQuAD's rules
    assert M.normalize_answer("“北京”") == "“北京”"  # (SQuAD's own normalizer is unchanged)


def test_a_tokenizer_that_cannot_write_the_text_is_named(capsys):
    """T5's English SentencePiece turns Chinese into <unk>: training and scoring would run on
    text the model never sees. The evaluator (train.py's and evaluate.py's) says so."""
    from t5core.evaluation.evaluators import DecodeEvaluator
    from t5core.tokenizer import ByteTokenizer, load_tokenizer

    spm = load_tokenizer(str(pathlib.Path(__file__).parent / "fixtures" / "t5_vocab" /
                             "spiece.model"))
    for tokenizer, texts, warned in [(spm, ZH_REFS, True), (spm, EN_REFS, False),
                                     (ByteTokenizer(), ZH_REFS, False)]:
        DecodeEvaluator([tokenizer.encode(t, add_eos=True) for t in texts], texts, tokenizer,
                        ["bleu"], 32, 8)
        assert ("<unk>" in capsys.readouterr().err) == warned


def test_targets_the_vocabulary_cannot_write_as_they_are_are_named(capsys):
    """T5's SentencePiece normalises (NFKC): a full-width or decomposed target reads back
    otherwise, so no decoded output can equal it. Decoding evaluators say so; spacing alone,
    the byte vocabulary and rank classification (whose outputs are the labels) do not warn."""
    from t5core.evaluation.evaluators import DecodeEvaluator, RankEvaluator
    from t5core.tokenizer import ByteTokenizer, load_tokenizer

    spm = load_tokenizer(str(pathlib.Path(__file__).parent / "fixtures" / "t5_vocab" /
                             "spiece.model"))
    targets = ["positive", "ｐｏｓｉｔｉｖｅ", "cafe\u0301", "a  b "]
    inputs = [spm.encode("x", add_eos=True)] * len(targets)
    DecodeEvaluator(inputs, targets, spm, ["accuracy"], 8, 8)
    err = capsys.readouterr().err
    assert ("2 of the 4 texts of the held-out targets read back otherwise through the "
            "vocabulary (e.g. 'ｐｏｓｉｔｉｖｅ' reads back as 'positive')") in err, err
    assert "cafe\\u0301" not in err  # one example is shown
    assert spm.unwritable_warning(["cafe\u0301"], "x").endswith(
        "(e.g. 'cafe\\u0301' reads back as 'caf\\xe9'): a model can only write the latter, so "
        "exact match cannot reach them")
    DecodeEvaluator(inputs, targets, ByteTokenizer(), ["accuracy"], 8, 8)
    # Labels the vocabulary reads alike ("positive" and its full-width form) cannot be ranked.
    with pytest.raises(FlagError, match="'positive' and 'ｐｏｓｉｔｉｖｅ' are the same tokens"):
        RankEvaluator(inputs, targets, spm, ["accuracy"], 8, 8, labels=targets)
    RankEvaluator(inputs, targets, spm, ["accuracy"], 8, 8, labels=targets[1:])
    assert "read back otherwise" not in capsys.readouterr().err


def test_tables_of_labels_in_any_script_line_up_on_a_terminal():
    from t5core.evaluation.reports import format_table
    from t5core.inspection.report import table
    from t5core.metrics.scripts import display_width

    rows = {"负面": {"precision": 100.0, "recall": 100.0, "f1": 100.0, "support": 4},
            "positive": {"precision": 50.0, "recall": 1.0, "f1": 2.0, "support": 12},
            "ｆｕｌｌ": {"precision": 5.0, "recall": 1.0, "f1": 2.0, "support": 1},
            "e\u0301": {"precision": 5.0, "recall": 1.0, "f1": 2.0, "support": 1}}  # e + combining
    labels = ["负面", "positive", "ｆｕｌｌ"]
    for text in (format_table(rows, first="class"),
                 table(("token", "count"), [("答案", 3), ("answer", 12)]),
                 M.classification_report(labels, labels[::-1], labels=labels)[1]):
        widths = {display_width(line) for line in text.splitlines()
                  if line and set(line) != {"-", " "}}
        assert len(widths) == 1, text
    assert display_width("负面ab") == 6 and display_width("e\u0301") == 1
