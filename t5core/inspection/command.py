"""What `t5core-inspect` (scripts/inspect_model.py) does as one library call: load, inspect,
print, write files."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import keras

import t5core.inspection.activations as activations
import t5core.inspection.figures as figures
import t5core.inspection.report as reports
from t5core import file_writes, model_dir
from t5core.checkpoints import load_pretrained, resolve_config
from t5core.commands.shared_flags import config_argument
from t5core.model import T5Model
from t5core.tokenizer import load_tokenizer


def parse_ids(text: str, flag: str) -> list[int]:
    """"5, 17,9" -> [5, 17, 9]; a ValueError that names the flag otherwise."""
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ValueError(f"{flag} {text!r} is not a comma-separated list of integers") from None


def load_subject(checkpoint=None, preset=None, config=None, *, need_weights=False, seed=0,
                 dtype=None, allow_nonfinite=False):
    """(T5Model or T5Config, description). A preset or config alone gives random weights only
    when need_weights, else just the config; allow_nonfinite: as --allow_nonfinite."""
    if checkpoint and preset:
        raise ValueError("pass a checkpoint or a preset, not both")
    if not (checkpoint or preset or config):
        raise ValueError("pass a checkpoint, a preset or a config")
    config_arg = config_argument(config) if isinstance(config, str) else config
    if checkpoint:
        return load_pretrained(checkpoint, config=config_arg, dtype=dtype,
                               allow_nonfinite=allow_nonfinite), checkpoint
    name = preset or config
    resolved = resolve_config(preset or config_arg)
    if not need_weights:
        return resolved, f"{name} (shapes only)"
    keras.utils.set_random_seed(seed)
    return T5Model(resolved, dtype=dtype), f"{name} (random weights, seed {seed})"


def make_tokenizer(vocab: str | None, checkpoint: str | None = None, needed: bool = False):
    """The tokenizer of --vocab, else the one that goes with --checkpoint (a run's own, "byte"
    included; spiece.model or tokenizer.json beside it), else None.

    needed: text is to be encoded, so a checkpoint without a tokenizer is an error naming it;
    otherwise (token ids given) a tokenizer only renders pieces, and its absence is no error.
    """
    if vocab:
        return load_tokenizer(vocab)
    if checkpoint and (needed or model_dir.find_tokenizer(checkpoint)):
        return load_tokenizer(checkpoint)
    return None


def examples_from(tokenizer, inputs=None, targets=None, input_ids=None, target_ids=None,
                  pack=False) -> list[tuple[list[int], list[int] | None]]:
    """[(input ids, target ids or None)] from texts (eos added) or comma-separated id lists."""
    if inputs and input_ids:
        raise ValueError("pass input texts or input ids, not both")
    if targets and target_ids:
        raise ValueError("pass target texts or target ids, not both")
    if inputs:
        if tokenizer is None:
            raise ValueError("input text needs a vocabulary (--vocab: a SentencePiece model "
                             "or 'byte'), or a --checkpoint with its tokenizer")
        enc = [tokenizer.encode(t, add_eos=True) for t in inputs]
    else:
        enc = [parse_ids(t, "--input_ids") for t in input_ids]
    if targets:
        if tokenizer is None:
            raise ValueError("target text needs a vocabulary (--vocab)")
        dec = [tokenizer.encode(t, add_eos=True) for t in targets]
    else:
        dec = [parse_ids(t, "--target_ids") for t in target_ids] if target_ids else None
    if dec is not None and len(dec) != len(enc):
        raise ValueError(f"{len(enc)} inputs but {len(dec)} targets")
    if len(enc) > 1 and not pack:
        raise ValueError("several inputs need packing (--pack): they are inspected as one row")
    return list(zip(enc, dec or [None] * len(enc)))


def run_command(*, checkpoint=None, preset=None, config=None, seed=0, dtype=None, vocab=None,
                inputs: Sequence[str] | None = None, targets: Sequence[str] | None = None,
                input_ids: Sequence[str] | None = None, target_ids: Sequence[str] | None = None,
                pack=False, max_new_tokens=8, top_k=5, output_dir=None, png=True,
                png_layers: str | None = None, tensorboard=None, variables=False,
                bucket_span=None, write: Callable[[str], None] = print,
                allow_nonfinite=False) -> dict:
    """Builds the report, prints its tables with `write`, and writes JSON/PNGs/TensorBoard."""
    wants_row = bool(inputs or input_ids)
    tokenizer = make_tokenizer(vocab, checkpoint, needed=bool(inputs or targets))
    examples = (examples_from(tokenizer, inputs, targets, input_ids, target_ids, pack)
                if wants_row else None)
    layers = parse_ids(png_layers, "--png_layers") if png_layers else None
    subject, source = load_subject(checkpoint, preset, config, need_weights=wants_row, seed=seed,
                                   dtype=dtype, allow_nonfinite=allow_nonfinite)
    row = None
    if wants_row:
        kwargs = dict(piece=activations.piece_renderer(tokenizer), top_k=top_k,
                      max_new_tokens=max_new_tokens)
        row = (activations.inspect_row(subject, None, pack=examples, **kwargs) if pack
               else activations.inspect_row(subject, *examples[0], **kwargs))
    report = reports.build_report(subject, source, row, bucket_span)

    sections = [f"== {source}", reports.format_parameters(report["parameters"], variables),
                reports.format_buckets(report["buckets"])]
    if row is not None:
        sections += ["input pieces: " + " ".join(row["inputs"]["encoder_pieces"]),
                     reports.format_norms(row), reports.format_predictions(row)]
        if "cache" in row:
            sections.append(reports.format_cache(row))
    write("\n\n".join(sections))
    if output_dir:
        file_writes.make_dirs(output_dir)
        write("wrote " + reports.write_json(report, os.path.join(output_dir, "report.json")))
        if png:
            paths = figures.save_pngs(report, output_dir, layers)
            write(f"wrote {len(paths)} PNGs to {output_dir}")
    if tensorboard:
        figures.write_tensorboard(report, tensorboard)
        write(f"wrote TensorBoard summaries to {tensorboard} (tensorboard --logdir {tensorboard})")
    return report
