"""The inspection tool (t5core.inspection, scripts/inspect_model.py) on the shared fixtures.

Numbers are checked against independent sources: count_parameters and Keras' count_params for
the parameter table, a numpy re-implementation of the bucket formula, the learned tables for the
bias maps, HF's greedy tokens for the decoding, and the masks' meaning for the attention maps.
"""

import functools
import importlib.util
import json
import math
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, REFERENCE, REFERENCE_VARIANTS

import t5core
from t5core import inspection
from t5core.presets import count_parameters, preset_names
from t5core.tokenizer import ByteTokenizer, Tokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
T5X_CHECKPOINT = FIXTURES / "t5x_tiny" / "test_t5_tiny.checkpoint_0"
HF_TINY = FIXTURES / "hf_tiny_random_t5"
SPIECE = FIXTURES / "t5_vocab" / "spiece.model"


def _npz_config(npz):
    return t5core.T5Config.from_dict(json.loads(str(npz["hf_config_json"])))


@functools.cache
def reference_model(variant):
    return t5core.load_pretrained(str(REFERENCE / variant))


@functools.cache
def t5x_model():
    return t5core.load_pretrained(str(T5X_CHECKPOINT),
                                  config=_npz_config(np.load(REFERENCE / "t5x_tiny.npz")))


def model_and_reference(name):
    """A model and the HF outputs for it: a random reference variant or the real T5X tiny."""
    if name == "t5x_tiny":
        return t5x_model(), np.load(REFERENCE / "t5x_tiny.npz")
    return reference_model(name), np.load(REFERENCE / name / "reference.npz")


@functools.cache
def spiece():
    return Tokenizer(str(SPIECE))


# -- parameters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", REFERENCE_VARIANTS)
def test_parameter_table_counts_match_the_model(variant):
    model = reference_model(variant)
    table = inspection.parameter_table(model)
    assert table["total"] == count_parameters(model.config) == model.count_params()
    assert sum(r["count"] for r in table["variables"]) == table["total"]
    assert sum(table["by_kind"].values()) == table["total"]
    assert [(m["module"], m["count"]) for m in table["by_module"]] == model.parameter_summary()
    # The shapes computed from the config alone name and size exactly the model's variables.
    built = {r["name"]: tuple(r["shape"]) for r in table["variables"]}
    assert inspection.parameter_shapes(model.config) == built
    assert inspection.parameter_table(model.config)["total"] == table["total"]


def test_parameter_table_of_real_checkpoints():
    hf = t5core.load_pretrained(str(HF_TINY))
    total = inspection.parameter_table(hf)["total"]
    assert total == count_parameters(hf.config) == hf.count_params()
    assert "lm_head" not in inspection.parameter_table(hf)["by_kind"]  # tied: no output matrix
    model = t5x_model()
    table = inspection.parameter_table(model)
    assert table["total"] == count_parameters(model.config) == model.count_params()
    assert table["by_kind"]["lm_head"] == 8 * 32128


@pytest.mark.parametrize("name", preset_names())
def test_preset_tables_need_no_weights(name):
    config = t5core.T5Config.from_preset(name)
    table = inspection.parameter_table(config)  # 11B and XXL presets: shapes only
    assert table["total"] == count_parameters(config)
    biases = [r for r in table["variables"] if r["kind"] == "position_bias"]
    expected = (config.num_layers + config.num_decoder_layers
                if config.model_type == "umt5" else 2)
    assert len(biases) == expected


def test_every_kind_of_variable_is_told_apart():
    """Each kind's count follows from the config: the name-part table keeps norms and bias
    tables out of the attention that holds them, and everything unnamed is the feed-forward."""
    c = t5core.T5Config.from_preset("t5-v1_1-small")
    by_kind = inspection.parameter_table(c)["by_kind"]
    inner = c.num_heads * c.d_kv
    attention = 4 * c.d_model * inner
    assert by_kind == {
        "embedding": c.vocab_size * c.d_model, "lm_head": c.vocab_size * c.d_model,
        "norm": (2 * c.num_layers + 3 * c.num_decoder_layers + 2) * c.d_model,
        "position_bias": 2 * c.relative_attention_num_buckets * c.num_heads,
        "self_attention": (c.num_layers + c.num_decoder_layers) * attention,
        "cross_attention": c.num_decoder_layers * attention,
        "ffn": (c.num_layers + c.num_decoder_layers) * 3 * c.d_model * c.d_ff}


# -- buckets --------------------------------------------------------------------------------------

