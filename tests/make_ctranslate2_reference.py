"""Writes CTranslate2's own float32 and int8 logits for the hf_tiny fixture as a test reference.

    python tests/make_ctranslate2_reference.py --output=tests/fixtures/ctranslate2_int8/hf_tiny.npz

Needs ctranslate2 (not a t5core dependency). The fixture's weights go into CTranslate2's T5 spec
through benchmarks/ctranslate2_model.py (no HF export, transformers or torch); CTranslate2 then
quantizes them itself (`spec.optimize(quantization="int8")`) and runs with compute_type "int8".
Inputs are Chinese, English and mixed text through the fixture's own tokenizer; the logits are
teacher-forced along a fixed target prefix (`return_logits_vocab`), one row per step.
"""

import argparse
import os
import pathlib
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
FIXTURE = REPO / "tests" / "fixtures" / "hf_tiny_random_t5"

SOURCES = ["今天天气很好，我们去公园散步吧。", "translate English to German: The house is wonderful.",
           "我用 TensorFlow 训练 T5 模型。"]
TARGETS = ["天气很好", "Das Haus ist wunderbar.", "训练模型 T5"]
STEPS = 4  # target tokens forced per row (every target, EOS included, has at least this many)


def main():
    import ctranslate2

    import t5core
    from ctranslate2_model import ct2_tokens, ct2_translator
    from t5core.tokenizer import load_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    tokenizer = load_tokenizer(str(FIXTURE))
    sources = [tokenizer.encode(text, add_eos=True) for text in SOURCES]
    targets = np.array([tokenizer.encode(text, add_eos=True)[:STEPS] for text in TARGETS],
                       np.int32)
    model = t5core.load_pretrained(str(FIXTURE))
    logits = {}
    with tempfile.TemporaryDirectory() as folder:
        for compute in ("float32", "int8"):
            translator = ct2_translator(model, os.path.join(folder, compute), compute)
            results = translator.translate_batch(
                [ct2_tokens([row])[0] for row in sources], target_prefix=ct2_tokens(targets),
                beam_size=1, max_decoding_length=STEPS, min_decoding_length=STEPS,
                return_logits_vocab=True)
            logits[compute] = np.stack([np.stack([np.asarray(step, np.float32)
                                                  for step in r.logits[0]]) for r in results])
    width = max(map(len, sources))
    np.savez_compressed(
        args.output, sources=np.array([row + [0] * (width - len(row)) for row in sources]),
        targets=targets, source_texts=np.array(SOURCES), float32=logits["float32"],
        int8=logits["int8"], ctranslate2_version=np.array(ctranslate2.__version__))
    print(f"wrote {args.output}: logits {logits['int8'].shape}, CTranslate2 "
          f"{ctranslate2.__version__}")


if __name__ == "__main__":
    main()
