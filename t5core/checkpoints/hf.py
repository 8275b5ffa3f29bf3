"""Hugging Face checkpoints: the name rules both ways, and the block rules HF, h5 and Mesh-TF
share."""

from __future__ import annotations

import re

from t5core.checkpoints.rules import Rule, identity, skip, transpose

# T5's block layout in the module names Mesh-TF gave it and HF's PyTorch and TF ports kept, the
# one table the HF, HF-h5 and Mesh-TF rules derive from: (stack, sub-layer index in a block, their
# module, t5core's module) for attention, (stack, sub-layer index) for the feed-forward.
ATTENTION_SUBLAYERS = (
    ("encoder", 0, "SelfAttention", "self_attention"),
    ("decoder", 0, "SelfAttention", "self_attention"),
    ("decoder", 1, "EncDecAttention", "cross_attention"),
)
FFN_SUBLAYERS = (("encoder", 1), ("decoder", 2))


def block_rules(sublayer, sep, attention_kernel, ffn_kernel, bias, norm,
                kernel_transform=identity, bias_transform=identity):
    """The rules of T5's blocks in a format that kept Mesh-TF's module names.

    Args:
      sublayer: regex of a sub-layer's prefix, formatted with `stack` and `index`; its one group
        is the block number.
      sep: the regex between module names ("\\." or "/").
      attention_kernel, ffn_kernel: the regex after a projection's name (q, wi_0, ...).
      bias: the regex after "relative_attention_bias".
      norm: the regex of a norm scale, after its sub-layer's prefix.
      kernel_transform, bias_transform: to t5core's `[in, out]` and `[buckets, heads]`.

    Returns:
      The rules of every block's attention, feed-forward and norms.
    """
    rules = []
    for stack, index, module, ours in ATTENTION_SUBLAYERS:
        prefix = sublayer.format(stack=stack, index=index)
        rules += [
            Rule(prefix + module + sep + r"(q|k|v|o)" + attention_kernel,
                 f"{stack}/block_{{0}}/{ours}/{{1}}/kernel", kernel_transform),
            Rule(prefix + module + sep + "relative_attention_bias" + bias,
                 f"{stack}/block_{{0}}/{ours}/relative_attention_bias/embeddings", bias_transform),
            Rule(prefix + norm, f"{stack}/block_{{0}}/{ours}_norm/scale"),
        ]
    for stack, index in FFN_SUBLAYERS:
        prefix = sublayer.format(stack=stack, index=index)
        rules += [
            Rule(prefix + "DenseReluDense" + sep + r"(wi|wi_0|wi_1|wo)" + ffn_kernel,
                 f"{stack}/block_{{0}}/ffn/{{1}}/kernel", kernel_transform),
            Rule(prefix + norm, f"{stack}/block_{{0}}/ffn_norm/scale"),
        ]
    return rules


def hf_rules():
    """Rules from HF names (`encoder.block.0.layer.0.SelfAttention.q.weight`) to t5core paths."""
    return [
        Rule(r"shared\.weight", "shared/embeddings"),
        skip(r"(encoder|decoder)\.embed_tokens\.weight", "a tied copy of shared.weight",
             equals="shared/embeddings"),
        Rule(r"lm_head\.weight", "lm_head/kernel", transpose, only_if_target_exists=True,
             reason="tied model: a copy of shared.weight", equals="shared/embeddings"),
        Rule(r"(encoder|decoder)\.final_layer_norm\.weight", "{0}/final_layer_norm/scale"),
    ] + block_rules(r"{stack}\.block\.(\d+)\.layer\.{index}\.", r"\.", r"\.weight", r"\.weight",
                    r"\.weight", r"layer_norm\.weight", kernel_transform=transpose)


_CAPTURE = re.compile(r"\((?!\?)[^()]*\)")


def _export_table():
    """(regex over t5core paths, HF name template, transform): `hf_rules` inverted."""
    table = []
    for rule in hf_rules():
        if not isinstance(rule.target, str):
            continue
        groups = _CAPTURE.findall(rule.pattern)
        numbers = iter(range(len(groups)))
        name = _CAPTURE.sub(lambda _: f"{{{next(numbers)}}}", rule.pattern).replace("\\.", ".")
        path = re.sub(r"\\\{(\d)\\\}",
                      lambda m: f"(?P<g{m.group(1)}>{groups[int(m.group(1))][1:-1]})",
                      re.escape(rule.target))
        table.append((path, name, rule.transform))  # transpose and identity undo themselves
    return table


def hf_name(path):
    """(HF tensor name, transform) of a t5core variable path; ValueError when none fits."""
    for pattern, template, transform in _export_table():
        m = re.fullmatch(pattern, path)
        if m:
            groups = (m.group(f"g{i}") for i in range(len(m.groupdict())))
            return template.format(*groups), transform
    raise ValueError(f"t5core variable {path!r} has no Hugging Face name (export table incomplete)")
