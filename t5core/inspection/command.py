"""What `t5core-inspect` (scripts/inspect_model.py) does as one library call: load, inspect,
print, write files."""

from __future__ import annotations

import os

import keras

import t5core.inspection.activations as activations
import t5core.inspection.figures as figures
import t5core.inspection.report as reports
from t5core import file_writes, model_dir
from t5core.checkpoints import resolve_config
from t5core.commands.shared_flags import config_argument, load_model
from t5core.model import T5Model
from t5core.tokenizer import load_tokenizer


def parse_ids(text: str, flag: str) -> list[int]:
    """"5, 17,9" -> [5, 17, 9]; a ValueError that names the flag otherwise."""
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ValueError(f"{flag} {text!r} is not a comma-separated list of integers") from None


def load_subject(args, need_weights=False):
    """(T5Model or T5Config, description) of --checkpoint, --preset or --config. A preset or
    config alone gives random weights (--seed) only when need_weights, else just the config."""
    if args.checkpoint and args.preset:
        raise ValueError("pass a checkpoint or a preset, not both")
    if not (args.checkpoint or args.preset or args.config):
        raise ValueError("pass a checkpoint, a preset or a config")
    if args.checkpoint:
        return load_model(args, dtype=args.dtype), args.checkpoint
    name = args.preset or args.config
    config = resolve_config(args.preset or config_argument(args.config))
    if not need_weights:
        return config, f"{name} (shapes only)"
    keras.utils.set_random_seed(args.seed)
    return T5Model(config, dtype=args.dtype), f"{name} (random weights, seed {args.seed})"


def examples_from(tokenizer, args) -> list[tuple[list[int], list[int] | None]]:
    """[(input ids, target ids or None)] from --input/--target texts or --input_ids/--target_ids."""

    def ids(side, texts, id_lists):
        if texts and id_lists:
            raise ValueError(f"pass {side} texts or {side} ids, not both")
        if texts and tokenizer is None:
            raise ValueError(f"{side} text needs a vocabulary (--vocab: a SentencePiece model "
                             "or 'byte'), or a --checkpoint with its tokenizer")
        if texts:
            return [tokenizer.encode(t, add_eos=True) for t in texts]
        return [parse_ids(t, f"--{side}_ids") for t in id_lists] if id_lists else None

    enc = ids("input", args.input, args.input_ids)
    dec = ids("target", args.target, args.target_ids)
    if dec is not None and len(dec) != len(enc):
        raise ValueError(f"{len(enc)} inputs but {len(dec)} targets")
    if len(enc) > 1 and not args.pack:
        raise ValueError("several inputs need packing (--pack): they are inspected as one row")
    return list(zip(enc, dec or [None] * len(enc)))


def run_command(args) -> dict:
    """What `t5core-inspect` does with its flags `args` (an absl FlagValues, or any object with
    those attributes): builds the report, prints its tables, and writes JSON/PNGs/TensorBoard."""
    wants_row = bool(args.input or args.input_ids)
    # Text to encode needs a tokenizer (--vocab, or the checkpoint's: an error names it if there
    # is none); with token ids one only renders pieces, and a checkpoint without one is no error.
    tokenizer = None
    if args.vocab or (args.checkpoint and (args.input or args.target
                                           or model_dir.find_tokenizer(args.checkpoint))):
        tokenizer = load_tokenizer(args.vocab or args.checkpoint)
    examples = examples_from(tokenizer, args) if wants_row else None
    layers = parse_ids(args.png_layers, "--png_layers") if args.png_layers else None
    subject, source = load_subject(args, need_weights=wants_row)
    row = None
    if wants_row:
        kwargs = dict(piece=activations.piece_renderer(tokenizer), top_k=args.top_k,
                      max_new_tokens=args.max_new_tokens)
        row = (activations.inspect_row(subject, None, pack=examples, **kwargs) if args.pack
               else activations.inspect_row(subject, *examples[0], **kwargs))
    report = reports.build_report(subject, source, row, args.bucket_span)

    sections = [f"== {source}", reports.format_parameters(report["parameters"], args.variables),
                reports.format_buckets(report["buckets"])]
    if row is not None:
        sections += ["input pieces: " + " ".join(row["inputs"]["encoder_pieces"]),
                     reports.format_norms(row), reports.format_predictions(row)]
        if "cache" in row:
            sections.append(reports.format_cache(row))
    print("\n\n".join(sections))
    out, logdir = args.output_dir, args.tensorboard
    if out:
        file_writes.make_dirs(out)
        print("wrote " + reports.write_json(report, os.path.join(out, "report.json")))
        if not args.no_png:
            print(f"wrote {len(figures.save_pngs(report, out, layers))} PNGs to {out}")
    if logdir:
        figures.write_tensorboard(report, logdir)
        print(f"wrote TensorBoard summaries to {logdir} (tensorboard --logdir {logdir})")
    return report
