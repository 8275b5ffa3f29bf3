#!/usr/bin/env python3
"""Export a T5 checkpoint as a SavedModel for TF Serving: strings in, decoded strings out.

  python3 scripts/export.py --checkpoint ckpt/ --vocab spiece.model --output_dir export/1 \\
      --max_input_length 512 --max_new_tokens 64 --method beam --num_beams 4
  python3 scripts/export.py --checkpoint runs/my_run --output_dir export/2

The signature `serving_default` takes `inputs` (string [B]) and returns `outputs` (string [B]),
`scores` and `truncated` (see t5core/serving.py). Decoding settings are fixed at export.
A training run's model_dir exports as it was trained: LoRA merged, a soft prompt inside, and a
classifier head returning `labels` and `probabilities` instead. --vocab defaults to the
tokenizer beside the checkpoint. Load the result with `t5core.serving.load(output_dir)`.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True,
                   help="any checkpoint t5core.load_pretrained reads")
    p.add_argument("--config", default=None, help="config.json path or preset name if needed")
    p.add_argument("--vocab", default=None,
                   help="SentencePiece model or tokenizer.json path, or 'byte' for ByT5; "
                        "default: the tokenizer beside the checkpoint")
    p.add_argument("--output_dir", required=True, help="new (or empty) SavedModel directory")
    p.add_argument("--max_input_length", type=int, default=512,
                   help="longer inputs are truncated (warning logged, 'truncated' output True)")
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--method", default="greedy", choices=["greedy", "beam", "sample"])
    p.add_argument("--num_beams", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--beam_semantics", default="t5x", choices=["t5x", "hf"],
                   help="which beams may finish: t5x (T5X / Mesh-TF: every EOS among the 2K "
                        "candidates; live beams only where none finished) or hf (HF / fairseq: "
                        "EOS among the K best; live beams compete at the last step)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top_k", type=int, default=0)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="sampling seed (fixed in the export)")
    p.add_argument("--jit_compile", action="store_true",
                   help="XLA-compile the search inside the SavedModel (for GPU/TPU serving)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import t5core
    from t5core.serving import export_saved_model

    tokenizer = t5core.load_tokenizer(args.vocab or args.checkpoint)
    model = t5core.load_pretrained(args.checkpoint, config=args.config)
    classifier = isinstance(model, t5core.T5EncoderClassifier)
    if classifier:
        settings = dict(max_input_length=args.max_input_length)
    else:
        settings = dict(max_input_length=args.max_input_length,
                        max_new_tokens=args.max_new_tokens, method=args.method,
                        num_beams=args.num_beams, alpha=args.alpha,
                        beam_semantics=args.beam_semantics, temperature=args.temperature,
                        top_k=args.top_k, top_p=args.top_p,
                        seed=args.seed, jit_compile=args.jit_compile)
    export_saved_model(model, tokenizer, args.output_dir, **settings)
    print(f"SavedModel ({type(model).__name__}) written to {args.output_dir}")
    print(usage(args.output_dir, classifier))


def usage(output_dir, classifier):
    """How to load and call what was written, for the user to copy."""
    outputs = '["labels"], out["probabilities"]' if classifier else '["outputs"]'
    return (f"Load it in Python:\n"
            f"  import tensorflow as tf, t5core.serving\n"
            f"  model = t5core.serving.load({output_dir!r})\n"
            f"  out = model.signatures[\"serving_default\"](inputs=tf.constant([\"some text\"]))\n"
            f"  print(out{outputs})")


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
