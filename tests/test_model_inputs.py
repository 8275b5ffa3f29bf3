"""The model's input contract (t5core.model_inputs) and the producers that now share it."""

import numpy as np
import pytest
import tensorflow as tf

from t5core.model_inputs import (
    MODEL_FEATURES,
    check_features,
    check_token_ids,
    model_features,
    shift_right,
)


def test_shift_right_of_arrays_tensors_and_graphs():
    # seqio/utils_test.py UtilsTest.test_shift_right_by_one (bos 0 and bos 10).
    targets = np.array([[3, 8, 2, 9, 3, 5, 4, 1, 0, 0]], np.int32)
    assert shift_right(targets, 0).numpy().tolist() == [[0, 3, 8, 2, 9, 3, 5, 4, 1, 0]]
    assert shift_right(tf.constant(targets), 10).numpy().tolist() == [
        [10, 3, 8, 2, 9, 3, 5, 4, 1, 0]]
    graph = tf.function(lambda t: shift_right(t, 10))(tf.constant(targets[0]))
    assert graph.numpy().tolist() == [10, 3, 8, 2, 9, 3, 5, 4, 1, 0]
    assert shift_right(targets, 0).dtype == tf.int32


def test_shift_right_of_packed_rows_restarts_each_example():
    # seqio/utils_test.py UtilsTest.test_autoregressive_inputs_packed.
    targets = tf.constant([3, 8, 1, 9, 1, 5, 4, 1, 0, 0])
    segments = tf.constant([1, 1, 1, 2, 2, 3, 3, 3, 0, 0])
    positions = tf.constant([0, 1, 2, 0, 1, 0, 1, 2, 0, 0])
    assert shift_right(targets, 0, segments, positions).numpy().tolist() == [
        0, 3, 8, 0, 9, 0, 5, 4, 0, 0]
    assert shift_right(targets, 7, segments, positions).numpy().tolist() == [
        7, 3, 8, 7, 9, 7, 5, 4, 0, 0]


@pytest.mark.parametrize("tokens", [
    np.array([[3, 64]]), tf.constant([[3, 64]]), [[3, 64]], np.array([-1, 3]),
])
def test_ids_outside_the_vocabulary_are_named_with_their_range(tokens):
    with pytest.raises(ValueError, match=r"decoder_input_tokens holds token ids in \[-?\d+, "
                                         r"\d+\], outside the model's vocabulary \[0, 64\)"):
        check_token_ids(tokens, 64, "decoder_input_tokens")


def test_ids_inside_the_vocabulary_empty_and_symbolic_ids_pass():
    check_token_ids(np.array([[0, 63]]), 64, "x")
    check_token_ids(np.zeros([0, 4], np.int32), 64, "x")
    check_token_ids([], 64, "x")
    # Inside a tf.function the values are unknown: nothing is checked, nothing fails.
    assert tf.function(lambda t: (check_token_ids(t, 64, "x"), t)[1])(tf.constant([99])) == 99


def test_feature_names():
    features = {k: 0 for k in MODEL_FEATURES + ("decoder_target_tokens", "decoder_loss_weights")}
    check_features(features)
    assert set(model_features(features)) == set(MODEL_FEATURES)
    with pytest.raises(ValueError, match=r"Unknown model feature\(s\) \['inputs'\]"):
        check_features({**features, "inputs": 0})
    with pytest.raises(ValueError, match="Missing model feature 'decoder_input_tokens'"):
        check_features({"encoder_input_tokens": 0})


class _Tokenizer:
    """Ids 10, 11, ... for each character, then EOS; an EOS other than T5's 1."""

    eos_id = 3

    def encode(self, text, add_eos=False):
        return [10 + ord(c) - ord("a") for c in text] + [self.eos_id] * add_eos


def test_pairs_are_cut_before_the_tokenizers_eos_and_shifted_from_the_start_id():
    from t5core.data.pairs import encode_pairs

    features, truncated = encode_pairs([("abcdef", "ab"), ("a", "abcdef")], _Tokenizer(),
                                       inputs_length=4, targets_length=4,
                                       decoder_start_token_id=7)
    assert truncated == 2
    assert features["encoder_input_tokens"].tolist() == [[10, 11, 12, 3], [10, 3, 0, 0]]
    assert features["decoder_target_tokens"].tolist() == [[10, 11, 3, 0], [10, 11, 12, 3]]
    assert features["decoder_input_tokens"].tolist() == [[7, 10, 11, 3], [7, 10, 11, 12]]
    assert isinstance(features["decoder_input_tokens"], np.ndarray)
