"""The model-directory contract in detail: what a run records, what resuming checks, how the
trainer's options find a config and tokenizer, and evaluate.py's reports. In-process and fast;
tests/test_journeys.py runs the same seams end to end through the scripts."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core import model_dir
from t5core.errors import FlagError
from t5core.metrics import INVALID_LABEL
from t5core.classifier import T5EncoderClassifier
from t5core.peft import PromptTunedT5, apply_lora, describe_structure
from t5core.evaluation import reports
from t5core.training.run import RunOptions, model_config, resolve_vocab
from t5core.model_dir import ModelDirMismatchError
from t5core.training.trainer import TrainConfig
from conftest import FIXTURES, bind_model_dir

VOCAB = FIXTURES / "t5_vocab" / "spiece.model"


@pytest.fixture
def config(tiny_config):
    return tiny_config


def test_structure_describes_lora_prompt_and_classifier(config):
    lora = apply_lora(t5core.T5Model(config), rank=3, alpha=6.0, targets="q,wi")
    assert describe_structure(lora) == {"model_class": "T5Model", "lora_rank": 3,
                                        "lora_alpha": 6.0, "lora_targets": "q,wi_0,wi_1"}
    # Targets that no projection name selects exactly are recorded as paths.
    some = apply_lora(t5core.T5Model(config), rank=2, targets="decoder/block_1/*/q")
    assert describe_structure(some)["lora_targets"] == (
        "decoder/block_1/cross_attention/q,decoder/block_1/self_attention/q")
    prompt = PromptTunedT5(t5core.T5Model(config), 4, "random")
    assert describe_structure(prompt) == {"model_class": "PromptTunedT5", "prompt_length": 4,
                                          "prompt_init": "random"}
    classifier = T5EncoderClassifier(config, 3, pooling="first")
    assert describe_structure(classifier) == {"model_class": "T5EncoderClassifier",
                                              "head": "classifier", "labels": ("0", "1", "2"),
                                              "pooling": "first"}


def test_a_lora_run_reloads_as_trained_or_merged(config, tmp_path):
    keras.utils.set_random_seed(1)
    model = apply_lora(t5core.T5Model(config), rank=2, targets="q,v,wo")
    for layer in t5core.peft.lora_layers(model).values():
        layer.lora_b.assign(np.random.default_rng(0).normal(size=layer.lora_b.shape) * 0.1)
    bind_model_dir(str(tmp_path), model)
    t5core.write_tf_checkpoint(model, str(tmp_path))
    features = {"encoder_input_tokens": np.array([[5, 6, 7, 1]]),
                "decoder_input_tokens": np.array([[0, 9, 8]])}
    expected = model(features).numpy()
    merged = t5core.load_pretrained(str(tmp_path))
    kept = t5core.load_pretrained(str(tmp_path), merge_lora=False)
    assert not t5core.peft.lora_layers(merged) and len(t5core.peft.lora_layers(kept)) == 16
    np.testing.assert_allclose(merged(features).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(kept(features).numpy(), expected, atol=1e-6)
    assert len(merged.trainable_variables) == len(merged.weights)  # plain and trainable again


def test_a_run_converted_to_tf_keeps_what_its_run_json_tells_every_program(config, tmp_path):
    """convert_checkpoint --format=tf of a LoRA run: the output's run.json is the run's own
    (data options, rank-classification labels, precision, the files it read), only the LoRA
    merged away, so evaluate, generate and export read the output as they read the run."""
    from t5core.commands import convert_checkpoint

    keras.utils.set_random_seed(2)
    run = tmp_path / "run"
    model = apply_lora(t5core.T5Model(config), rank=2, targets="q,v")
    data = {"task": "", "eval_file": str(tmp_path / "eval.jsonl"), "template": "",
            "inputs_length": 24, "targets_length": 3, "rank_classification": True, "seed": 5}
    bind_model_dir(str(run), model, model_dir.RunDescription(
        tokenizer="byte", precision="mixed_bfloat16", labels=("yes", "no"), peft="lora",
        data=data))
    t5core.write_tf_checkpoint(model, str(run))
    out = tmp_path / "tf"
    assert convert_checkpoint.main([f"--input={run}", f"--output={out}", "--format=tf",
                                    "--quiet"]) == 0
    recorded, converted = model_dir.read_run(str(run)), model_dir.read_run(str(out))
    assert recorded.lora_rank == 2 and converted.lora_rank == 0
    unmerged = {"lora_rank", "lora_alpha", "lora_targets"}
    assert {k: v for k, v in converted.to_json().items() if k not in unmerged} == \
        {k: v for k, v in recorded.to_json().items() if k not in unmerged}
    assert not t5core.peft.lora_layers(t5core.load_pretrained(str(out)))


def test_resuming_checks_structure_and_tokenizer(config, tmp_path):
    run = model_dir.RunDescription(tokenizer=str(VOCAB), peft="lora")
    bind_model_dir(str(tmp_path), apply_lora(t5core.T5Model(config), rank=4), run)
    assert (tmp_path / model_dir.SENTENCEPIECE_VOCAB).read_bytes() == VOCAB.read_bytes()
    assert model_dir.read_run(str(tmp_path)).tokenizer == model_dir.SENTENCEPIECE_VOCAB
    assert model_dir.read_config(str(tmp_path)) == config
    as_model = RunOptions(model=str(tmp_path), train=TrainConfig(model_dir=str(tmp_path / "x")))
    assert model_config(as_model) == config  # --model=<run dir>
    assert resolve_vocab(as_model) == (str(tmp_path / "spiece.model"), "--model")
    # Once it holds a checkpoint: the same settings resume; another LoRA rank, another class
    # or another vocabulary do not.
    tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / "ckpt"))
    bind_model_dir(str(tmp_path), apply_lora(t5core.T5Model(config), rank=4), run)
    with pytest.raises(ModelDirMismatchError, match="lora_rank: saved 4, now 2"):
        bind_model_dir(str(tmp_path), apply_lora(t5core.T5Model(config), rank=2), run)
    with pytest.raises(ModelDirMismatchError, match="model_class: saved 'T5Model', now "
                                                    "'PromptTunedT5'"):
        bind_model_dir(str(tmp_path), PromptTunedT5(apply_lora(t5core.T5Model(config), rank=4),
                                                     2, "random"), run)
    # Every config field but dropout and the initializer changes what the weights compute.
    for field, value in [("relative_attention_max_distance", 64), ("layer_norm_epsilon", 1e-5),
                         ("eos_token_id", 2)]:
        with pytest.raises(ModelDirMismatchError, match=f"{field}: saved .*, now {value}"):
            bind_model_dir(str(tmp_path), apply_lora(
                t5core.T5Model(config.replace(**{field: value})), rank=4), run)
    bind_model_dir(str(tmp_path), apply_lora(t5core.T5Model(
        config.replace(dropout_rate=0.3, initializer_factor=2.0)), rank=4), run)
    other = tmp_path / "other.model"
    other.write_bytes(VOCAB.read_bytes()[:-1] + b"x")
    with pytest.raises(t5core.errors.ModelDirError, match="another tokenizer"):
        bind_model_dir(str(tmp_path), apply_lora(t5core.T5Model(config), rank=4),
                        model_dir.RunDescription(tokenizer=str(other)))
    with pytest.raises(ModelDirMismatchError, match="tokenizer: saved spiece.model, now byte"):
        bind_model_dir(str(tmp_path), apply_lora(t5core.T5Model(config), rank=4),
                        model_dir.RunDescription(tokenizer="byte"))


def test_a_checkpoint_dir_without_run_json_loads_and_names_its_config(config, tmp_path):
    model = t5core.T5Model(config)
    t5core.write_tf_checkpoint(model, str(tmp_path))  # config.json and weights, no run.json
    assert not (tmp_path / model_dir.RUN).exists()
    loaded = t5core.load_pretrained(str(tmp_path))
    for name, value in model.variables_by_name().items():
        np.testing.assert_array_equal(loaded.variables_by_name()[name].numpy(), value.numpy())
    options = RunOptions(model=str(tmp_path), train=TrainConfig(model_dir=str(tmp_path / "x")))
    assert model_config(options) == config
    # It records no vocabulary: the byte default, never a guess.
    assert resolve_vocab(options) == ("byte", "default")


def test_model_and_vocab_come_from_the_checkpoint_unless_given(tmp_path):
    snapshot = tmp_path / "hf"
    t5core.export_hf(t5core.T5Model(t5core.T5Config(vocab_size=32128, d_model=8, d_kv=4,
                                                    num_heads=2, d_ff=16, num_layers=1)),
                     str(snapshot))
    shutil.copy(VOCAB, snapshot / "spiece.model")
    train = TrainConfig(model_dir=str(tmp_path / "run"))
    options = RunOptions(init_checkpoint=str(snapshot), train=train)
    assert model_config(options).d_model == 8
    assert resolve_vocab(options) == (str(snapshot / "spiece.model"), "--init_checkpoint")
    given = RunOptions(init_checkpoint=str(snapshot), model="t5-small", vocab="byte", train=train)
    assert model_config(given).d_model == 512 and resolve_vocab(given) == ("byte", "--vocab")
    t5x = RunOptions(init_checkpoint=str(FIXTURES / "t5x_tiny" / "test_t5_tiny.checkpoint_0"),
                     train=train)
    with pytest.raises(FlagError, match="pass --model"):
        model_config(t5x)


def test_data_options_fall_back_on_the_run_but_the_source_is_all_or_nothing():
    run = model_dir.RunDescription(labels=("neg", "pos"), data={
        "task": "sst2_file", "template": "classification", "inputs_length": 64})
    options = reports.data_options({"eval_file": "test.jsonl", "inputs_length": None}, run)
    assert options["eval_file"] == "test.jsonl" and options["task"] == ""
    assert options["template"] == "classification" and options["inputs_length"] == 64
    assert options["labels"] == "neg,pos" and options["targets_length"] == 128
    assert reports.data_options({}, run)["task"] == "sst2_file"
    assert reports.data_options({"labels": "a,b"}, None)["labels"] == "a,b"


def test_per_class_report_covers_the_label_set_only():
    test = reports.TestSet(inputs=[[1]] * 5, targets=["neg", "pos", "pos", "neg", "pos"],
                           metrics=["accuracy", "f1_macro"], labels=["neg", "pos"])
    report = reports.score(test, ["neg", "pos", "", "pos", INVALID_LABEL])
    assert set(report["per_class"]) == {"neg", "pos", "micro avg", "macro avg", "weighted avg"}
    assert report["invalid_predictions"] == 2
    assert report["per_class"]["pos"] == pytest.approx(
        {"precision": 50.0, "recall": 100 / 3, "f1": 40.0, "support": 3})
    assert report["metrics"]["accuracy"] == pytest.approx(40.0)
    # Macro F1 over the two declared classes, not over an extra "" class.
    assert report["metrics"]["f1_macro"] == pytest.approx((2 / 3 * 100 + 40.0) / 2)
    text = reports.format_report(report)
    table = text.split("\n\n")[1].splitlines()
    assert table[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert len({len(line) for line in table}) == 1 and table[2].startswith("pos ")
    assert "2 prediction(s) are none of the labels" in text


def test_per_entity_type_report():
    test = reports.TestSet(inputs=[[1]] * 3, metrics=["entity_f1"], labels=[], entities=True,
                           targets=["PER: Ann ; LOC: Rome", "LOC: Oslo", "none"])
    report = reports.score(test, ["PER: Ann", "LOC: Oslo ; PER: Bob", "LOC: Rome"])
    assert report["metrics"]["entity_f1"] == pytest.approx(100 * 2 * 0.5 * 2 / 3 / (0.5 + 2 / 3))
    assert report["per_entity_type"]["PER"] == pytest.approx(
        {"precision": 50.0, "recall": 100.0, "f1": 100 * 2 / 3, "support": 1})
    assert report["per_entity_type"]["LOC"] == pytest.approx(
        {"precision": 50.0, "recall": 50.0, "f1": 50.0, "support": 2})
    assert "entity type" in reports.format_report(report)


def test_a_test_file_is_read_as_training_read_it(tmp_path):
    rows = [{"sentence": "fine", "label": 1}, {"sentence": "awful", "label": 0}]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    options = reports.data_options({"eval_file": str(path), "template": "classification",
                                    "template_args": '{"label_words": ["neg", "pos"]}'}, None)
    test = reports.load_test_set(options, t5core.ByteTokenizer())
    assert test.targets == ["pos", "neg"] and test.labels == ["neg", "pos"]
    assert test.metrics == ["accuracy", "f1_macro"] and test.postprocess is not None
    assert test.inputs[0] == t5core.ByteTokenizer().encode("sentence: fine", add_eos=True)
    with pytest.raises(FlagError, match="give --eval_file"):
        reports.load_test_set(reports.data_options({}, None), t5core.ByteTokenizer())
