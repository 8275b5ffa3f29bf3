"""Decode texts with a T5 checkpoint: one output line per input.

Inputs come from --input (repeatable), else --input_file, else standard input (one text per line).
Any checkpoint `t5core.load_pretrained` reads works, a training run's model_dir included: a LoRA
run decodes with its merged weights, a prompt-tuned run with its prompt, and a classifier-head
run prints the predicted label (and its probability) of each input. --vocab defaults to the
tokenizer beside the checkpoint (a run's own, or spiece.model / tokenizer.json).

Examples:
  t5core-generate --checkpoint ckpt/ --vocab spiece.model \\
      --input "translate English to German: The house is wonderful."
  python3 scripts/generate.py --checkpoint runs/my_lora_run --input_file in.txt \\
      --output_file out.txt --method beam --num_beams 4
  cat in.txt | python3 scripts/generate.py --checkpoint ckpt/ --vocab byte
  python3 scripts/generate.py --checkpoint runs/qa_zh --input "问题: 天空是什么颜色?" --num_shots 2
"""

import contextlib
import sys

from absl import flags

from t5core import cli, file_writes
from t5core.classifier import T5EncoderClassifier, classify_text
from t5core.commands import shared_flags
from t5core.data.sources import read_lines
from t5core.dataclass_flags import (AUTO_BOOL, COUNT, SEED, OnlyWithout, auto_bool,
                                    declare_only_with, define_number)
from t5core.decoding.text import generate_text
from t5core.errors import DataError, UserFileNotFoundError
from t5core.evaluation import reports
from t5core.evaluation.few_shot import few_shot_prompts
from t5core.file_reads import unencodable
from t5core.training.run import read_run_checked, recorded_files


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    shared_flags.define_checkpoint_flags(flag_values)
    flags.DEFINE_multi_string("input", None, "A text to decode (repeatable).",
                              flag_values=flag_values)
    flags.DEFINE_string("input_file", None, "One text per line; '-' for stdin.",
                        flag_values=flag_values)
    flags.DEFINE_string("output_file", "-", "Where outputs go, one per line ('-': stdout; a "
                        "line break or backslash inside one escaped, as evaluate's "
                        "--predictions_file).",
                        flag_values=flag_values)
    define_number("batch_size", 32, "Inputs decoded at once.", COUNT, flag_values)
    define_number("max_input_length", 512, "Longest input in tokens (see --truncate); left out: "
                  "a run's inputs_length, else 512.", shared_flags.INPUT_LENGTH, flag_values)
    flags.DEFINE_bool("truncate", False, "Truncate longer inputs (with a warning) instead of "
                      "stopping with an error.", flag_values=flag_values)
    shared_flags.define_decoding_flags(flag_values)
    shared_flags.define_few_shot_flags(flag_values)
    define_number("seed", None, "--method=sample: the seed (the same seed, the same tokens).",
                  SEED, flag_values)
    flags.DEFINE_enum("jit_compile", "auto", list(AUTO_BOOL), "XLA-compile the decoding loop "
                      "(auto: XLA on GPU/TPU, the faster on CPU).", flag_values=flag_values)
    flags.DEFINE_string("dtype", None, "Keras dtype policy: float32 (default), mixed_bfloat16, "
                        "or bfloat16 (weights stored in bf16: half the memory).",
                        flag_values=flag_values)
    declare_only_with(flag_values, {"seed": shared_flags.SAMPLE_ONLY,
                                    "input_file": OnlyWithout("input")})
    cli.mark_outputs(flag_values, files=("output_file",))


def read_inputs(args):
    """(texts, source): --input texts, else the lines of --input_file or stdin (a line that is
    not UTF-8 named: Python decodes stdin leniently under some locales)."""
    if args.input:
        return args.input, "--input"
    path = args.input_file or "-"
    name = "stdin" if path == "-" else path
    # Read as every data file is (`read_lines`): a BOM and CRLF line ends are not text.
    try:
        if path == "-":
            lines = [line.removesuffix("\r")
                     for line in sys.stdin.read().removeprefix("\ufeff").split("\n")]
        else:
            lines = read_lines(path)
    except FileNotFoundError:
        raise UserFileNotFoundError(f"--input_file {path} does not exist") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 text: {e}") from None
    for n, line in enumerate(lines, start=1):
        problem = unencodable(line)
        if problem:
            raise DataError(f"{name} line {n}: {problem}")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise DataError(f"no input lines in {name}")
    return lines, f"{name} line"


def few_shot_inputs(args, texts, tokenizer, run=None):
    """With --num_shots: each text behind shots of --shots_file (default: the run's training
    file), via the run's template or fields; says how many shots did not fit. run: the
    checkpoint's RunDescription (None: read here)."""
    run = run or read_run_checked(args.checkpoint)
    shots = shared_flags.few_shot_settings(args, run)
    if shots is None:
        return texts
    pool = reports.read_shots(reports.data_options({}, run), shots["shots_file"], tokenizer)
    made = few_shot_prompts(texts, pool, shots["num_shots"], seed=shots["seed"],
                            tokenizer=tokenizer, inputs_length=args.max_input_length)
    print(f"{shots['num_shots']}-shot prompts from {shots['shots_file']} (seed {shots['seed']}): "
          f"{made.shots_used} shots placed, {made.dropped} dropped that did not fit "
          f"--max_input_length={args.max_input_length}", file=sys.stderr)
    return made.prompts


def generate(args: flags.FlagValues):
    texts, source = read_inputs(args)
    # Refused before any work, though all input is read by now: replacing the input would lose
    # the texts the outputs answer.
    inputs = [args.input_file] if args.input_file not in (None, "-") else []
    if args.output_file != "-":
        file_writes.refuse_input_as_output(args.output_file, inputs)

    run = read_run_checked(args.checkpoint)
    inputs += recorded_files(run)
    shared_flags.take_run_lengths(args, run)
    tokenizer = shared_flags.load_tokenizer(args)
    texts = few_shot_inputs(args, texts, tokenizer, run)
    model = shared_flags.load_model(args, dtype=args.dtype)
    common = dict(batch_size=args.batch_size, max_input_length=args.max_input_length,
                  truncate=args.truncate, source=source)
    if isinstance(model, T5EncoderClassifier):
        shared_flags.note_unread(args, shared_flags.DECODING_FLAGS,
                                 f"{args.checkpoint} is a classifier-head run (it prints labels)")
        outputs = (f"{label}\t{probability:.4f}" for label, probability in classify_text(
            model, tokenizer, texts, **common))
    else:
        shared_flags.note_ranked_labels(run, args.checkpoint, "generate")
        outputs = generate_text(model, tokenizer, texts,
                                progress=args.input is None and not args.quiet,
                                total=len(texts), seed=args.seed,
                                jit_compile=auto_bool(args.jit_compile), **common,
                                note=lambda text: print(f"note: {text}", file=sys.stderr),
                                **shared_flags.decoding_settings(args))
    with (contextlib.nullcontext(sys.stdout) if args.output_file == "-" else
          file_writes.open_user_file(args.output_file, inputs=inputs)) as out:
        for text in outputs:
            out.write(file_writes.one_line(text) + "\n")
            out.flush()


def main(argv=None):
    """`t5core-generate`; see `t5core.cli.command` for `argv`."""
    # generate() raises a user's mistake to its caller; the program ends it in one line.
    return cli.command(define_flags, shared_flags.reporting_user_errors(generate), argv,
                       doc=__doc__)


if __name__ == "__main__":
    main()
