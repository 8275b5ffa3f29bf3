"""Score a trained checkpoint on a test set: metrics, per-class and per-entity-type tables.

The test set is a TSV/JSONL file (--eval_file) read as train.py reads its files, or a registered
task's split (--task, --split). The data flags are train.py's (where their help says
--train_file, read --eval_file); each one left out takes the value the run recorded in its
run.json (template, fields, lengths, labels, metrics, rank classification), so scoring a run on
its test file needs only:

  t5core-evaluate --checkpoint=runs/sst2 --eval_file=test.jsonl --report_file=r.json
  python scripts/evaluate.py --checkpoint=runs/m30k --vocab=spm.model --task=multi30k_en_de \\
      --data_dir=../shared/data/multi30k --split=test --method=beam

Few-shot: --num_shots=k puts k solved examples of --shots_file (default: the run's training file)
before each input, read through the same template, drawn with --shots_seed:

  t5core-evaluate --checkpoint=runs/qa_zh --eval_file=test.jsonl --num_shots=3

Scores are percentages. --vocab defaults to the tokenizer beside the checkpoint.
"""

import sys

from absl import app, flags

from t5core import cli, dataclass_flags, file_writes, model_dir
from t5core.checkpoints.model_state import restore_model
from t5core.classifier import T5EncoderClassifier
from t5core.commands import shared_flags
from t5core.dataclass_flags import COUNT, NONNEGATIVE, STEPS, define_number
from t5core.evaluation import reports
from t5core.evaluation.reports import DATA_DEFAULTS
from t5core.model import T5Model
from t5core.peft import apply_lora, merge_lora
from t5core.quantization import quantize
from t5core.training.run import RunOptions, read_run_checked, recorded_files


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    fv = dict(flag_values=flag_values)
    shared_flags.define_checkpoint_flags(flag_values)
    dataclass_flags.define_flags(RunOptions, flag_values, module_name=__name__, unset={
        name: f"Unset: the run's, else {default!r}." for name, default in DATA_DEFAULTS.items()})
    flags.DEFINE_string("split", "test", "--task: the split to score.", **fv)
    flags.DEFINE_enum("head", None, list(model_dir.HEADS), "The checkpoint's head (default: the "
                      "run's); a check, since a classifier run loads as one.", **fv)
    shared_flags.define_few_shot_flags(flag_values)
    define_number("max_examples", 0, "Score only the first N examples (0: all).", STEPS,
                  flag_values)
    define_number("batch_size", 64, "Decoding batch size.", COUNT, flag_values)
    shared_flags.define_search_flags(flag_values, methods=("greedy", "beam"))
    define_number("lora_rank", 0, "Only for a model_dir written before run.json existed: it "
                  "was trained with --peft=lora of this rank (rebuild, restore, merge).", STEPS,
                  flag_values)
    define_number("lora_alpha", 0.0, "--peft=lora alpha of such a run (0: the rank).",
                  NONNEGATIVE, flag_values)
    flags.DEFINE_string("lora_targets", "q,v", "--lora_targets of such a run.", **fv)
    flags.DEFINE_string("predictions_file", "", "Write predictions here, one per line (a line "
                        "break or backslash inside one escaped: t5core.file_reads.line_text "
                        "reads it back).", **fv)
    flags.DEFINE_string("report_file", "", "Write the metrics and per-class / per-entity-type "
                        "reports here as JSON.", **fv)
    # A given --task is scored whatever else is given (--eval_file unread); a given --eval_file
    # replaces the run's task (--split unread).
    dataclass_flags.declare_only_with(flag_values, {
        "lora_alpha": dataclass_flags.OnlyWith("lora_rank"),
        "lora_targets": dataclass_flags.OnlyWith("lora_rank"),
        "eval_file": dataclass_flags.OnlyWithout("task"),
        "split": dataclass_flags.OnlyWithout("eval_file")})
    cli.mark_outputs(flag_values, files=("predictions_file", "report_file"))


def load_model(args, run):
    """The --checkpoint's model; a LoRA run's model_dir from before run.json is rebuilt from the
    --lora_* flags, restored and merged."""
    if not args.lora_rank or (run is not None and run.lora_rank):
        if args.lora_rank:
            print(f"note: {args.checkpoint} records its LoRA settings; --lora_* ignored",
                  file=sys.stderr)
        model = shared_flags.load_model(args)
    else:
        config = model_dir.read_config(args.checkpoint)
        if config is None:
            raise app.UsageError(f"--lora_rank: {args.checkpoint} is not a trainer's model_dir")
        model = apply_lora(T5Model(config), args.lora_rank, args.lora_alpha or None,
                           args.lora_targets)
        restore_model(args.checkpoint, model)
        model = merge_lora(model)
        if args.quantize:
            quantize(model, args.quantize)
    head = "classifier" if isinstance(model, T5EncoderClassifier) else "seq2seq"
    if args.head is not None and args.head != head:
        raise app.UsageError(f"--head={args.head}, but {args.checkpoint} holds a {head} model")
    return model


def evaluate(args: flags.FlagValues) -> None:
    run = read_run_checked(args.checkpoint)
    given = {name: args[name].value for name in DATA_DEFAULTS}
    options = reports.data_options(given, run)
    reports.check_data_options(options, recorded=[n for n, v in given.items() if v is None])
    tokenizer = shared_flags.load_tokenizer(args)
    # The test set (and the metric packages it needs) before the model: a mistake there is
    # reported before minutes of loading.
    shots = shared_flags.few_shot_settings(args, run)
    test = reports.load_test_set(options, tokenizer, args.split, args.max_examples, shots=shots)
    for note in (test.note, test.read_note):
        if note:
            print(f"note: {note}", file=sys.stderr)
    model = load_model(args, run)
    if isinstance(model, T5EncoderClassifier) or options["rank_classification"]:
        shared_flags.note_unread(args, shared_flags.DECODING_FLAGS, "the labels are " + (
            "the classifier head's" if isinstance(model, T5EncoderClassifier) else
            "ranked by their likelihood (--rank_classification)"))
    predictions = reports.predict(model, tokenizer, test, options, batch_size=args.batch_size,
                                  progress=not args.quiet, **shared_flags.search_options(args))
    report = {"checkpoint": args.checkpoint, "test_set": test.description,
              "examples": len(predictions), **reports.score(test, predictions),
              **({"few_shot": test.note} if test.note else {}),
              **({"read": test.read_note} if test.read_note else {}),
              "data_options": options}
    inputs = [args.eval_file, *recorded_files(run)]
    if args.predictions_file:
        with file_writes.open_user_file(args.predictions_file, inputs=inputs) as f:
            f.write("".join(file_writes.one_line(p) + "\n" for p in predictions))
    if args.report_file:
        with file_writes.open_user_file(args.report_file, inputs=inputs) as f:
            f.write(file_writes.json_text(report, indent=2, ensure_ascii=False) + "\n")
    print(f"{args.checkpoint} on {test.description}: {len(predictions)} examples\n")
    print(reports.format_report(report))


def main(argv=None):
    """`t5core-evaluate`; see `t5core.cli.command` for `argv`."""
    return cli.command(define_flags, evaluate, argv, doc=__doc__)


if __name__ == "__main__":
    main()
