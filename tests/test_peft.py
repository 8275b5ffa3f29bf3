"""Parameter-efficient fine-tuning and the classification head (t5core.peft).

Every "what trained" test runs real Adam steps (the LoRA, prompt and classifier ones through the
trainer's compiled StepBuilder, the rest eagerly for speed) and then compares every model
variable before and after against a set of names derived independently from the paths.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t5core.checkpoints import export, load_pretrained
from t5core.config import T5Config
from t5core.losses import cross_entropy_loss
from t5core.classifier import T5EncoderClassifier
from t5core.model import T5Model
from t5core.peft import (PEFT_METHODS, LoRADense, PromptTunedT5, apply_peft, describe_structure,
                         lora_layers, merge_lora, trainable_summary, trainable_variable_names)
from t5core.training.steps import StepBuilder

TINY = dict(vocab_size=64, d_model=16, d_kv=4, num_heads=2, d_ff=24, num_layers=2,
            num_decoder_layers=2, relative_attention_num_buckets=8,
            relative_attention_max_distance=16, dropout_rate=0.0)


def config(**overrides):
    return T5Config(**{**TINY, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
                       **overrides})


def model_of(cfg=None, seed=0, **kw):
    keras.utils.set_random_seed(seed)
    return T5Model(cfg or config(), **kw)


def seq2seq_batch(seed=0, batch=4, inputs=7, targets=5):
    rng = np.random.default_rng(seed)
    enc = rng.integers(3, 64, size=(batch, inputs)).astype(np.int32)
    enc[1, 4:] = 0  # padded rows exercise the masks
    enc[3, 2:] = 0
    tgt = rng.integers(3, 64, size=(batch, targets)).astype(np.int32)
    tgt[:, -1] = 1
    tgt[2, 3:] = 0
    dec = np.concatenate([np.zeros((batch, 1), np.int32), tgt[:, :-1]], axis=1)
    return {"encoder_input_tokens": tf.constant(enc), "decoder_input_tokens": tf.constant(dec),
            "decoder_target_tokens": tf.constant(tgt),
            "decoder_loss_weights": tf.constant((tgt > 0).astype(np.float32))}


def train_steps(model, batch, steps=2, learning_rate=1e-2, via_trainer=False):
    """`steps` Adam steps: eagerly (fast for a tiny model), or through the trainer's own
    compiled step code (StepBuilder on the default strategy) when via_trainer."""
    optimizer = keras.optimizers.Adam(learning_rate)
    if via_trainer:
        step = StepBuilder(model, optimizer, tf.distribute.get_strategy()).train_step()
        return [float(step(batch)["loss"]) for _ in range(steps)]
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            if hasattr(model, "loss_sums"):
                aux = model.loss_sums(batch, training=True)
            else:
                logits = model({k: batch[k] for k in ("encoder_input_tokens",
                                                      "decoder_input_tokens")}, training=True)
                _, aux = cross_entropy_loss(logits, batch["decoder_target_tokens"],
                                            batch["decoder_loss_weights"])
            loss = aux["loss_sum"] / aux["normalizer"]
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        losses.append(float(loss))
    return losses


def snapshot(model):
    return {name: v.numpy().copy() for name, v in model.variables_by_name().items()}


def changed_names(model, before):
    after = snapshot(model)
    assert set(after) == set(before)
    return {n for n in after if not np.array_equal(after[n], before[n])}


def assert_trains_exactly(model, expected, batch=None, steps=2, via_trainer=False):
    names = set(model.variables_by_name())
    assert expected <= names and expected, "the expected set must name real variables"
    assert set(trainable_variable_names(model)) == expected
    before = snapshot(model)
    losses = train_steps(model, batch or seq2seq_batch(), steps, via_trainer=via_trainer)
    assert all(np.isfinite(losses))
    changed = changed_names(model, before)
    assert changed == expected, (f"changed but frozen: {sorted(changed - expected)}; "
                                 f"trainable but unchanged: {sorted(expected - changed)}")


# -- freezing ---------------------------------------------------------------------------------------
def test_freeze_embeddings_trains_everything_but_the_embedding():
    model = apply_peft(model_of(), "freeze_embeddings")
    expected = set(model.variables_by_name()) - {"shared/embeddings"}
    assert "lm_head/kernel" in expected  # untied head stays trainable
    assert_trains_exactly(model, expected)


def test_freeze_encoder_trains_decoder_embedding_and_head():
    model = apply_peft(model_of(), "freeze_encoder")
    expected = {n for n in model.variables_by_name() if not n.startswith("encoder/")}
    assert "shared/embeddings" in expected and "decoder/block_0/ffn/wo/kernel" in expected
    assert_trains_exactly(model, expected)


@pytest.mark.parametrize("tied", [False, True])
def test_top_n_trains_last_decoder_blocks_final_norm_and_head(tied):
    cfg = config(num_decoder_layers=3, tie_word_embeddings=tied,
                 feed_forward_proj="relu" if tied else "gated-gelu")
    model = apply_peft(model_of(cfg), "top_n", top_n=2)
    expected = {n for n in model.variables_by_name()
                if n.startswith(("decoder/block_1/", "decoder/block_2/"))
                or n in ("decoder/final_layer_norm/scale", "lm_head/kernel")}
    assert ("lm_head/kernel" in expected) == (not tied)
    assert_trains_exactly(model, expected)


def test_top_n_out_of_range_and_unknown_method_are_clear_errors():
    with pytest.raises(ValueError, match=r"top_n=3.*\[0, 2\].*decoder"):
        apply_peft(model_of(), "top_n", top_n=3)
    with pytest.raises(ValueError, match="--peft='adapters'.*lora"):
        apply_peft(model_of(), "adapters")
    assert set(PEFT_METHODS) >= {"none", "freeze_embeddings", "freeze_encoder", "top_n",
                                 "prompt", "lora"}


# -- prompt tuning ----------------------------------------------------------------------------------
def test_prompt_tuning_trains_only_the_prompt_and_uses_it():
    base = model_of()
    batch = seq2seq_batch()
    features = {k: batch[k] for k in ("encoder_input_tokens", "decoder_input_tokens")}
    model = apply_peft(base, "prompt", prompt_length=3, seed=1)
    assert isinstance(model, PromptTunedT5)
    # Shared, not copied: the base's variables are the prompt model's.
    assert model.shared.embeddings is base.shared.embeddings
    assert model.encode(features["encoder_input_tokens"]).shape == (4, 10, 16)
    assert_trains_exactly(model, {"prompt/embeddings"}, batch, via_trainer=True)
    # The prompt is read: changing it changes the logits.
    logits = model(features).numpy()
    model.prompt.embeddings.assign(model.prompt.embeddings + 1.0)
    assert not np.allclose(model(features).numpy(), logits, atol=1e-3)


def test_prompt_vocab_init_copies_embedding_rows():
    model = apply_peft(model_of(), "prompt", prompt_length=4, seed=3)
    table = model.shared.embeddings.numpy()
    for row in model.prompt.embeddings.numpy():
        matches = np.flatnonzero((table == row).all(axis=1))
        assert matches.size == 1 and matches[0] >= 3  # an ordinary token, not pad/eos/unk
    random = apply_peft(model_of(), "prompt", prompt_length=4, prompt_init="random")
    values = random.prompt.embeddings.numpy()
    assert values.min() >= -0.5 and values.max() <= 0.5 and values.std() > 0.1


def test_prompt_tuned_cache_decoding_matches_full_forward():
    model = apply_peft(model_of(), "prompt", prompt_length=3, seed=0)
    model.prompt.embeddings.assign(tf.random.normal(model.prompt.embeddings.shape, seed=5))
    batch = seq2seq_batch(seed=2)
    enc, dec = batch["encoder_input_tokens"], batch["decoder_input_tokens"]
    full = model({"encoder_input_tokens": enc, "decoder_input_tokens": dec}).numpy()
    cache = model.init_cache(model.encode(enc), enc, max_length=dec.shape[1])
    # The cross-attention mask spans prompt + text and keeps the prompt slots unmasked.
    bias = cache["cross_bias"].numpy()[:, 0, 0, :]
    assert bias.shape == (4, 3 + enc.shape[1])
    np.testing.assert_array_equal(bias[:, :3], 0.0)
    np.testing.assert_array_equal(bias[:, 3:] < 0, enc.numpy() == 0)
    for step in range(dec.shape[1]):
        logits, cache = model.decode_step(dec[:, step], cache, tf.constant(step))
        np.testing.assert_allclose(logits.numpy(), full[:, step], rtol=1e-5, atol=1e-5)


def test_prompt_tuned_generate_equals_greedy_full_forward():
    from t5core.decoding import generate

    model = apply_peft(model_of(), "prompt", prompt_length=2, seed=0)
    enc = seq2seq_batch(seed=4)["encoder_input_tokens"]
    tokens, _ = generate(model, enc, max_new_tokens=4, jit_compile=False, eos_id=-1)
    dec = np.zeros((4, 1), np.int32)
    for _ in range(4):  # greedy by full re-encoding, no cache
        logits = model({"encoder_input_tokens": enc, "decoder_input_tokens": tf.constant(dec)})
        dec = np.concatenate([dec, np.argmax(logits[:, -1], -1)[:, None].astype(np.int32)], 1)
    np.testing.assert_array_equal(tokens.numpy(), dec[:, 1:])


def test_prompt_tuning_refuses_packed_rows():
    model = apply_peft(model_of(), "prompt", prompt_length=2)
    batch = seq2seq_batch()
    features = {"encoder_input_tokens": batch["encoder_input_tokens"],
                "decoder_input_tokens": batch["decoder_input_tokens"],
                "encoder_segment_ids": tf.ones_like(batch["encoder_input_tokens"])}
    with pytest.raises(ValueError, match="packed.*encoder_segment_ids"):
        model(features)
    with pytest.raises(ValueError, match="prompt_length must be an integer >= 1, got 0"):
        apply_peft(model_of(), "prompt", prompt_length=0)


# -- LoRA -------------------------------------------------------------------------------------------
LORA_TARGETS = ("q", "v", "wi")


def expected_lora_names(model):
    names = set()
    for n in model.variables_by_name():
        parts = n.split("/")
        if parts[-1] in ("lora_a", "lora_b") and parts[-2] in ("q", "v", "wi_0", "wi_1"):
            names.add(n)
    return names


def test_lora_trains_only_the_low_rank_matrices_and_keeps_base_paths():
    base = model_of()
    plain_vars = base.variables_by_name()
    model = apply_peft(base, "lora", lora_rank=2, lora_alpha=4.0, lora_targets=LORA_TARGETS)
    names = model.variables_by_name()
    # Base variables keep their paths (and identity); LoRA adds a and b beside each target.
    assert all(names[n] is v for n, v in plain_vars.items())
    wrapped = lora_layers(model)
    per_block = ["self_attention/q", "self_attention/v", "ffn/wi_0", "ffn/wi_1"]
    assert len(wrapped) == 2 * 4 + 2 * 6  # decoder blocks add cross_attention/q and /v
    assert "encoder/block_1/self_attention/q" in wrapped and "decoder/block_0/ffn/wi_1" in wrapped
    assert all(f"encoder/block_0/{p}" in wrapped for p in per_block)
    assert names["encoder/block_0/self_attention/q/lora_a"].shape == (16, 2)
    assert names["encoder/block_0/self_attention/q/lora_b"].shape == (2, 8)
    expected = expected_lora_names(model)
    assert len(expected) == 2 * len(wrapped)
    # B starts at zero, so the model starts out exactly as the base.
    batch = seq2seq_batch()
    assert all(not np.any(w.lora_b.numpy()) for w in wrapped.values())
    # Two steps: at B = 0 the gradient of A is zero, so A first moves in step 2.
    assert_trains_exactly(model, expected, batch, steps=2, via_trainer=True)


def test_lora_scale_is_alpha_over_rank():
    model = apply_peft(model_of(), "lora", lora_rank=4, lora_alpha=2.0, lora_targets=["o"])
    layer = lora_layers(model)["decoder/block_1/cross_attention/o"]
    assert isinstance(layer, LoRADense) and layer.scale == 0.5
    layer.lora_b.assign(tf.random.normal(layer.lora_b.shape, seed=1))
    x = tf.random.normal([3, 8], seed=2)
    expected = x @ layer.base.kernel + 0.5 * (x @ layer.lora_a) @ layer.lora_b
    np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_merged_lora_gives_the_unmerged_logits():
    model = apply_peft(model_of(), "lora", lora_rank=2, lora_alpha=8.0,
                       lora_targets=["q", "k", "v", "o", "wi", "wo"])
    plain_names = set(model_of().variables_by_name())
    batch = seq2seq_batch(seed=5)
    for layer in lora_layers(model).values():  # as after training: b no longer zero
        layer.lora_b.assign(tf.random.normal(layer.lora_b.shape, seed=6) * 0.3)
    features = {k: batch[k] for k in ("encoder_input_tokens", "decoder_input_tokens")}
    unmerged = model(features).numpy()
    merged = merge_lora(model)
    assert not lora_layers(merged)
    assert set(merged.variables_by_name()) == plain_names
    scale = np.abs(unmerged).max()
    np.testing.assert_allclose(merged(features).numpy(), unmerged, rtol=1e-5, atol=1e-5 * scale)


def test_merged_lora_exports_as_a_plain_hf_checkpoint(tmp_path):
    model = apply_peft(model_of(), "lora", lora_rank=2, lora_targets=["q", "v"])
    for layer in lora_layers(model).values():
        layer.lora_b.assign(tf.random.normal(layer.lora_b.shape, seed=7) * 0.1)
    features = {k: v for k, v in seq2seq_batch().items()
                if k in ("encoder_input_tokens", "decoder_input_tokens")}
    expected = model(features).numpy()
    export.export_hf(merge_lora(model), str(tmp_path / "hf"))
    reloaded = load_pretrained(str(tmp_path / "hf"))
    np.testing.assert_allclose(reloaded(features).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_lora_target_errors_name_the_valid_projections():
    with pytest.raises(ValueError, match=r"\['query'\].*valid names: .*q, v, wi_0, wi_1, wo"):
        apply_peft(model_of(), "lora", lora_targets=["q", "query"])
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        apply_peft(model_of(), "lora", lora_rank=0)
    model = apply_peft(model_of(), "lora", lora_targets="decoder/*/cross_attention/k")
    assert sorted(lora_layers(model)) == ["decoder/block_0/cross_attention/k",
                                          "decoder/block_1/cross_attention/k"]


def test_lora_and_prompt_under_mixed_bfloat16():
    model = apply_peft(model_of(dtype="mixed_bfloat16"), "lora", lora_targets=["q", "v"])
    layer = lora_layers(model)["encoder/block_0/self_attention/v"]
    assert layer.lora_a.dtype == "float32"
    features = {k: v for k, v in seq2seq_batch().items()
                if k in ("encoder_input_tokens", "decoder_input_tokens")}
    assert np.all(np.isfinite(model(features).numpy()))
    prompt = apply_peft(model_of(dtype="mixed_bfloat16"), "prompt", prompt_length=2)
    assert prompt.prompt.embeddings.dtype == "float32"
    assert prompt(features).dtype == tf.float32


# -- checkpoints ------------------------------------------------------------------------------------
def _assert_blocks_checkpointed(path):
    saved = [n for n, _ in tf.train.list_variables(path)]
    assert any("block_0" in n or "blocks" in n for n in saved), (
        "tf.train.Checkpoint saved no block variables: the stacks' list of blocks is not "
        f"tracked for checkpoints (saved only {saved})")


def test_prompt_and_lora_variables_survive_a_checkpoint(tmp_path):
    lora = apply_peft(model_of(seed=1), "lora", lora_rank=2, lora_targets=["q", "wo"])
    for layer in lora_layers(lora).values():
        layer.lora_a.assign(tf.random.normal(layer.lora_a.shape, seed=3))
        layer.lora_b.assign(tf.random.normal(layer.lora_b.shape, seed=4))
    path = tf.train.Checkpoint(model=lora).write(str(tmp_path / "lora"))
    _assert_blocks_checkpointed(path)
    other = apply_peft(model_of(seed=2), "lora", lora_rank=2, lora_targets=["q", "wo"])
    tf.train.Checkpoint(model=other).read(path).assert_consumed()
    for name, value in snapshot(lora).items():
        np.testing.assert_array_equal(other.variables_by_name()[name].numpy(), value, name)

    prompt = apply_peft(model_of(seed=1), "prompt", prompt_length=3, seed=1)
    path = tf.train.Checkpoint(model=prompt).write(str(tmp_path / "prompt"))
    assert any("prompt" in n for n, _ in tf.train.list_variables(path))
    restored = apply_peft(model_of(seed=2), "prompt", prompt_length=3, seed=2)
    tf.train.Checkpoint(model=restored).read(path).assert_consumed()
    np.testing.assert_array_equal(restored.prompt.embeddings.numpy(),
                                  prompt.prompt.embeddings.numpy())


def test_a_plain_checkpoint_restores_into_a_lora_model(tmp_path):
    plain = model_of(seed=1)
    path = tf.train.Checkpoint(model=plain).write(str(tmp_path / "plain"))
    _assert_blocks_checkpointed(path)
    lora = apply_peft(model_of(seed=2), "lora", lora_rank=2, lora_targets=["q", "v"])
    # Partial: the LoRA matrices have no counterpart and keep their initial values.
    tf.train.Checkpoint(model=lora).read(path).expect_partial()
    restored = lora.variables_by_name()
    for name, value in snapshot(plain).items():
        np.testing.assert_array_equal(restored[name].numpy(), value, name)
    features = {k: v for k, v in seq2seq_batch().items()
                if k in ("encoder_input_tokens", "decoder_input_tokens")}
    np.testing.assert_allclose(lora(features).numpy(), plain(features).numpy(), rtol=1e-6)


# -- classification head ----------------------------------------------------------------------------
def toy_classification(n=32, length=8, seed=0):
    """Class 0 rows use ids 3..19, class 1 ids 20..39, class 2 ids 40..63; random padding."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n).astype(np.int32)
    ranges = [(3, 20), (20, 40), (40, 64)]
    tokens = np.zeros((n, length), np.int32)
    for i, label in enumerate(labels):
        size = rng.integers(3, length + 1)
        tokens[i, :size] = rng.integers(*ranges[label], size=size)
    return {"encoder_input_tokens": tf.constant(tokens), "label": tf.constant(labels)}


