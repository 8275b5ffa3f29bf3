"""Regenerate the HF-transformers reference outputs under tests/fixtures/reference/.

Run by hand, never from the test suite (it needs torch + transformers, which t5core does not):

    /work/refvenv/bin/python tests/make_reference.py
    /work/refvenv/bin/python tests/make_reference.py --check-export DIR --against NPZ

What it writes (see tests/fixtures/reference/README.md for the file-by-file description):
  * five random-weight HF checkpoints (t5 v1.0 relu tied, t5 v1.1 gated-gelu untied, mt5, umt5,
    gated-silu), each with config.json + model.safetensors + reference.npz;
  * hf_tiny_random_t5.npz from the real hf-internal-testing/tiny-random-t5 checkpoint;
  * t5x_tiny.npz from the real T5X test checkpoint, mapped onto HF T5 and cross-checked against an
    independent numpy forward pass that reads the T5X parameter tree directly.

Every reference npz holds the same keys, so tests can treat them alike:
  encoder_input_tokens, decoder_input_tokens, decoder_target_tokens int32 [B,L]/[B,T] (pad 0);
  decoder_loss_weights f32 [B,T] (targets != 0); encoder_output f32 [B,L,D];
  logits f32 [B,T,K] restricted to logits_columns int32 [K] (all of 0..V-1 except for the 32128-row
  T5X model, where the full tensor would be megabytes); logits_logsumexp f32 [B,T] over the full
  vocabulary; loss f32 [] (HF mean CE over targets != 0); per_token_loss f32 [B,T] (0 on padding);
  greedy_tokens int32 [B,S] (HF generate output: leading decoder start 0, eos 1, then pad 0);
  greedy_min_margin f32 [] (smallest top-1 minus top-2 logit gap met while decoding greedily);
  hf_config_json (0-d str) the HF config the outputs came from.
"""

import argparse
import os
import shutil
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures")
REFERENCE = os.path.join(FIXTURES, "reference")
SHARED = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "fixtures"))

GREEDY_MAX_NEW_TOKENS = 12

# name -> (model class name, config class name, config kwargs, seed)
RANDOM_VARIANTS = {
    "t5_v1_0_relu_tied": ("T5ForConditionalGeneration", "T5Config", dict(
        d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
        vocab_size=128, feed_forward_proj="relu", tie_word_embeddings=True,
        relative_attention_num_buckets=32, relative_attention_max_distance=128), 101),
    "t5_v1_1_gated_gelu_untied": ("T5ForConditionalGeneration", "T5Config", dict(
        # num_heads * d_kv (30) != d_model (24); 3 encoder / 2 decoder layers; odd buckets.
        d_model=24, d_kv=10, num_heads=3, d_ff=40, num_layers=3, num_decoder_layers=2,
        vocab_size=128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        relative_attention_num_buckets=12, relative_attention_max_distance=20), 102),
    "mt5": ("MT5ForConditionalGeneration", "MT5Config", dict(
        d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2, num_decoder_layers=2,
        vocab_size=128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        relative_attention_num_buckets=32, relative_attention_max_distance=128), 103),
    "umt5": ("UMT5ForConditionalGeneration", "UMT5Config", dict(
        # UMT5Config defaults tie_word_embeddings=True; real umt5 checkpoints say false.
        d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2, num_decoder_layers=3,
        vocab_size=128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        relative_attention_num_buckets=32, relative_attention_max_distance=128), 104),
    "gated_silu": ("T5ForConditionalGeneration", "T5Config", dict(
        d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2, num_decoder_layers=2,
        vocab_size=128, feed_forward_proj="gated-silu", tie_word_embeddings=False,
        relative_attention_num_buckets=32, relative_attention_max_distance=128), 105),
}
# Variants whose lm_head is nudged so that greedy decoding emits eos on some rows (see make_eos_reachable).
EOS_VARIANTS = ("gated_silu",)
COMMON_CONFIG = dict(dropout_rate=0.0, layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
                     decoder_start_token_id=0, initializer_factor=1.0)


def _torch():
    import torch
    torch.set_num_threads(1)  # small shared machine; also keeps float sums reproducible
    return torch


# ----------------------------------------------------------------------------- inputs


