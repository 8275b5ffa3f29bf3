"""Metrics equal the reference packages on fixed inputs, and hand-computed values."""

import math
import random

import numpy as np
import pytest

# The metric packages are test dependencies (extras "test"/"metrics"): a
# missing one should fail loudly here, not skip.
import rouge_score.rouge_scorer as rouge_scorer
import sacrebleu
import scipy.stats as scipy_stats
import seqeval.metrics as seqeval_metrics
import sklearn.metrics as sklearn_metrics
from seqeval.metrics.sequence_labeling import get_entities

from t5core import metrics as M
from t5core.metrics import postprocess as P
from t5core.metrics import qa as S

# A 3-class confusion matrix worked out by hand:
#            pred a  pred b  pred c
#   true a      3       1       0
#   true b      0       2       1
#   true c      2       0       1
TRUE = ["a"] * 4 + ["b"] * 3 + ["c"] * 3
PRED = ["a", "a", "a", "b"] + ["b", "b", "c"] + ["c", "a", "a"]
HAND = {  # label: (precision, recall, f1, support)
    "a": (3 / 5, 3 / 4, 2 / 3, 4),
    "b": (2 / 3, 2 / 3, 2 / 3, 3),
    "c": (1 / 2, 1 / 3, 2 / 5, 3),
}


def assert_sklearn_table_in_percent(text, sklearn_text):
    """`text` is scikit-learn's table (digits=4, in [0, 1]) with every ratio in percent (2
    decimals): the same rows, labels and supports, each ratio x100."""
    ours, theirs = text.splitlines(), sklearn_text.splitlines()
    assert len(ours) == len(theirs)
    for mine, sk in zip(ours, theirs):
        assert len(mine.split()) == len(sk.split()), (mine, sk)
        for a, b in zip(mine.split(), sk.split()):
            if "." in b:  # a ratio
                assert len(a.split(".")[1]) == 2 and float(a) == pytest.approx(100 * float(b),
                                                                             abs=0.011), (a, b)
            else:
                assert a == b


def test_classification_report_hand_computed():
    report, text = M.classification_report(TRUE, PRED)
    for label, (p, r, f, s) in HAND.items():
        assert report[label]["precision"] == pytest.approx(100 * p)
        assert report[label]["recall"] == pytest.approx(100 * r)
        assert report[label]["f1-score"] == pytest.approx(100 * f)
        assert report[label]["support"] == s
    assert report["macro avg"]["precision"] == pytest.approx(100 * (3 / 5 + 2 / 3 + 1 / 2) / 3)
    assert report["macro avg"]["recall"] == pytest.approx(100 * (3 / 4 + 2 / 3 + 1 / 3) / 3)
    assert report["macro avg"]["f1-score"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 2 / 5) / 3)
    assert report["weighted avg"]["f1-score"] == pytest.approx(
        100 * (4 * 2 / 3 + 3 * 2 / 3 + 3 * 2 / 5) / 10
    )
    assert report["weighted avg"]["support"] == 10
    # All predictions valid: the pooled (micro) figure is accuracy.
    assert report["accuracy"] == pytest.approx(60.0)
    assert_sklearn_table_in_percent(
        text, sklearn_metrics.classification_report(TRUE, PRED, digits=4, zero_division=0))
    assert "macro avg" in text and "accuracy" in text and " 60.00 " in text


def test_registry_classification_matches_hand_and_sklearn():
    out = M.compute_metrics(["accuracy", "f1_macro", "f1_micro", "f1_weighted", "mcc"], TRUE, PRED)
    assert out["accuracy"] == pytest.approx(60.0)
    assert out["f1_macro"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 2 / 5) / 3)
    assert out["precision_macro"] == pytest.approx(100 * (3 / 5 + 2 / 3 + 1 / 2) / 3)
    assert out["f1_micro"] == pytest.approx(60.0)
    assert out["f1_weighted"] == pytest.approx(
        100 * sklearn_metrics.f1_score(TRUE, PRED, average="weighted")
    )
    assert out["mcc"] == pytest.approx(100 * sklearn_metrics.matthews_corrcoef(TRUE, PRED))
    per = M.compute_metrics("per_class", TRUE, PRED)
    for label, (p, r, f, s) in HAND.items():
        assert per[f"precision/{label}"] == pytest.approx(100 * p)
        assert per[f"recall/{label}"] == pytest.approx(100 * r)
        assert per[f"f1/{label}"] == pytest.approx(100 * f)
        assert per[f"support/{label}"] == s


