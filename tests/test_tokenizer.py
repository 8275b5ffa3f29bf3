"""Tokenizer tests: published goldens, HF oracles (json made by make_hf_tokenizer_goldens.py), and
Python == in-graph (eager, tf.function, tf.data, SavedModel)."""

import json
import os
import random
import re

import numpy as np
import pytest
import tensorflow as tf

from t5core.tokenizer import ByteTokenizer, Tokenizer

VOCAB_DIR = os.path.join(os.path.dirname(__file__), "fixtures", "t5_vocab")
SPIECE = os.path.join(VOCAB_DIR, "spiece.model")


def _load(name):
    with open(os.path.join(VOCAB_DIR, name), encoding="utf-8") as f:
        return json.load(f)


PUBLISHED = _load("published_goldens.json")["cases"]
HF = _load("hf_tokenizer_goldens.json")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(SPIECE)


@pytest.fixture(scope="module")
def tok_no_prefix():
    return Tokenizer(SPIECE, add_prefix_space=False)


@pytest.fixture(scope="module")
def byte_tok():
    return ByteTokenizer()


def _case(src_part, key=None):
    cases = [c for c in PUBLISHED if src_part in c["src"] and (key is None or key in c)]
    assert cases, src_part
    return cases


# ------------------------------------------------------------------ published goldens, one by one


def test_published_integration_texts(tok):
    cases = [c for c in PUBLISHED if "ids_with_eos" in c]
    assert len(cases) == 6
    for c in cases:
        assert tok.encode(c["text"], add_eos=True) == c["ids_with_eos"], c["text"]
        assert tok.encode(c["text"]) == c["ids_with_eos"][:-1]


def test_published_integration_batch_padding(tok):
    # test_tokenizer_integration: the three texts batched and padded with 0 to 112.
    texts = [c["text"] for c in _case("test_tokenizer_integration")]
    ids = tok.encode_batch(texts, add_eos=True)
    assert max(len(x) for x in ids) == 112
    padded = np.array([x + [0] * (112 - len(x)) for x in ids])
    assert padded.shape == (3, 112) and (padded[:, -1] == [1, 0, 0]).all()


def test_published_prepare_batch_and_eos_in_input(tok):
    c = _case("test_prepare_batch/test_eos_in_input")[0]
    assert tok.encode(c["text"] + " </s>", add_eos=True) == c["ids_with_eos"]
    other = tok.encode("Another paragraph for summarization.", add_eos=True)
    assert max(len(other), len(c["ids_with_eos"])) == 9


def test_published_eos_in_input_summary(tok):
    c = _case("test_eos_in_input", "ids_with_eos")
    summary = next(x for x in c if x["text"] == "Summary of the text.")
    assert tok.encode(summary["text"] + " </s>", add_eos=True) == summary["ids_with_eos"]


def test_published_special_tokens_in_text(tok):
    c = _case("test_fast_and_slow_same_result")[0]
    ids = tok.encode(c["text"])
    assert ids == c["ids_no_added_eos"]
    assert tok.encode(c["text"], add_eos=True) == c["ids_no_added_eos"]  # already ends in eos
    # HF's decode keeps <pad>/</s>; ours drops padding and stops at eos, the rest is identical.
    assert tok.decode(ids) == c["decode"].removeprefix("<pad> ").removesuffix("</s>")


def test_published_add_prefix_space(tok, tok_no_prefix):
    c = _case("test_add_prefix_space")[0]
    assert tok.encode(c["text"], add_eos=True) == c["ids_with_eos"]
    assert tok_no_prefix.encode(c["text"], add_eos=True) == c["ids_with_eos_add_prefix_space_False"]


def test_published_eos_treatment(tok):
    c = _case("test_eos_treatment")[0]
    for text, same, ids in zip(c["texts"], c["equal_to"], c["ids (computed here, not in test)"]):
        assert tok.encode(text, add_eos=True) == tok.encode(same, add_eos=True) == ids


def test_published_edge_cases(tok, tok_no_prefix):
    c = _case("test_some_edge_cases")[0]
    assert tok_no_prefix.tokenize(c["text"], split_special_tokens=True) == c["sp_pieces"]
    assert tok_no_prefix.tokenize(c["text"]) == c["hf_tokens"]
    # "plain sentencepiece with the stock model gives ['▁','<','/','s','>','>']"
    assert tok.tokenize(c["text"], split_special_tokens=True) == ["\u2581"] + c["sp_pieces"]
    assert tok.tokenize(c["text"]) == ["</s>", "\u2581>"]  # legacy=True HF / fast tokenizer
    for text in ["", " ", "\u2581", " \u2581"]:
        assert tok.encode(text) == []