def make_inputs(vocab_size, enc_lengths, dec_lengths, seed):
    """Padded encoder ids and teacher-forced decoder ids/targets.

    Each sequence is random ids in [2, vocab) closed by eos=1, then pad 0. Decoder inputs are the
    targets shifted right behind the decoder start id 0 (so position 0 is a 0 that is not padding).
    """
    rng = np.random.RandomState(seed)
    b, l_max, t_max = len(enc_lengths), max(enc_lengths), max(dec_lengths)
    enc = np.zeros((b, l_max), np.int32)
    tgt = np.zeros((b, t_max), np.int32)
    for i, (le, lt) in enumerate(zip(enc_lengths, dec_lengths)):
        enc[i, :le - 1] = rng.randint(2, vocab_size, size=le - 1)
        enc[i, le - 1] = 1
        tgt[i, :lt - 1] = rng.randint(2, vocab_size, size=lt - 1)
        tgt[i, lt - 1] = 1
    dec_in = np.zeros_like(tgt)
    dec_in[:, 1:] = tgt[:, :-1]
    return enc, dec_in, tgt


# ----------------------------------------------------------------------------- HF runs


def run_hf(model, enc, dec_in, tgt, columns=None):
    """Everything the npz holds, computed by HF with the conventions the tests assume."""
    torch = _torch()
    model.eval()
    enc_t = torch.tensor(enc, dtype=torch.long)
    mask = (enc_t != 0).long()
    labels = torch.tensor(np.where(tgt != 0, tgt, -100), dtype=torch.long)
    with torch.no_grad():
        # No decoder_attention_mask: HF's decoder is causal-only, padded decoder positions included.
        out = model(input_ids=enc_t, attention_mask=mask,
                    decoder_input_ids=torch.tensor(dec_in, dtype=torch.long), labels=labels)
        logits = out.logits.float()
        lse = torch.logsumexp(logits, dim=-1)
        gathered = torch.gather(logits, -1, labels.clamp(min=0)[..., None])[..., 0]
        per_token = torch.where(labels != -100, lse - gathered, torch.zeros_like(lse))
        # transformers 4.57 sizes generate's DynamicCache by config.num_hidden_layers, which T5/UMT5
        # map to num_layers (encoder depth): with more decoder than encoder layers the cached path
        # raises IndexError, so decode without the cache there (same tokens, just slower).
        use_cache = model.config.num_decoder_layers <= model.config.num_layers
        greedy = model.generate(input_ids=enc_t, attention_mask=mask, do_sample=False, num_beams=1,
                                max_new_tokens=GREEDY_MAX_NEW_TOKENS, min_new_tokens=0,
                                use_cache=use_cache)
        greedy_nocache, margin = greedy_without_cache(model, enc_t, mask, GREEDY_MAX_NEW_TOKENS)
    greedy = greedy.numpy().astype(np.int32)
    if not np.array_equal(greedy, greedy_nocache):
        raise RuntimeError(f"HF generate {greedy.tolist()} != uncached argmax {greedy_nocache.tolist()}")
    logits = logits.numpy()
    vocab = logits.shape[-1]
    columns = np.arange(vocab, dtype=np.int32) if columns is None else columns
    mean_loss = per_token.sum() / (labels != -100).sum()
    if abs(mean_loss.item() - out.loss.item()) > 1e-5 * max(1.0, abs(out.loss.item())):
        raise RuntimeError(f"per-token loss mean {mean_loss.item()} != HF loss {out.loss.item()}")
    return dict(
        encoder_input_tokens=enc.astype(np.int32),
        decoder_input_tokens=dec_in.astype(np.int32),
        decoder_target_tokens=tgt.astype(np.int32),
        decoder_loss_weights=(tgt != 0).astype(np.float32),
        encoder_output=out.encoder_last_hidden_state.float().numpy(),
        logits=logits[..., columns],
        logits_columns=columns.astype(np.int32),
        logits_logsumexp=lse.numpy(),
        loss=np.float32(out.loss.item()),
        per_token_loss=per_token.numpy().astype(np.float32),
        greedy_tokens=greedy,
        greedy_min_margin=np.float32(margin),
        hf_config_json=np.array(model.config.to_json_string()),
    ), logits


