"""The T5 library's span-corruption vectors (google-research/text-to-text-transfer-transformer
`t5/data/preprocessors_test.py`, class PreprocessorsTest), carried over as data.

t5core's noise masks use T5's ops (`random_spans_noise_mask` over `stateless_shuffle`, i.e.
`tf.random.stateless_uniform` + argsort) with T5's stateless seeds, so a vector that gives its
seeds (test_random_spans_noise_mask) is matched exactly. Vectors whose seeds come from SeqIO's
`map_seed_manager` (test_denoise) are not reproducible through t5core's own per-example seeds:
for them the deterministic helpers are tested exactly on the mask the vector implies, and the
random part by what every mask of that length must satisfy.

Where T5's helpers take a vocabulary, t5core takes the first sentinel id: T5's sentinel i is
`vocabulary.vocab_size - 1 - i`, so the first is vocab_size - 1 with step -1 (1000 -> 999 for the
vectors' mock vocabulary of 1000 ids, 25 for SeqIO's 26-id test SentencePiece model).
"""

import numpy as np
import pytest
import tensorflow as tf

from t5core.data import objectives


def mask_of(length, seeds, noise_density, mean_noise_span_length):
    seeds = tf.constant(seeds, tf.int64)
    return objectives.random_spans_noise_mask(length, seeds, noise_density,
                                              mean_noise_span_length).numpy().astype(int)


def test_random_spans_helper():
    # PreprocessorsTest.test_random_spans_helper: inputs length 64, noise density 0.2, one extra
    # token per span on each side.
    for mean_length, expected in zip([2.0, 1.0], [(70, 22), (63, 27)]):
        assert objectives.random_spans_helper(64, 0.20, mean_length, 1, 1) == expected


def test_random_spans_noise_mask():
    # PreprocessorsTest.test_random_spans_noise_mask: length 32, density 0.25, mean span 2,
    # seeds [(1, 2), (3, 4)]: 4 noise spans of 8 tokens, exactly T5's mask.
    expected = [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1]
    assert mask_of(32, [(1, 2), (3, 4)], 0.25, 2.0).tolist() == expected


def test_random_spans_noise_mask_no_corruption():
    # PreprocessorsTest.test_random_spans_noise_mask_no_corruption: density 0 masks nothing.
    assert mask_of(32, [(1, 2), (3, 4)], 0.0, 2.0).tolist() == [0] * 32


def test_random_spans_noise_mask_average_density():
    # PreprocessorsTest.test_random_spans_noise_mask_with_roll_avg, without the roll (t5core has
    # no random_roll; a roll moves noise, it does not change how much): 50 masks of lengths
    # 16 + (i % 3), seeds [(1 + i, 2), (3 + i, 4)], density 0.15, within 0.01 of it.
    masked = lengths = 0
    for i in range(50):
        length = 16 + (i % 3)
        masked += mask_of(length, [(1 + i, 2), (3 + i, 4)], 0.15, 3).sum()
        lengths += length
    assert masked / lengths == pytest.approx(0.15, abs=0.01)
    assert (masked, lengths) == (133, 849)  # 17 x round(2.4) + 17 x round(2.55) + 16 x round(2.7)


@pytest.mark.parametrize("length, density, mean", [(32, 0.25, 2.0), (19, 0.3, 3.0),
                                                   (568, 0.15, 3.0), (7, 0.15, 3.0)])
def test_random_spans_noise_mask_shape_for_any_seed(length, density, mean):
    # T5's mask, whatever the seeds: round(length * density) noise tokens (at least 1, at most
    # length - 1) in round(noise / mean) spans (at least 1), starting with a non-noise token.
    noise = min(max(round(length * density), 1), length - 1)
    spans = max(round(noise / mean), 1)
    for seed in range(20):
        mask = mask_of(length, [(seed, 7), (11, seed)], density, mean)
        assert mask.sum() == noise and mask[0] == 0
        assert np.sum(np.diff(np.concatenate([[0], mask])) == 1) == spans


def test_random_prefix_noise_mask():
    # PreprocessorsTest.test_random_prefix_noise_mask: over 100 draws of length 10 the first
    # token is always noise (the prefix) and the last never is.
    for seed in range(100):
        mask = objectives.random_prefix_noise_mask(10, tf.constant([[seed, 1], [2, 3]],
                                                                   tf.int64)).numpy()
        assert mask[0] and not mask[-1]


TOKENS = tf.constant([10, 11, 12, 13, 14, 15])
NOISE = tf.constant([True, True, False, False, True, False])


def test_noise_span_to_unique_sentinel():
    # PreprocessorsTest.test_noise_span_to_unique_sentinel: mock vocabulary of 1000 ids.
    out = objectives.noise_span_to_unique_sentinel(TOKENS, NOISE, 999, -1)
    assert out.numpy().tolist() == [999, 12, 13, 998, 15]