def test_published_token_type_ids_pair_length(tok):
    c = _case("test_token_type_ids")[0]
    a, b = (tok.encode(t, add_eos=True) for t in c["texts"])
    assert len(a) + len(b) == c["pair_len_with_eos"]


def test_published_keras_hub(tok):
    c = _case("keras-hub")[0]
    assert tok.encode(c["text"]) == c["ids_no_eos"]


def test_published_special_ids(tok):
    c = next(c for c in PUBLISHED if c["src"] == "special ids")
    assert (tok.pad_id, tok.eos_id, tok.unk_id) == (c["pad"], c["eos"], c["unk"])
    assert tok.id_to_piece(3) == c["piece_3"]
    assert tok.sentinel_id(0) == c["extra_id_0"] == tok.encode("<extra_id_0>")[0]
    assert tok.sentinel_id(99) == c["extra_id_99"] == tok.encode("<extra_id_99>")[0]
    assert tok.vocab_size == c["hf_vocab_len"]
    assert tok.padded_vocab_size == 32128


def test_vocab_matches_hf_tokenizer_json(tok):
    """Second oracle: every id's piece equals the fast tokenizer file's vocabulary."""
    with open(os.path.join(VOCAB_DIR, "tokenizer.json"), encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    assert len(vocab) == tok.vocab_size
    assert [tok.id_to_piece(i) for i in range(tok.vocab_size)] == [p for p, _ in vocab]


# ------------------------------------------------------------------ HF oracles on many texts


def test_hf_slow_and_fast_ids(tok):
    assert len(HF["t5"]) > 300
    for c in HF["t5"]:
        assert tok.encode(c["text"], add_eos=True) == c["slow_ids_with_eos"], c["text"]
        assert tok.encode(c["text"]) == c["fast_ids_no_eos"], c["text"]


def test_hf_fast_decode(tok):
    checked = 0
    for c in HF["t5"]:
        ids = c["fast_ids_no_eos"]
        if 0 in ids or 1 in ids:  # HF keeps <pad>/</s> and text after eos; ours cuts there
            continue
        assert tok.decode(ids) == c["fast_decode"], c["text"]
        assert tok.decode(ids, skip_special_tokens=True) == c["fast_decode_skip_special"], c["text"]
        checked += 1
    assert checked > 250


def test_hf_fast_without_prefix_space(tok_no_prefix):
    # HF's fast tokenizer keeps one "▁" for leading whitespace even with add_prefix_space=False;
    # ours turns SentencePiece's dummy prefix off. They agree whenever no text piece starts with
    # whitespace (the difference is documented on Tokenizer).
    split = re.compile(r"(<pad>|</s>|<unk>|<extra_id_\d+>)")
    checked = 0
    for c in HF["t5_fast_add_prefix_space_false"]:
        chunks = [p for k, p in enumerate(split.split(c["text"])) if k % 2 == 0 and p]
        if any(p[0].isspace() or p[0] == "\u2581" for p in chunks):
            continue
        assert tok_no_prefix.encode(c["text"]) == c["fast_ids_no_eos"], c["text"]
        checked += 1
    assert checked >= 10


def test_hf_byt5(byte_tok):
    assert {k: byte_tok.encode(k)[0] for k in HF["byt5_sentinels"]} == HF["byt5_sentinels"]
    checked = 0
    for c in HF["byt5"]:
        ids = byte_tok.encode(c["text"], add_eos=True)
        assert ids == c["ids_with_eos"], c["text"]
        if 0 in ids[:-1] or 1 in ids[:-1]:  # HF decodes past eos; ours stops there
            continue
        assert byte_tok.decode(ids, skip_special_tokens=True) == c["decode_skip_special"], c["text"]
        checked += 1
    assert checked > 250
    assert byte_tok.vocab_size == byte_tok.padded_vocab_size == 384


# ------------------------------------------------------------------ behaviour


def test_decode_rules(tok):
    ids = tok.encode("Hello world", add_eos=True)
    assert tok.decode(ids + [0, 0]) == "Hello world"
    assert tok.decode([0] + ids + [37, 1]) == "Hello world"            # stops at the first eos
    assert tok.decode(np.array(ids, np.int32)) == "Hello world"
    assert tok.decode([32127, 37]) == "<unk> The"                      # padded rows -> unk
    assert tok.decode([32099, 37, 2], skip_special_tokens=True) == "The"
    assert tok.decode_batch([ids, [37, 1, 5]]) == ["Hello world", "The"]


def test_decode_equals_sentencepiece_on_plain_ids(tok):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=SPIECE)
    rng = np.random.default_rng(0)
    for _ in range(200):
        ids = rng.integers(3, 32000, size=rng.integers(1, 30)).tolist()
        assert tok.decode(ids) == sp.decode(ids)


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.model"):
        Tokenizer(str(tmp_path / "nope.model"))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.model"):
        Tokenizer(str(bad))
    with pytest.raises(TypeError):
        Tokenizer(SPIECE).encode(b"bytes")
    with pytest.raises(ValueError):
        Tokenizer(SPIECE).sentinel_id(100)