def numpy_bucket(relative, bidirectional, num_buckets, max_distance):
    """T5's bucketing written again from the paper/Mesh-TF description, in numpy float32."""
    relative = np.asarray(relative, np.int64)
    out = np.zeros_like(relative)
    n = num_buckets
    if bidirectional:
        n //= 2
        out += (relative > 0) * n
        dist = np.abs(relative)
    else:
        dist = np.maximum(-relative, 0)
    exact = n // 2
    with np.errstate(divide="ignore"):
        scaled = (np.log(dist.astype(np.float32) / np.float32(exact))
                  / np.float32(math.log(max_distance / exact)) * np.float32(n - exact))
    large = np.minimum(exact + np.where(dist >= exact, scaled, 0).astype(np.int64), n - 1)
    return out + np.where(dist < exact, dist, large)


@pytest.mark.parametrize("buckets,max_distance", [(32, 128), (8, 128), (12, 20), (64, 256)])
def test_bucket_table_equals_the_formula(buckets, max_distance):
    config = t5core.T5Config(relative_attention_num_buckets=buckets,
                             relative_attention_max_distance=max_distance)
    table = inspection.bucket_table(config, span=2 * max_distance)
    rel = np.asarray(table["relative_positions"])
    assert rel[0] == -2 * max_distance and rel[-1] == 2 * max_distance
    for mode, bidirectional in (("bidirectional", True), ("causal", False)):
        expected = numpy_bucket(rel, bidirectional, buckets, max_distance)
        np.testing.assert_array_equal(table[mode], expected, err_msg=mode)
    # Facts any T5 reader knows: 0 -> 0; the future shares bucket 0 when causal; far is clipped.
    bi, causal = np.asarray(table["bidirectional"]), np.asarray(table["causal"])
    assert bi[rel == 0] == 0 and bi[rel == 1] == buckets // 2 + 1
    assert set(causal[rel > 0]) == {0}
    assert bi[0] == buckets // 2 - 1 and bi[-1] == buckets - 1 and causal[0] == buckets - 1


def test_bucket_text_table_covers_every_position():
    table = inspection.bucket_table(t5core.T5Config())
    text = inspection.format_buckets(table)
    ranges = inspection.bucket_ranges(table, "bidirectional")
    assert ranges[0] == "0" and ranges[1] == "-1" and ranges[17] == "1"
    assert 16 not in ranges and "(unused)" in text  # bucket 16 never used in the encoder
    assert ranges[31].startswith(">= ") and ranges[15].startswith("<= ")
    assert len(text.splitlines()) == 2 + 1 + 32


# -- activations ---------------------------------------------------------------------------------

def _reference_features(ref):
    return {"encoder_input_tokens": ref["encoder_input_tokens"],
            "decoder_input_tokens": ref["decoder_input_tokens"]}


@pytest.mark.parametrize("variant", ["t5_v1_1_gated_gelu_untied", "umt5", "t5x_tiny"])
def test_attention_rows_sum_to_one_over_unmasked_keys(variant):
    model, ref = model_and_reference(variant)
    acts = inspection.collect_activations(model, _reference_features(ref))
    enc_valid = ref["encoder_input_tokens"] != 0  # [B, L]
    dec_len = ref["decoder_input_tokens"].shape[1]
    causal = np.tril(np.ones([dec_len, dec_len], bool))
    enc = acts["encoder_attentions"]  # [layers, B, N, L, L]
    assert enc.shape[:2] == (model.config.num_layers, len(enc_valid))
    key_mask = enc_valid[None, :, None, None, :]
    np.testing.assert_allclose((enc * key_mask).sum(-1), 1.0, atol=1e-5)
    assert np.max(enc * ~key_mask) < 1e-6
    cross = acts["cross_attentions"]
    np.testing.assert_allclose((cross * key_mask).sum(-1), 1.0, atol=1e-5)
    assert np.max(cross * ~key_mask) < 1e-6
    self_w = acts["decoder_self_attentions"]
    np.testing.assert_allclose((self_w * causal).sum(-1), 1.0, atol=1e-5)
    assert np.max(self_w * ~causal) < 1e-6
    # The maps are not trivial: some head spreads its weight.
    assert enc.max(-1).min() < 0.9