def test_invalid_predictions_count_as_misses_not_as_a_class():
    words = {"pos", "neg"}
    targets = ["pos", "pos", "neg", "neg"]
    decoded = ["pos", "positive!", "neg", "pos"]
    out = M.compute_metrics(
        ["accuracy", "f1_micro", "f1_macro"],
        targets,
        decoded,
        postprocess=lambda s: P.string_to_label(s, words),
    )
    assert out["accuracy"] == pytest.approx(50.0)
    # Pooled: 2 true positives, 3 valid predictions, 4 gold labels.
    assert out["precision_micro"] == pytest.approx(100 * 2 / 3)
    assert out["recall_micro"] == pytest.approx(100 * 2 / 4)
    assert out["f1_micro"] == pytest.approx(100 * 4 / 7)
    preds = [P.string_to_label(s, words) for s in decoded]
    assert preds[1] == P.INVALID_LABEL
    assert out["f1_macro"] == pytest.approx(
        100 * sklearn_metrics.f1_score(targets, preds, labels=["neg", "pos"], average="macro")
    )
    report, text = M.classification_report(targets, preds)
    assert P.INVALID_LABEL not in report and "micro avg" in text
    assert report["micro avg"]["f1-score"] == pytest.approx(100 * 4 / 7)


def test_binary_f1_and_mcc_match_sklearn():
    rng = random.Random(3)
    t = [rng.choice("01") for _ in range(50)]
    p = [rng.choice("01") for _ in range(50)]
    assert M.compute_metrics("f1", t, p, pos_label="1")["f1"] == pytest.approx(
        100 * sklearn_metrics.f1_score(t, p, pos_label="1")
    )
    assert M.get_metric("mcc")(t, p)["mcc"] == pytest.approx(
        100 * sklearn_metrics.matthews_corrcoef(t, p)
    )
    with pytest.raises(ValueError, match="pos_label"):
        M.compute_metrics("f1", t, p)


def test_correlations_match_scipy_with_invalid_sentinel():
    targets = ["0.0", "1.5", "2.25", "3.8", "5.0", "4.0"]
    decoded = ["0.2", "1.0", "two", "3.5", "4.9", "nan"]
    out = M.compute_metrics(["pearson", "spearman"], targets, decoded)
    t = [float(x) for x in targets]
    p = [0.2, 1.0, P.INVALID_FLOAT, 3.5, 4.9, P.INVALID_FLOAT]
    assert out["pearson"] == pytest.approx(100 * scipy_stats.pearsonr(t, p)[0])
    assert out["spearman"] == pytest.approx(100 * scipy_stats.spearmanr(t, p)[0])
    assert math.isnan(M.pearson([1.0, 2.0], [3.0, 3.0])["pearson"])


# --------------------------------------------------------------------------
# SQuAD v1.1


def test_squad_normalisation():
    assert S.normalize_answer("The  Cat's hat!") == "cats hat"
    # Articles are whole words only; "an" inside "anthem" stays.
    assert S.normalize_answer("An anthem, the THEME.") == "anthem theme"
    assert S.normalize_answer("  a  ") == ""


@pytest.mark.parametrize(
    "pred, ref, em, f1",
    [
        ("the Eiffel Tower.", "Eiffel Tower", 1.0, 1.0),
        ("in the year 1990", "1990", 0.0, 2 * (1 / 3) * 1 / (1 / 3 + 1)),  # P=1/3, R=1
        ("x x y", "x y y", 0.0, 2 / 3),  # multiset overlap 2 of 3 each way
        ("Broncos", "Panthers", 0.0, 0.0),
        # Both normalise to "": equal strings, but the v1.1 script gives F1 0.
        ("the", "a", 1.0, 0.0),
    ],
)
def test_squad_single_pair_hand_computed(pred, ref, em, f1):
    assert S.exact_match_score(pred, ref) == em
    assert S.f1_score(pred, ref) == pytest.approx(f1)


