"""The model against HF transformers' outputs (random weights, saved by tests/make_reference.py)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core.layers import (Attention, Decoder, DecoderBlock, Encoder, EncoderBlock, FeedForward,
                           RelativePositionBias, RMSNorm, relative_position_bucket)
from conftest import REFERENCE, REFERENCE_VARIANTS, mirrored


def rel_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def load_reference(variant):
    return t5core.load_pretrained(str(REFERENCE / variant)), np.load(REFERENCE / variant /
                                                                       "reference.npz")


def features_of(ref):
    return {"encoder_input_tokens": ref["encoder_input_tokens"],
            "decoder_input_tokens": ref["decoder_input_tokens"]}


@pytest.mark.parametrize("variant", REFERENCE_VARIANTS)
def test_matches_hf_reference(variant):
    model, ref = load_reference(variant)
    # The fixtures must exercise the log buckets, or they prove little about the bias.
    assert ref["encoder_input_tokens"].shape[1] > model.config.relative_attention_num_buckets // 2
    assert np.max(np.abs(ref["logits"])) > 1.0
    out = model.forward(features_of(ref))
    assert rel_error(out["encoder_output"].numpy(), ref["encoder_output"]) < 1e-4
    assert rel_error(model.encode(ref["encoder_input_tokens"]).numpy(), ref["encoder_output"]) < 1e-4
    assert rel_error(out["logits"].numpy(), ref["logits"]) < 1e-4
    # HF's loss: mean token cross-entropy over the non-padded targets.
    targets = ref["decoder_target_tokens"]
    losses = tf.keras.losses.sparse_categorical_crossentropy(targets, out["logits"],
                                                             from_logits=True).numpy()
    weights = (targets > 0).astype(np.float32)
    loss = float((losses * weights).sum() / weights.sum())
    assert abs(loss - float(ref["loss"])) / float(ref["loss"]) < 1e-4


def test_umt5_has_a_bias_table_per_layer_and_t5_only_in_block_0():
    umt5, _ = load_reference("umt5")
    t5, _ = load_reference("t5_v1_1_gated_gelu_untied")
    count = lambda m: sum("relative_attention_bias" in k for k in m.variables_by_name())
    assert count(umt5) == umt5.config.num_layers + umt5.config.num_decoder_layers
    assert count(t5) == 2


def test_jit_compile_equals_eager():
    model, ref = load_reference("t5_v1_1_gated_gelu_untied")
    features = features_of(ref)
    eager = model(features).numpy()
    compiled = tf.function(lambda f: model(f), jit_compile=True)(features).numpy()
    graph = tf.function(lambda f: model(f))(features).numpy()
    # XLA's matmuls sum in another order than oneDNN's: float32 round-off, amplified through
    # five blocks of std-0.5 weights, stays within the reference tolerance.
    assert rel_error(compiled, eager) < 1e-4
    assert rel_error(graph, eager) < 1e-4


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "bfloat16"])
def test_bfloat16_close_to_float32(tmp_path, policy):
    config = t5core.T5Config(vocab_size=512, d_model=64, d_kv=16, num_heads=4, d_ff=128,
                             num_layers=3, feed_forward_proj="gated-gelu",
                             tie_word_embeddings=False, dropout_rate=0.0)
    fp32 = t5core.T5Model(config)  # T5's own initialisation: activations of a realistic scale
    t5core.export_hf(fp32, str(tmp_path))
    bf16 = t5core.load_pretrained(str(tmp_path), dtype=policy)
    block = bf16.decoder.blocks[0]
    # Every sub-layer computes in bf16; norms and the position bias stay float32 inside.
    assert block.self_attention.q.compute_dtype == "bfloat16"
    assert block.ffn.wo.compute_dtype == "bfloat16" and bf16.lm_head.compute_dtype == "bfloat16"
    # mixed: float32 master weights; pure bfloat16: the weights themselves are stored in bf16
    # (half the memory, for inference of large checkpoints).
    weight_dtype = "float32" if policy == "mixed_bfloat16" else "bfloat16"
    assert block.self_attention.q.kernel.dtype == weight_dtype
    assert block.ffn_norm.scale.dtype == weight_dtype
    rng = np.random.default_rng(0)
    features = {"encoder_input_tokens": rng.integers(2, 512, (4, 40)),
                "decoder_input_tokens": rng.integers(2, 512, (4, 30))}
    expected, got = fp32(features).numpy(), bf16(features)
    assert got.dtype == tf.float32
    # Stated tolerance: bf16 keeps 8 bits of mantissa; through 3+3 blocks the logits stay
    # within 3% of the largest logit (1.5% measured) and the argmax agrees at >= 90% of the
    # positions (97.5% measured). The error is not zero: bf16 really is used.
    error = rel_error(got.numpy(), expected)
    assert 1e-4 < error < 3e-2
    assert np.mean(np.argmax(got, -1) == np.argmax(expected, -1)) >= 0.9
    tokens, _ = t5core.generate(bf16, features["encoder_input_tokens"], 4)  # the cache in bf16
    assert tokens.shape == (4, 4)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "bfloat16"])
@pytest.mark.parametrize("tied", [False, True])
def test_bfloat16_logits_are_a_float32_product(tiny_config, policy, tied):
    # T5X computes the output projection in float32: the bf16 final state times the weights as
    # stored, never a bf16-rounded product.
    model = t5core.T5Model(tiny_config.replace(tie_word_embeddings=tied), dtype=policy)
    rng = np.random.default_rng(0)
    enc = rng.integers(2, 64, (2, 9)).astype(np.int32)
    dec = rng.integers(2, 64, (2, 7)).astype(np.int32)
    _, x = model._embed(dec, "decoder_input_tokens")
    state, _, _ = model.decoder(x, tf.cast(model.encode(enc), model.compute_dtype), enc)
    assert state.dtype == tf.bfloat16  # what the head receives
    state = tf.cast(state, tf.float64).numpy()
    if tied:
        expected = state * tiny_config.d_model ** -0.5 @ np.float64(model.shared.embeddings).T
    else:
        expected = state @ np.float64(model.lm_head.kernel)
    scale = np.abs(expected).max()
    for got in (model.decode(dec, model.encode(enc), enc),  # outside a Keras call
                model({"encoder_input_tokens": enc, "decoder_input_tokens": dec})):
        assert got.dtype == tf.float32
        # float32 round-off only; a bf16 product is off by a bf16 step (2^-8 relative).
        assert np.abs(got.numpy() - expected).max() < 1e-5 * scale


def test_mixed_bfloat16_classifier_mean_pools_a_long_row_in_float32(tiny_config):
    # A bf16 sum over a long row, or its token count past 256 (301 is not a bf16 number), would
    # give a wrong mean; float32 leaves only float32 round-off.
    model = t5core.T5EncoderClassifier(tiny_config, 3, dtype="mixed_bfloat16")
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 64, (2, 320)).astype(np.int32)
    tokens[0, 301:] = 0
    encoded = tf.cast(rng.normal(1.0, 1.0, (2, 320, tiny_config.d_model)), tf.bfloat16)
    values = tf.cast(encoded, tf.float64).numpy()
    expected = np.stack([values[0, :301].mean(0), values[1].mean(0)])
    got = model.pool(encoded, tokens)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5)


def test_one_training_step_changes_every_trainable_variable(tiny_config):
    config = tiny_config.replace(dropout_rate=0.1)
    model = t5core.T5Model(config)
    rng = np.random.default_rng(0)
    features = {"encoder_input_tokens": rng.integers(2, 64, (2, 20)).astype(np.int32),
                "decoder_input_tokens": rng.integers(2, 64, (2, 12)).astype(np.int32)}
    targets = rng.integers(2, 64, (2, 12)).astype(np.int32)
    before = [v.numpy().copy() for v in model.trainable_variables]
    optimizer = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        logits = model(features, training=True)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
            targets, logits, from_logits=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    unchanged = [v.path for v, b in zip(model.trainable_variables, before)
                 if np.array_equal(v.numpy(), b)]
    assert not unchanged
    assert len(model.trainable_variables) == len(model.variables_by_name())


def test_packed_row_gives_each_examples_unpacked_logits():
    model, _ = load_reference("t5_v1_0_relu_tied")
    rng = np.random.default_rng(1)
    enc_a, enc_b = rng.integers(2, 100, 13), rng.integers(2, 100, 9)
    dec_a, dec_b = np.r_[0, rng.integers(2, 100, 6)], np.r_[0, rng.integers(2, 100, 4)]
    alone = [model({"encoder_input_tokens": e[None], "decoder_input_tokens": d[None]})[0].numpy()
             for e, d in ((enc_a, dec_a), (enc_b, dec_b))]
    pad_e, pad_d = 3, 2  # trailing padding in the packed row
    packed = {
        "encoder_input_tokens": np.r_[enc_a, enc_b, [0] * pad_e][None],
        "encoder_segment_ids": np.r_[[1] * 13, [2] * 9, [0] * pad_e][None],
        "encoder_positions": np.r_[np.arange(13), np.arange(9), [0] * pad_e][None],
        "decoder_input_tokens": np.r_[dec_a, dec_b, [0] * pad_d][None],
        "decoder_segment_ids": np.r_[[1] * 7, [2] * 5, [0] * pad_d][None],
        "decoder_positions": np.r_[np.arange(7), np.arange(5), [0] * pad_d][None],
    }
    packed = {k: v.astype(np.int32) for k, v in packed.items()}
    logits = model(packed)[0].numpy()
    assert rel_error(logits[:7], alone[0]) < 1e-5
    assert rel_error(logits[7:12], alone[1]) < 1e-5


def test_hidden_states_and_attention_weights():
    model, ref = load_reference("t5_v1_1_gated_gelu_untied")
    out = model.forward(features_of(ref), output_hidden_states=True, output_attentions=True)
    c = model.config
    assert len(out["encoder_hidden_states"]) == c.num_layers + 1
    assert len(out["decoder_hidden_states"]) == c.num_decoder_layers + 1
    assert len(out["encoder_attentions"]) == c.num_layers
    enc = ref["encoder_input_tokens"]
    weights = out["encoder_attentions"][0].numpy()  # [B, N, Q, K]
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    # Padded keys get no weight.
    assert np.all(weights[:, :, :, :][np.broadcast_to((enc == 0)[:, None, None, :],
                                                      weights.shape)] < 1e-6)
    self_w = out["decoder_self_attentions"][0].numpy()
    assert np.all(np.triu(np.ones(self_w.shape[-2:]), 1)[None, None] * self_w < 1e-6)


def _reference_bucket(relative_position, bidirectional, num_buckets, max_distance):
    """The formula of docs/t5_reference.md, one number at a time in float32."""
    bucket = 0
    n = relative_position
    if bidirectional:
        num_buckets //= 2
        bucket += num_buckets if n > 0 else 0
        n = abs(n)
    else:
        n = max(-n, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    large = max_exact + int(np.float32(np.log(np.float32(n) / np.float32(max_exact)))
                            / np.float32(np.log(max_distance / max_exact))
                            * np.float32(num_buckets - max_exact))
    return bucket + min(large, num_buckets - 1)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (12, 20), (8, 16)])
def test_relative_position_bucket_formula(bidirectional, num_buckets, max_distance):
    positions = np.arange(-300, 301)
    got = relative_position_bucket(positions, bidirectional, num_buckets, max_distance).numpy()
    expected = [_reference_bucket(int(p), bidirectional, num_buckets, max_distance)
                for p in positions]
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= 0 and got.max() < num_buckets


def test_layers_get_config_round_trips(tiny_config):
    c = tiny_config
    layers = [RMSNorm(16, 1e-6), RelativePositionBias(8, 16, 3, True),
              Attention(16, 3, 4, 0.1, True, False, 8, 16), FeedForward(16, 24, "gated-silu"),
              EncoderBlock(c, True), DecoderBlock(c, False), Encoder(c, 2), Decoder(c, 1)]
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(json.loads(json.dumps(config)))
        assert clone.get_config() == config
    model = t5core.T5Model(c, dtype="mixed_bfloat16")
    clone = t5core.T5Model.from_config(json.loads(json.dumps(model.get_config())))
    assert clone.config == c and clone.dtype_policy.name == "mixed_bfloat16"


def test_parameter_counts_equal_the_size_table():
    table = {"t5-small": 60_506_624, "t5-base": 222_903_552, "t5-11b": 11_307_321_344,
             "t5-v1_1-small": 76_961_152, "t5-v1_1-xxl": 11_135_332_352,
             "flan-t5-base": 247_577_856, "mt5-xl": 3_742_619_648, "byt5-small": 299_637_760,
             "byt5-xxl": 12_906_899_328, "umt5-small": 306_601_984, "umt5-xxl": 12_972_531_712}
    for name, count in table.items():
        assert t5core.count_parameters(t5core.T5Config.from_preset(name)) == count, name
    assert len(t5core.preset_names()) == 29
    for name in ("t5-small", "t5-v1_1-small"):  # the small ones, built for real
        model = t5core.T5Model(t5core.T5Config.from_preset(name))
        assert model.count_params() == table[name]
        assert sum(n for _, n in model.parameter_summary()) == table[name]


def test_config_names_every_unknown_field_with_its_own_dataclass_init():
    import copy
    import dataclasses
    import pickle

    with pytest.raises(TypeError, match="unknown field.*bogus_a, bogus_b.*Known fields: vocab_size"):
        t5core.T5Config(bogus_b=2, d_model=8, bogus_a=1)
    assert t5core.T5Config.__init__.__qualname__ == "T5Config.__init__"  # not replaced
    config = t5core.T5Config(d_model=8, num_heads=2)
    assert pickle.loads(pickle.dumps(config)) == copy.deepcopy(config) == config
    assert dataclasses.replace(config, d_ff=16) == config.replace(d_ff=16)


def test_config_from_json_and_its_errors(tmp_path):
    for variant in REFERENCE_VARIANTS:
        config = t5core.T5Config.from_json(str(REFERENCE / variant / "config.json"))
        hf = json.loads((REFERENCE / variant / "config.json").read_text())
        assert config.model_type == hf["model_type"] and config.d_ff == hf["d_ff"]
    with pytest.raises(TypeError, match="bogus_a, bogus_b"):
        t5core.T5Config(d_model=8, bogus_a=1, bogus_b=2)
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"model_type": "bart", "d_model": 8}))
    with pytest.raises(ValueError, match="'bart'"):
        t5core.T5Config.from_json(str(bad))
    bad.write_text(json.dumps({"model_type": "t5", "d_model": 8, "d_kv": 2, "d_ff": 4,
                               "num_layers": 1, "vocab_size": 10}))
    with pytest.raises(ValueError, match="num_heads"):
        t5core.T5Config.from_json(str(bad))
    with pytest.raises(ValueError, match="feed_forward_proj"):
        t5core.T5Config(feed_forward_proj="swish")
    with pytest.raises(ValueError, match="Unknown preset 't5-huge'"):
        t5core.T5Config.from_preset("t5-huge")


def test_out_of_vocabulary_ids_are_named(tiny_config):
    model = t5core.T5Model(tiny_config)
    with pytest.raises(ValueError, match=r"encoder_input_tokens .*\[0, 64\)"):
        model({"encoder_input_tokens": np.array([[3, 64]]), "decoder_input_tokens": np.array([[0]])})
    with pytest.raises(ValueError, match="decoder_input_tokens"):
        model({"encoder_input_tokens": np.array([[3]]), "decoder_input_tokens": np.array([[-1]])})


def test_checkpoint_that_does_not_fit_the_config_names_the_tensors():
    path = REFERENCE / "t5_v1_1_gated_gelu_untied"
    config = t5core.T5Config.from_json(str(path / "config.json"))
    with pytest.raises(t5core.CheckpointMismatchError, match=r"wi_0.*gives .*needs"):
        t5core.load_pretrained(str(path), config=config.replace(d_ff=config.d_ff + 1))
    with pytest.raises(t5core.CheckpointMismatchError, match="block_3"):
        t5core.load_pretrained(str(path), config=config.replace(num_layers=4))


def test_keras_fit_and_evaluate_under_two_replicas_with_a_partial_last_batch(tiny_config):
    # Under a strategy Keras builds the compiled loss from strategy.reduce("MEAN", first
    # batch): the token ids arrive as floats, which only shape inference may accept.
    strategy = mirrored()
    pairs = [(f"input {i}", "yes" if i % 2 else "no") for i in range(7)]
    tok = t5core.ByteTokenizer()
    with strategy.scope():
        model = t5core.T5Model(tiny_config.replace(vocab_size=384))
        model.compile(optimizer=keras.optimizers.SGD(0.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(t5core.pairs_dataset(pairs, tok, 8, 4, batch_size=2), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # 7 examples in batches of 4: the last batch splits 2 + 1 over the replicas.
    loss = model.evaluate(t5core.pairs_dataset(pairs, tok, 8, 4, batch_size=4), verbose=0)
    features, targets, weights = next(iter(t5core.pairs_dataset(pairs, tok, 8, 4, batch_size=7)))
    whole = model.loss(targets, model(features), weights)  # one batch, one device
    np.testing.assert_allclose(loss, float(whole), rtol=1e-5)
    with pytest.raises(TypeError, match="decoder_input_tokens must be integer token ids"):
        model({**features, "decoder_input_tokens": tf.cast(features["decoder_input_tokens"],
                                                           tf.float32)})