def greedy_without_cache(model, enc_t, mask, max_new_tokens):
    """Greedy decoding by re-running the full decoder each step: a cache-free cross-check of generate.

    Also returns the smallest top-1 minus top-2 logit gap over the steps of unfinished rows: a test
    comparing greedy tokens is only meaningful where this gap exceeds its numeric error.
    """
    torch = _torch()
    cfg = model.config
    seq = torch.full((enc_t.shape[0], 1), cfg.decoder_start_token_id, dtype=torch.long)
    done = torch.zeros(enc_t.shape[0], dtype=torch.bool)
    margin = float("inf")
    for _ in range(max_new_tokens):
        logits = model(input_ids=enc_t, attention_mask=mask, decoder_input_ids=seq).logits[:, -1]
        top2 = logits.topk(2, dim=-1).values
        gaps = (top2[:, 0] - top2[:, 1])[~done]
        margin = min(margin, float(gaps.min()))
        nxt = torch.where(done, torch.full_like(done, cfg.pad_token_id, dtype=torch.long),
                          logits.argmax(-1))
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        done = done | (nxt == cfg.eos_token_id)
        if bool(done.all()):
            break
    return seq.numpy().astype(np.int32), margin


def make_eos_reachable(model, enc, step=4):
    """Make greedy decoding end early on some rows but not all (exercises eos, then pad 0, in HF).

    Random weights over 128 ids almost never pick eos=1 within 12 steps. The eos row of the untied
    lm_head becomes 1.05x the row of a token that row 0 emits at `step` and the last row never emits,
    so eos wins exactly where that token would have (its logit being the positive maximum there).
    """
    torch = _torch()
    enc_t = torch.tensor(enc, dtype=torch.long)
    mask = (enc_t != 0).long()
    with torch.no_grad():
        seq, _ = greedy_without_cache(model, enc_t, mask, GREEDY_MAX_NEW_TOKENS)
        for s in range(step, GREEDY_MAX_NEW_TOKENS):
            tok = int(seq[0, s])
            if tok > 1 and tok not in seq[-1]:
                model.lm_head.weight[1] = 1.05 * model.lm_head.weight[tok]
                break
        else:
            raise RuntimeError(f"no token to turn into eos in {seq.tolist()}")
        seq, _ = greedy_without_cache(model, enc_t, mask, GREEDY_MAX_NEW_TOKENS)
    ended = [(row == 1).any() for row in seq]
    if not ended[0] or ended[-1]:
        raise RuntimeError(f"eos placement failed: {seq.tolist()}")


def save_npz(path, arrays):
    """np.savez with a fixed zip timestamp, so an unchanged rerun leaves git with no diff."""
    import io
    import zipfile
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def reinit_random(model, seed):
    """Weights far from HF's init so that every term matters: N(0, 0.5), norm scales 1 + 0.2 N(0,1).

    The query kernel gets the extra d_kv**-0.5 that Mesh-TF/T5X fold into its initialiser (T5 never
    scales attention logits), and the relative-bias tables a larger std, so that attention is not
    one-hot and a wrong bucket moves the logits by far more than the test tolerance.
    """
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    d_kv = model.config.d_kv
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied tensors appear once
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "layer_norm" in name:
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".q.weight"):
                p.copy_(0.5 * d_kv ** -0.5 * noise)
            elif "relative_attention_bias" in name:
                p.copy_(2.0 * noise)
            else:
                p.copy_(0.5 * noise)


def bias_sensitivity(model, enc, dec_in, tgt, logits):
    """Max logit change when the log-range buckets of every relative-bias table are rotated by one.

    Printed so one can see that a bucketing bug would be caught at 1e-4 tolerance.
    """
    torch = _torch()
    saved = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_attention_bias" in name:
                saved[name] = p.clone()
                nb = p.shape[0]
                is_decoder = name.startswith("decoder.")
                half = nb if is_decoder else nb // 2
                exact = half // 2
                for start in ([0] if is_decoder else [0, half]):
                    idx = torch.arange(start + exact, start + half)
                    p[idx] = saved[name][idx.roll(1)]
        changed, _ = run_hf_logits(model, enc, dec_in)
        for name, p in model.named_parameters():
            if name in saved:
                p.copy_(saved[name])
    valid = tgt != 0
    return float(np.abs(changed - logits)[valid].max())


def run_hf_logits(model, enc, dec_in):
    torch = _torch()
    enc_t = torch.tensor(enc, dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=enc_t, attention_mask=(enc_t != 0).long(),
                    decoder_input_ids=torch.tensor(dec_in, dtype=torch.long))
    return out.logits.float().numpy(), out


