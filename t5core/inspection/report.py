"""The report (one dict of plain data), its JSON file and its text tables."""

from __future__ import annotations

import numpy as np

from t5core import file_writes
from t5core.config import T5Config
from t5core.inspection.tables import bucket_ranges, bucket_table, parameter_table
from t5core.metrics.scripts import display_width, pad
from t5core.presets import count_parameters


def bias_by_distance(model, table: dict) -> dict[str, dict[int, np.ndarray]]:
    """Each learned bias table read at every relative position of `table`: {stack: {block:
    [heads, positions]}}, bidirectional for the encoder and causal for the decoder."""
    out = {}
    for stack_name, mode in (("encoder", "bidirectional"), ("decoder", "causal")):
        buckets = np.asarray(table[mode])
        out[stack_name] = {
            i: np.asarray(block.self_attention.relative_attention_bias.embeddings)[buckets].T
            for i, block in enumerate(getattr(model, stack_name).blocks) if block.has_relative_bias}
    return out


def build_report(model_or_config, source: str, row: dict | None = None,
                 bucket_span: int | None = None) -> dict:
    """The whole report: model, parameters, buckets and (optionally) one row's activations."""
    is_config = isinstance(model_or_config, T5Config)
    config = model_or_config if is_config else model_or_config.config
    params = parameter_table(model_or_config)
    report = {"source": source, "config": config.to_kwargs(), "parameters": params,
              "count_parameters": count_parameters(config),
              "buckets": bucket_table(config, bucket_span)}
    if not is_config:
        report["bias_by_distance"] = bias_by_distance(model_or_config, report["buckets"])
    if row is not None:
        report["row"] = row
    return report


def write_json(report: dict, path: str) -> str:
    # int dict keys become strings; numpy arrays and scalars lists and numbers (json_text).
    file_writes.write_text(path, file_writes.json_text(report))
    return path


def table(header, rows, markdown=False) -> str:
    """Text columns (numbers right-aligned), or a Markdown table for TensorBoard's text tab."""
    if markdown:
        line = lambda r: "| " + " | ".join(str(x) for x in r) + " |"
        return "\n".join([line(header), "|" + "---|" * len(header)] + [line(r) for r in rows])
    widths = [max(display_width(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(pad(str(x), w, right=isinstance(x, (int, float)))
                               for x, w in zip(r, widths))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def variables_table(params: dict, markdown=False) -> str:
    return table(("variable", "shape", "parameters"), [
        (v["name"], "x".join(map(str, v["shape"])), v["count"]) for v in params["variables"]],
        markdown)


def format_parameters(params: dict, variables: bool = False) -> str:
    total = params["total"]
    parts = [table(("module", "parameters", "%"), [
        (m["module"], m["count"], f"{100 * m['count'] / total:.2f}") for m in params["by_module"]])]
    parts.append(table(("kind", "parameters", "%"), [
        (k, n, f"{100 * n / total:.2f}") for k, n in params["by_kind"].items()]))
    if variables:
        parts.append(variables_table(params))
    parts.append(f"total parameters: {total:,}")
    return "\n\n".join(parts)


def buckets_table(buckets: dict, unused="(unused)", markdown=False) -> str:
    bi, causal = bucket_ranges(buckets, "bidirectional"), bucket_ranges(buckets, "causal")
    # With bidirectional buckets, the first bucket of the positive half is never used: distance
    # 0 falls in the negative half's bucket 0 (T5's convention, kept for the checkpoints).
    rows = [(b, bi.get(b, unused), causal.get(b, unused)) for b in range(buckets["num_buckets"])]
    return table(("bucket", "bidirectional (encoder)", "causal (decoder)"), rows, markdown)


def format_buckets(buckets: dict) -> str:
    return (f"relative position (key - query) -> bucket; {buckets['num_buckets']} buckets, "
            f"max_distance {buckets['max_distance']}\n" + buckets_table(buckets))


def format_norms(row: dict) -> str:
    n = row["hidden_state_norms"]
    layers = max(len(n["encoder_mean"]), len(n["decoder_mean"]))
    label = lambda i: "embeddings" if i == 0 else f"block_{i - 1}"
    pick = lambda a, i: f"{a[i]:.4g}" if i < len(a) else "-"
    rows = [(label(i), pick(n["encoder_mean"], i), pick(n["decoder_mean"], i))
            for i in range(layers)]
    return ("mean L2 norm of the residual stream over real tokens (before the final norm)\n"
            + table(("after", "encoder", "decoder"), rows))


def format_cache(row: dict) -> str:
    cache = row["cache"]
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}"
                       for k, v in cache["block_cache_shapes"].items())
    return (f"key/value cache per decoder block: {shapes}\n"
            f"incremental decode_step vs full forward: max |logit difference| "
            f"{max(cache['max_abs_logit_diff']):.3g} "
            f"(largest |logit| {cache['max_abs_logit']:.3g})")


def format_predictions(row: dict, markdown=False) -> str:
    """One line per decoder position: its input, its target, and the model's top-k next tokens."""
    packed = row["inputs"]["packed"]
    quote, gap = (lambda piece: f"`{piece}`", ", ") if markdown else (repr, "  ")
    rows = []
    for p in row["predictions"]:
        top = gap.join(f"{quote(t['piece'])} {t['prob']:.3g}" for t in p["top"])
        rows.append(((p["segment"],) if packed else ()) + (
            p["step"], p["input_piece"], p["target_piece"], f"{p['target_prob']:.3g}", top))
    header = ("step", "input", "target", "p(target)", "top-k next tokens")
    return table((("segment",) if packed else ()) + header, rows, markdown)
