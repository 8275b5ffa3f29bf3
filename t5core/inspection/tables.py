"""Tables computed from a config alone: parameters by module and relative position buckets.

Nothing here allocates weights, so the tables of the largest presets cost nothing.
"""

from __future__ import annotations

import numpy as np

from t5core.config import T5Config
from t5core.layers.position import relative_position_bucket
from t5core.variable_layout import counts_by_module, module_of, parameter_shapes


# What a variable does, by a part of its name; the first match wins (a norm or a bias table
# sits inside an attention layer), and what matches nothing is the feed-forward.
_KINDS = (("shared/", "embedding"), ("lm_head/", "lm_head"),
          ("relative_attention_bias", "position_bias"), ("norm/scale", "norm"),
          ("/cross_attention/", "cross_attention"), ("/self_attention/", "self_attention"))


def kind_of(name: str) -> str:
    """embedding, self_attention, cross_attention, position_bias, ffn, norm or lm_head."""
    return next((kind for part, kind in _KINDS if part in name), "ffn")


def parameter_table(source) -> dict:
    """The parameter table of a `T5Model` (real variables) or `T5Config` (shapes): {"total",
    "variables": [{"name", "module", "kind", "shape", "count"}], "by_module": [{"module",
    "count"}] in model order, "by_kind": {kind: count}}."""
    if isinstance(source, T5Config):
        shapes = parameter_shapes(source)
    elif hasattr(source, "variables_by_name"):
        shapes = {k: tuple(int(s) for s in v.shape) for k, v in source.variables_by_name().items()}
    else:
        raise TypeError("parameter_table expects a T5Model or a T5Config, got "
                        f"{type(source).__name__}")
    rows = [{"name": name, "module": module_of(name), "kind": kind_of(name), "shape": list(shape),
             "count": int(np.prod(shape, dtype=np.int64))} for name, shape in shapes.items()]
    by_kind: dict[str, int] = {}
    for row in rows:
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + row["count"]
    return {"total": sum(r["count"] for r in rows), "variables": rows,
            "by_module": [{"module": m, "count": n} for m, n in counts_by_module(shapes)],
            "by_kind": by_kind}


# -- relative position buckets -----------------------------------------------------------------


def bucket_table(config: T5Config, span: int | None = None) -> dict:
    """Bucket of each `key - query` in [-span, span], bidirectional (encoder) and causal
    (decoder); span defaults to max_distance + max_distance // 4, to show the clipping."""
    nb, md = config.relative_attention_num_buckets, config.relative_attention_max_distance
    span = md + md // 4 if span is None else int(span)
    relative = np.arange(-span, span + 1, dtype=np.int32)
    bucket = lambda bidirectional: relative_position_bucket(
        relative, bidirectional, nb, md).numpy().astype(int).tolist()
    return {"num_buckets": nb, "max_distance": md, "relative_positions": relative.tolist(),
            "bidirectional": bucket(True), "causal": bucket(False)}


def bucket_ranges(table: dict, mode: str) -> dict[int, str]:
    """bucket -> the relative positions it covers, as text ("-3", "-11..-8", "<= -128")."""
    relative, buckets = table["relative_positions"], table[mode]
    low, high = relative[0], relative[-1]
    runs: dict[int, list[tuple[int, int]]] = {}
    for r, b in zip(relative, buckets):
        spans = runs.setdefault(b, [])
        if spans and spans[-1][1] == r - 1:
            spans[-1] = (spans[-1][0], r)
        else:
            spans.append((r, r))

    def text(a, b):
        if a == low and b == high:
            return "all"
        if a == low:
            return f"<= {b}"
        if b == high:
            return f">= {a}"
        return f"{a}" if a == b else f"{a}..{b}"
    return {b: ", ".join(text(a, z) for a, z in spans) for b, spans in sorted(runs.items())}