def test_remote_style_path_via_gfile(tmp_path):
    # tf.io.gfile reads gs:// the same way it reads this file:// URL.
    t = Tokenizer("file://" + SPIECE)
    assert t.encode("The quick brown fox.") == [37, 1704, 4216, 3, 20400, 5]


# ------------------------------------------------------------------ in-graph == Python


def _random_unicode(n, seed):
    rng = random.Random(seed)
    pools = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
             (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1F64F),
             (0x2000, 0x206F), (0xFF00, 0xFFEF)]
    specials = ["<pad>", "</s>", "<unk>", "<extra_id_0>", "<extra_id_42>", "<extra_id_99>",
                "<extra_id_124>", "<extra_id_100>", "\u2581", " ", "\t", "\n"]
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(0, 25)):
            if rng.random() < 0.1:
                s.append(rng.choice(specials))
            else:
                lo, hi = rng.choice(pools)
                s.append(chr(rng.randint(lo, hi)))
        out.append("".join(s))
    return out


def test_in_graph_equals_python(tok, byte_tok):
    texts = [c["text"] for c in HF["t5"]] + _random_unicode(400, seed=1)
    for t in (tok, byte_tok):
        g = t.in_graph()
        for add_eos in (False, True):
            got = g.tokenize(tf.constant(texts), add_eos=add_eos).to_list()
            assert got == [t.encode(x, add_eos=add_eos) for x in texts]
        ids = [t.encode(x, add_eos=True) for x in texts]
        dense = tf.ragged.constant(ids).to_tensor(0)
        for skip in (False, True):
            got = [s.decode("utf-8") for s in g.detokenize(dense, skip_special_tokens=skip).numpy()]
            assert got == [t.decode(x, skip_special_tokens=skip) for x in ids]


def test_in_graph_byte_decode_of_invalid_utf8(byte_tok):
    rng = np.random.default_rng(3)
    g = byte_tok.in_graph()
    batch = [rng.integers(3, 259, size=rng.integers(1, 12)).tolist() for _ in range(300)]
    got = [s.decode("utf-8") for s in g.detokenize(tf.ragged.constant(batch)).numpy()]
    assert got == [byte_tok.decode(x) for x in batch]


def test_in_graph_scalar_tf_function_and_dataset(tok):
    g = tok.in_graph()
    text = "translate English to German: <extra_id_0> house </s>"
    expected = tok.encode(text, add_eos=True)
    assert g.tokenize(text, add_eos=True).numpy().tolist() == expected

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def fn(x):
        return g.tokenize(x, add_eos=True).to_tensor()

    assert fn(tf.constant([text])).numpy()[0].tolist() == expected
    ds = tf.data.Dataset.from_tensor_slices([text, "The quick brown fox."])
    ds = ds.map(lambda s: g.tokenize(s, add_eos=True))
    assert [x.tolist() for x in ds.as_numpy_iterator()] == [expected,
                                                            [37, 1704, 4216, 3, 20400, 5, 1]]
    assert g.detokenize(tf.constant(expected)).numpy().decode() == tok.decode(expected)


def test_in_graph_savedmodel_roundtrip(tok, tmp_path):
    module = tf.Module()
    module.tok = tok.in_graph()
    module.encode = tf.function(
        lambda x: module.tok.tokenize(x, add_eos=True).to_tensor(),
        input_signature=[tf.TensorSpec([None], tf.string)])
    module.decode = tf.function(
        lambda ids: module.tok.detokenize(ids),
        input_signature=[tf.TensorSpec([None, None], tf.int32)])
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    texts = ["<pad> Today is <unk> nice day </s>", "The <extra_id_0> walks in <extra_id_1> park"]
    ids = loaded.encode(tf.constant(texts)).numpy()
    for row, text in zip(ids, texts):
        expected = tok.encode(text, add_eos=True)
        assert row[:len(expected)].tolist() == expected and not row[len(expected):].any()
    assert [s.decode() for s in loaded.decode(tf.constant(ids)).numpy()] == \
        [tok.decode(tok.encode(t)) for t in texts]