@pytest.mark.parametrize("variant", ["t5_v1_0_relu_tied", "umt5"])
def test_position_bias_maps_are_the_tables_at_the_buckets(variant):
    model = reference_model(variant)
    tok = ByteTokenizer()
    ids = tok.encode("a row of bytes", add_eos=True)
    row = inspection.inspect_row(model, ids, max_new_tokens=4)
    L = len(row["inputs"]["encoder_tokens"])
    T = len(row["inputs"]["decoder_input_tokens"])
    c = model.config
    expected_blocks = {"encoder": c.num_layers, "decoder": c.num_decoder_layers}
    for stack, bidirectional, n in (("encoder", True, L), ("decoder", False, T)):
        maps = row["position_bias"][stack]
        assert len(maps) == (expected_blocks[stack] if c.per_layer_position_bias else 1)
        rel = np.arange(n)[None, :] - np.arange(n)[:, None]  # key - query
        buckets = numpy_bucket(rel, bidirectional, c.relative_attention_num_buckets,
                               c.relative_attention_max_distance)
        for block, bias in maps.items():
            table = getattr(model, stack).blocks[block].self_attention.relative_attention_bias
            expected = np.asarray(table.embeddings)[buckets].transpose(2, 0, 1)
            np.testing.assert_allclose(bias, expected, rtol=0, atol=0)


def test_hidden_state_norms_and_predictions_are_consistent():
    model = reference_model("gated_silu")
    tok = ByteTokenizer()
    ids = tok.encode("norms, layer by layer", add_eos=True)
    row = inspection.inspect_row(model, ids, piece=inspection.piece_renderer(tok), top_k=3,
                                 max_new_tokens=6)
    acts = inspection.collect_activations(model, {
        "encoder_input_tokens": np.asarray([ids], np.int32),
        "decoder_input_tokens": np.asarray([row["inputs"]["decoder_input_tokens"]], np.int32)})
    norms = row["hidden_state_norms"]
    assert norms["encoder"].shape == (model.config.num_layers + 1, len(ids))
    np.testing.assert_allclose(
        norms["encoder"], np.linalg.norm(acts["encoder_hidden_states"][:, 0], axis=-1), rtol=1e-6)
    np.testing.assert_allclose(norms["decoder_mean"], norms["decoder"].mean(axis=1), rtol=1e-6)
    # The embedding output's norm is the norm of the embedding rows of the tokens.
    rows = np.asarray(model.shared.embeddings)[ids]
    np.testing.assert_allclose(norms["encoder"][0], np.linalg.norm(rows, axis=-1), rtol=1e-5)
    # Greedy targets: the top prediction at every step is the token that was chosen next.
    assert row["inputs"]["target_source"] == ["greedy"]
    for p in row["predictions"]:
        assert p["top"][0]["id"] == p["target_id"]
        assert p["top"][0]["prob"] >= p["top"][1]["prob"] >= p["top"][2]["prob"]
        assert p["top"][0]["piece"] == inspection.piece_renderer(tok)(p["target_id"])


@pytest.mark.parametrize("variant", ["gated_silu", "umt5", "t5x_tiny"])
def test_greedy_continuation_matches_hf_generate(variant):
    model, ref = model_and_reference(variant)
    tokens = inspection.greedy_continue(model, ref["encoder_input_tokens"], max_new_tokens=12)
    expected = ref["greedy_tokens"]
    padded = np.zeros_like(expected)
    padded[:, :tokens.shape[1]] = tokens
    np.testing.assert_array_equal(padded, expected)


def test_packed_row_never_attends_across_segments():
    model = reference_model("t5_v1_1_gated_gelu_untied")
    tok = ByteTokenizer()
    examples = [(tok.encode("first one", add_eos=True), tok.encode("AB", add_eos=True)),
                (tok.encode("the second, longer", add_eos=True), None),
                (tok.encode("3rd", add_eos=True), tok.encode("xyz", add_eos=True))]
    packed = inspection.inspect_row(model, None, pack=examples, max_new_tokens=5)
    ins = packed["inputs"]
    assert ins["packed"] and ins["target_source"] == ["given", "greedy", "given"]
    enc_seg = np.asarray(ins["encoder_segment_ids"])
    dec_seg = np.asarray(ins["decoder_segment_ids"])
    assert sorted(set(enc_seg.tolist())) == [1, 2, 3]
    att = packed["attention"]
    for kind, q_seg, k_seg in (("encoder", enc_seg, enc_seg), ("decoder_self", dec_seg, dec_seg),
                               ("cross", dec_seg, enc_seg)):
        across = q_seg[:, None] != k_seg[None, :]
        maps = np.asarray(att[kind])
        assert np.max(maps[..., across]) < 1e-6, kind
        np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    # Each segment gives the same predictions as its example alone.
    for n, (inputs, _) in enumerate(examples):
        segment = dec_seg == n + 1
        target = np.asarray(ins["decoder_target_tokens"])[segment].tolist()
        alone = inspection.inspect_row(model, inputs, target)
        got = [p for p in packed["predictions"] if p["segment"] == n + 1]
        assert len(got) == len(alone["predictions"]) == len(target)
        for a, b in zip(got, alone["predictions"]):
            assert a["target_id"] == b["target_id"]
            assert [t["id"] for t in a["top"]] == [t["id"] for t in b["top"]]
            np.testing.assert_allclose(a["target_prob"], b["target_prob"], rtol=1e-4)