def test_squad_corpus_max_over_references():
    targets = [
        ["Broncos", "Denver Broncos team"],  # F1 2/3 vs 0.8: max 0.8
        ["Eiffel Tower", "tower"],  # EM 1
        "1990",
    ]  # a single answer string
    preds = ["Denver Broncos", "the eiffel tower", "in the year 1990"]
    out = M.compute_metrics("squad", targets, preds)
    assert out["squad_em"] == pytest.approx(100 * (0 + 1 + 0) / 3)
    assert out["squad_f1"] == pytest.approx(100 * (0.8 + 1.0 + 0.5) / 3)


# --------------------------------------------------------------------------
# Entities


def test_bio_chunking_agrees_with_seqeval():
    rng = random.Random(0)
    tags = ["O", "B-a", "I-a", "B-b", "I-b", "E-a", "S-b", "I-creative-work", "B-creative-work"]
    for _ in range(3000):
        seq = [rng.choice(tags) for _ in range(rng.randint(0, 9))]
        assert P.bio_to_spans(seq) == get_entities(seq), seq
    with pytest.raises(ValueError, match="X-person"):
        P.bio_to_spans(["O", "X-person"])


def test_entity_format_round_trip_and_malformed_output():
    ents = [
        ("location", "Empire State Building"),
        ("person", "Tom &amp; Jerry"),
        ("creative-work", "Star Wars: Episode IV"),
    ]
    text = P.format_entities(ents)
    assert text == (
        "location: Empire State Building ; person: Tom &amp; Jerry ; "
        "creative-work: Star Wars: Episode IV"
    )
    assert P.parse_entities(text) == ents
    assert P.format_entities([]) == P.NO_ENTITIES and P.parse_entities(" none ") == []
    assert P.parse_entities("person: Bob ; gibberish") == [
        ("person", "Bob"),
        (P.INVALID_ENTITY_TYPE, "gibberish"),
    ]


def test_entity_f1_hand_computed():
    gold = [
        [("person", "Bob"), ("location", "Paris")],
        [],
        [("group", "EU"), ("group", "EU"), ("product", "iPhone")],
    ]
    pred = [
        [("person", "Bob"), ("person", "Paris")],  # 1 right, 1 wrong type
        [("location", "Rome")],  # spurious
        [("group", "EU"), ("product", "iPhone"), ("product", "iPad")],
    ]  # EU once only
    # tp = 1 + 0 + 2 = 3; predicted = 2 + 1 + 3 = 6; gold = 2 + 0 + 3 = 5.
    out = M.entity_f1(gold, pred, per_type=True)
    assert out["entity_precision"] == pytest.approx(100 * 3 / 6)
    assert out["entity_recall"] == pytest.approx(100 * 3 / 5)
    assert out["entity_f1"] == pytest.approx(100 * 2 * 0.5 * 0.6 / 1.1)
    # group: tp 1, pred 1, gold 2.  product: tp 1, pred 2, gold 1.
    assert out["entity_precision/group"] == pytest.approx(100.0)
    assert out["entity_recall/group"] == pytest.approx(50.0)
    assert out["entity_f1/product"] == pytest.approx(100 * 2 / 3)
    # Same through the string form the NER template emits.
    strings = M.compute_metrics(
        "entity_f1",
        [P.format_entities(g) for g in gold],
        [P.format_entities(p) for p in pred],
        postprocess=P.parse_entities,
    )
    assert strings["entity_f1"] == pytest.approx(out["entity_f1"])


