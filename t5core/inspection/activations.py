"""Running a model on one row and collecting what happens inside it.

`inspect_row` is the entry point: attention maps, position biases, hidden-state norms, top-k
predictions per decoder step and a cache check, for one example or several packed into one row.
Results are numpy arrays and Python numbers (see `t5core.inspection.report` for JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from t5core.data.features import pack_to_model_features
from t5core.model_inputs import check_token_ids, model_features, shift_right


def greedy_continue(model, encoder_input_tokens, max_new_tokens: int, eos_id: int | None = None):
    """Greedy decoding by full recomputation: int32 [B, 1 + S] (start, tokens, 0 after eos)."""
    # No cache on purpose: what the tool shows must not depend on the decoder it may check.
    c = model.config
    eos_id = c.eos_token_id if eos_id is None else eos_id
    encoder_input_tokens = np.asarray(encoder_input_tokens, np.int32)
    batch = encoder_input_tokens.shape[0]
    tokens = np.full([batch, 1], c.decoder_start_token_id, np.int32)
    done = np.zeros([batch], bool)
    encoder_output = model.encode(encoder_input_tokens)
    for _ in range(max_new_tokens):
        logits = model.decode(tokens, encoder_output, encoder_input_tokens)[:, -1, :].numpy()
        step = np.where(done, c.pad_token_id, logits.argmax(-1)).astype(np.int32)
        tokens = np.concatenate([tokens, step[:, None]], axis=1)
        done |= step == eos_id
        if done.all():
            break
    return tokens


def position_biases(model, features) -> dict[str, dict[int, np.ndarray]]:
    """Each stack's position bias, float32 [B or 1, N, Q, K], by owning block (T5, mT5: block
    0; UMT5: each block); no mask added."""
    out = {}
    for stack_name, tokens_key, positions_key in (
            ("encoder", "encoder_input_tokens", "encoder_positions"),
            ("decoder", "decoder_input_tokens", "decoder_positions")):
        stack = getattr(model, stack_name)
        positions = features.get(positions_key)
        if positions is None:
            length = np.shape(features[tokens_key])[1]
            positions = tf.range(length, dtype=tf.int32)[None, :]
        positions = tf.cast(positions, tf.int32)
        out[stack_name] = {
            i: block.self_attention.relative_attention_bias(positions, positions).numpy()
            for i, block in enumerate(stack.blocks) if block.has_relative_bias}
    return out


def collect_activations(model, features) -> dict:
    """`model.forward` with every optional output, as numpy, plus the position biases."""
    features = {k: v for k, v in features.items() if v is not None}
    out = model.forward(features, output_hidden_states=True, output_attentions=True)
    result = {k: (np.stack([np.asarray(x, np.float32) for x in v]) if isinstance(v, list)
                  else np.asarray(v, np.float32)) for k, v in out.items()}
    result["position_bias"] = position_biases(model, features)
    return result  # lists became [layers, B, ...] arrays


def cache_agreement(model, encoder_input_tokens, decoder_input_tokens) -> dict:
    """Incremental decoding (`init_cache` + `decode_step`) of one row against the full forward pass:
    the cache's per-block shapes, the largest |logit| and each step's max |difference|."""
    enc = np.asarray(encoder_input_tokens, np.int32)[:1]
    dec = np.asarray(decoder_input_tokens, np.int32)[:1]
    encoded = model.encode(enc)
    full = model.decode(dec, encoded, enc).numpy()[0]  # [T, V]
    cache = model.init_cache(encoded, enc, dec.shape[1])
    shapes = {k: list(v.shape) for k, v in cache["layers"][0].items()}
    diffs = []
    for t in range(dec.shape[1]):
        logits, cache = model.decode_step(dec[:, t], cache, tf.constant(t, tf.int32))
        diffs.append(float(np.max(np.abs(logits.numpy()[0] - full[t]))))
    return {"block_cache_shapes": shapes, "max_abs_logit": float(np.max(np.abs(full))),
            "max_abs_logit_diff": diffs}


def pack_rows(pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
              decoder_start_token_id: int = 0) -> dict:
    """Several (input ids, target ids) examples in one packed row, exactly as training packs
    them (`t5core.data.features.pack_to_model_features`)."""
    lengths = {"inputs": sum(len(p[0]) for p in pairs), "targets": sum(len(p[1]) for p in pairs)}
    ds = tf.data.Dataset.from_generator(
        lambda: ({"inputs": np.asarray(a, np.int32), "targets": np.asarray(b, np.int32)}
                 for a, b in pairs),
        output_signature={"inputs": tf.TensorSpec([None], tf.int32),
                          "targets": tf.TensorSpec([None], tf.int32)})
    rows = list(pack_to_model_features(
        ds, lengths, decoder_start_token_id=decoder_start_token_id).as_numpy_iterator())
    if len(rows) != 1:
        raise RuntimeError(f"packing {len(pairs)} examples gave {len(rows)} rows, expected 1")
    return {k: v[None, :] for k, v in rows[0].items()}


def _norms(states, weights):
    """Per-token L2 norms [layers, T] and their mean over real tokens [layers]."""
    per_token = np.linalg.norm(states, axis=-1)
    real = weights.astype(bool)
    mean = per_token[:, real].mean(axis=1) if real.any() else np.zeros(per_token.shape[0])
    return per_token, mean


def inspect_row(model, encoder_ids, target_ids=None, *, pack: Sequence | None = None,
                piece: Callable[[int], str] = str, top_k: int = 5, max_new_tokens: int = 8) -> dict:
    """One row's attention, biases, hidden-state norms and top-k predictions.

    encoder_ids: input ids (eos included), or None with `pack`: (input ids, target ids or None)
    examples packed into one row. target_ids: None decodes greedily up to max_new_tokens.
    `piece(id)` renders ids.
    """
    examples = list(pack) if pack is not None else [(encoder_ids, target_ids)]
    if not examples:
        raise ValueError("inspect_row needs at least one example")
    filled, sources = [], []
    vocab = model.config.vocab_size
    for n, (inputs, targets) in enumerate(examples):
        inputs = [int(t) for t in inputs]
        if not inputs:
            raise ValueError(f"example {n}: the input is empty")
        check_token_ids(inputs + [int(t) for t in targets or []], vocab, f"example {n}")
        sources.append("greedy" if targets is None else "given")
        if targets is None:
            generated = greedy_continue(model, np.asarray([inputs], np.int32), max_new_tokens)[0]
            targets = [int(t) for t in generated[1:]]
            if model.config.eos_token_id in targets:  # keep the eos, drop padding after it
                targets = targets[:targets.index(model.config.eos_token_id) + 1]
        if not targets:
            raise ValueError(f"example {n}: the target is empty")
        filled.append((inputs, [int(t) for t in targets]))
    start_id = model.config.decoder_start_token_id
    if pack is not None:
        features = pack_rows(filled, decoder_start_token_id=start_id)
    else:
        inputs, targets = filled[0]
        targets = np.asarray([targets], np.int32)
        features = {"encoder_input_tokens": np.asarray([inputs], np.int32),
                    "decoder_target_tokens": targets,
                    "decoder_input_tokens": shift_right(targets, start_id).numpy()}
    acts = collect_activations(model, model_features(features))

    enc_tokens = features["encoder_input_tokens"][0]
    dec_inputs = features["decoder_input_tokens"][0]
    dec_targets = features["decoder_target_tokens"][0]
    enc_seg = features.get("encoder_segment_ids", (enc_tokens != 0)[None].astype(np.int32))[0]
    dec_seg = features.get("decoder_segment_ids", np.ones_like(dec_targets)[None])[0]
    enc_norms, enc_mean = _norms(acts["encoder_hidden_states"][:, 0], enc_seg)
    dec_norms, dec_mean = _norms(acts["decoder_hidden_states"][:, 0], dec_seg)

    logits = acts["logits"][0]
    probs = tf.nn.softmax(logits, axis=-1).numpy()
    predictions = []
    for t in range(len(dec_inputs)):
        if dec_seg[t] == 0:
            continue
        order = np.argsort(-logits[t], kind="stable")[:top_k]
        target = int(dec_targets[t])
        predictions.append({
            "step": t, "segment": int(dec_seg[t]), "input_id": int(dec_inputs[t]),
            "input_piece": piece(int(dec_inputs[t])), "target_id": target,
            "target_piece": piece(target), "target_prob": float(probs[t, target]),
            "top": [{"id": int(i), "piece": piece(int(i)), "prob": float(probs[t, i]),
                     "logit": float(logits[t, i])} for i in order]})
    result = {
        "inputs": {
            "encoder_tokens": enc_tokens.tolist(),
            "encoder_pieces": [piece(int(t)) for t in enc_tokens],
            "decoder_input_tokens": dec_inputs.tolist(),
            "decoder_input_pieces": [piece(int(t)) for t in dec_inputs],
            "decoder_target_tokens": dec_targets.tolist(),
            "target_source": sources,
            "packed": pack is not None,
            "encoder_segment_ids": enc_seg.tolist(), "decoder_segment_ids": dec_seg.tolist(),
            "encoder_positions": features.get("encoder_positions",
                                              np.arange(len(enc_tokens))[None])[0].tolist(),
            "decoder_positions": features.get("decoder_positions",
                                              np.arange(len(dec_inputs))[None])[0].tolist()},
        # [layers, heads, queries, keys] for this row
        "attention": {"encoder": acts["encoder_attentions"][:, 0],
                      "decoder_self": acts["decoder_self_attentions"][:, 0],
                      "cross": acts["cross_attentions"][:, 0]},
        # {owning block: [heads, queries, keys]}; the mask is not included
        "position_bias": {stack: {i: b[0] for i, b in tables.items()}
                          for stack, tables in acts["position_bias"].items()},
        # embedding output then every block's output (before the final norm): [layers + 1, T]
        "hidden_state_norms": {"encoder": enc_norms, "encoder_mean": enc_mean,
                               "decoder": dec_norms, "decoder_mean": dec_mean,
                               "encoder_output": np.linalg.norm(acts["encoder_output"][0],
                                                                axis=-1)},
        "predictions": predictions,
    }
    if pack is None:  # the cache has no segments: packed rows are a training-time layout
        result["cache"] = cache_agreement(model, features["encoder_input_tokens"],
                                          features["decoder_input_tokens"])
    return result


def piece_renderer(tokenizer=None) -> Callable[[int], str]:
    """id -> readable token text for `tokenizer` (a t5core Tokenizer, ByteTokenizer or None)."""
    specials = {0: "<pad>", 1: "</s>", 2: "<unk>"}

    def render(i: int) -> str:
        if i in specials:
            return specials[i]
        if tokenizer is None:
            return str(i)
        if i >= tokenizer.vocab_size:
            return f"<row {i}>"  # embedding rows past the vocabulary (32100..32127 in T5)
        if hasattr(tokenizer, "id_to_piece"):
            return tokenizer.id_to_piece(i)
        if tokenizer.is_sentinel(i):
            return f"<extra_id_{i - tokenizer.sentinel_id(0)}>"
        byte = i - getattr(tokenizer, "offset", 3)
        if byte == 32:
            return "\u2581"  # a visible space, as SentencePiece writes it
        return chr(byte) if 32 < byte < 127 else f"<0x{byte:02X}>"
    return render
