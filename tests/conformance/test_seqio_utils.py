"""SeqIO's packing, trimming and shifting vectors (google/seqio `seqio/utils_test.py`), as data.

How SeqIO's functions map onto t5core's (`t5core.data.features`, `t5core.data.preprocessors`):
  trim_and_pack_dataset  -> pack_to_model_features; "inputs", "inputs_segment_ids",
                            "inputs_positions" are encoder_input_tokens, encoder_segment_ids,
                            encoder_positions; "targets", ... are decoder_target_tokens, ...
  trim_and_pad_dataset   -> pad_to_model_features
  make_autoregressive_inputs, _shift_right_by_one (bos_id) -> the features' decoder_input_tokens
                            (bos_id is the config's decoder_start_token_id)
Trimming differs on purpose: SeqIO cuts an overlong example silently (its EOS is lost); t5core's
features refuse it with an error naming the fix, and cut only when asked. `truncate(...,
eos_id=None)` is SeqIO's plain cut; `truncate=True` on the features keeps the EOS as the last
token (T5's tasks do that with `append_eos_after_trim` before SeqIO's feature converter), so the
model still sees where each example ends. The vectors with overlong examples run through the
plain cut, and the tests show the other two behaviours beside them.
"""

import numpy as np
import pytest
import tensorflow as tf

from t5core.data import features
from t5core.data.preprocessors import truncate

ENCODER = {"inputs": "encoder_input_tokens", "inputs_segment_ids": "encoder_segment_ids",
           "inputs_positions": "encoder_positions", "targets": "decoder_target_tokens",
           "targets_segment_ids": "decoder_segment_ids", "targets_positions": "decoder_positions"}


def dataset(examples):
    return tf.data.Dataset.from_generator(
        lambda: ({k: np.asarray(v, np.int32) for k, v in x.items()} for x in examples),
        output_signature={k: tf.TensorSpec([None], tf.int32) for k in examples[0]})


def rows(ds):
    return [{k: v.tolist() for k, v in row.items()} for row in ds.as_numpy_iterator()]


def seqio_view(row):
    """A t5core feature row under SeqIO's names (the features SeqIO's vector lists)."""
    return {seqio: row[ours] for seqio, ours in ENCODER.items() if ours in row}


def test_trim_and_pad_dataset():
    # seqio/utils_test.py UtilsTest.test_trim_and_pad_dataset ("idx" is a SeqIO passthrough
    # feature t5core's model rows do not carry).
    x = [{"inputs": [7, 8, 5, 6, 1], "targets": [3, 9, 1]},
         {"inputs": [8, 4, 9, 3, 5, 7, 9, 1], "targets": [4, 1]}]
    expected = [{"inputs": [7, 8, 5, 6, 1, 0, 0], "targets": [3, 9, 1]},
                {"inputs": [8, 4, 9, 3, 5, 7, 9], "targets": [4, 1, 0]}]  # EOS is trimmed
    lengths = {"inputs": 7, "targets": 3}
    got = rows(features.pad_to_model_features(truncate(dataset(x), lengths, eos_id=None),
                                              lengths))
    assert [{k: seqio_view(r)[k] for k in ("inputs", "targets")} for r in got] == expected
    # t5core's own choices on the same rows: refuse by default, or cut keeping the EOS.
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncate"):
        rows(features.pad_to_model_features(dataset(x), lengths))
    kept = rows(features.pad_to_model_features(dataset(x), lengths, truncate=True))
    assert kept[1]["encoder_input_tokens"] == [8, 4, 9, 3, 5, 7, 1]


def test_trim_and_pack_dataset():
    # seqio/utils_test.py UtilsTest.test_trim_and_pack_dataset
    x = [{"inputs": [7, 8, 5, 1], "targets": [3, 9, 1]},
         {"inputs": [8, 4, 9, 3, 1], "targets": [4, 1]}]
    expected = {
        "inputs": [7, 8, 5, 1, 8, 4, 9, 3, 1, 0],
        "inputs_segment_ids": [1, 1, 1, 1, 2, 2, 2, 2, 2, 0],
        "inputs_positions": [0, 1, 2, 3, 0, 1, 2, 3, 4, 0],
        "targets": [3, 9, 1, 4, 1, 0, 0],
        "targets_positions": [0, 1, 2, 0, 1, 0, 0],
        "targets_segment_ids": [1, 1, 1, 2, 2, 0, 0],
    }
    got = rows(features.pack_to_model_features(dataset(x), {"inputs": 10, "targets": 7}))
    assert [seqio_view(r) for r in got] == [expected]