def test_classifier_trains_on_a_separable_toy_task():
    keras.utils.set_random_seed(0)
    classifier = T5EncoderClassifier(config(), num_classes=3)
    data = toy_classification()
    losses = train_steps(classifier, data, steps=25, learning_rate=1e-2, via_trainer=True)
    assert losses[-1] < 0.3 * losses[0], losses
    predicted = classifier.predict(data["encoder_input_tokens"], batch_size=10)
    assert predicted.dtype == np.int32 and predicted.shape == (32,)
    assert np.mean(predicted == data["label"].numpy()) >= 0.9
    sums = classifier.loss_sums(data)
    assert float(sums["num_tokens"]) == 32.0 and float(sums["correct"]) >= 29


def test_classifier_loss_matches_hand_computed_cross_entropy():
    keras.utils.set_random_seed(0)
    classifier = T5EncoderClassifier(config(), num_classes=3)
    data = toy_classification(n=6)
    logits = classifier(data["encoder_input_tokens"]).numpy().astype(np.float64)
    labels = data["label"].numpy()
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    sums = classifier.loss_sums(data)
    np.testing.assert_allclose(float(sums["loss_sum"]), -log_p[np.arange(6), labels].sum(),
                               rtol=1e-5)
    s = 0.1  # label smoothing: s spread over the other two classes, minus the target entropy
    q = np.full((6, 3), s / 2)
    q[np.arange(6), labels] = 1 - s
    smoothed = -(q * log_p).sum() + 6 * (q[0] * np.log(q[0])).sum()
    np.testing.assert_allclose(float(classifier.loss_sums(data, label_smoothing=s)["loss_sum"]),
                               smoothed, rtol=1e-5)
    np.testing.assert_allclose(float(sums["correct"]),
                               (logits.argmax(-1) == labels).sum())


