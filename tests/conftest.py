import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so MirroredStrategy runs for real in the tests. This must happen
# before TensorFlow initialises its devices, hence here, before any test module runs.
_cpu = tf.config.list_physical_devices("CPU")[0]
if not tf.config.get_logical_device_configuration(_cpu):
    tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

_MIRRORED = []


def mirrored():
    """One MirroredStrategy over the two logical CPUs for the whole session: a second one in the
    same process can collide with the first one's collective instance keys."""
    if not _MIRRORED:
        _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _MIRRORED[0]


FIXTURES = pathlib.Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"
REFERENCE_VARIANTS = ["t5_v1_0_relu_tied", "t5_v1_1_gated_gelu_untied", "mt5", "umt5",
                      "gated_silu"]


def bind_model_dir(directory, model, run=None):
    """What a trainer writes to its model_dir once the model is built: `model_dir.bind` of the
    model's config and `describe_run(model, run)`."""
    from t5core import model_dir
    from t5core.training.trainer import describe_run

    model_dir.bind(directory, model.config, describe_run(model, run))


@pytest.fixture
def tiny_config():
    import t5core

    return t5core.T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=3, d_ff=24, num_layers=2,
                           num_decoder_layers=2, relative_attention_num_buckets=8,
                           relative_attention_max_distance=16, dropout_rate=0.0,
                           feed_forward_proj="gated-gelu", tie_word_embeddings=False)