# ----------------------------------------------------------------------------- variants


def build_random_variant(name, summary):
    import transformers
    model_cls, config_cls, kwargs, seed = RANDOM_VARIANTS[name]
    _torch().manual_seed(seed)
    config = getattr(transformers, config_cls)(**kwargs, **COMMON_CONFIG)
    model = getattr(transformers, model_cls)(config).float()
    reinit_random(model, seed)
    model.tie_weights()
    enc, dec_in, tgt = make_inputs(config.vocab_size, [40, 25, 7], [30, 18, 5], seed)
    if name in EOS_VARIANTS:
        make_eos_reachable(model, enc)
    out_dir = os.path.join(REFERENCE, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    # Reload from disk so the npz describes exactly what the files hold.
    model = getattr(transformers, model_cls).from_pretrained(out_dir).float()
    arrays, full_logits = run_hf(model, enc, dec_in, tgt)
    save_npz(os.path.join(out_dir, "reference.npz"), arrays)
    summary.append(_summary_row(name, arrays, full_logits,
                                bias_sensitivity(model, enc, dec_in, tgt, full_logits)))
    _check_saved_keys(out_dir, model)


def _check_saved_keys(out_dir, model):
    from safetensors.numpy import load_file
    keys = sorted(load_file(os.path.join(out_dir, "model.safetensors")))
    lm = "lm_head.weight" in keys
    if lm == bool(model.config.tie_word_embeddings):
        raise RuntimeError(f"{out_dir}: lm_head.weight present={lm} but tie={model.config.tie_word_embeddings}")


def build_hf_tiny_random_t5(summary):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration
    src = os.path.join(SHARED, "hf_tiny_random_t5")
    dst = os.path.join(FIXTURES, "hf_tiny_random_t5")
    os.makedirs(dst, exist_ok=True)
    for f in ("config.json", "pytorch_model.bin", "tf_model.h5"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
    config = T5Config.from_pretrained(dst)
    model = T5ForConditionalGeneration(config)
    state = torch.load(os.path.join(dst, "pytorch_model.bin"), map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The .bin stores shared.weight once; the tied embed_tokens/lm_head entries may be absent.
    allowed = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}
    if set(missing) - allowed or unexpected:
        raise RuntimeError(f"hf_tiny_random_t5: missing {missing} unexpected {unexpected}")
    model.tie_weights()
    model = model.float().eval()
    enc, dec_in, tgt = make_inputs(config.vocab_size, [20, 9], [12, 6], 7)
    arrays, full_logits = run_hf(model, enc, dec_in, tgt)
    save_npz(os.path.join(REFERENCE, "hf_tiny_random_t5.npz"), arrays)
    summary.append(_summary_row("hf_tiny_random_t5", arrays, full_logits, None))


# ----------------------------------------------------------------------------- T5X checkpoint


def read_t5x_msgpack(path):
    """Flax msgpack (T5X format v3) -> nested dict of numpy arrays. Arrays are ext type 1."""
    import msgpack

    def ext_hook(code, data):
        if code != 1:
            raise ValueError(f"{path}: unknown msgpack ext type {code}")
        shape, dtype, buf = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)

    with open(path, "rb") as f:
        tree = msgpack.unpackb(f.read(), ext_hook=ext_hook, raw=False, strict_map_key=False)
    if tree.get("version") != 3:
        raise ValueError(f"{path}: expected T5X checkpoint format version 3, got {tree.get('version')}")
    return tree


def flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def t5x_to_hf_state(params, n_enc, n_dec):
    """T5X examples/t5 parameter names -> HF T5 state dict. Kernels are [in, out]; HF is [out, in]."""
    p = {k: np.asarray(v, np.float32) for k, v in flatten(params).items()}
    used = set()

    def take(name, transpose=True):
        used.add(name)
        return p[name].T.copy() if transpose else p[name].copy()

    sd = {"shared.weight": take("token_embedder/embedding", False)}
    sd["encoder.embed_tokens.weight"] = sd["decoder.embed_tokens.weight"] = sd["shared.weight"]
    for stack, n in (("encoder", n_enc), ("decoder", n_dec)):
        # rel_embedding is [heads, buckets]; HF nn.Embedding is [buckets, heads].
        sd[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = take(
            f"{stack}/relpos_bias/rel_embedding")
        norm = "encoder_norm" if stack == "encoder" else "decoder_norm"
        sd[f"{stack}.final_layer_norm.weight"] = take(f"{stack}/{norm}/scale", False)
        for i in range(n):
            src, dst = f"{stack}/layers_{i}", f"{stack}.block.{i}.layer"
            self_att = "attention" if stack == "encoder" else "self_attention"
            pre_att = "pre_attention_layer_norm" if stack == "encoder" else "pre_self_attention_layer_norm"
            sd[f"{dst}.0.layer_norm.weight"] = take(f"{src}/{pre_att}/scale", False)
            for hf, tx in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "out")):
                sd[f"{dst}.0.SelfAttention.{hf}.weight"] = take(f"{src}/{self_att}/{tx}/kernel")
            ff = 1
            if stack == "decoder":
                sd[f"{dst}.1.layer_norm.weight"] = take(f"{src}/pre_cross_attention_layer_norm/scale", False)
                for hf, tx in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "out")):
                    sd[f"{dst}.1.EncDecAttention.{hf}.weight"] = take(
                        f"{src}/encoder_decoder_attention/{tx}/kernel")
                ff = 2
            sd[f"{dst}.{ff}.layer_norm.weight"] = take(f"{src}/pre_mlp_layer_norm/scale", False)
            for w in ("wi_0", "wi_1", "wo"):
                sd[f"{dst}.{ff}.DenseReluDense.{w}.weight"] = take(f"{src}/mlp/{w}/kernel")
    sd["lm_head.weight"] = take("decoder/logits_dense/kernel")
    unused = sorted(set(p) - used)
    if unused:
        raise ValueError(f"T5X params not mapped: {unused}")
    return sd


