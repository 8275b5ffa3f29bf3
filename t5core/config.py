"""T5Config: one frozen description of every public T5 variant.

Field names are exactly the ones in Hugging Face `config.json`, so reading a public config is a
filter, not a translation table. UMT5 differs from T5 only in giving every self-attention layer its
own relative position table; `model_type == "umt5"` says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import tensorflow as tf

SUPPORTED_MODEL_TYPES = ("t5", "mt5", "umt5")
FEED_FORWARD_KINDS = ("relu", "gated-gelu", "gated-silu")

# Fields a config.json must state; the rest have the T5 defaults below.
REQUIRED_JSON_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_layers")

# What transformers assumes when a config.json omits a field: its MT5Config and UMT5Config
# defaults differ from T5Config's (mT5 is untied and gated; UMT5 is gated but tied).
_JSON_DEFAULTS_BY_TYPE = {
    "t5": {},
    "mt5": {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
    "umt5": {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": True},
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class T5Config:
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_heads: int = 8
    num_layers: int = 6
    num_decoder_layers: int | None = None  # None: same as num_layers (HF's convention)
    feed_forward_proj: str = "relu"
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    tie_word_embeddings: bool = True
    model_type: str = "t5"
    initializer_factor: float = 1.0
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0

    def __post_init__(self):
        if self.num_decoder_layers is None:
            object.__setattr__(self, "num_decoder_layers", self.num_layers)
        problems = []
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            problems.append(
                f"model_type={self.model_type!r} is not supported (expected one of "
                f"{', '.join(SUPPORTED_MODEL_TYPES)})")
        if self.feed_forward_proj not in FEED_FORWARD_KINDS:
            problems.append(
                f"feed_forward_proj={self.feed_forward_proj!r} is not supported (expected one of "
                f"{', '.join(FEED_FORWARD_KINDS)})")
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_layers",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name}={value!r} must be a positive integer")
        if not isinstance(self.num_decoder_layers, int) or self.num_decoder_layers < 0:
            problems.append(f"num_decoder_layers={self.num_decoder_layers!r} must be an integer >= 0")
        if not 0.0 <= self.dropout_rate < 1.0:
            problems.append(f"dropout_rate={self.dropout_rate!r} must be in [0, 1)")
        if problems:
            raise ValueError("Invalid T5Config: " + "; ".join(problems))

    # -- derived facts -------------------------------------------------------------------------
    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def inner_dim(self) -> int:
        """Attention width num_heads * d_kv, which need not equal d_model."""
        return self.num_heads * self.d_kv

    @property
    def per_layer_position_bias(self) -> bool:
        """UMT5 gives every self-attention layer its own bias table; T5/mT5 share the first."""
        return self.model_type == "umt5"

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "T5Config":
        """Builds a config from an HF-style dict, ignoring fields T5 does not use."""
        model_type = values.get("model_type", "t5")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"{source}: model_type {model_type!r} is not supported; t5core reads "
                f"{', '.join(SUPPORTED_MODEL_TYPES)}")
        missing = [name for name in REQUIRED_JSON_FIELDS if name not in values]
        if missing:
            raise ValueError(f"{source}: missing required field(s) {', '.join(missing)}")
        known = set(cls.field_names())
        kwargs = dict(_JSON_DEFAULTS_BY_TYPE[model_type])
        kwargs.update({k: v for k, v in values.items() if k in known})
        kwargs["model_type"] = model_type
        try:
            return cls(**kwargs)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, path: str) -> "T5Config":
        """Reads an HF `config.json` (local or gs://) of model_type t5, mt5 or umt5."""
        if tf.io.gfile.isdir(path):
            path = os.path.join(path, "config.json")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"No config file at {path}")
        with tf.io.gfile.GFile(path, "r") as f:
            text = f.read()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(values).__name__}")
        return cls.from_dict(values, source=path)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "T5Config":
        """The config of a public checkpoint by its name, e.g. "t5-small", "flan-t5-base"."""
        from t5core.presets import preset_fields  # the size table lives in its own module

        return cls(**{**preset_fields(name), **overrides})

    def to_dict(self) -> dict[str, Any]:
        """An HF `config.json` dict that transformers reads as the same model."""
        values = dataclasses.asdict(self)
        arch = {"t5": "T5ForConditionalGeneration", "mt5": "MT5ForConditionalGeneration",
                "umt5": "UMT5ForConditionalGeneration"}[self.model_type]
        values.update(
            architectures=[arch],
            is_encoder_decoder=True,
            dense_act_fn="gelu_new" if self.feed_forward_proj == "gated-gelu"
            else self.feed_forward_proj.replace("gated-", ""),
            is_gated_act=self.is_gated,
        )
        return values

    def to_kwargs(self) -> dict[str, Any]:
        """The constructor's keyword arguments (what Keras `get_config` stores)."""
        return dataclasses.asdict(self)

    def to_json(self, path: str) -> None:
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def replace(self, **changes) -> "T5Config":
        return T5Config(**{**dataclasses.asdict(self), **changes})


_dataclass_init = T5Config.__init__


def _checked_init(self, **kwargs):
    # The dataclass __init__ names only the first unknown argument; name them all.
    unknown = sorted(set(kwargs) - set(T5Config.field_names()))
    if unknown:
        raise TypeError(
            f"T5Config got unknown field(s): {', '.join(unknown)}. "
            f"Known fields: {', '.join(T5Config.field_names())}")
    _dataclass_init(self, **kwargs)


T5Config.__init__ = _checked_init
