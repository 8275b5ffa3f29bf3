"""Hugging Face checkpoints: the name rules and the safetensors reader.

HF stores linear weights `[out, in]`; Keras kernels are `[in, out]`, hence the transposes.
"""

from __future__ import annotations

import json
import os

from t5core.checkpoints.rules import Rule, skip, transpose

def hf_rules():
    """Rules from HF names (`encoder.block.0.layer.0.SelfAttention.q.weight`) to t5core paths."""
    rules = [
        Rule(r"shared\.weight", "shared/embeddings"),
        skip(r"(encoder|decoder)\.embed_tokens\.weight", "a tied copy of shared.weight"),
        Rule(r"lm_head\.weight", "lm_head/kernel", transpose, only_if_target_exists=True),
        Rule(r"(encoder|decoder)\.final_layer_norm\.weight", "{0}/final_layer_norm/scale"),
    ]
    # (stack, sub-layer index, HF module) -> t5core module
    for stack, index, module, ours in [
        ("encoder", 0, "SelfAttention", "self_attention"),
        ("decoder", 0, "SelfAttention", "self_attention"),
        ("decoder", 1, "EncDecAttention", "cross_attention"),
    ]:
        prefix = rf"{stack}\.block\.(\d+)\.layer\.{index}\."
        rules += [
            Rule(prefix + rf"{module}\.(q|k|v|o)\.weight", f"{stack}/block_{{0}}/{ours}/{{1}}/kernel",
                 transpose),
            Rule(prefix + rf"{module}\.relative_attention_bias\.weight",
                 f"{stack}/block_{{0}}/{ours}/relative_attention_bias/embeddings"),
            Rule(prefix + r"layer_norm\.weight", f"{stack}/block_{{0}}/{ours}_norm/scale"),
        ]
    for stack, index in [("encoder", 1), ("decoder", 2)]:
        prefix = rf"{stack}\.block\.(\d+)\.layer\.{index}\."
        rules += [
            Rule(prefix + r"DenseReluDense\.(wi|wi_0|wi_1|wo)\.weight",
                 f"{stack}/block_{{0}}/ffn/{{1}}/kernel", transpose),
            Rule(prefix + r"layer_norm\.weight", f"{stack}/block_{{0}}/ffn_norm/scale"),
        ]
    return rules


class SafetensorsReader:
    """Tensor-by-tensor access to `model.safetensors` or a sharded index (memory-mapped)."""

    def __init__(self, directory):
        from safetensors import safe_open

        index_path = os.path.join(directory, "model.safetensors.index.json")
        if os.path.exists(index_path):
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
            files = sorted(set(weight_map.values()))
        else:
            files = ["model.safetensors"]
        self.path = directory
        self._handles, self._where, self.shapes = [], {}, {}
        for file_name in files:
            path = os.path.join(directory, file_name)
            if not os.path.exists(path):
                raise FileNotFoundError(f"{index_path} names {file_name}, which is missing")
            try:
                handle = safe_open(path, framework="numpy")
            except Exception as err:  # safetensors raises its own error types
                raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
            self._handles.append(handle)
            for name in handle.keys():
                self._where[name] = handle
                self.shapes[name] = tuple(handle.get_slice(name).get_shape())

    def read(self, name):
        return self._where[name].get_tensor(name)
