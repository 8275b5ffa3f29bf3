"""HF transformers' own T5 tokenization expectations, carried over as data.

Source: huggingface/transformers `tests/models/t5/test_tokenization_t5.py` at commit
046eae0032b26be7ca49b4ec118bf7fa5a93785d (class T5TokenizationTest). Each test below names the
HF test its vectors come from. Only the vectors for the real T5 vocabulary (google-t5/t5-base,
the cc_all.32000 SentencePiece model) are carried: the tests on HF's private 1000-piece
`fixtures/test_sentencepiece.model` (test_full_tokenizer, test_get_vocab, test_vocab_size,
test_convert_token_and_id, CommonSpmIntegrationTests) have no vocabulary here, and the ones on
HF-only API (adding tokens, legacy=False, truncation to max_length) have no counterpart in
t5core; BUILD_NOTES.md lists them with the reason.

HF runs each vector on T5Tokenizer (SentencePiece) and T5TokenizerFast (tokenizer.json); so does
this module, through t5core's Tokenizer over `spiece.model` and over `tokenizer.json`.
"""

import json
import os

import numpy as np
import pytest

from t5core.tokenizer import Tokenizer

SOURCE = "transformers tests/models/t5/test_tokenization_t5.py::T5TokenizationTest"
VOCAB_DIR = os.path.join(os.path.dirname(__file__), "..", "fixtures", "t5_vocab")
SPIECE_UNDERLINE = "\u2581"

# ---------------------------------------------------------------- the vectors, as HF states them

# test_eos_treatment: texts ending in "</s>" encode as the texts without it.
EOS_TREATMENT = {"with_eos": ["hi</s>", "I went to the gym</s>", "</s>"],
                 "without_eos": ["hi", "I went to the gym", ""]}
# test_prepare_batch: the first row of the padded batch, and the batch shape.
PREPARE_BATCH = {"texts": ["A long paragraph for summarization.",
                           "Another paragraph for summarization."],
                 "first_row": [71, 307, 8986, 21, 4505, 1635, 1707, 5, 1], "shape": (2, 9)}
# test_eos_in_input: an explicit " </s>" is not doubled.
EOS_IN_INPUT = [("A long paragraph for summarization. </s>", [71, 307, 8986, 21, 4505, 1635, 1707,
                                                              5, 1]),
                ("Summary of the text. </s>", [20698, 13, 8, 1499, 5, 1])]
# test_token_type_ids: a pair with eos after each text is 18 ids long.
TOKEN_TYPE_IDS = {"pair": ("A first paragraph for summarization.",
                           "A second paragraph for summarization."), "length": 18}
# test_fast_and_slow_same_result: specials inside the text, no eos added.
SPECIALS_IN_TEXT = {"text": "<pad> Today is <unk> nice day </s>",
                    "ids": [0, 1960, 19, 2, 1245, 239, 1],
                    "decode": "<pad> Today is<unk> nice day</s>"}
# test_some_edge_cases (legacy=False, i.e. no "▁" before a piece that follows a special).
EDGE_CASES = {"text": "</s>>", "sp_tokens": ["<", "/", "s", ">", ">"],
              "tokens": ["</s>", ">"], "empty": ["", " ", SPIECE_UNDERLINE,
                                                 " " + SPIECE_UNDERLINE]}
# test_add_prefix_space.
ADD_PREFIX_SPACE = {
    "text": "Hey how are you doing",
    "with_space": [9459, 149, 33, 25, 692, 1],
    "without_space": [3845, 63, 149, 33, 25, 692, 1],
    "tokens_with_space": [SPIECE_UNDERLINE + w for w in ["Hey", "how", "are", "you", "doing"]],
    "tokens_without_space": ["He", "y"] + [SPIECE_UNDERLINE + w
                                           for w in ["how", "are", "you", "doing"]],
}
# test_get_sentinel_tokens / test_get_sentinel_token_ids (and the _for_fasttokenizer twins):
# with extra_ids=10 the sentinels are <extra_id_0..9> and take the 10 ids after the
# SentencePiece pieces (HF's 1000-piece fixture: 1000..1009; T5's 32000 pieces: 32000..32009).
SENTINELS = {"extra_ids": 10, "hf_fixture_pieces": 1000, "hf_ids": list(range(1000, 1010))}


