#!/usr/bin/env python3
"""Decode texts with a T5 checkpoint: one output line per input.

Inputs come from --input (repeatable), else --input_file, else standard input (one text per line).
Any checkpoint `t5core.load_pretrained` reads works, a training run's model_dir included: a LoRA
run decodes with its merged weights, a prompt-tuned run with its prompt, and a classifier-head
run prints the predicted label (and its probability) of each input. --vocab defaults to the
tokenizer beside the checkpoint (a run's own, or spiece.model / tokenizer.json).
Examples:
  python3 scripts/generate.py --checkpoint ckpt/ --vocab spiece.model \\
      --input "translate English to German: The house is wonderful."
  python3 scripts/generate.py --checkpoint runs/my_lora_run --input_file in.txt \\
      --output_file out.txt --method beam --num_beams 4
  cat in.txt | python3 scripts/generate.py --checkpoint ckpt/ --vocab byte
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
    p.add_argument("--config", default=None,
                   help="config.json path or preset name, if the checkpoint has no config.json")
    p.add_argument("--vocab", default=None,
                   help="SentencePiece model or tokenizer.json path (local or gs://), or 'byte' "
                        "for ByT5; default: the tokenizer beside the checkpoint")
    p.add_argument("--input", action="append", default=None, help="a text to decode (repeatable)")
    p.add_argument("--input_file", default=None, help="one text per line; '-' for stdin")
    p.add_argument("--output_file", default="-", help="where outputs go, one per line")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_input_length", type=int, default=512)
    p.add_argument("--truncate", action="store_true",
                   help="truncate longer inputs (with a warning) instead of stopping with an error")
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--method", default="greedy", choices=["greedy", "beam", "sample"])
    p.add_argument("--num_beams", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.6, help="beam length-penalty exponent")
    p.add_argument("--beam_semantics", default="t5x", choices=["t5x", "hf"],
                   help="which beams may finish: t5x (T5X / Mesh-TF: every EOS among the 2K "
                        "candidates; live beams only where none finished) or hf (HF / fairseq: "
                        "EOS among the K best; live beams compete at the last step)")
    p.add_argument("--temperature", type=float, default=1.0, help="0: greedy (as T5X)")
    p.add_argument("--top_k", type=int, default=0)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--jit_compile", choices=["auto", "true", "false"], default="auto",
                   help="XLA-compile the decoding loop (auto: XLA on GPU/TPU, the faster on CPU)")
    p.add_argument("--dtype", default=None,
                   help="Keras dtype policy: float32 (default), mixed_bfloat16, or bfloat16 "
                        "(weights stored in bf16: half the memory)")
    return p.parse_args(argv)


def read_inputs(args):
    """(texts, source): --input texts, else the lines of --input_file or stdin."""
    from t5core.errors import DataError, UserFileNotFoundError

    if args.input:
        return args.input, "--input"
    path = args.input_file or "-"
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            lines = sys.stdin.read().split("\n")
        else:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
    except FileNotFoundError:
        raise UserFileNotFoundError(f"--input_file {path} does not exist") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 text: {e}") from None
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise DataError(f"no input lines in {name}")
    return lines, f"{name} line"


def main(argv=None):
    args = parse_args(argv)
    import t5core
    from t5core import cli
    from t5core.decoding.text import generate_text
    from t5core.classifier import classify_text

    texts, source = read_inputs(args)

    try:
        tokenizer = t5core.load_tokenizer(args.vocab or args.checkpoint)
        model = t5core.load_pretrained(args.checkpoint, config=args.config, dtype=args.dtype)
    except (ValueError, OSError) as e:  # a missing or unreadable file: a message, not a traceback
        return cli.report(e)
    jit = {"auto": None, "true": True, "false": False}[args.jit_compile]
    out = sys.stdout if args.output_file == "-" else open(args.output_file, "w", encoding="utf-8")
    if isinstance(model, t5core.T5EncoderClassifier):
        outputs = (f"{label}\t{probability:.4f}" for label, probability in classify_text(
            model, tokenizer, texts, batch_size=args.batch_size,
            max_input_length=args.max_input_length, truncate=args.truncate, source=source))
    else:
        outputs = generate_text(
            model, tokenizer, texts, batch_size=args.batch_size,
            max_input_length=args.max_input_length, truncate=args.truncate,
            max_new_tokens=args.max_new_tokens, progress=args.input is None, total=len(texts),
            source=source, method=args.method, num_beams=args.num_beams, alpha=args.alpha,
            beam_semantics=args.beam_semantics,
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
            jit_compile=jit)
    try:
        for text in outputs:
            # One output per line: a newline inside an output (possible with ByT5) is written "\n".
            out.write(text.replace("\n", "\\n") + "\n")
            out.flush()
    except ValueError as e:  # bad input (empty / too long): a message, not a traceback
        return cli.report(e)
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