def test_entity_f1_equals_seqeval_on_tag_sequences():
    rng = random.Random(1)
    types = ["person", "location", "creative-work"]

    def random_tags(n):
        tags, prev = [], "O"
        for _ in range(n):
            r = rng.random()
            if r < 0.5:
                tag = "O"
            elif r < 0.8 or prev == "O":
                tag = "B-" + rng.choice(types)
            else:
                tag = "I-" + (prev[2:] if rng.random() < 0.8 else rng.choice(types))
            tags.append(tag)
            prev = tag
        return tags

    gold_tags, pred_tags, gold_ents, pred_ents = [], [], [], []
    for s in range(200):
        n = rng.randint(1, 12)
        tokens = [f"w{s}_{i}" for i in range(n)]  # unique texts: text-level == span-level
        g = random_tags(n)
        p = [t if rng.random() < 0.7 else rng.choice(["O", "B-person", "I-location"]) for t in g]
        gold_tags.append(g)
        pred_tags.append(p)
        gold_ents.append(P.bio_to_entities(tokens, g))
        pred_ents.append(P.bio_to_entities(tokens, p))
    ours = M.entity_f1(gold_ents, pred_ents)
    sq = M.seqeval_f1(gold_tags, pred_tags)
    assert sq["seqeval_f1"] == pytest.approx(100 * seqeval_metrics.f1_score(gold_tags, pred_tags))
    assert 20 < sq["seqeval_f1"] < 95  # a non-trivial case
    assert ours["entity_f1"] == pytest.approx(sq["seqeval_f1"])
    assert ours["entity_precision"] == pytest.approx(sq["seqeval_precision"])
    assert ours["entity_recall"] == pytest.approx(sq["seqeval_recall"])


# --------------------------------------------------------------------------
# BLEU and ROUGE

HYPS = [
    "The cat sat on the mat.",
    "A man is playing a guitar on stage .",
    "Two dogs run through the snowy field.",
    "Hello, world!",
]
REFS = [
    "The cat is sitting on the mat.",
    "A man plays the guitar on a stage .",
    "Two dogs are running in a field of snow.",
    "Hello world",
]
REFS2 = [
    "A cat sat on a mat.",
    "Someone is playing guitar on stage .",
    "Dogs running through snow.",
    "Hi, world!",
]


def test_bleu_equals_sacrebleu():
    assert M.bleu(REFS, HYPS)["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    multi = [[a, b] for a, b in zip(REFS, REFS2, strict=True)]
    assert M.bleu(multi, HYPS)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(HYPS, [REFS, REFS2]).score
    )
    intl = M.compute_metrics("bleu", REFS, HYPS, tokenize="intl")["bleu"]
    assert intl == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="intl").score)
    assert 0 < M.bleu(REFS, HYPS)["bleu"] < 100
    with pytest.raises(ValueError, match="same number of references"):
        M.bleu([["a", "b"], ["c"]], ["a", "c"])


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_equals_rouge_score(use_stemmer):
    keys = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(keys, use_stemmer=use_stemmer)
    expected = {k: 0.0 for k in keys}
    for ref, hyp in zip(REFS, HYPS, strict=True):
        s = scorer.score(ref.replace(" . ", " .\n"), hyp.replace(" . ", " .\n"))
        for k in keys:
            expected[k] += 100 * s[k].fmeasure / len(REFS)
    out = M.compute_metrics("rouge", REFS, HYPS, use_stemmer=use_stemmer)
    assert out == pytest.approx(expected)


def test_rouge_stemming_and_sentence_marks_matter():
    ref, hyp = ["dogs are running"], ["dog is run"]
    assert M.rouge(ref, hyp, use_stemmer=True)["rouge1"] > M.rouge(ref, hyp)["rouge1"]
    # rougeLsum takes the union LCS per reference sentence (" . " marks an end),
    # so reordered sentences keep their credit there but not in rougeL.
    ref, hyp = ["the cat sat . the dog ran"], ["the dog ran . the cat sat"]
    out = M.rouge(ref, hyp)
    assert out["rougeLsum"] > out["rougeL"]
    multi = M.rouge([["no overlap here", "the cat sat"]], ["the cat sat"])
    assert multi["rouge1"] == pytest.approx(100.0)


# --------------------------------------------------------------------------
# Registry


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown metric 'blue'.*bleu.*rouge"):
        M.get_metric("blue")
    with pytest.raises(ValueError, match="tokenise"):
        M.compute_metrics("bleu", REFS, HYPS, tokenise="intl")
    with pytest.raises(ValueError, match="4 targets but 3 predictions"):
        M.compute_metrics("accuracy", REFS, HYPS[:3])
    with pytest.raises(ValueError, match="empty"):
        M.compute_metrics("accuracy", [], [])
    assert set(M.compute_metrics(["bleu", "rouge", "squad"], REFS, HYPS)) == {
        "bleu",
        "rouge1",
        "rouge2",
        "rougeL",
        "rougeLsum",
        "squad_em",
        "squad_f1",
    }