def test_packed_and_single_rows_start_decoding_from_the_configured_id(tiny_config):
    model = t5core.T5Model(tiny_config.replace(decoder_start_token_id=5))
    examples = [([7, 8, 1], [9, 1]), ([10, 1], [11, 12, 1])]
    packed = inspection.inspect_row(model, None, pack=examples, max_new_tokens=2)["inputs"]
    assert packed["decoder_input_tokens"] == [5, 9, 5, 11, 12]
    single = inspection.inspect_row(model, [7, 8, 1], [9, 1], max_new_tokens=2)["inputs"]
    assert single["decoder_input_tokens"] == [5, 9]


@pytest.mark.parametrize("variant", ["t5_v1_0_relu_tied", "umt5"])
def test_cache_check_compares_incremental_and_full_decoding(variant):
    model = reference_model(variant)
    ref = np.load(REFERENCE / variant / "reference.npz")
    enc, dec = ref["encoder_input_tokens"][:1], ref["decoder_input_tokens"][:1]
    check = inspection.cache_agreement(model, enc, dec)
    c = model.config
    assert check["block_cache_shapes"]["key"] == [1, c.num_heads, dec.shape[1], c.d_kv]
    assert check["block_cache_shapes"]["cross_value"] == [1, c.num_heads, enc.shape[1], c.d_kv]
    assert len(check["max_abs_logit_diff"]) == dec.shape[1]
    assert max(check["max_abs_logit_diff"]) <= 1e-4 * check["max_abs_logit"]
    # The full-pass logits it compares against are HF's (the decoder masks no padding, as HF).
    np.testing.assert_allclose(check["max_abs_logit"], np.abs(ref["logits"][0]).max(), rtol=1e-4)


def test_out_of_vocabulary_ids_are_named():
    model = reference_model("mt5")
    with pytest.raises(ValueError, match=r"outside the model's vocabulary \[0, 128\)"):
        inspection.inspect_row(model, [5, 400, 1], [3, 1])


# -- outputs ---------------------------------------------------------------------------------------

