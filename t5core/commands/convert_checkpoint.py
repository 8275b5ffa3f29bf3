"""Convert any T5 checkpoint t5core reads to Hugging Face safetensors or a TF checkpoint.

    t5core-convert --input=gs://t5-data/pretrained_models/small --output=/tmp/t5-small-hf
    python3 scripts/convert_checkpoint.py --input=checkpoint_1000000 --preset=flan-t5-base \\
        --output=/tmp/flan-base-hf --dtype=bfloat16
    python3 scripts/convert_checkpoint.py --input=/tmp/t5-small-hf --output=/tmp/t5-small-tf \\
        --format=tf

Input: an HF directory (safetensors, pytorch_model.bin, tf_model.h5), a Mesh-TF checkpoint, a T5X
checkpoint, a t5core TF checkpoint or a training run's model_dir (see `t5core.checkpoints`).
Output: `--format=hf` writes config.json + model.safetensors (sharded above --max_shard_size);
`--format=tf` writes a `tf.train.Checkpoint` keyed by t5core's variable paths, with config.json
beside it. The tokenizer (--vocab, else the one beside the input) is copied into the output; for
--format=hf with the tokenizer_config.json that `transformers.AutoTokenizer` reads (T5Tokenizer
for spiece.model, ByT5Tokenizer for a byte-level run, tokenizer.json copied as it is).

A LoRA run is written with LoRA merged into the weights. A prompt-tuned or classifier-head run
has no HF form (HF T5 has no soft prompt and no such head): --format=hf refuses it; --format=tf
keeps it (with the run.json that says how to rebuild it), as does scripts/export.py.
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags

from t5core import cli, file_writes, model_dir
from t5core.checkpoints import detect_format, export_hf, load_pretrained, write_tf_checkpoint
from t5core.checkpoints.export import EXPORT_DTYPES, export_hf_tokenizer, parse_size
from t5core.commands import shared_flags
from t5core.dataclass_flags import OnlyWith, declare_only_with
from t5core.peft import describe_structure


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string("input", None, "Checkpoint path (file, directory, prefix, gs://).",
                        flag_values=flag_values, required=True)
    flags.DEFINE_string("output", None, "Output directory.", flag_values=flag_values,
                        required=True)
    flags.DEFINE_enum("format", "hf", ["hf", "tf"], "Output format.", flag_values=flag_values)
    flags.DEFINE_string("config", None, "config.json, or gin file(s) comma-separated (T5X: base "
                        "first); not with --preset.", flag_values=flag_values)
    flags.DEFINE_string("preset", None, "A preset name such as t5-v1_1-base or flan-t5-xl; not "
                        "with --config.", flag_values=flag_values)
    flags.mark_flags_as_mutual_exclusive(["config", "preset"], flag_values=flag_values)
    flags.DEFINE_enum("dtype", "float32", list(EXPORT_DTYPES), "Tensor dtype written "
                      "(--format=hf).", flag_values=flag_values)
    flags.DEFINE_string("max_shard_size", "5GB", "Shard HF output above this size (at least "
                        "1MB).", flag_values=flag_values)
    # At parsing: export_hf reads it only once the whole checkpoint is loaded.
    flags.register_validator("max_shard_size", _check_shard_size, flag_values=flag_values)
    flags.DEFINE_bool("no_torch", False, "Read pytorch_model.bin with t5core's restricted reader "
                      "even if torch is installed.", flag_values=flag_values)
    flags.DEFINE_string("vocab", None, "Vocabulary to copy into the output (spiece.model, "
                        "tokenizer.json); default: the one beside the input, if any.",
                        flag_values=flag_values)
    declare_only_with(flag_values, dict.fromkeys(("dtype", "max_shard_size"),
                                                 OnlyWith("format", ("hf",))))
    shared_flags.define_quiet(flag_values)
    flags.DEFINE_bool("overwrite", False, "Write into a non-empty --output: the files of a "
                      "previous conversion there (config, weights, shard index, tokenizer) are "
                      "replaced once the new ones are written; other files are kept.",
                      flag_values=flag_values)
    shared_flags.define_allow_nonfinite(flag_values)
    cli.mark_outputs(flag_values, folders=("output",))


# The least --max_shard_size: below it, nearly every tensor would be a file of its own.
MIN_SHARD_SIZE = 10**6


def _check_shard_size(text):
    try:
        size = parse_size(text)
    except ValueError as err:
        raise flags.ValidationError(f"--{err}") from None
    if size < MIN_SHARD_SIZE:
        raise flags.ValidationError(f"--max_shard_size must be at least 1MB (got {text!r})")
    return True


@shared_flags.reporting_user_errors
def convert(args: flags.FlagValues) -> int:
    fmt, location = detect_format(args.input)
    print(f"reading {fmt} checkpoint {location}")
    with shared_flags.progress_bar("read", not args.quiet) as progress:
        model = load_pretrained(args.input, config=shared_flags.config_argument(args.config)
                                or args.preset, progress=progress,
                                use_torch=False if args.no_torch else None,
                                allow_nonfinite=args.allow_nonfinite)
    print(f"config: {model.config}")
    replaced = _check_output(args)
    with file_writes.new_output_dir(args.output, args.overwrite,
                                    model_dir.CONVERTED_OUTPUT_NAMES) as stage, \
            shared_flags.progress_bar("write", not args.quiet) as progress:
        if args.format == "hf":
            written = ", ".join(export_hf(model, stage, dtype=args.dtype,
                                          max_shard_size=args.max_shard_size, progress=progress))
        else:
            written = os.path.join(args.output, os.path.basename(
                write_tf_checkpoint(model, stage, progress=progress)))
        extras = describe_output(model, stage, args.vocab or args.input, args.format, args.input)
    if replaced:
        print(f"--overwrite: replaced {', '.join(replaced)} in {args.output}")
    print(f"wrote {args.output}: {written} + config.json{extras}")
    return 0


def _check_output(args):
    """Refuses an --output that is the input, or that is not empty without --overwrite; returns
    the previous conversion's names that the new one replaces (a stale shard index would load
    old weights)."""
    source = args.input.rstrip("/")
    if any(file_writes.same_file(args.output, p) for p in (source, os.path.dirname(source))):
        raise file_writes.OutputExistsError(
            f"--output {args.output} is where --input {args.input} lies; writing there would "
            "destroy the input: name another folder")
    return file_writes.check_output_dir(args.output, args.overwrite,
                                        model_dir.CONVERTED_OUTPUT_NAMES)


def describe_output(model, output, vocab_source, fmt, source=None):
    """Copies the tokenizer (--format=hf: AutoTokenizer's files) and, for --format=tf, the
    run.json that rebuilds the structure, with the rest of `source`'s run.json (its data
    options, rank-classification labels, precision), so every program reads the output as it
    reads the run; returns what was added, for the summary."""
    vocab = vocab_source if vocab_source == "byte" or vocab_source.endswith((".model", ".json")) \
        else model_dir.find_tokenizer(vocab_source)
    if fmt == "hf" and vocab:
        return " + " + " + ".join(export_hf_tokenizer(output, vocab))
    tokenizer = model_dir.copy_tokenizer(output, vocab) if vocab else None
    added = f" + {tokenizer}" if tokenizer and tokenizer != "byte" else ""
    if fmt == "tf":
        recorded = (model_dir.read_run(source) if source else None) or model_dir.RunDescription()
        # LoRA is merged into the weights written: the output holds none.
        recorded = dataclasses.replace(recorded, lora_rank=0, lora_alpha=0.0, lora_targets="")
        model_dir.write_run(output, dataclasses.replace(recorded, **describe_structure(model),
                                                        tokenizer=tokenizer or ""))
        added += f" + {model_dir.RUN}"
    return added


def main(argv=None):
    """`t5core-convert`; see `t5core.cli.command` for `argv`."""
    return cli.command(define_flags, convert, argv, doc=__doc__)


if __name__ == "__main__":
    main()