def test_drop_noise_tokens():
    # PreprocessorsTest.test_drop_noise_tokens
    assert objectives.drop_noise_tokens(TOKENS, NOISE).numpy().tolist() == [12, 13, 15]


def test_drop_nonnoise_tokens():
    # PreprocessorsTest.test_drop_nonnoise_tokens
    assert objectives.drop_nonnoise_tokens(TOKENS, NOISE).numpy().tolist() == [10, 11, 14]


# 'The quick brown fox.' in SeqIO's test SentencePiece model (26 ids: sentinels 25, 24, ...).
FOX = [3, 2, 20, 4, 3, 2, 8, 13, 2, 3, 2, 23, 7, 19, 22, 3, 2, 7, 2]


def test_denoise_helpers_on_the_vectors_mask():
    # PreprocessorsTest.test_denoise (noise density 0.3, T5 base's other settings): the spans [2]
    # (position 8) and [22, 3, 2, 7, 2] (positions 14-18) become sentinels 25 and 24.
    mask = np.zeros(len(FOX), bool)
    mask[8] = True
    mask[14:19] = True
    inputs = objectives.noise_span_to_unique_sentinel(tf.constant(FOX), tf.constant(mask), 25)
    targets = objectives.nonnoise_span_to_unique_sentinel(tf.constant(FOX), tf.constant(mask), 25)
    assert inputs.numpy().tolist() == [3, 2, 20, 4, 3, 2, 8, 13, 25, 3, 2, 23, 7, 19, 24]
    assert targets.numpy().tolist() == [25, 2, 24, 22, 3, 2, 7, 2]
    # The mask's random part: any seed gives T5's counts for 19 tokens at 0.3 (6 noise tokens in
    # 2 spans), so every seed's rows have the vector's lengths, 15 and 8.
    ds = tf.data.Dataset.from_tensors({"targets": tf.constant(FOX)}).repeat(30)
    rows = list(objectives.denoise(
        ds, 42, lambda n, seeds: objectives.random_spans_noise_mask(n, seeds, 0.3, 3.0),
        objectives.noise_span_to_unique_sentinel, objectives.nonnoise_span_to_unique_sentinel,
        25).as_numpy_iterator())
    assert {(len(r["inputs"]), len(r["targets"])) for r in rows} == {(15, 8)}
    assert len({tuple(r["inputs"]) for r in rows}) > 1  # the seeds move the spans


def test_denoise_no_corruption():
    # PreprocessorsTest.test_denoise_no_corruption: density 0 leaves the tokens as they are and
    # the targets are the one sentinel.
    ds = tf.data.Dataset.from_tensors({"targets": tf.constant(FOX)})
    (row,) = objectives.denoise(
        ds, 42, lambda n, seeds: objectives.random_spans_noise_mask(n, seeds, 0.0, 3.0),
        objectives.noise_span_to_unique_sentinel, objectives.nonnoise_span_to_unique_sentinel,
        25).as_numpy_iterator()
    assert row["inputs"].tolist() == FOX and row["targets"].tolist() == [25]


def test_prefix_lm():
    # PreprocessorsTest.test_prefix_lm: 100 copies of 1..99 with inputs length 100 (99 + EOS):
    # inputs + targets give back the example, and the split point varies.
    inp = list(range(1, 100))
    ds = tf.data.Dataset.from_tensor_slices({"targets": [inp]}).repeat(100)
    input_lengths = set()
    for ex in objectives.prefix_lm(ds, seed=0, lengths={"inputs": 100}).as_numpy_iterator():
        assert ex["inputs"].tolist() + ex["targets"].tolist() == inp
        input_lengths.add(len(ex["inputs"]))
    assert len(input_lengths) > 1


class _Vocabulary:
    vocab_size = 26  # SeqIO's test SentencePiece model


def test_span_corruption():
    # PreprocessorsTest.test_span_corruption (a smoke test in T5): the rows hold inputs and
    # targets only.
    ds = tf.data.Dataset.from_tensor_slices({"targets": [list(range(1, 100))]}).repeat(100)
    out = objectives.span_corruption(ds, _Vocabulary(), seed=0,
                                     lengths={"targets": 100, "inputs": 100})
    first = next(iter(out.as_numpy_iterator()))
    assert sorted(first) == ["inputs", "targets"]


def test_select_random_chunk():
    # PreprocessorsTest.test_select_random_chunk: only the chunked feature remains, not empty.
    ds = tf.data.Dataset.from_tensors({"targets": [0, 1, 2, 3], "inputs": [4, 5, 6, 7]})
    (row,) = objectives.select_random_chunk(ds, seed=0, max_length=4).as_numpy_iterator()
    assert list(row) == ["targets"] and len(row["targets"])
