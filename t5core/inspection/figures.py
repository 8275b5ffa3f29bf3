"""Pictures of a report: PNG heatmaps (matplotlib, an optional extra) and TensorBoard summaries."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from t5core import file_writes
from t5core.inspection.report import (buckets_table, format_predictions, table,
                                      variables_table)


def _save(fig, path):
    """Writes a figure as a PNG file through file_writes and closes it; returns path."""
    with file_writes.atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=110)
    _pyplot().close(fig)
    return path


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("PNG output needs matplotlib: pip install matplotlib "
                          "(or pip install t5core[inspect]); or skip PNGs (--no_png)") from None
    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt
    return plt


def _head_grid(plt, maps, title, row_labels, col_labels, path, diverging=False, segments=None):
    heads = maps.shape[0]
    cols = min(heads, 4)
    rows = -(-heads // cols)
    size = max(2.5, min(6.0, 0.18 * max(maps.shape[1:])))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1, size * rows + 0.8),
                             squeeze=False, layout="constrained")
    limit = float(np.abs(maps).max()) or 1.0
    colours = dict(cmap="RdBu_r", vmin=-limit, vmax=limit) if diverging else dict(
        cmap="viridis", vmin=0.0, vmax=1.0)
    for ax in axes.ravel()[heads:]:
        ax.axis("off")
    for h, ax in zip(range(heads), axes.ravel()):
        image = ax.imshow(maps[h], aspect="auto", interpolation="nearest", **colours)
        ax.set_title(f"head {h}", fontsize=9)
        for labels, set_ticks, rotation in ((col_labels, ax.set_xticks, 90),
                                            (row_labels, ax.set_yticks, 0)):
            if labels is not None and len(labels) <= 48:
                set_ticks(range(len(labels)), labels, fontsize=6, rotation=rotation)
            else:
                set_ticks([])
        if segments is not None:  # packed rows: draw the segment boundaries
            q_seg, k_seg = segments
            for axis_line, seg in ((ax.axhline, q_seg), (ax.axvline, k_seg)):
                for b in np.nonzero(np.diff(seg))[0]:
                    axis_line(b + 0.5, color="white", linewidth=0.6)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _axes(plt, title, xlabel, ylabel, size=(8, 4)):
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def save_pngs(report: dict, out_dir: str, layers: Sequence[int] | None = None) -> list[str]:
    """Heatmaps and plots of a report into out_dir (maps of `layers`, default all); the paths."""
    plt = _pyplot()
    keep = (lambda i: True) if layers is None else (lambda i: i in set(layers))
    file_writes.make_dirs(out_dir)
    path = lambda name: os.path.join(out_dir, name)
    table = report["buckets"]
    rel = np.asarray(table["relative_positions"])
    fig, ax = _axes(plt, f"relative position buckets ({table['num_buckets']} buckets)",
                    "relative position (key - query)", "bucket")
    for mode in ("bidirectional", "causal"):
        ax.step(rel, table[mode], where="mid", label=mode)
    ax.axvline(-table["max_distance"], color="grey", linestyle=":")
    ax.axvline(table["max_distance"], color="grey", linestyle=":", label="max_distance")
    ax.legend()
    paths = [_save(fig, path("buckets.png"))]
    for stack, tables in report.get("bias_by_distance", {}).items():
        decoder = stack == "decoder"
        shown = rel <= 0 if decoder else np.ones_like(rel, bool)  # the decoder's future: masked
        for block, curves in tables.items():
            fig, ax = _axes(plt, f"{stack} learned position bias (table of block {block})",
                            "relative position (key - query)" + (
                                "; the future (> 0) is masked" if decoder else ""),
                            "bias added to the attention logit")
            for head, curve in enumerate(curves):
                ax.step(rel[shown], np.asarray(curve)[shown], where="mid", label=f"head {head}")
            ax.legend(fontsize=7, ncol=2)
            paths.append(_save(fig, path(f"bias_by_distance_{stack}_block{block}.png")))
    row = report.get("row")
    if row is None:
        return paths
    ins = row["inputs"]
    enc, dec = ins["encoder_pieces"], ins["decoder_input_pieces"]
    enc_seg = np.asarray(ins["encoder_segment_ids"])
    dec_seg = np.asarray(ins["decoder_segment_ids"])
    kinds = (("encoder", enc, enc, (enc_seg, enc_seg)),
             ("decoder_self", dec, dec, (dec_seg, dec_seg)),
             ("cross", dec, enc, (dec_seg, enc_seg)))
    for kind, rows_, cols_, segs in kinds:
        for layer, maps in enumerate(row["attention"][kind]):
            if keep(layer):
                paths.append(_head_grid(
                    plt, np.asarray(maps), f"{kind} attention, block {layer} (rows: queries, "
                    "columns: keys)", rows_, cols_, path(f"attention_{kind}_layer{layer}.png"),
                    segments=segs if ins["packed"] else None))
    for stack, labels in (("encoder", enc), ("decoder", dec)):
        for block, bias in row["position_bias"][stack].items():
            if keep(block):
                paths.append(_head_grid(
                    plt, np.asarray(bias), f"{stack} relative position bias, table of block "
                    f"{block}", labels, labels, path(f"position_bias_{stack}_block{block}.png"),
                    diverging=True))
    norms = row["hidden_state_norms"]
    fig, ax = _axes(plt, "residual stream norm by layer",
                    "layer (0 = embeddings, i = after block i-1)", "mean L2 norm", size=(6, 4))
    for stack in ("encoder", "decoder"):
        ax.plot(np.asarray(norms[f"{stack}_mean"]), marker="o", label=stack)
    ax.set_xticks(range(max(len(norms["encoder_mean"]), len(norms["decoder_mean"]))))
    ax.legend()
    paths.append(_save(fig, path("hidden_state_norms.png")))
    return paths


# -- TensorBoard -----------------------------------------------------------------------------


def _as_image(maps, min_pixels=128, diverging=False):
    """[heads, Q, K] -> [heads, H, W, 1] in [0, 1], pixels repeated to be visible. Attention:
    per-head max is white; biases: mid-grey 0, white/black the largest |bias|."""
    maps = np.asarray(maps, np.float32)
    if diverging:
        limit = float(np.abs(maps).max()) or 1.0
        maps = (maps / limit + 1.0) / 2.0
    else:
        maps = maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)
    scale = max(1, -(-min_pixels // max(maps.shape[1:])))
    maps = np.repeat(np.repeat(maps, scale, axis=1), scale, axis=2)
    return np.clip(maps, 0.0, 1.0)[..., None]


def write_tensorboard(report: dict, logdir: str) -> str:
    """Images (attention, biases), text (tables, predictions) and scalars (norms) into logdir."""
    writer = tf.summary.create_file_writer(logdir)
    params = report["parameters"]
    with writer.as_default():
        tf.summary.text("parameters/by_module", table(
            ("module", "parameters"), [(m["module"], m["count"]) for m in params["by_module"]],
            markdown=True), 0)
        tf.summary.text("parameters/variables", variables_table(params, markdown=True), 0)
        tf.summary.text("buckets", buckets_table(report["buckets"], "-", markdown=True), 0)
        row = report.get("row")
        if row is not None:
            for kind, per_layer in row["attention"].items():
                for layer, maps in enumerate(per_layer):
                    tf.summary.image(f"attention/{kind}/layer{layer}", _as_image(maps), step=0,
                                     max_outputs=len(maps), description=(
                                         "one image per head; rows are queries, columns keys; "
                                         "white is the head's largest weight"))
            for stack, tables in row["position_bias"].items():
                for block, bias in tables.items():
                    tf.summary.image(f"position_bias/{stack}/block{block}",
                                     _as_image(bias, diverging=True), step=0, max_outputs=len(bias))
            for stack in ("encoder", "decoder"):
                for layer, value in enumerate(row["hidden_state_norms"][f"{stack}_mean"]):
                    tf.summary.scalar(f"hidden_state_norm/{stack}", float(value), step=layer)
            tf.summary.text("predictions", format_predictions(row, markdown=True), 0)
            pieces = " ".join(f"`{p}`" for p in row["inputs"]["encoder_pieces"])
            tf.summary.text("inputs", pieces, 0)
    writer.close()  # flushes
    return logdir
