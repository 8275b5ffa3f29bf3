"""T5Config: one frozen description of every public T5 variant.

Field names are exactly the ones in Hugging Face `config.json`, so reading a public config is a
filter, not a translation table. UMT5 differs from T5 only in giving every self-attention layer its
own relative position table; `model_type == "umt5"` says so.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import reprlib
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from t5core import file_reads, file_writes
from t5core.errors import ConfigError, UserFileNotFoundError
from t5core.presets import preset_fields
from t5core.special_ids import EOS_ID, PAD_ID

SUPPORTED_MODEL_TYPES = ("t5", "mt5", "umt5")
FEED_FORWARD_KINDS = ("relu", "gated-gelu", "gated-silu")

_SIZE_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_layers",
                "num_decoder_layers", "relative_attention_num_buckets",
                "relative_attention_max_distance")
_TOKEN_FIELDS = ("pad_token_id", "eos_token_id", "decoder_start_token_id")
# field -> (the range test, the range in words). A zero epsilon divides by zero on a zero input.
_FLOAT_FIELDS = {
    "dropout_rate": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "layer_norm_epsilon": (lambda v: v > 0, "a finite number > 0"),
    "initializer_factor": (lambda v: v > 0, "a finite number > 0"),
}


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(value, name: str, minimum: int = 1) -> int:
    """`value` as an int, or a TypeError (not an integer) / ValueError (below `minimum`)."""
    if not _is_integer(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _shown(value):
    if isinstance(value, str):
        return f"the string {reprlib.repr(value)}"
    return reprlib.repr(value)


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
    """The hyper-parameters of one T5 model: frozen, keyword-only, checked on construction.

    Field names are HF `config.json`'s (`from_json`, `from_dict`, `from_preset`); an unknown
    field is a TypeError, a bad type or range a ConfigError naming the field.

    Attributes:
      vocab_size: rows of the embedding (and of the untied lm_head).
      d_model: width of the residual stream.
      d_kv: width of one attention head (need not be d_model / num_heads).
      d_ff: inner width of the feed-forward block.
      num_heads: attention heads per layer.
      num_layers: encoder blocks.
      num_decoder_layers: decoder blocks; None means num_layers.
      feed_forward_proj: "relu" (T5 1.0), "gated-gelu" (T5 1.1, mT5, Flan-T5) or "gated-silu".
      relative_attention_num_buckets, relative_attention_max_distance: how many position
        buckets, and the distance beyond which all share the last (T5: 32 and 128).
      dropout_rate: in [0, 1).
      layer_norm_epsilon: added to the mean square in each RMS norm (> 0).
      tie_word_embeddings: the output projection is the embedding scaled by d_model ** -0.5
        (T5 1.0); False: a separate lm_head (T5 1.1, mT5).
      model_type: "t5", "mt5" or "umt5" (umt5: a position table per self-attention layer).
      initializer_factor: scale of a fresh model's random initialisers.
      pad_token_id, eos_token_id, decoder_start_token_id: defaults 0, 1 and 0 (every released
        T5 starts decoding from the pad id).
    """

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
    # The special ids of T5's vocabularies; every released T5 starts decoding from the pad id.
    pad_token_id: int = PAD_ID
    eos_token_id: int = EOS_ID
    decoder_start_token_id: int = PAD_ID

    def __new__(cls, *args, **kwargs):
        # Runs before the dataclass __init__, which would name only the first unknown argument:
        # name them all.
        unknown = sorted(set(kwargs) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"T5Config got unknown field(s): {', '.join(unknown)}. "
                            f"Known fields: {', '.join(cls.field_names())}")
        return super().__new__(cls)

    def __post_init__(self):
        if self.num_decoder_layers is None:
            object.__setattr__(self, "num_decoder_layers", self.num_layers)
        problems = self._field_problems()
        if problems:
            raise ConfigError("invalid T5Config: " + "; ".join(problems))

    def _field_problems(self):
        """Each field checked for its JSON type and range, normalised to a plain Python value
        (a config.json may hold "0.1" for 0.1, "false" for false, 1 for true: all refused)."""
        problems = []

        def keep(name, value):
            object.__setattr__(self, name, value)

        for name, choices in (("model_type", SUPPORTED_MODEL_TYPES),
                              ("feed_forward_proj", FEED_FORWARD_KINDS)):
            if getattr(self, name) not in choices:
                problems.append(f"{name}={_shown(getattr(self, name))} is not supported "
                                f"(expected one of {', '.join(choices)})")
        for name in _SIZE_FIELDS:
            value = getattr(self, name)
            if _is_integer(value) and value >= 1:
                keep(name, int(value))
            else:
                problems.append(f"{name}: must be a positive integer, not {_shown(value)}")
        buckets = self.relative_attention_num_buckets
        distance = self.relative_attention_max_distance
        if _is_integer(buckets) and buckets >= 1 and _is_integer(distance) and distance >= 1:
            # The encoder halves its buckets by direction, then half of each are exact
            # distances: the logarithmic rest needs a max_distance beyond the exact ones.
            if buckets < 4:
                problems.append(f"relative_attention_num_buckets: must be >= 4, not {buckets}")
            elif distance <= buckets // 2:
                problems.append(f"relative_attention_max_distance: must be more than "
                                f"relative_attention_num_buckets // 2 = {buckets // 2}, not "
                                f"{distance}")
        vocab = self.vocab_size if _is_integer(self.vocab_size) else "vocab_size"
        for name in _TOKEN_FIELDS:
            value = getattr(self, name)
            if _is_integer(value) and 0 <= value and (vocab == "vocab_size" or value < vocab):
                keep(name, int(value))
            else:
                problems.append(f"{name}: must be a token id in [0, {vocab}), not {_shown(value)}")
        for name, (in_range, wanted) in _FLOAT_FIELDS.items():
            value = getattr(self, name)
            if not _is_number(value):
                problems.append(f"{name}: must be a number, not {_shown(value)}"
                                + (" (write numbers without quotes)" if isinstance(value, str)
                                   else ""))
            elif not (math.isfinite(value) and in_range(value)):
                problems.append(f"{name}: must be {wanted}, not {value!r}")
            else:
                keep(name, float(value))
        if isinstance(self.tie_word_embeddings, (bool, np.bool_)):
            keep("tie_word_embeddings", bool(self.tie_word_embeddings))
        else:
            problems.append(f"tie_word_embeddings: must be true or false (a JSON boolean), not "
                            f"{_shown(self.tie_word_embeddings)}")
        if not problems:  # sizes a file declares, held against the budget before any is used
            wanted = file_reads.model_parameters_at_least(self)
            if wanted > file_reads.BUDGETS["model_parameters"]:
                problems.append(
                    f"its sizes describe a model of at least {wanted:.3g} parameters, over the "
                    f"budget of {file_reads.BUDGETS['model_parameters']:.3g} "
                    "(docs/security.md)")
        return problems

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
    def of(cls, config) -> "T5Config":
        """`config` itself, or the T5Config a dict of its fields describes."""
        return config if isinstance(config, cls) else cls(**config)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "T5Config":
        """Builds a config from an HF-style dict, ignoring fields T5 does not use."""
        model_type = values.get("model_type", "t5")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"{source}: model_type {_shown(model_type)} is not supported; t5core reads "
                f"{', '.join(SUPPORTED_MODEL_TYPES)}")
        missing = [name for name in REQUIRED_JSON_FIELDS if name not in values]
        if missing:
            raise ConfigError(f"{source}: missing required field(s) {', '.join(missing)}")
        known = set(cls.field_names())
        kwargs = dict(_JSON_DEFAULTS_BY_TYPE[model_type])
        kwargs.update({k: v for k, v in values.items() if k in known})
        kwargs["model_type"] = model_type
        try:
            return cls(**kwargs)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, path: str) -> "T5Config":
        """Reads an HF `config.json` (local or gs://) of model_type t5, mt5 or umt5; a directory's
        is `t5core.model_dir.read_config`'s."""
        if tf.io.gfile.isdir(path):
            raise UserFileNotFoundError(f"{path} is a directory: give its config file, or read it "
                                        "with t5core.model_dir.read_config")
        if not tf.io.gfile.exists(path):
            raise UserFileNotFoundError(f"No config file at {path}")
        # NaN/Infinity pass here: each field's own check names the field that holds one.
        values = file_reads.read_json(path, ConfigError, nonfinite=True)
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a JSON object, got {type(values).__name__}")
        return cls.from_dict(values, source=path)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "T5Config":
        """The config of a public checkpoint by its name, e.g. "t5-small", "flan-t5-base"."""
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
        file_writes.write_json(path, self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes) -> "T5Config":
        return T5Config(**{**dataclasses.asdict(self), **changes})