def t5x_numpy_logits(params, cfg, enc, dec_in, tgt):
    """Independent numpy forward pass over the raw T5X tree with T5X's own masks and bucketing.

    Checks the name/transposition/head-layout mapping above. Only positions with tgt != 0 are
    comparable with HF (T5X also masks padded query rows; HF does not).
    """
    p = {k: np.asarray(v, np.float64) for k, v in flatten(params).items()}
    n, h = cfg["num_heads"], cfg["d_kv"]

    def norm(x, s):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * p[s]

    def bucket(rel, bidirectional):
        nb, md = cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"]
        ret, m = 0, -rel
        if bidirectional:
            nb //= 2
            ret = (m < 0).astype(np.int64) * nb
            m = np.abs(m)
        else:
            m = np.maximum(m, 0)
        exact = nb // 2
        large = exact + (np.log(np.maximum(m, 1).astype(np.float32) / exact + np.finfo(np.float32).eps)
                         / np.log(md / exact) * (nb - exact)).astype(np.int64)
        return ret + np.where(m < exact, m, np.minimum(large, nb - 1))

    def attend(x, kv, pre, mask, bias):
        q = (x @ p[f"{pre}/query/kernel"]).reshape(*x.shape[:2], n, h)
        k = (kv @ p[f"{pre}/key/kernel"]).reshape(*kv.shape[:2], n, h)
        v = (kv @ p[f"{pre}/value/kernel"]).reshape(*kv.shape[:2], n, h)
        s = np.einsum("bqnh,bknh->bnqk", q, k) + np.where(mask, 0.0, -1e10) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        a = s / s.sum(-1, keepdims=True)
        return np.einsum("bnqk,bknh->bqnh", a, v).reshape(*x.shape[:2], n * h) @ p[f"{pre}/out/kernel"]

    def mlp(x, pre):
        a = x @ p[f"{pre}/wi_0/kernel"]
        gelu = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))  # flax nn.gelu
        return (gelu * (x @ p[f"{pre}/wi_1/kernel"])) @ p[f"{pre}/wo/kernel"]

    emb = p["token_embedder/embedding"]
    le, lt = enc.shape[1], dec_in.shape[1]
    rel_e = np.arange(le)[None, :] - np.arange(le)[:, None]
    rel_d = np.arange(lt)[None, :] - np.arange(lt)[:, None]
    bias_e = p["encoder/relpos_bias/rel_embedding"][:, bucket(rel_e, True)][None]
    bias_d = p["decoder/relpos_bias/rel_embedding"][:, bucket(rel_d, False)][None]
    enc_mask = ((enc > 0)[:, None, :, None] & (enc > 0)[:, None, None, :])
    x = emb[enc]
    for i in range(cfg["num_layers"]):
        pre = f"encoder/layers_{i}"
        y = norm(x, f"{pre}/pre_attention_layer_norm/scale")
        x = x + attend(y, y, f"{pre}/attention", enc_mask, bias_e)
        x = x + mlp(norm(x, f"{pre}/pre_mlp_layer_norm/scale"), f"{pre}/mlp")
    encoded = norm(x, "encoder/encoder_norm/scale")
    causal = np.tril(np.ones((lt, lt), bool))
    dec_mask = (tgt > 0)[:, None, :, None] & (tgt > 0)[:, None, None, :] & causal[None, None]
    cross_mask = (tgt > 0)[:, None, :, None] & (enc > 0)[:, None, None, :]
    y = emb[dec_in]
    for i in range(cfg["num_decoder_layers"]):
        pre = f"decoder/layers_{i}"
        z = norm(y, f"{pre}/pre_self_attention_layer_norm/scale")
        y = y + attend(z, z, f"{pre}/self_attention", dec_mask, bias_d)
        z = norm(y, f"{pre}/pre_cross_attention_layer_norm/scale")
        y = y + attend(z, encoded, f"{pre}/encoder_decoder_attention", cross_mask, 0.0)
        y = y + mlp(norm(y, f"{pre}/pre_mlp_layer_norm/scale"), f"{pre}/mlp")
    return norm(y, "decoder/decoder_norm/scale") @ p["decoder/logits_dense/kernel"], encoded


