"""Keras layers of T5, one concern per module."""

from t5core.layers.attention import Attention
from t5core.layers.blocks import DecoderBlock, EncoderBlock
from t5core.layers.dropout import Dropout
from t5core.layers.feed_forward import FeedForward
from t5core.layers.norm import RMSNorm
from t5core.layers.position import RelativePositionBias, relative_position_bucket
from t5core.layers.stacks import Decoder, Encoder

__all__ = ["Attention", "DecoderBlock", "Dropout", "EncoderBlock", "FeedForward", "RMSNorm",
           "RelativePositionBias", "relative_position_bucket", "Decoder", "Encoder"]
