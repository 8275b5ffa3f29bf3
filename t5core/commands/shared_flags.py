"""Flags several programs share: the checkpoint they load and how they decode."""

from __future__ import annotations

import contextlib
import functools
import sys

from absl import flags

from t5core import cli
from t5core.dataclass_flags import (COUNT, FINITE, NONNEGATIVE, STEPS, Bound, OnlyWith,
                                    declare_only_with, define_number)
from t5core.errors import FlagError, T5CoreError

# t5core.quantization.MODES, spelled here so that defining flags does not import Keras.
QUANTIZE_MODES = ("int8",)

# Where the decoding flags act: each --method reads only its own.
BEAM_ONLY = OnlyWith("method", ("beam",))
SAMPLE_ONLY = OnlyWith("method", ("sample",))

# generate()'s own rules (t5core.decoding), here refused at parsing, before any work.
INPUT_LENGTH = Bound(2, whole=True)  # a token and EOS
TOP_P = Bound(0, low_open=True, high=1, high_closed=True)


def define_allow_nonfinite(flag_values: flags.FlagValues) -> None:
    """--allow_nonfinite, for every program that loads a checkpoint."""
    flags.DEFINE_bool("allow_nonfinite", False, "Load weights holding NaN or Inf (with a warning "
                      "naming them) instead of refusing the checkpoint, e.g. to inspect or "
                      "convert a diverged run.", flag_values=flag_values)


def define_quiet(flag_values: flags.FlagValues) -> None:
    """--quiet, for every program that loads a checkpoint."""
    flags.DEFINE_bool("quiet", False, "No progress bars (reading the checkpoint, counting the "
                      "examples decoded).", flag_values=flag_values)


def define_checkpoint_flags(flag_values: flags.FlagValues, required: bool = True,
                            serving: bool = True) -> None:
    """--checkpoint, --config, --vocab, --allow_nonfinite, --quiet and, for the programs that
    serve, --quantize: the model to load, and how it serves."""
    flags.DEFINE_string("checkpoint", None, "Any checkpoint t5core.load_pretrained reads (HF, "
                        "Mesh-TF, T5X, t5core TF), a training run's model_dir too.",
                        flag_values=flag_values, required=required)
    flags.DEFINE_string("config", None, "config.json path, preset name or gin file(s) (comma "
                        "separated, as T5X: base.gin,size.gin), if the checkpoint has no "
                        "config.json.", flag_values=flag_values)
    flags.DEFINE_string("vocab", None, "SentencePiece model or tokenizer.json path (local or "
                        "gs://), or 'byte' for ByT5; default: the tokenizer beside the "
                        "checkpoint.", flag_values=flag_values)
    define_allow_nonfinite(flag_values)
    define_quiet(flag_values)
    if serving:
        flags.DEFINE_enum("quantize", None, list(QUANTIZE_MODES), "Serve the weights in int8 "
                          "(Keras' own quantization of every projection and the embedding; "
                          "norms, position bias and softmax stay float32): a quarter of the "
                          "memory, logits within a few percent (BUILD_NOTES, int8 serving).",
                          flag_values=flag_values)


def config_argument(text: str | None):
    """--config as `load_pretrained`'s config=: T5X's gin files "base.gin,size.gin" as a list in
    that order, a single config.json, gin file or preset name as it is, None when not given."""
    parts = [p for p in (text or "").split(",") if p]
    return parts if len(parts) > 1 else (parts[0] if parts else None)


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True):
    """A `progress(n, total, name)` callback (load_pretrained's, export_hf's) drawing a tqdm bar
    in bytes on stderr; None when disabled."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm  # not at the top: t5core-inspect --help draws no bar

    with tqdm(desc=description, unit="B", unit_scale=True, unit_divisor=1024, leave=True) as bar:

        def update(n, total, name):
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.set_postfix_str(name[-48:], refresh=False)
            bar.update(n)

        yield update


def load_model(args: flags.FlagValues, **kwargs):
    """The model --checkpoint holds (see `define_checkpoint_flags`), read under a progress bar
    (a large checkpoint takes minutes); kwargs: load_pretrained's."""
    # TensorFlow: not at the top, t5core-inspect's --help needs none.
    from t5core.checkpoints import load_pretrained

    with progress_bar("read", not args.quiet) as progress:
        # getattr: a program that does not serve defines no --quantize.
        return load_pretrained(args.checkpoint, config=config_argument(args.config),
                               allow_nonfinite=args.allow_nonfinite,
                               quantize=getattr(args, "quantize", None), progress=progress,
                               **kwargs)


def load_tokenizer(args: flags.FlagValues):
    """--vocab, else the tokenizer beside --checkpoint."""
    from t5core.tokenizer import load_tokenizer as load  # deferred, as load_model's import

    return load(args.vocab or args.checkpoint)


def define_search_flags(flag_values: flags.FlagValues, methods=None) -> None:
    """--method, --num_beams, --alpha, --beam_semantics; `methods`: --method's choices."""
    # TensorFlow: not at the top, t5core-inspect's --help imports this module and needs none.
    from t5core.decoding.beam import SEMANTICS
    from t5core.decoding.generation import METHOD_NAMES

    flags.DEFINE_enum("method", "greedy", list(methods or METHOD_NAMES), "Decoding method.",
                      flag_values=flag_values)
    define_number("num_beams", 4, "Beams for --method=beam.", COUNT, flag_values)
    define_number("alpha", 0.6, "Beam length-penalty exponent.", FINITE, flag_values)
    flags.DEFINE_enum("beam_semantics", "t5x", list(SEMANTICS), "Which beams may finish: t5x "
                      "(T5X / Mesh-TF: every EOS among the 2K candidates; live beams only where "
                      "none finished) or hf (HF / fairseq: EOS among the K best; live beams "
                      "compete at the last step).", flag_values=flag_values)
    declare_only_with(flag_values, dict.fromkeys(("num_beams", "alpha", "beam_semantics"),
                                                 BEAM_ONLY))