def _run_script(argv, capsys):
    path = ROOT / "scripts" / "inspect_model.py"
    spec = importlib.util.spec_from_file_location("inspect_model", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(argv) == 0
    return capsys.readouterr().out


def _check_png(path):
    from PIL import Image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        assert width > 100 and height > 100
        assert len(np.unique(np.asarray(image.convert("L")))) > 10, f"{path} is blank"


def _event_tags(logdir):
    tags = {}
    for event_file in pathlib.Path(logdir).glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tags[value.tag] = value.metadata.plugin_data.plugin_name
    return tags


def test_script_on_the_t5x_checkpoint_with_the_real_vocabulary(tmp_path, capsys):
    model = t5x_model()
    config_path = tmp_path / "config.json"
    model.config.to_json(str(config_path))
    out_dir, logdir = tmp_path / "out", tmp_path / "tb"
    text = "translate English to German: That is good."
    printed = _run_script(["--checkpoint", str(T5X_CHECKPOINT), "--config", str(config_path),
                           "--vocab", str(SPIECE), "--input", text, "--target", "Das ist gut.",
                           "--output_dir", str(out_dir), "--png_layers", "1",
                           "--tensorboard", str(logdir)], capsys)
    report = json.loads((out_dir / "report.json").read_text())
    assert report["parameters"]["total"] == count_parameters(model.config) == model.count_params()
    assert f"total parameters: {model.count_params():,}" in printed
    ins = report["row"]["inputs"]
    ids = spiece().encode(text, add_eos=True)
    assert ins["encoder_tokens"] == ids
    assert ins["encoder_pieces"][:3] == ["▁translate", "▁English", "▁to"]
    assert ins["decoder_target_tokens"] == spiece().encode("Das ist gut.", add_eos=True)
    first = report["row"]["predictions"][0]
    assert first["top"][0]["piece"] == spiece().id_to_piece(first["top"][0]["id"]) \
        or first["top"][0]["id"] >= spiece().vocab_size
    pngs = sorted(out_dir.glob("*.png"))
    # block 1's three attention maps (block 1 owns no bias table), 2 bias curves, buckets, norms
    assert len(pngs) == 3 + 2 + 1 + 1
    for png in pngs:
        _check_png(png)
    tags = _event_tags(logdir)
    assert tags["attention/encoder/layer0"] == "images"
    assert tags["position_bias/decoder/block0"] == "images"
    assert tags["predictions"] == "text" and tags["parameters/by_module"] == "text"


def test_script_on_a_reference_checkpoint_and_greedy_text(tmp_path, capsys):
    out_dir, logdir = tmp_path / "out", tmp_path / "tb"
    printed = _run_script(["--checkpoint", str(REFERENCE / "umt5"), "--vocab", "byte",
                           "--input", "hello there", "--max_new_tokens", "4", "--top_k", "3",
                           "--output_dir", str(out_dir), "--png_layers", "2",
                           "--tensorboard", str(logdir)], capsys)
    model = reference_model("umt5")
    report = json.loads((out_dir / "report.json").read_text())
    assert report["parameters"]["total"] == model.count_params()
    attention = np.asarray(report["row"]["attention"]["encoder"])
    assert attention.shape == (2, 4, 12, 12)  # layers, heads, "hello there</s>" twice
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    # UMT5: a bias table per block, so a curve for each; maps drawn for block 2 only.
    assert len(report["row"]["position_bias"]["decoder"]) == 3
    assert len(list(out_dir.glob("bias_by_distance_encoder_block*.png"))) == 2
    assert sorted(p.name for p in out_dir.glob("*_block2.png")) == [
        "bias_by_distance_decoder_block2.png", "position_bias_decoder_block2.png"]
    assert sorted(p.name for p in out_dir.glob("attention_*.png")) == [
        "attention_cross_layer2.png", "attention_decoder_self_layer2.png"]
    _check_png(out_dir / "attention_cross_layer2.png")
    assert "mean L2 norm" in printed and "top-k next tokens" in printed
    assert "incremental decode_step vs full forward" in printed
    assert max(report["row"]["cache"]["max_abs_logit_diff"]) < 1e-4 * report["row"]["cache"][
        "max_abs_logit"]
    assert "hidden_state_norm/encoder" in _event_tags(logdir)


def test_hf_tiny_checkpoint(tmp_path):
    model = t5core.load_pretrained(str(HF_TINY))
    row = inspection.inspect_row(model, [3, 17, 250, 1], max_new_tokens=3)
    report = inspection.build_report(model, str(HF_TINY), row)
    assert report["parameters"]["total"] == model.count_params()
    assert len(report["buckets"]["bidirectional"]) == 2 * 160 + 1
    assert set(report["buckets"]["bidirectional"]) == set(range(8)) - {4}  # 8 buckets
    paths = inspection.save_pngs(report, str(tmp_path), layers=[4])
    # buckets, 2 bias curves, 3 attention maps of block 4, norms (block 4 owns no bias table)
    assert len(paths) == 1 + 2 + 3 + 1
    _check_png(paths[0])


def test_bias_by_distance_png_draws_every_head(monkeypatch, tmp_path):
    model = t5core.load_pretrained(str(HF_TINY))
    report = inspection.build_report(model, str(HF_TINY))
    drawn = {}

    def count_lines(fig, path):
        drawn[pathlib.Path(path).name] = len(fig.axes[0].lines)

    monkeypatch.setattr("t5core.inspection.figures._save", count_lines)
    inspection.save_pngs(report, str(tmp_path))
    heads = model.config.num_heads
    for stack, tables in report["bias_by_distance"].items():
        for block in tables:
            assert drawn[f"bias_by_distance_{stack}_block{block}.png"] == heads


def test_preset_without_text_allocates_nothing(capsys):
    printed = _run_script(["--preset", "t5-11b"], capsys)
    total = count_parameters(t5core.T5Config.from_preset("t5-11b"))
    assert f"total parameters: {total:,}" in printed
    assert "shapes only" in printed


def test_missing_matplotlib_is_a_clear_error(monkeypatch, tmp_path):
    report = inspection.build_report(t5core.T5Config(), "config")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match="pip install matplotlib"):
        inspection.save_pngs(report, str(tmp_path))
