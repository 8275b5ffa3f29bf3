"""t5core's dropout (16-bit draws): statistics, scaling, gradient and seeding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core.checkpoints.model_state import ModelState
from t5core.layers import Dropout
from conftest import mirrored

# 2^20 elements: the dropped fraction's standard deviation is sqrt(p (1 - p) / n) = 2.9e-4 at
# p = 0.1, so 6 of them (1.8e-3) bound it; the resolved rates below differ from Keras' by less.
SHAPE_EVEN, SHAPE_ODD = (16, 256, 256), (16, 256, 257)


@pytest.mark.parametrize("shape", [SHAPE_EVEN, SHAPE_ODD], ids=["paired_draws", "odd_width"])
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drops_the_resolved_fraction_and_scales_the_rest(shape, rate):
    layer = Dropout(rate, seed=3)
    threshold = round(rate * 65536)
    assert layer.threshold == threshold and layer.scale == 65536 / (65536 - threshold)
    x = tf.random.stateless_uniform(shape, [1, 2], 1.0, 2.0)  # never 0 before dropout
    y = layer(x, training=True).numpy()
    dropped = y == 0
    n = dropped.size
    p = threshold / 65536
    assert abs(dropped.mean() - p) < 6 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(y[~dropped], (x.numpy() * np.float32(layer.scale))[~dropped])
    # Neighbours share one 32-bit draw (its two halves) on the paired path: their masks must
    # still be independent, P(both dropped) = p^2.
    both = (dropped[..., 0:-1:2] & dropped[..., 1::2]).mean()
    m = dropped[..., 1::2].size
    assert abs(both - p * p) < 6 * np.sqrt(p * p * (1 - p * p) / m)


def test_gradient_is_the_scaled_mask():
    layer = Dropout(0.3, seed=1)
    x = tf.random.normal([4, 8, 64])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x).numpy()
    kept = (y.numpy() != 0)
    np.testing.assert_allclose(grad, kept * np.float32(layer.scale), rtol=1e-7)


def test_identity_outside_training_and_at_rate_zero():
    x = tf.random.normal([2, 3, 8])
    assert Dropout(0.5)(x, training=False) is x
    assert Dropout(0.0)(x, training=True) is x
    assert not Dropout(0.0).variables  # no seed state without a rate


def test_seeded_masks_repeat_across_layers_and_change_between_calls():
    x = tf.ones([8, 128])
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    first = a(x, training=True).numpy()
    np.testing.assert_array_equal(first, b(x, training=True).numpy())
    assert not np.array_equal(first, a(x, training=True).numpy())
    # The seed state is a variable of the layer, so checkpoints carry it.
    assert len(a.variables) == 1


def test_bfloat16_and_dynamic_shapes():
    layer = Dropout(0.25, seed=0, dtype="mixed_bfloat16")
    y = layer(tf.ones([4, 6], tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16
    scale = float(tf.cast(layer.scale, tf.bfloat16))  # the scale rounded as the input's dtype
    assert set(np.unique(y.numpy().astype(np.float32))) <= {0.0, scale}
    dynamic = tf.function(lambda t: layer(t, training=True),
                          input_signature=[tf.TensorSpec([None, None], tf.float32)])
    assert dynamic(tf.ones([3, 5])).shape == (3, 5)


def test_rejects_bad_rates():
    for rate in (-0.1, 1.0, 1.5, 1 - 1e-6):
        with pytest.raises(ValueError, match="rate"):
            Dropout(rate)


def test_serialises_with_the_model_config():
    layer = Dropout(0.2, seed=5, name="drop")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, Dropout) and (clone.rate, clone.seed) == (0.2, 5)


def test_replicas_drop_independently_and_repeat_from_the_checkpointed_state(tiny_config):
    """Every replica holds the same seed states, yet its rows must get masks of their own (as one
    device's rows do); from the same (checkpointed) states, each replica draws its masks again."""
    strategy = mirrored()
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = t5core.T5Model(tiny_config.replace(dropout_rate=0.5))
    row = {"encoder_input_tokens": tf.constant([[5, 6, 7, 8, 1]]),
           "decoder_input_tokens": tf.constant([[0, 9, 10, 11]])}

    @tf.function
    def forward():
        return strategy.run(model, args=(row,), kwargs={"training": True})

    states = list(ModelState(model).rng_states.values())
    saved = [v.numpy() for v in states]
    first = [t.numpy() for t in strategy.experimental_local_results(forward())]
    assert not np.allclose(first[0], first[1])  # the same row, other masks
    for variable, value in zip(states, saved):
        variable.assign(value)
    again = [t.numpy() for t in strategy.experimental_local_results(forward())]
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
