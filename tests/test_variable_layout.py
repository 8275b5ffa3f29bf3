"""The one description of the model's variables (t5core.variable_layout) is the built model's:
names and shapes, and every count derived from it."""

import numpy as np
import pytest

import t5core
from t5core import inspection, presets, variable_layout

TINY = dict(vocab_size=40, d_model=8, d_kv=4, num_heads=2, d_ff=12, num_layers=2,
            num_decoder_layers=3)


@pytest.mark.parametrize("overrides", [
    dict(feed_forward_proj="relu", tie_word_embeddings=True),
    dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False, model_type="umt5"),
    dict(num_decoder_layers=1, d_kv=3, num_heads=3),
], ids=["t5", "t5_v1_1", "umt5", "inner_dim_not_d_model"])
def test_the_layout_is_the_built_models_and_every_count_reads_it(overrides):
    config = t5core.T5Config(**{**TINY, **overrides})
    model = t5core.T5Model(config)
    model({"encoder_input_tokens": np.ones((1, 3), np.int32),
           "decoder_input_tokens": np.ones((1, 2), np.int32)})  # builds every variable
    built = {name: tuple(v.shape) for name, v in model.variables_by_name().items()}
    layout = variable_layout.parameter_shapes(config)
    assert layout == built  # the same names and shapes
    assert presets.count_parameters(config) == model.count_params()
    # The same modules in the same order, with the same counts.
    assert model.parameter_summary() == variable_layout.counts_by_module(layout)
    assert inspection.parameter_table(config)["by_module"] == \
        inspection.parameter_table(model)["by_module"]
    assert inspection.parameter_shapes is variable_layout.parameter_shapes