def test_trim_and_pack_dataset_no_eos():
    # seqio/utils_test.py UtilsTest.test_trim_and_pack_dataset_no_eos: packing still works
    # without the EOS.
    x = [{"inputs": [7, 8, 5], "targets": [3, 9]},
         {"inputs": [8, 4, 9, 3], "targets": [4]}]
    expected = {
        "inputs": [7, 8, 5, 8, 4, 9, 3, 0],
        "inputs_segment_ids": [1, 1, 1, 2, 2, 2, 2, 0],
        "inputs_positions": [0, 1, 2, 0, 1, 2, 3, 0],
        "targets": [3, 9, 4, 0, 0],
        "targets_positions": [0, 1, 0, 0, 0],
        "targets_segment_ids": [1, 1, 2, 0, 0],
    }
    got = rows(features.pack_to_model_features(dataset(x), {"inputs": 8, "targets": 5}))
    assert [seqio_view(r) for r in got] == [expected]


def test_trim_and_pack_dataset_long_seq():
    # seqio/utils_test.py UtilsTest.test_trim_and_pack_dataset_long_seq, through SeqIO's plain
    # cut (see the module docstring).
    x = [{"inputs": [7, 8, 5, 6, 9, 4, 1], "targets": [3, 9, 1]},
         {"inputs": [8, 4, 9, 3, 5, 7, 9, 1], "targets": [4, 1]}]
    expected = [
        {"inputs": [7, 8, 5, 6, 9, 4, 1], "inputs_segment_ids": [1] * 7,
         "inputs_positions": [0, 1, 2, 3, 4, 5, 6], "targets": [3, 9, 1],
         "targets_positions": [0, 1, 2], "targets_segment_ids": [1, 1, 1]},
        {"inputs": [8, 4, 9, 3, 5, 7, 9], "inputs_segment_ids": [1] * 7,  # EOS is trimmed
         "inputs_positions": [0, 1, 2, 3, 4, 5, 6], "targets": [4, 1, 0],
         "targets_positions": [0, 1, 0], "targets_segment_ids": [1, 1, 0]},
    ]
    lengths = {"inputs": 7, "targets": 3}
    got = rows(features.pack_to_model_features(truncate(dataset(x), lengths, eos_id=None),
                                               lengths))
    assert [seqio_view(r) for r in got] == expected
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than the row length 7"):
        rows(features.pack_to_model_features(dataset(x), lengths))
    kept = rows(features.pack_to_model_features(dataset(x), lengths, truncate=True))
    assert kept[1]["encoder_input_tokens"] == [8, 4, 9, 3, 5, 7, 1]


def decoder_inputs(targets_per_example, length, pack, decoder_start_token_id=0):
    """The decoder_input_tokens of one feature row holding these examples' targets."""
    x = [{"inputs": [5], "targets": t} for t in targets_per_example]
    make = features.pack_to_model_features if pack else features.pad_to_model_features
    (row,) = rows(make(dataset(x), {"inputs": 8, "targets": length},
                       decoder_start_token_id=decoder_start_token_id))
    return row["decoder_input_tokens"]


def test_autoregressive_inputs_unpacked():
    # seqio/utils_test.py UtilsTest.test_autoregressive_inputs_unpacked: [3, 8, 9, 5, 1, 0, 0].
    assert decoder_inputs([[3, 8, 9, 5, 1]], 7, pack=False) == [0, 3, 8, 9, 5, 1, 0]


@pytest.mark.parametrize("name, targets", [
    # seqio/utils_test.py UtilsTest.test_autoregressive_inputs_packed: [3, 8, 1, 9, 1, 5, 4, 1,
    # 0, 0] with sequence ids [1, 1, 1, 2, 2, 3, 3, 3, 0, 0].
    ("packed", [[3, 8, 1], [9, 1], [5, 4, 1]]),
    # UtilsTest.test_autoregressive_inputs_packed_non_eos: x[4] is 6 instead of EOS; only the
    # sequence ids decide where a sequence restarts.
    ("packed_non_eos", [[3, 8, 1], [9, 6], [5, 4, 1]]),
])
def test_autoregressive_inputs_packed(name, targets):
    assert decoder_inputs(targets, 10, pack=True) == [0, 3, 8, 0, 9, 0, 5, 4, 0, 0], name


@pytest.mark.parametrize("bos_id, expected", [
    # seqio/utils_test.py UtilsTest.test_shift_right_by_one
    (0, [0, 3, 8, 2, 9, 3, 5, 4, 1, 0]),
    # UtilsTest.test_shift_right_by_one_without_default_bos: bos_id 10, t5core's
    # decoder_start_token_id.
    (10, [10, 3, 8, 2, 9, 3, 5, 4, 1, 0]),
])
def test_shift_right_by_one(bos_id, expected):
    assert decoder_inputs([[3, 8, 2, 9, 3, 5, 4, 1]], 10, pack=False,
                          decoder_start_token_id=bos_id) == expected
