"""A t5core T5Model as a CTranslate2 model, built from its weights with ctranslate2.specs.

No HF export, transformers or torch: the spec is filled from `model.variables_by_name()` the way
CTranslate2's own T5 converter fills it from an HF model (q/k/v fused, Keras [in, out] kernels
transposed to [out, in], the relative bias of block 0 shared by every block, the tied output
scaled by d_model**-0.5). Token strings are "<pad>", "</s>", "<unk>", then "t3", "t4", ...: the
benchmark feeds ids, so a real vocabulary is not needed.
"""

from __future__ import annotations

import numpy as np

from t5core.file_writes import make_dirs

SPECIALS = ("<pad>", "</s>", "<unk>")


def token_strings(vocab_size):
    return list(SPECIALS) + [f"t{i}" for i in range(len(SPECIALS), vocab_size)]


def ct2_tokens(ids):
    """int ids [B, L] -> CTranslate2's token strings, per row (EOS id 1 -> "</s>")."""
    names = {i: s for i, s in enumerate(SPECIALS)}
    return [[names.get(int(i), f"t{int(i)}") for i in row] for row in np.asarray(ids)]


def ct2_ids(hypotheses):
    names = {s: i for i, s in enumerate(SPECIALS)}
    return [[names[t] if t in names else int(t[1:]) for t in hyp] for hyp in hypotheses]


def _spec(model):
    from ctranslate2.converters.utils import fuse_linear
    from ctranslate2.specs import common_spec, transformer_spec

    c = model.config
    if c.num_heads * c.d_kv != c.d_model:
        raise ValueError(f"CTranslate2's T5 needs num_heads * d_kv == d_model, got "
                         f"{c.num_heads} * {c.d_kv} != {c.d_model}")
    if c.feed_forward_proj not in ("relu", "gated-gelu", "gated-silu"):
        raise ValueError(f"no CTranslate2 activation for {c.feed_forward_proj}")
    act = {"relu": common_spec.Activation.RELU, "gated-gelu": common_spec.Activation.GELUTanh,
           "gated-silu": common_spec.Activation.SWISH}[c.feed_forward_proj]
    spec = transformer_spec.TransformerSpec.from_config(
        (c.num_layers, c.num_decoder_layers), c.num_heads, pre_norm=True, activation=act,
        ffn_glu=c.feed_forward_proj.startswith("gated-"), relative_attention_bias=True,
        rms_norm=True)
    weights = {name: np.asarray(v.numpy(), np.float32)
               for name, v in model.variables_by_name().items()}

    def linear(target, path):
        target.weight = np.ascontiguousarray(weights[f"{path}/kernel"].T)

    def split(paths):
        layers = [common_spec.LinearSpec() for _ in paths]
        for layer, path in zip(layers, paths):
            linear(layer, path)
        return layers

    def attention(target, path, self_attention):
        target.queries_scale = 1.0
        qkv = split([f"{path}/{p}" for p in "qkv"])
        if self_attention:
            fuse_linear(target.linear[0], qkv)
        else:
            fuse_linear(target.linear[0], qkv[:1])
            fuse_linear(target.linear[1], qkv[1:])
        linear(target.linear[-1], f"{path}/o")

    for stack_name, stack_spec, layers in (("encoder", spec.encoder, c.num_layers),
                                           ("decoder", spec.decoder, c.num_decoder_layers)):
        embeddings = stack_spec.embeddings
        (embeddings[0] if isinstance(embeddings, list) else embeddings).weight = \
            weights["shared/embeddings"]
        stack_spec.scale_embeddings = False
        stack_spec.layer_norm.gamma = weights[f"{stack_name}/final_layer_norm/scale"]
        for i, layer in enumerate(stack_spec.layer):
            block = f"{stack_name}/block_{i}"
            attention(layer.self_attention, f"{block}/self_attention", True)
            layer.self_attention.layer_norm.gamma = weights[f"{block}/self_attention_norm/scale"]
            first = stack_spec.layer[0].self_attention
            if i == 0:
                first.relative_attention_bias = weights[
                    f"{block}/self_attention/relative_attention_bias/embeddings"]
                first.relative_attention_max_distance = np.int32(c.relative_attention_max_distance)
            else:
                layer.self_attention.relative_attention_bias = first.relative_attention_bias
                layer.self_attention.relative_attention_max_distance = \
                    first.relative_attention_max_distance
            if stack_name == "decoder":
                attention(layer.attention, f"{block}/cross_attention", False)
                layer.attention.layer_norm.gamma = weights[f"{block}/cross_attention_norm/scale"]
            ffn = layer.ffn
            if c.feed_forward_proj.startswith("gated-"):
                linear(ffn.linear_0, f"{block}/ffn/wi_0")
                linear(ffn.linear_0_noact, f"{block}/ffn/wi_1")
            else:
                linear(ffn.linear_0, f"{block}/ffn/wi")
            linear(ffn.linear_1, f"{block}/ffn/wo")
            ffn.layer_norm.gamma = weights[f"{block}/ffn_norm/scale"]
    if c.tie_word_embeddings:
        spec.decoder.projection.weight = weights["shared/embeddings"]
        spec.decoder.scale_outputs = c.d_model ** -0.5
    else:
        linear(spec.decoder.projection, "lm_head")
    tokens = token_strings(c.vocab_size)
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)
    spec.config.bos_token = SPECIALS[0]
    spec.config.eos_token = SPECIALS[1]
    spec.config.unk_token = SPECIALS[2]
    spec.config.decoder_start_token = SPECIALS[c.decoder_start_token_id]
    return spec


def save_ct2_model(model, folder, quantization=None):
    """Writes the CTranslate2 model of `model` (float32 weights) to folder; returns folder."""
    spec = _spec(model)
    spec.validate()
    spec.optimize(quantization=quantization)
    make_dirs(folder)
    spec.save(folder)
    return folder


def ct2_translator(model, folder, compute_type="float32", threads=0):
    """A ctranslate2.Translator for `model`: saved in int8 when compute_type is int8."""
    import ctranslate2

    save_ct2_model(model, folder, "int8" if compute_type.startswith("int8") else None)
    return ctranslate2.Translator(folder, device="cpu", compute_type=compute_type,
                                  intra_threads=threads)