def parse_t5x_gin(path):
    """The few `network.T5Config` overrides tiny.gin sets (emb_dim, num_heads, ...)."""
    values, in_block = {}, False
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].rstrip()
            if line.startswith("network.T5Config:"):
                in_block = True
            elif in_block and line.startswith((" ", "\t")) and "=" in line:
                k, v = (s.strip() for s in line.split("=", 1))
                values[k] = int(v)
            elif line.strip():
                in_block = False
    return values


def build_t5x_tiny(summary, write_hf_dir=None):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration
    src = os.path.join(SHARED, "t5x_tiny")
    dst = os.path.join(FIXTURES, "t5x_tiny")
    os.makedirs(dst, exist_ok=True)
    for f in ("test_t5_tiny.checkpoint_0", "tiny.gin", "t5_1_1_base.gin"):
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
    gin = parse_t5x_gin(os.path.join(dst, "tiny.gin"))
    tree = read_t5x_msgpack(os.path.join(dst, "test_t5_tiny.checkpoint_0"))
    params = tree["optimizer"]["target"]
    vocab = params["token_embedder"]["embedding"].shape[0]
    buckets = params["encoder"]["relpos_bias"]["rel_embedding"].shape[1]
    # t5_1_1_base.gin: gated-gelu (('gelu','linear')), logits_via_embedding False -> untied, no rescale.
    hf_cfg = dict(vocab_size=vocab, d_model=gin["emb_dim"], d_kv=gin["head_dim"], d_ff=gin["mlp_dim"],
                  num_heads=gin["num_heads"], num_layers=gin["num_encoder_layers"],
                  num_decoder_layers=gin["num_decoder_layers"], feed_forward_proj="gated-gelu",
                  tie_word_embeddings=False, relative_attention_num_buckets=buckets,
                  relative_attention_max_distance=128)
    config = T5Config(**hf_cfg, **COMMON_CONFIG)
    model = T5ForConditionalGeneration(config)
    sd = t5x_to_hf_state(params, config.num_layers, config.num_decoder_layers)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    model = model.float().eval()
    if write_hf_dir:
        model.save_pretrained(write_hf_dir, safe_serialization=True)
    enc, dec_in, tgt = make_inputs(vocab, [20, 9], [10, 6], 11)
    rng = np.random.RandomState(12)
    # Full [2,10,32128] logits would be 2.6 MB: keep the ids the tests care about (specials, low ids,
    # sentinels 32000..32099, padding rows 32100..32127) plus a seeded random sample of the rest,
    # and the full-vocabulary logsumexp so every row still constrains the whole softmax.
    columns = np.sort(np.concatenate([np.arange(128), rng.choice(np.arange(128, 32000), 256, replace=False),
                                      np.arange(32000, vocab)])).astype(np.int32)
    arrays, full_logits = run_hf(model, enc, dec_in, tgt, columns=columns)
    np_logits, np_encoded = t5x_numpy_logits(params, hf_cfg, enc, dec_in, tgt)
    valid = tgt != 0
    rel = np.abs(np_logits - full_logits)[valid].max() / np.abs(full_logits[valid]).max()
    enc_valid = enc != 0
    rel_enc = (np.abs(np_encoded - arrays["encoder_output"])[enc_valid].max()
               / np.abs(np_encoded[enc_valid]).max())
    if rel > 1e-5 or rel_enc > 1e-5:
        raise RuntimeError(f"t5x numpy forward vs HF mapping: logits rel {rel:.2e}, encoder rel {rel_enc:.2e}")
    save_npz(os.path.join(REFERENCE, "t5x_tiny.npz"), arrays)
    row = _summary_row("t5x_tiny", arrays, full_logits, None)
    row += f"  numpy-T5X vs HF rel: logits {rel:.1e} enc {rel_enc:.1e}"
    summary.append(row)