def _integration_vectors():
    """test_tokenizer_integration: three texts and their ids (eos appended, batch padded with 0
    to 112), stored in published_goldens.json as copied from that test."""
    with open(os.path.join(VOCAB_DIR, "published_goldens.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    return [(c["text"], c["ids_with_eos"]) for c in cases
            if "test_tokenizer_integration" in c["src"]]


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module", params=["spiece.model", "tokenizer.json"])
def vocab_file(request):
    """HF checks each vector on the slow (SentencePiece) and the fast (tokenizer.json)
    tokenizer; these are the same two files for t5core."""
    return os.path.join(VOCAB_DIR, request.param)


@pytest.fixture(scope="module")
def tok(vocab_file):
    return Tokenizer(vocab_file)


def test_tokenizer_integration(tok):
    """T5TokenizationTest.test_tokenizer_integration."""
    vectors = _integration_vectors()
    assert len(vectors) == 3
    ids = [tok.encode(text, add_eos=True) for text, _ in vectors]
    assert ids == [expected for _, expected in vectors]
    width = max(map(len, ids))
    padded = np.array([row + [tok.pad_id] * (width - len(row)) for row in ids])
    assert padded.shape == (3, 112)
    assert (padded != tok.pad_id).sum(axis=1).tolist() == [len(e) for _, e in vectors]


def test_eos_treatment(tok):
    """T5TokenizationTest.test_eos_treatment."""
    assert [tok.encode(t, add_eos=True) for t in EOS_TREATMENT["with_eos"]] == \
        [tok.encode(t, add_eos=True) for t in EOS_TREATMENT["without_eos"]]


def test_prepare_batch(tok):
    """T5TokenizationTest.test_prepare_batch."""
    ids = [tok.encode(t, add_eos=True) for t in PREPARE_BATCH["texts"]]
    assert ids[0] == PREPARE_BATCH["first_row"]
    assert (len(ids), max(map(len, ids))) == PREPARE_BATCH["shape"]


def test_eos_in_input(tok):
    """T5TokenizationTest.test_eos_in_input."""
    for text, expected in EOS_IN_INPUT:
        assert tok.encode(text, add_eos=True) == expected


def test_token_type_ids_pair_length(tok):
    """T5TokenizationTest.test_token_type_ids: a pair is each text with its eos."""
    a, b = TOKEN_TYPE_IDS["pair"]
    assert len(tok.encode(a, add_eos=True) + tok.encode(b, add_eos=True)) == \
        TOKEN_TYPE_IDS["length"]


def test_fast_and_slow_same_result(tok):
    """T5TokenizationTest.test_fast_and_slow_same_result."""
    ids = tok.encode(SPECIALS_IN_TEXT["text"])
    assert ids == SPECIALS_IN_TEXT["ids"]
    # HF renders <pad> and </s> in the decoded text; t5core's decode reads model output, where
    # pad is padding and eos the end (BUILD_NOTES.md, differences kept on purpose). Between
    # them the text is HF's, character for character.
    assert tok.decode(ids) == SPECIALS_IN_TEXT["decode"].removeprefix("<pad> ").removesuffix("</s>")
    assert tok.decode(ids[1:]) == tok.decode(ids)


def test_some_edge_cases(vocab_file):
    """T5TokenizationTest.test_some_edge_cases. HF runs it with legacy=False, whose
    SentencePiece model has no dummy prefix: t5core's add_prefix_space=False."""
    tok = Tokenizer(vocab_file, add_prefix_space=False)
    if vocab_file.endswith("spiece.model"):
        # HF asserts this on `sp_model`, the SentencePiece model, where </s> is a control
        # piece. In a tokenizer.json </s> is an ordinary piece of the Unigram vocabulary, which
        # HF's fast tokenizer (and t5core over that file) matches when specials are not split.
        assert tok.tokenize(EDGE_CASES["text"], split_special_tokens=True) == \
            EDGE_CASES["sp_tokens"]
    assert tok.tokenize(EDGE_CASES["text"]) == EDGE_CASES["tokens"]
    for text in EDGE_CASES["empty"]:
        assert tok.tokenize(text) == [] and tok.encode(text) == []


def test_add_prefix_space(vocab_file):
    """T5TokenizationTest.test_add_prefix_space."""
    v = ADD_PREFIX_SPACE
    with_space = Tokenizer(vocab_file, add_prefix_space=True)
    without_space = Tokenizer(vocab_file, add_prefix_space=False)
    assert with_space.encode(v["text"], add_eos=True) == v["with_space"]
    assert without_space.encode(v["text"], add_eos=True) == v["without_space"]
    assert with_space.tokenize(v["text"]) == v["tokens_with_space"]
    assert without_space.tokenize(v["text"]) == v["tokens_without_space"]
    assert with_space.decode(v["with_space"], skip_special_tokens=True) == v["text"]
    assert without_space.decode(v["without_space"], skip_special_tokens=True) == v["text"]


def test_get_sentinel_tokens_and_ids():
    """T5TokenizationTest.test_get_sentinel_tokens / test_get_sentinel_token_ids (and their
    _for_fasttokenizer twins), on T5's vocabulary instead of HF's 1000-piece fixture."""
    n = SENTINELS["extra_ids"]
    tok = Tokenizer(os.path.join(VOCAB_DIR, "spiece.model"), extra_ids=n)
    names = [f"<extra_id_{i}>" for i in range(n)]
    ids = [tok.encode(name)[0] for name in names]
    offsets = [i - SENTINELS["hf_fixture_pieces"] for i in SENTINELS["hf_ids"]]
    assert sorted(ids) == [tok.base_vocab_size + k for k in offsets]
    assert [tok.id_to_piece(i) for i in ids] == names
    assert all(map(tok.is_sentinel, ids)) and not tok.is_sentinel(tok.base_vocab_size - 1)