def test_scores_are_finite_numbers():
    out = M.compute_metrics(["accuracy", "f1_macro", "mcc"], TRUE, PRED)
    assert all(isinstance(v, float) and np.isfinite(v) for v in out.values())


@pytest.mark.parametrize("seed", range(4))
def test_counting_metrics_equal_sklearn_on_random_labels(seed):
    """The counting metrics are computed without sklearn; they must agree with it exactly."""
    rng = random.Random(seed)
    words = ["neg", "pos", "neutral", "mixed"][: 2 + seed % 3]
    targets = [rng.choice(words) for _ in range(60)]
    # Some invalid predictions, and (seed 3) a label never predicted.
    predictions = [rng.choice(words[:-1] if seed == 3 else words + [P.INVALID_LABEL])
                   for _ in range(60)]
    labels = M.classification.checked_labels(targets, predictions)
    out = M.compute_metrics(["accuracy", "f1_macro", "f1_micro", "f1_weighted", "mcc",
                             "per_class"], targets, predictions)
    assert out["accuracy"] == pytest.approx(
        100 * sklearn_metrics.accuracy_score(targets, predictions))
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = sklearn_metrics.precision_recall_fscore_support(
            targets, predictions, labels=labels, average=average, zero_division=0)
        assert out[f"precision_{average}"] == pytest.approx(100 * p)
        assert out[f"recall_{average}"] == pytest.approx(100 * r)
        assert out[f"f1_{average}"] == pytest.approx(100 * f)
    assert out["mcc"] == pytest.approx(100 * sklearn_metrics.matthews_corrcoef(targets,
                                                                                predictions))
    f1 = sklearn_metrics.f1_score(targets, predictions, labels=labels, average=None,
                                  zero_division=0)
    for label, value in zip(labels, f1):
        assert out[f"f1/{label}"] == pytest.approx(100 * value)
    assert M.compute_metrics("f1", targets, predictions, pos_label="pos")["f1"] == pytest.approx(
        100 * sklearn_metrics.f1_score(targets, predictions, labels=["pos"], average="micro",
                                       zero_division=0))
    report, text = M.classification_report(targets, predictions)
    kwargs = dict(labels=labels, target_names=labels, zero_division=0)
    assert_sklearn_table_in_percent(text, sklearn_metrics.classification_report(
        targets, predictions, digits=4, **kwargs))
    expected = sklearn_metrics.classification_report(targets, predictions, output_dict=True,
                                                     **kwargs)
    assert report.keys() == expected.keys()
    for key, row in expected.items():
        if isinstance(row, dict):
            row = {k: v if k == "support" else 100 * v for k, v in row.items()}
        else:
            row = 100 * row  # accuracy
        assert report[key] == pytest.approx(row)


def test_accuracy_f1_and_report_need_no_sklearn():
    """The base install has no scikit-learn or scipy: the main job's metrics work without them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['sklearn'] = sys.modules['scipy'] = None  # importing them fails\n"
        "from t5core import metrics as M\n"
        "out = M.compute_metrics(['accuracy', 'f1_macro', 'mcc'], list('aabbc'), list('abbbc'))\n"
        "print(round(out['accuracy'], 3), round(out['f1_macro'], 3))\n"
        "print(M.classification_report(list('aabbc'), list('abbbc'))[1].splitlines()[2])\n"
        "try:\n"
        "    M.compute_metrics('pearson', ['1', '2'], ['1', '2'])\n"
        "except ImportError as err:\n"
        "    print('pearson:', err)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "80.0 82.222"  # f1: a 2/3, b 4/5, c 1 -> mean 0.8222
    assert lines[1].split() == ["a", "100.00", "50.00", "66.67", "2"]
    assert "needs the 'scipy' package" in lines[2]