def test_classifier_shares_the_t5_encoder_and_pools_over_real_tokens():
    base = model_of()
    classifier = T5EncoderClassifier(base, num_classes=2)
    assert classifier.shared.embeddings is base.shared.embeddings
    tokens = toy_classification(n=4)["encoder_input_tokens"]
    encoded = base.encode(tokens).numpy()
    np.testing.assert_allclose(classifier.encode(tokens).numpy(), encoded, rtol=1e-6)
    mask = (tokens.numpy() != 0)[:, :, None]
    expected_pool = (encoded * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(classifier.pool(encoded, tokens).numpy(), expected_pool,
                               rtol=1e-5, atol=1e-6)
    names = set(classifier.variables_by_name())
    assert {"classifier/kernel", "classifier/bias", "shared/embeddings"} <= names
    assert names - {"classifier/kernel", "classifier/bias"} == {
        n for n in base.variables_by_name() if n.startswith(("encoder/", "shared/"))}


@pytest.mark.parametrize("method,expected", [
    ("freeze_encoder", lambda n: n.startswith(("classifier/", "shared/"))),
    ("top_n", lambda n: n.startswith(("classifier/", "encoder/block_1/",
                                      "encoder/final_layer_norm/"))),
    ("lora", lambda n: n.startswith("classifier/") or n.endswith(("lora_a", "lora_b"))),
])
def test_classifier_head_trains_under_every_peft_method(method, expected):
    keras.utils.set_random_seed(0)
    classifier = apply_peft(T5EncoderClassifier(config(), num_classes=3), method, top_n=1,
                            lora_targets=["q", "v"])
    names = {n for n in classifier.variables_by_name() if expected(n)}
    assert_trains_exactly(classifier, names, toy_classification(n=8))
    assert trainable_summary(classifier).startswith("trainable ")


def test_classifier_label_names_are_its_labels_or_its_class_ids():
    keras.utils.set_random_seed(0)
    unnamed = T5EncoderClassifier(config(), num_classes=3)
    named = T5EncoderClassifier(config(), num_classes=2, labels=["no", "yes"])
    assert unnamed.label_names == ("0", "1", "2")
    assert named.label_names == ("no", "yes")
    assert describe_structure(unnamed)["labels"] == ("0", "1", "2")


def test_classifier_bad_labels_and_missing_features_are_clear_errors():
    keras.utils.set_random_seed(0)
    classifier = T5EncoderClassifier(config(), num_classes=3)
    data = toy_classification(n=4)
    with pytest.raises(ValueError, match=r"'label' holds \[3\].*\[0, 3\)"):
        classifier.loss_sums({**data, "label": tf.constant([0, 1, 3, 2])})
    with pytest.raises(ValueError, match="needs a 'label' feature"):
        classifier.loss_sums({"encoder_input_tokens": data["encoder_input_tokens"]})
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        T5EncoderClassifier(config(), num_classes=1)
    with pytest.raises(TypeError, match="Prompt tuning needs an encoder-decoder T5Model"):
        apply_peft(classifier, "prompt", prompt_length=2)