# ----------------------------------------------------------------------------- export check


def check_export(directory, npz_path, tolerance=1e-4):
    """Load an HF checkpoint written by t5core's exporter and compare with a reference npz."""
    from transformers import AutoModelForSeq2SeqLM
    for path in (os.path.join(directory, "config.json"), npz_path):
        if not os.path.exists(path):
            print(f"not found: {path}")
            return 2
    ref = np.load(npz_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(directory).float().eval()
    columns = ref["logits_columns"]
    if model.config.vocab_size <= columns.max():
        print(f"vocab mismatch: export has {model.config.vocab_size} rows, reference needs {columns.max() + 1}")
        return 2
    logits, out = run_hf_logits(model, ref["encoder_input_tokens"], ref["decoder_input_tokens"])
    logits = logits[..., columns]
    enc_out = out.encoder_last_hidden_state.float().numpy()
    if logits.shape != ref["logits"].shape or enc_out.shape != ref["encoder_output"].shape:
        print(f"shape mismatch: export logits {logits.shape} encoder {enc_out.shape} vs reference "
              f"{ref['logits'].shape} {ref['encoder_output'].shape}")
        return 2
    scale = max(np.abs(ref["logits"]).max(), 1e-30)
    abs_diff = float(np.abs(logits - ref["logits"]).max())
    enc_valid = ref["encoder_input_tokens"] != 0
    enc_diff = float(np.abs(enc_out - ref["encoder_output"])[enc_valid].max())
    print(f"{directory} vs {npz_path}: logits max abs diff {abs_diff:.3e}, rel {abs_diff / scale:.3e}; "
          f"encoder_output max abs diff {enc_diff:.3e}")
    if abs_diff / scale > tolerance:
        print(f"FAIL: relative difference above {tolerance}")
        return 1
    print("OK")
    return 0


# ----------------------------------------------------------------------------- main


def _summary_row(name, arrays, full_logits, sensitivity):
    valid = arrays["decoder_target_tokens"] != 0
    row = (f"{name:28s} enc {tuple(arrays['encoder_input_tokens'].shape)} "
           f"dec {tuple(arrays['decoder_input_tokens'].shape)} logits {tuple(full_logits.shape)} "
           f"max|logit| {np.abs(full_logits[valid]).max():.4g} loss {float(arrays['loss']):.5f} "
           f"greedy {tuple(arrays['greedy_tokens'].shape)} margin {float(arrays['greedy_min_margin']):.3g}")
    if sensitivity is not None:
        row += f" bucket-rotation dlogit {sensitivity:.3g}"
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check-export", metavar="DIR", help="HF checkpoint dir written by t5core")
    parser.add_argument("--against", metavar="NPZ", help="reference npz for --check-export")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--t5x-hf-dir", metavar="DIR",
                        help="also save the T5X checkpoint as an HF checkpoint here (2 MB; not committed)")
    args = parser.parse_args(argv)
    if args.check_export:
        if not args.against:
            parser.error("--check-export needs --against NPZ")
        return check_export(args.check_export, args.against, args.tolerance)
    import torch
    import transformers
    os.makedirs(REFERENCE, exist_ok=True)
    summary = []
    for name in RANDOM_VARIANTS:
        build_random_variant(name, summary)
    build_hf_tiny_random_t5(summary)
    build_t5x_tiny(summary, args.t5x_hf_dir)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for row in summary:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
