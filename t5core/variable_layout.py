"""The model's variables from its config alone: every name `T5Model` gives a variable, its shape
and module; the one description `parameter_summary`, `count_parameters` and `parameter_table`
read. It allocates nothing and imports nothing from t5core."""

from __future__ import annotations

import math

_ATTENTION_PARTS = ("q", "k", "v", "o")


def parameter_shapes(config) -> dict[str, tuple[int, ...]]:
    """Every variable's model-relative name and shape from a T5Config, in
    `T5Model(config).variables_by_name()`'s order; nothing allocated."""
    c = config
    d, inner, ff = c.d_model, c.inner_dim, c.d_ff
    shapes: dict[str, tuple[int, ...]] = {"shared/embeddings": (c.vocab_size, d)}

    def attention(prefix, with_table):
        for part in _ATTENTION_PARTS:
            shapes[f"{prefix}/{part}/kernel"] = (inner, d) if part == "o" else (d, inner)
        if with_table:
            shapes[f"{prefix}/relative_attention_bias/embeddings"] = (
                c.relative_attention_num_buckets, c.num_heads)

    for stack, blocks in (("encoder", c.num_layers), ("decoder", c.num_decoder_layers)):
        for i in range(blocks):
            block = f"{stack}/block_{i}"
            shapes[f"{block}/self_attention_norm/scale"] = (d,)
            attention(f"{block}/self_attention", i == 0 or c.per_layer_position_bias)
            if stack == "decoder":
                shapes[f"{block}/cross_attention_norm/scale"] = (d,)
                attention(f"{block}/cross_attention", False)  # cross-attention has no position bias
            shapes[f"{block}/ffn_norm/scale"] = (d,)
            for wi in (("wi_0", "wi_1") if c.is_gated else ("wi",)):
                shapes[f"{block}/ffn/{wi}/kernel"] = (d, ff)
            shapes[f"{block}/ffn/wo/kernel"] = (ff, d)
        shapes[f"{stack}/final_layer_norm/scale"] = (d,)
    if not c.tie_word_embeddings:
        shapes["lm_head/kernel"] = (d, c.vocab_size)
    return shapes


def module_of(name: str) -> str:
    """"encoder/block_3/ffn/wo/kernel" -> "encoder/block_3"; "shared/embeddings" -> "shared"."""
    parts = name.split("/")
    return "/".join(parts[:2]) if parts[0] in ("encoder", "decoder") else parts[0]


def counts_by_module(shapes: dict) -> list[tuple[str, int]]:
    """[(module, parameters)] in the order the modules first appear in `shapes` ({name: shape})."""
    counts: dict[str, int] = {}
    for name, shape in shapes.items():
        module = module_of(name)
        counts[module] = counts.get(module, 0) + math.prod(int(s) for s in shape)
    return list(counts.items())