def define_decoding_flags(flag_values: flags.FlagValues) -> None:
    """--max_new_tokens, the search flags, and --temperature, --top_k, --top_p of sampling."""
    define_number("max_new_tokens", 64, "Tokens generated at most per input; left out: a run's "
                  "targets_length, else 64.", COUNT, flag_values)
    define_search_flags(flag_values)
    define_number("temperature", 1.0, "--method=sample: logits / temperature (0: greedy, as "
                  "T5X).", NONNEGATIVE, flag_values)
    define_number("top_k", 0, "--method=sample: only the k most likely tokens (0: all).", STEPS,
                  flag_values)
    define_number("top_p", 1.0, "--method=sample: only the most likely tokens holding this "
                  "probability (1: all).", TOP_P, flag_values)
    declare_only_with(flag_values, dict.fromkeys(("temperature", "top_k", "top_p"), SAMPLE_ONLY))


# What a classifier-head model (or rank classification) does not read: it decodes nothing.
DECODING_FLAGS = ("max_new_tokens", "method", "num_beams", "alpha", "beam_semantics",
                  "temperature", "top_k", "top_p", "seed", "jit_compile")


def note_unread(args: flags.FlagValues, names, why: str) -> None:
    """One `note:` line on stderr naming those of the flags `names` given on the command line,
    which `why` (what was found once the model or data was read) leaves without effect."""
    given = [f"--{name}" for name in names if name in args and args[name].present]
    if given:
        print(f"note: {', '.join(given)}: no effect, {why}", file=sys.stderr)


def search_options(args: flags.FlagValues) -> dict:
    """The keyword arguments of generate() that `define_search_flags`' flags give."""
    return dict(method=args.method, num_beams=args.num_beams, alpha=args.alpha,
                beam_semantics=args.beam_semantics)


def decoding_settings(args: flags.FlagValues) -> dict:
    """generate()'s keyword arguments from `define_decoding_flags`' flags."""
    return dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                top_k=args.top_k, top_p=args.top_p, **search_options(args))


# The run.json data option each length flag of generate and export defaults to.
RUN_LENGTHS = {"max_input_length": "inputs_length", "max_new_tokens": "targets_length"}


def note_ranked_labels(run, checkpoint: str, program: str) -> None:
    """Says so when the run (a RunDescription or None) evaluates by ranking its label words:
    `program` decodes freely, so one input may get another answer than evaluate.py's."""
    if run is not None and run.data.get("rank_classification"):
        labels = ",".join(run.labels) or "of its --labels"
        print(f"note: {checkpoint} is evaluated by ranking the label words {labels} "
              f"(--rank_classification); {program} decodes freely, so its outputs may be none of "
              "them (evaluate.py ranks them)", file=sys.stderr)


def take_run_lengths(args: flags.FlagValues, run) -> None:
    """--max_input_length and --max_new_tokens, where the command line leaves them out, become
    the run's inputs_length and targets_length (`run`: a RunDescription or None): the lengths
    the run trained with, which its in-run evaluation and evaluate.py decode with, so that one
    input gets one answer from every program."""
    if run is None:
        return
    for flag, option in RUN_LENGTHS.items():
        if flag in args and not args[flag].present and run.data.get(option):
            try:
                setattr(args, flag, int(run.data[option]))
            except flags.IllegalFlagValueError as err:  # the flag's bound, on the run's value
                raise FlagError(f"the run {args.checkpoint} records {option}="
                                f"{run.data[option]!r}: {err}") from None


def define_few_shot_flags(flag_values: flags.FlagValues) -> None:
    """--num_shots, --shots_file, --shots_seed: few-shot prompts (t5core.evaluation.few_shot)."""
    define_number("num_shots", 0, "Few-shot: put this many solved examples of --shots_file "
                  "before each input, through the same template (0: zero-shot, the inputs as "
                  "they are).", STEPS, flag_values)
    flags.DEFINE_string("shots_file", None, "TSV/JSONL file the shots are drawn from (default: "
                        "the run's --train_file, from its run.json).", flag_values=flag_values)
    flags.DEFINE_integer("shots_seed", 0, "Seed of the shots' draw (the same seed, the same "
                         "prompts).", flag_values=flag_values)
    declare_only_with(flag_values, dict.fromkeys(("shots_file", "shots_seed"),
                                                 OnlyWith("num_shots")))


def few_shot_settings(args: flags.FlagValues, run) -> dict | None:
    """{"num_shots", "shots_file" (default: `run`'s training file), "seed"}; None: no shots."""
    if not args.num_shots:
        return None
    shots_file = args.shots_file or (run.data.get("train_file") if run is not None else "")
    if not shots_file:
        raise FlagError(f"--num_shots={args.num_shots} needs --shots_file: {args.checkpoint} "
                        "records no training file to draw shots from")
    return {"num_shots": args.num_shots, "shots_file": shots_file, "seed": args.shots_seed}


def reporting_user_errors(body):
    """`body(args)` where a bad value, a missing or unreadable file or an absent optional package
    ends in one `error:` line and status 2 (`t5core.cli.report`), in the calling process too."""

    @functools.wraps(body)
    def reporting(args):
        try:
            return body(args)
        except (T5CoreError, ValueError, OSError, ImportError) as err:
            return cli.report(err)
    return reporting
