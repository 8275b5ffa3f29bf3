"""The public T5 checkpoints' hyper-parameters (the size table of docs/t5_reference.md).

Flan-T5 checkpoints share the T5 v1.1 architecture of the same size name. All presets use 32
relative-position buckets, max distance 128 and epsilon 1e-6 (the T5Config defaults).
"""

from __future__ import annotations

import math

from t5core.variable_layout import parameter_shapes

# name: (d_model, d_ff, d_kv, num_heads, num_layers, num_decoder_layers)
_V1_0 = {
    "small": (512, 2048, 64, 8, 6, 6),
    "base": (768, 3072, 64, 12, 12, 12),
    "large": (1024, 4096, 64, 16, 24, 24),
    "3b": (1024, 16384, 128, 32, 24, 24),
    "11b": (1024, 65536, 128, 128, 24, 24),
}
_V1_1 = {  # also mT5 and UMT5
    "small": (512, 1024, 64, 6, 8, 8),
    "base": (768, 2048, 64, 12, 12, 12),
    "large": (1024, 2816, 64, 16, 24, 24),
    "xl": (2048, 5120, 64, 32, 24, 24),
    "xxl": (4096, 10240, 64, 64, 24, 24),
}
_BYT5 = {
    "small": (1472, 3584, 64, 6, 12, 4),
    "base": (1536, 3968, 64, 12, 18, 6),
    "large": (1536, 3840, 64, 16, 36, 12),
    "xl": (2560, 6720, 64, 32, 36, 12),
    "xxl": (4672, 12352, 64, 64, 36, 12),
}

# family prefix: (size table, vocab rows, feed-forward, tied logits, model_type, sizes offered)
_FAMILIES = {
    "t5-": (_V1_0, 32128, "relu", True, "t5", tuple(_V1_0)),
    "t5-v1_1-": (_V1_1, 32128, "gated-gelu", False, "t5", tuple(_V1_1)),
    "flan-t5-": (_V1_1, 32128, "gated-gelu", False, "t5", tuple(_V1_1)),
    "mt5-": (_V1_1, 250112, "gated-gelu", False, "mt5", tuple(_V1_1)),
    "umt5-": (_V1_1, 256384, "gated-gelu", False, "umt5", ("small", "base", "xl", "xxl")),
    "byt5-": (_BYT5, 384, "gated-gelu", False, "t5", tuple(_BYT5)),
}


def preset_names() -> list[str]:
    """The names `T5Config.from_preset` knows.

    Returns:
      The names by family ("t5-small", ..., "flan-t5-small", ..., "byt5-xxl"), smallest first.
    """
    return [prefix + size for prefix, fam in _FAMILIES.items() for size in fam[5]]


def preset_fields(name: str) -> dict:
    """T5Config keyword arguments for a preset name such as "t5-small" or "flan-t5-xl"."""
    # Longest prefix first so "t5-v1_1-small" is not read as the v1.0 family.
    for prefix in sorted(_FAMILIES, key=len, reverse=True):
        table, vocab, ffn, tied, model_type, sizes = _FAMILIES[prefix]
        size = name[len(prefix):] if name.startswith(prefix) else None
        if size in sizes:
            d_model, d_ff, d_kv, heads, enc, dec = table[size]
            return dict(vocab_size=vocab, d_model=d_model, d_ff=d_ff, d_kv=d_kv, num_heads=heads,
                        num_layers=enc, num_decoder_layers=dec, feed_forward_proj=ffn,
                        tie_word_embeddings=tied, model_type=model_type)
    raise ValueError(f"Unknown preset {name!r}. Known presets: {', '.join(preset_names())}")


def count_parameters(config) -> int:
    """Parameters of a T5Config's model, from shapes, nothing built.

    Args:
      config: e.g. `T5Config.from_preset("t5-base")`.

    Returns:
      The number of scalars in a `T5Model(config)`'s variables.
    """
    return sum(math.prod(shape) for shape in parameter_shapes(config).values())
