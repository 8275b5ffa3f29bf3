"""Fine-tuning entry points: templates over local files, rank classification, classifier head."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core.errors import FlagError
from t5core.evaluation.evaluators import score_candidates
from t5core.training.run import RunOptions, run
from t5core.training.trainer import TrainConfig

TINY = {"model_type": "t5", "vocab_size": 384, "d_model": 16, "d_kv": 4, "num_heads": 2,
        "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "dropout_rate": 0.0,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def options(tmp_path, **kw):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    train = TrainConfig(model_dir=str(tmp_path / "run"), train_steps=2, batch_size=4,
                        inputs_length=48, targets_length=12, eval_every=0, eval_steps=1,
                        save_every=0, log_every=1, progress_bar=False, peak_flops=1e11,
                        optimizer="adamw", learning_rate=1e-3)
    return RunOptions(model=str(config), eval_examples=4, train=train, **kw)


SENTIMENT = [{"sentence": f"a {w} film", "label": i % 2}
             for i, w in enumerate(["good", "bad", "fine", "dull", "great", "poor", "nice", "weak"])]


def test_classification_template_over_a_jsonl_file_trains_and_scores(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", SENTIMENT)
    args = json.dumps({"label_words": ["negative", "positive"], "prefix": "sst2"})
    trainer = run(options(tmp_path, train_file=path, eval_file=path, template="classification",
                          template_args=args, rank_classification=True,
                          labels="negative,positive"), log=lambda *a: None)
    assert set(trainer.last_eval) >= {"accuracy", "f1_macro", "eval_loss"}
    # Rank classification only ever predicts a label word.
    predictions = trainer.evaluator.predict(trainer.model)
    assert set(predictions) <= {"negative", "positive"}


def test_template_errors_name_the_file_and_line(tmp_path):
    rows = SENTIMENT[:3] + [{"sentence": "odd", "label": 7}]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    args = json.dumps({"label_words": ["negative", "positive"]})
    with pytest.raises(ValueError, match=r"label '7' .*bad\.jsonl.*4"):  # numbers are text
        run(options(tmp_path, train_file=path, template="classification", template_args=args))
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"text": "no sentence field", "label": 0}])
    with pytest.raises(ValueError, match=r"sentence.*missing\.jsonl.*1"):
        run(options(tmp_path, train_file=missing, template="classification", template_args=args))
    translation = write_jsonl(tmp_path / "empty.jsonl", [{"en": "hello", "de": "hallo"},
                                                         {"en": "bye", "de": " "}])
    with pytest.raises(ValueError, match=r"empty.*empty\.jsonl.*2"):
        run(options(tmp_path, train_file=translation, template="translation"))


def test_tsv_label_outside_the_label_set_names_file_and_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("inputs\ttargets\nnice\tpositive\nawful\tnegative\nmeh\tneutral\n")
    with pytest.raises(ValueError, match=r"train\.tsv:4: label 'neutral' is not one of"):
        run(options(tmp_path, train_file=str(path), rank_classification=True,
                    labels="negative,positive"))
    path.write_text("inputs\ttargets\nnice\tpositive\nawful\t\n")
    with pytest.raises(ValueError, match=r"train\.tsv:3: empty targets"):
        run(options(tmp_path, train_file=str(path)))


def test_classifier_head_from_a_tsv_file(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("inputs\ttargets\n" + "".join(
        f"{r['sentence']}\t{['negative', 'positive'][r['label']]}\n" for r in SENTIMENT))
    trainer = run(options(tmp_path, train_file=str(path), eval_file=str(path), head="classifier",
                          labels="negative,positive", metrics="accuracy"), log=lambda *a: None)
    assert type(trainer.model).__name__ == "T5EncoderClassifier"
    assert "accuracy" in trainer.last_eval


def test_score_candidates_is_the_summed_log_likelihood():
    config = t5core.T5Config(**TINY)
    model = t5core.T5Model(config)
    rng = np.random.default_rng(0)
    enc = rng.integers(3, 300, (3, 7)).astype(np.int32)
    candidates = [[10, 11, 1], [12, 1]]
    scores = score_candidates(model, enc, candidates, targets_length=4)
    for c, cand in enumerate(candidates):
        target = np.array(cand + [0] * (4 - len(cand)))
        dec = np.r_[0, target[:-1]][None].repeat(3, 0)
        logp = tf.nn.log_softmax(model({"encoder_input_tokens": enc,
                                        "decoder_input_tokens": dec})).numpy()
        expected = sum(logp[:, t, target[t]] for t in range(len(cand)))
        np.testing.assert_allclose(scores[:, c], expected, rtol=1e-5)
    # A candidate longer than targets_length is scored whole, not cut: two that share their
    # first targets_length tokens do not tie, and no score depends on targets_length.
    candidates = [[10, 11, 12, 1], [10, 11, 13, 14, 1]]
    short = score_candidates(model, enc, candidates, targets_length=2)
    np.testing.assert_allclose(short, score_candidates(model, enc, candidates, targets_length=8),
                               rtol=1e-5)
    assert np.all(short[:, 0] != short[:, 1])


@pytest.mark.parametrize("metrics", ["accuracy", ""])
def test_rank_classification_refuses_labels_it_would_score_as_the_same_tokens(tmp_path, metrics):
    path = write_jsonl(tmp_path / "train.jsonl", [{"sentence": "好看", "label": "非常正面"},
                                                  {"sentence": "无聊", "label": "非常负面"}] * 4)
    made = options(tmp_path, train_file=path, eval_file=path, inputs_field="sentence",
                   targets_field="label", metrics=metrics, rank_classification=True,
                   labels="非常负面,非常正面")
    # Byte-level and cut to 4 tokens, both labels are the bytes of 非 and EOS: the training
    # targets of both are one.
    made = dataclasses.replace(made, train=dataclasses.replace(made.train, targets_length=4))
    with pytest.raises(FlagError, match="'非常负面' and '非常正面' are the same tokens.*at least 13"):
        run(made, log=lambda *a: None)
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_rank_classification_over_a_plain_file_without_metrics_ranks_and_scores(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("inputs\ttargets\n" + "".join(
        f"{r['sentence']}\t{['negative', 'positive'][r['label']]}\n" for r in SENTIMENT))
    trainer = run(options(tmp_path, train_file=str(path), eval_file=str(path),
                          rank_classification=True, labels="negative,positive"),
                  log=lambda *a: None)
    assert "accuracy" in trainer.last_eval
    assert set(trainer.evaluator.predict(trainer.model)) <= {"negative", "positive"}
