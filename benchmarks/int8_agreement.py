"""How closely an int8 model follows its float32 original, and CTranslate2 int8 its own float32.

Three measures, each over the same random inputs (batch of `rows`, `input_length` tokens):
  * logits relative error: ||int8 - float32|| / ||float32||, over every position and vocabulary
    entry of a teacher-forced pass along the float32 model's own greedy output;
  * top-1 agreement: the share of those positions whose argmax is the same;
  * greedy token agreement: the share of generated tokens (EOS disabled, `new_tokens` each) that
    are equal, position by position, between the two greedy decodings.

  python3 benchmarks/int8_agreement.py            # HF fixtures + T5-initialised t5-small
  python3 benchmarks/int8_agreement.py --no-ctranslate2 --models hf_tiny
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
FIXTURES = ROOT / "tests" / "fixtures"


def measures(reference_logits, candidate_logits, reference_tokens, candidate_tokens) -> dict:
    """The three agreement figures from teacher-forced logits [B, T, V] and greedy tokens [B, N]."""
    ref = np.asarray(reference_logits, np.float64)
    cand = np.asarray(candidate_logits, np.float64)
    # Vocabulary entries an engine masked (CTranslate2 sets EOS to -FLT_MAX below its minimum
    # length) would swamp the norm; compare the entries both engines computed.
    computed = np.all((ref > -1e30) & (cand > -1e30), axis=(0, 1))
    ref, cand = ref[..., computed], cand[..., computed]
    return {"logits_rel_error": float(np.linalg.norm(cand - ref) / np.linalg.norm(ref)),
            "top1_agreement": float(np.mean(ref.argmax(-1) == cand.argmax(-1))),
            "greedy_agreement": float(np.mean(np.asarray(reference_tokens)
                                              == np.asarray(candidate_tokens)))}


def random_inputs(config, rows=8, input_length=24, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, config.vocab_size, size=[rows, input_length]).astype(np.int32)
    tokens[:, -1] = config.eos_token_id
    return tokens


def t5core_greedy_and_logits(model, tokens, new_tokens):
    """(greedy tokens [B, N] with EOS disabled, logits [B, N, V] teacher-forced along them)."""
    from t5core.decoding.generation import generate

    greedy = generate(model, tokens, new_tokens, method="greedy", eos_id=-1,
                      jit_compile=False)[0].numpy()
    return greedy, teacher_forced_logits(model, tokens, greedy)


def teacher_forced_logits(model, tokens, targets):
    start = np.full([targets.shape[0], 1], model.config.decoder_start_token_id, np.int32)
    decoder_input = np.concatenate([start, targets[:, :-1]], axis=1).astype(np.int32)
    return model({"encoder_input_tokens": tokens, "decoder_input_tokens": decoder_input}).numpy()


def t5core_agreement(model, tokens, new_tokens=16) -> dict:
    """Quantizes a copy-free model in place: float32 figures first, then int8 against them."""
    from t5core.quantization import quantize

    greedy32, _ = t5core_greedy_and_logits(model, tokens, new_tokens)
    logits32 = teacher_forced_logits(model, tokens, greedy32)
    quantize(model, "int8")
    greedy8 = t5core_greedy_and_logits(model, tokens, new_tokens)[0]
    logits8 = teacher_forced_logits(model, tokens, greedy32)
    return measures(logits32, logits8, greedy32, greedy8)


def ctranslate2_agreement(model, tokens, new_tokens=16) -> dict:
    """CTranslate2 int8 against CTranslate2 float32, the same float32 weights, measured the same
    way (its logits come from `return_logits_vocab` along a forced target prefix)."""
    from ctranslate2_model import ct2_ids, ct2_tokens, ct2_translator

    with tempfile.TemporaryDirectory() as folder:
        runs = {}
        for compute in ("float32", "int8"):
            translator = ct2_translator(model, os.path.join(folder, compute), compute)
            source = ct2_tokens(tokens)
            greedy = translator.translate_batch(source, beam_size=1, max_decoding_length=new_tokens,
                                                min_decoding_length=new_tokens)
            runs[compute] = (translator, [r.hypotheses[0] for r in greedy])
        prefix = runs["float32"][1]
        logits = {}
        for compute, (translator, _) in runs.items():
            forced = translator.translate_batch(ct2_tokens(tokens), target_prefix=prefix,
                                                beam_size=1, max_decoding_length=new_tokens,
                                                min_decoding_length=new_tokens,
                                                return_logits_vocab=True)
            logits[compute] = np.stack([np.stack([np.asarray(step) for step in r.logits[0]])
                                        for r in forced])
    ids = {c: np.array(ct2_ids(hyps)) for c, (_, hyps) in runs.items()}
    return measures(logits["float32"], logits["int8"], ids["float32"], ids["int8"])


def load_model(name):
    import keras

    import t5core

    if name == "hf_tiny":
        return t5core.load_pretrained(str(FIXTURES / "hf_tiny_random_t5"))
    if name == "t5x_tiny":
        return t5core.load_pretrained(str(FIXTURES / "t5x_tiny" / "test_t5_tiny.checkpoint_0"),
                                      config=[str(FIXTURES / "t5x_tiny" / g)
                                              for g in ("t5_1_1_base.gin", "tiny.gin")])
    if name == "t5-small":
        keras.utils.set_random_seed(0)  # T5's own initialisation (T5Model's initialisers)
        return t5core.T5Model(t5core.T5Config.from_preset("t5-small"))
    raise ValueError(name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["hf_tiny", "t5x_tiny", "t5-small"])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--new_tokens", type=int, default=16)
    parser.add_argument("--no-ctranslate2", dest="ctranslate2", action="store_false")
    args = parser.parse_args()
    print("| model | engine | logits rel. error | top-1 agreement | greedy token agreement |")
    print("|---|---|---|---|---|")
    for name in args.models:
        model = load_model(name)
        tokens = random_inputs(model.config, rows=args.rows)
        rows = []
        if args.ctranslate2:
            try:
                rows.append(("CTranslate2 int8 vs its fp32",
                             ctranslate2_agreement(model, tokens, args.new_tokens)))
            except ValueError as err:  # a shape CTranslate2's T5 cannot hold
                print(f"| {name} | CTranslate2 | not convertible: {err} | | |")
        rows.insert(0, ("t5core int8 vs fp32", t5core_agreement(model, tokens, args.new_tokens)))
        for engine, m in rows:
            print(f"| {name} | {engine} | {m['logits_rel_error']:.4f} | "
                  f"{100 * m['top1_agreement']:.1f}% | {100 * m['greedy_agreement']:.1f}% |")


if __name__ == "__main__":
    main()
