"""From options (the trainer script's flags) to a finished run: model, data, strategy, loop."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys

import keras
import tensorflow as tf

from t5core import file_reads, model_dir
from t5core.checkpoints import load_pretrained, open_checkpoint, resolve_config
from t5core.checkpoints.optimizer_state import continue_checkpoint_run
from t5core.classifier import POOLINGS, T5EncoderClassifier
from t5core.config import T5Config
from t5core.data.counters import DropCounter
from t5core.data.embedded_tasks import EMBEDDED_TASK
from t5core.data.fingerprint import changes, fingerprints
from t5core.data.option_tasks import option_problems
from t5core.data.preprocessors import OVERLONG_MESSAGE, OVERLONG_POLICIES
from t5core.data.templates import TEMPLATES
from t5core.data.templates.reference import help_text as template_help
from t5core.data.trainer_inputs import make_trainer_inputs
from t5core.dataclass_flags import (AUTO_BOOL, COUNT, FRACTION, NONNEGATIVE, STEPS, Bound,
                                     OnlyWith, OnlyWithout, auto_bool, field_problems, option,
                                     value_problems)
from t5core.errors import ConfigError, DataError, FlagError
from t5core.metrics.qa import MLQA_ARTICLES
from t5core.metrics.scripts import BLEU_TOKENIZERS, ROUGE_MODES
from t5core.model import T5Model
from t5core.peft import PEFT_METHODS, PromptTunedT5, apply_peft, trainable_summary
from t5core.peft.prompt_tuning import PROMPT_INITS
from t5core.tokenizer import load_tokenizer
from t5core.training.clusters import CLUSTER_RESOLVERS, STRATEGY_OF, missing_environment
from t5core.training.distribute import STRATEGIES, is_chief, make_strategy
from t5core.training.trainer import TrainConfig, Trainer
from t5core.xla import default_jit_compile

# The embedded default model: small enough to learn the embedded tasks in minutes on 2 cores.
EMBEDDED_MODEL = dict(vocab_size=384, d_model=128, d_kv=32, num_heads=4, d_ff=384, num_layers=3,
                      num_decoder_layers=3, feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False, dropout_rate=0.0)


# What a resume does when the data files changed since the checkpoint (--data_changed). The
# default stops: going on replays the saved position's rows of a file that no longer holds them,
# and restarting the epoch repeats data; either is the user's call, not a silent one.
DATA_CHANGED_POLICIES = ("error", "continue", "restart_epoch")
# The recorded options that decide the stream of training rows the saved data position points
# into: changing one on a resume is a change of the data, as a changed file is.
TRAINING_DATA_OPTIONS = ("task", "template", "template_args", "instruction", "inputs_field",
                         "targets_field", "inputs_length", "targets_length")

# Where the options of one data source, PEFT method or cluster act: without it they are not read.
_DATA_SOURCE = OnlyWith(("task", "mixture", "train_file"))  # the embedded tasks read none
_FILE = OnlyWith("train_file")
_TEMPLATE = OnlyWith("template")
_UNTEMPLATED = OnlyWithout("template")  # a template renders the rows itself
_LORA = OnlyWith("peft", ("lora",))
_PROMPT = OnlyWith("peft", ("prompt",))


@dataclasses.dataclass
class RunOptions:
    """Everything `scripts/train.py` accepts (its flags are made from these fields and
    `train`'s, t5core.dataclass_flags); defaults train the embedded task set."""
    model: str = option("", "Preset name (t5-small, flan-t5-base, ...), config.json, or a "
                        "directory with one (an HF snapshot, a run's model_dir); empty: "
                        "--init_checkpoint's config, else the embedded tiny byte-level model.")
    init_checkpoint: str = option("", "Checkpoint to start from (HF, Mesh-TF, T5X, or an earlier "
                                  "run's model_dir; local or gs://).")
    init_optimizer_state: bool = option(
        False, "With --init_checkpoint of a T5X or Mesh-TF run and --optimizer=adafactor: also "
        "take its Adafactor slots and step, so training continues that run (--train_steps counts "
        "its steps too). Not used when --model_dir holds a checkpoint to resume.")
    vocab: str = option("", "SentencePiece model, tokenizer.json, or 'byte' (ByT5's bytes); "
                        "empty: the tokenizer beside --init_checkpoint (or in the --model "
                        "directory), else byte-level.")
    # No --task, --mixture or --train_file: the embedded tasks.
    task: str = option("", "Registered task name (see t5core.data).")
    mixture: str = option("", "Registered mixture name.")
    train_file: str = option("", "Local TSV/JSONL training file.")
    eval_file: str = option("", "Local TSV/JSONL evaluation file.", only_with=_FILE)
    data_dir: str = option("", "TFDS data_dir or the folder of a file-based task.",
                           only_with=OnlyWith(("task", "mixture")))
    pack: bool = option(False, "Pack several examples into each row.", only_with=_DATA_SOURCE)
    strategy: str = option("auto", "tf.distribute strategy.", choices=STRATEGIES)
    tpu: str = option("", "TPU name or grpc:// address.")
    cluster_resolver: str = option(
        "tf_config", "How a multi-worker run finds its workers: tf_config (the TF_CONFIG "
        "variable), slurm (an srun job step's SLURM_* variables; implies "
        "--strategy=multi_worker) or tpu (--tpu; implies --strategy=tpu).",
        choices=CLUSTER_RESOLVERS)
    slurm_port_base: int = option(8888, "--cluster_resolver=slurm: the port of each node's "
                                  "first task; its next tasks take the next ports.",
                                  bound=Bound(1, high=65535, whole=True),
                                  only_with=OnlyWith("cluster_resolver", ("slurm",)))
    # One device, a TPU or a multi-worker cluster never spreads over the CPU's split.
    num_cpu_devices: int = option(1, "Split the CPU into N logical devices.", bound=COUNT,
                                  only_with=OnlyWith("strategy", ("auto", "mirrored")))
    # Resolved into train.jit_compile (a bool) by run(), on the devices found.
    jit_compile: str = option("auto", "XLA-compile the step; auto: on GPU/TPU yes, on CPU no (the "
                              "plain graph is faster there).", choices=AUTO_BOOL)
    dropout_rate: float | None = option(None, "Override the model's dropout rate.", bound=FRACTION)
    eval_examples: int = option(400, "Examples decoded for metrics.", bound=STEPS)
    inputs_field: str = option("inputs", "--train_file column/key of the inputs text.",
                               only_with=(_FILE, _UNTEMPLATED))
    targets_field: str = option("targets", "--train_file column/key of the targets text.",
                                only_with=(_FILE, _UNTEMPLATED))
    metrics: str = option("", "--train_file: comma-separated metrics (accuracy, bleu, ...).",
                          only_with=_FILE)
    bleu_tokenize: str = option("auto", "BLEU's sacreBLEU tokenizer; auto: zh where the "
                                "references hold Chinese, char for Thai/Japanese, else 13a.",
                                choices=("auto", *BLEU_TOKENIZERS), only_with=_DATA_SOURCE)
    rouge_tokenize: str = option("auto", "ROUGE's tokens; auto: characters for Chinese and other "
                                 "unspaced scripts (English words stay words), else words.",
                                 choices=("auto", *ROUGE_MODES), only_with=_DATA_SOURCE)
    squad_lang: str = option("auto", "SQuAD's answers' language, scored by MLQA's rules for it "
                             "as mT5 scores MLQA/XQuAD; auto: SQuAD v1.1's rules, MLQA's "
                             "Chinese ones where the answers are unspaced.",
                             choices=("auto", *MLQA_ARTICLES), only_with=_DATA_SOURCE)
    peft: str = option("none", "Parameter-efficient training method.", choices=PEFT_METHODS)
    peft_top_n: int = option(1, "--peft=top_n: train only the top N decoder blocks.", bound=COUNT,
                             only_with=OnlyWith("peft", ("top_n",)))
    prompt_length: int = option(20, "--peft=prompt: soft-prompt vectors.", bound=COUNT,
                                only_with=_PROMPT)
    prompt_init: str = option("vocab", "--peft=prompt: initialisation.", choices=PROMPT_INITS,
                              only_with=_PROMPT)
    lora_rank: int = option(8, "--peft=lora: rank r.", bound=COUNT, only_with=_LORA)
    lora_alpha: float = option(0.0, "--peft=lora: alpha (0: alpha = rank).", bound=NONNEGATIVE,
                               only_with=_LORA)
    lora_targets: str = option("q,v", "--peft=lora: projections (q,k,v,o,wi,wo or globs).",
                               only_with=_LORA)
    head: str = option("seq2seq", "Text-to-text, or the encoder with a pooled linear classifier.",
                       choices=model_dir.HEADS)
    labels: str = option("", "--head=classifier: label words in class-id order.")
    pooling: str = option("mean", "--head=classifier: pooling.", choices=POOLINGS,
                          only_with=OnlyWith("head", ("classifier",)))
    rank_classification: bool = option(False, "Evaluate by scoring each of --labels and picking "
                                       "the most likely (never an invalid label).",
                                       only_with=OnlyWith("head", ("seq2seq",)))
    template: str = option("", "Render --train_file rows with a prompt template "
                           "(t5core.data.templates). " + template_help(),
                           choices=("", *TEMPLATES), only_with=_FILE)
    template_args: str = option("", "JSON keyword arguments of the template, e.g. "
                                "'{\"label_words\": [\"negative\", \"positive\"]}'.",
                                only_with=_TEMPLATE)
    instruction: bool = option(False, "Phrase the template's inputs as Flan-style instructions.",
                               only_with=_TEMPLATE)
    overlong: str = option("cut", "Rows longer than --inputs_length/--targets_length: cut them "
                           "(keeping the EOS; how many is reported) or stop with an error.",
                           choices=OVERLONG_POLICIES, only_with=_DATA_SOURCE)
    data_changed: str = option("error", "A resume whose --train_file/--eval_file, or an option "
                               "shaping the training rows (--task, --template, its arguments, "
                               "the fields, the lengths), changed since the checkpoint: stop "
                               "and say so (error), go on from the saved "
                               "data position (continue), or start the data from its beginning "
                               "(restart_epoch).", choices=DATA_CHANGED_POLICIES)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # the main job's

    @property
    def label_list(self) -> list[str]:
        return [x for x in self.labels.split(",") if x]

    @property
    def metric_list(self) -> list[str]:
        return [x for x in self.metrics.split(",") if x]

    def check(self):
        """Fails on contradictory or impossible options before any work is done."""
        problems = []
        sources = [n for n in ("task", "mixture", "train_file") if getattr(self, n)]
        if len(sources) > 1:
            problems.append(f"give only one of --task, --mixture, --train_file (got "
                            f"{', '.join('--' + s for s in sources)})")
        # The template's arguments and each file's type, before any data or model is touched (an
        # unknown template is the choice check's to name).
        problems += option_problems(
            template=self.template if self.template in TEMPLATES else "",
            template_args=self.template_args, instruction=self.instruction,
            files=[(f"--{name}", getattr(self, name)) for name in ("train_file", "eval_file")],
            metrics=self.metrics)
        problems += field_problems(self)
        if self.tpu and self.strategy not in ("auto", "tpu"):
            problems.append(f"--tpu contradicts --strategy={self.strategy}")
        implied = STRATEGY_OF.get(self.cluster_resolver)
        if self.cluster_resolver != "tf_config" and self.strategy not in ("auto", implied):
            problems.append(f"--cluster_resolver={self.cluster_resolver} contradicts "
                            f"--strategy={self.strategy} (it builds --strategy={implied})")
        elif self.cluster_resolver == "slurm" or self.strategy == "multi_worker":
            problems += filter(None, [missing_environment(self.cluster_resolver)])
        if ((self.strategy == "tpu" or self.cluster_resolver == "tpu") and not self.tpu
                and "TPU_NAME" not in os.environ):
            problems.append("--strategy=tpu needs --tpu (a TPU name or grpc:// address)")
        for name in ("inputs_field", "targets_field"):
            if not getattr(self, name).strip():
                problems.append(f"--{name} must name a column or key (got an empty string)")
        for path_flag in ("init_checkpoint", "vocab", "train_file", "eval_file", "data_dir"):
            path = getattr(self, path_flag)
            if path and not path.startswith("gs://") and not tf.io.gfile.exists(path) \
                    and not (path_flag == "vocab" and path == "byte"):
                problems.append(f"--{path_flag}={path} does not exist")
        if self.init_optimizer_state:
            problems += self._continue_run_problems()
        if self.model.endswith(".json") and not tf.io.gfile.exists(self.model):
            problems.append(f"--model={self.model} does not exist")
        if self.head == "classifier" and len(self.label_list) < 2:
            problems.append("--head=classifier needs --labels with at least two label words")
        if self.head == "classifier" and not (self.task or self.train_file):
            problems.append("--head=classifier needs --task or --train_file")
        if self.pack and (self.peft == "prompt" or self.head == "classifier"):
            problems.append(f"--pack does not combine with --peft={self.peft} / --head={self.head}")
        if self.rank_classification and len(self.label_list) < 2:
            problems.append("--rank_classification needs --labels with at least two words")
        if self.peft == "prompt" and self.head == "classifier":
            problems.append("--peft=prompt applies to the seq2seq head only")
        problems += self.train.problems()  # the training flags too, before any data or model
        if problems:
            raise FlagError("Bad flags: " + "; ".join(problems))

    def _continue_run_problems(self):
        needs = [("--init_checkpoint (the T5X or Mesh-TF checkpoint)", bool(self.init_checkpoint)),
                 ("--optimizer=adafactor", self.train.optimizer == "adafactor"),
                 ("--peft=none", self.peft == "none"), ("--head=seq2seq", self.head == "seq2seq")]
        return [f"--init_optimizer_state needs {flag}" for flag, ok in needs if not ok]


# The training options that act on evaluations only: the best checkpoint and early stopping.
EVALUATION_OPTIONS = ("early_stopping_patience", "best_metric", "best_metric_mode")


def unevaluated_problems(config: TrainConfig) -> list[str]:
    """One line per evaluation option set (other than its default) in a run that evaluates
    nothing: no --eval_file, a task without a validation split, or --eval_examples=0."""
    defaults = TrainConfig()
    return [f"--{name}={getattr(config, name)!r} has no effect: this run evaluates nothing (give "
            "--eval_file, a --task with a validation split, or --eval_examples > 0)"
            for name in EVALUATION_OPTIONS if getattr(config, name) != getattr(defaults, name)]


def resolve_jit_compile(flag: str) -> bool:
    """--jit_compile: "true", "false", or "auto" for `t5core.xla.default_jit_compile()`."""
    value = auto_bool(flag)
    return default_jit_compile() if value is None else value


def model_config(options: RunOptions):
    """The model config: --model (preset, config.json, a run's or HF directory), else the
    --init_checkpoint's own config, else the embedded tiny byte-level model."""
    if options.model.endswith(".json"):
        config = T5Config.from_json(options.model)
    elif options.model and tf.io.gfile.isdir(options.model):
        config = model_dir.read_config(options.model)
        if config is None:
            raise FlagError(f"--model={options.model}: the directory holds no "
                            f"{model_dir.CONFIG}")
    elif options.model:
        config = T5Config.from_preset(options.model)
    elif options.init_checkpoint:
        config = checkpoint_config(options.init_checkpoint)
    else:
        config = T5Config(**EMBEDDED_MODEL)
    if options.dropout_rate is not None:
        config = config.replace(dropout_rate=options.dropout_rate)
    return config


def checkpoint_config(path):
    """The config a checkpoint states or implies (HF config.json, a run's, Mesh-TF shapes...)."""
    fmt, reader, _, location = open_checkpoint(path)
    try:
        return resolve_config(None, fmt, location, reader)
    except (ValueError, FileNotFoundError) as err:
        raise FlagError(f"--init_checkpoint={path} does not say which model it holds ({err}); "
                        "pass --model (a preset name or config.json)") from None


def resolve_vocab(options: RunOptions) -> tuple[str, str]:
    """(vocabulary, where it came from): --vocab, else the tokenizer beside --init_checkpoint or
    in the --model directory (spiece.model, tokenizer.json, a run's own), else "byte"."""
    if options.vocab:
        return options.vocab, "--vocab"
    for flag in ("init_checkpoint", "model"):
        found = model_dir.find_tokenizer(getattr(options, flag)) if getattr(options, flag) \
            else None
        if found:
            return found, f"--{flag}"
    return "byte", "default"


def make_tokenizer(options: RunOptions):
    return load_tokenizer(resolve_vocab(options)[0])


def _compared(name, value):
    """A recorded option as a resume compares it: --template_args by its JSON value, so that
    spacing or key order written another way is no change."""
    if name == "template_args" and value:
        try:
            return file_reads.parse_json(value, "--template_args", ValueError)
        except ValueError:
            return value
    return value


def check_data_changed(options: RunOptions, run, log=print) -> bool:
    """Whether a resume must restart the data: the files differ from run.json's fingerprints, or
    the options that shape the training rows (TRAINING_DATA_OPTIONS) from those it recorded, and
    --data_changed=restart_epoch; DataError with --data_changed=error. A new run: False; a
    model_dir without fingerprints compares only the options.
    """
    model_dir_path = options.train.model_dir
    if not (tf.io.gfile.exists(model_dir_path) and file_reads.latest_checkpoint(model_dir_path)):
        return False
    saved = read_run_checked(model_dir_path)
    if saved is None:
        return False
    changed, touched = changes(saved.data_files, run.data_files) if saved.data_files else ([], [])
    changed += [f"--{name}: {saved.data[name]!r} then, {run.data[name]!r} now"
                for name in TRAINING_DATA_OPTIONS if name in saved.data
                and _compared(name, saved.data[name]) != _compared(name, run.data[name])]
    if touched:
        log(f"Note: {', '.join(touched)}: modified since the checkpoint, but of the same size "
            "and with the same first and last MiB; taken as unchanged")
    if not changed:
        return False
    what = f"the data changed since the checkpoint of {model_dir_path}: {'; '.join(changed)}"
    if options.data_changed == "error":
        raise DataError(f"{what}. Resume with --data_changed=continue (from the saved position) "
                        "or --data_changed=restart_epoch (from the data's beginning), or use a "
                        "new --model_dir")
    log(f"Warning: {what}; --data_changed={options.data_changed}: "
        + ("going on from the saved data position" if options.data_changed == "continue"
           else "the data starts again from its beginning"))
    return options.data_changed == "restart_epoch"


# The data files a run records (run.json's data, by flag name), fingerprinted for its resume.
RUN_FILES = ("train_file", "eval_file")


def recorded_files(run) -> list[str]:
    """The data files `run` (a RunDescription or None) records: no program's output may replace
    one, read or not, as a resume would then read other data."""
    return [run.data.get(name) for name in RUN_FILES] if run is not None else []


def read_run_checked(location: str):
    """`model_dir.read_run`, with the data options the run recorded (run.json's "data") held to
    their flags' checks: evaluate.py and generate.py act on them as on flags they were given."""
    return model_dir.read_run(location, lambda data: value_problems(RunOptions, data, "data."))


def run_description(options: RunOptions, vocab: str):
    """What run.json records of these options (the model adds its own structure)."""
    files = {name: model_dir.recorded_path(getattr(options, name))
             for name in ("data_dir", *RUN_FILES)}
    # Neither a task nor files: the run trains on the embedded set, which it names.
    embedded = not (options.task or options.mixture or options.train_file)
    data = {"task": EMBEDDED_TASK if embedded else options.task, **files,
            "template": options.template, "template_args": options.template_args,
            "instruction": options.instruction, "inputs_field": options.inputs_field,
            "targets_field": options.targets_field, "inputs_length": options.train.inputs_length,
            "targets_length": options.train.targets_length, "metrics": options.metrics,
            "bleu_tokenize": options.bleu_tokenize, "rouge_tokenize": options.rouge_tokenize,
            "squad_lang": options.squad_lang, "rank_classification": options.rank_classification,
            # --instruction draws each row's phrasing with it: evaluation phrases alike.
            "seed": options.train.seed}
    return model_dir.RunDescription(tokenizer=vocab, precision=options.train.precision,
                                    head=options.head, labels=tuple(options.label_list),
                                    pooling=options.pooling, peft=options.peft,
                                    peft_top_n=options.peft_top_n if options.peft == "top_n"
                                    else 1, data=data,
                                    data_files=fingerprints({name: files[name]
                                                             for name in RUN_FILES}))


def initial_model(options: RunOptions, config, dtype, log=print):
    """The model before PEFT: --init_checkpoint's (as its run built it) or a new one, with the
    head --head asks for."""
    # A LoRA run loads with its adapters merged into the weights: all of them train, or new
    # adapters over them with --peft=lora.
    base = (load_pretrained(options.init_checkpoint, config=config, dtype=dtype)
            if options.init_checkpoint else None)
    init_run = read_run_checked(options.init_checkpoint) if base is not None else None
    if init_run is not None and init_run.lora_rank:
        then = {"lora": "and new adapters train over them",
                "none": "which all train (--peft=lora trains new adapters over them instead)"}
        log("--init_checkpoint is a LoRA run: its adapters are merged into the weights, "
            + then.get(options.peft, f"which --peft={options.peft} trains"))
    labels = options.label_list
    if isinstance(base, T5EncoderClassifier):
        if options.head != "classifier":
            raise FlagError(f"--init_checkpoint={options.init_checkpoint} is a classifier-head "
                            "run (no decoder); train it on with --head=classifier")
        if list(base.labels) == labels and base.pooling == options.pooling:
            return base  # the same classes: its head goes on training
        log(f"--init_checkpoint's head classifies {list(base.labels)}: a new head for {labels}")
    if options.head == "classifier":
        return T5EncoderClassifier(base if base is not None else config, len(labels),
                                   pooling=options.pooling, dtype=dtype, labels=labels)
    if isinstance(base, PromptTunedT5) and options.peft == "prompt":
        log(f"Training on the soft prompt of --init_checkpoint ({base.prompt_length} vectors)")
    elif isinstance(base, PromptTunedT5) and options.peft == "none":
        log(f"--init_checkpoint is a prompt-tuned run: its soft prompt ({base.prompt_length} "
            f"vectors) and every weight train (--peft=prompt trains the prompt alone)")
    return base if base is not None else T5Model(config, dtype=dtype)


def inherited_labels(options: RunOptions) -> str:
    """--labels, else (--head=classifier trained on from a classifier run) the run's classes."""
    if not options.labels and options.head == "classifier" and options.init_checkpoint:
        inherited = read_run_checked(options.init_checkpoint)
        if inherited is not None and inherited.head == "classifier":
            return ",".join(inherited.labels)
    return options.labels


def run(options: RunOptions, log=print):
    """Trains as the options say.

    Args:
      options: left unchanged (what the run settles, as jit_compile "auto", goes into copies).
      log: where progress lines go.

    Returns:
      The Trainer: its history, model and config (the TrainConfig used).
    """
    options = dataclasses.replace(options, labels=inherited_labels(options))
    options.check()
    # The strategy first: multi-worker collectives must be configured before TF initialises.
    strategy = make_strategy(options.strategy, options.tpu or None, options.num_cpu_devices,
                             options.cluster_resolver, options.slurm_port_base)
    options.train.check(strategy.num_replicas_in_sync)  # the batch over the replicas, before data
    replicas = strategy.num_replicas_in_sync
    if replicas > 1 and is_chief(strategy):
        kind = type(strategy).__name__.replace("CollectiveAllReduce", "MultiWorkerMirrored")
        batch = options.train.batch_size
        log(f"{replicas} replicas ({kind}): --batch_size={batch} is the global batch, "
            f"{batch // replicas} rows per replica")
    train_cfg = dataclasses.replace(options.train,
                                    jit_compile=resolve_jit_compile(options.jit_compile))
    options = dataclasses.replace(options, train=train_cfg)
    keras.utils.set_random_seed(train_cfg.seed)  # before the data: shuffles use the global seed
    config = model_config(options)
    vocab, vocab_source = resolve_vocab(options)
    tokenizer = load_tokenizer(vocab)
    if vocab_source != "--vocab" and vocab != "byte":
        log(f"Tokenizer: {vocab} (from {vocab_source})")
    if tokenizer.vocab_size > config.vocab_size:
        raise ConfigError(f"The vocabulary ({vocab}, from {vocab_source}) has "
                          f"{tokenizer.vocab_size} ids but the model only {config.vocab_size} "
                          "embedding rows: wrong --vocab for --model?")
    dtype = "mixed_bfloat16" if train_cfg.precision == "mixed_bfloat16" else None
    overlong = DropCounter()
    train_data, eval_data, evaluator = make_trainer_inputs(options, tokenizer,
                                                           config.decoder_start_token_id, overlong)
    if eval_data is None and evaluator is None and unevaluated_problems(train_cfg):
        raise FlagError("; ".join(unevaluated_problems(train_cfg)))
    lengths = {"inputs": train_cfg.inputs_length, "targets": train_cfg.targets_length}
    if options.overlong == "cut" and (options.task or options.mixture or options.train_file):
        log("--overlong=cut: rows longer than --inputs_length/--targets_length are cut to them "
            "(keeping the EOS), and counted")
    description = run_description(options, vocab)
    restart_data = check_data_changed(options, description, log)

    def model_fn():
        # Plain weights (or the init run's model) and the head first, then PEFT; a resume
        # restores after all of them.
        model = initial_model(options, config, dtype, log)
        model = apply_peft(model, options.peft, top_n=options.peft_top_n,
                           prompt_length=options.prompt_length, prompt_init=options.prompt_init,
                           lora_rank=options.lora_rank, lora_alpha=options.lora_alpha or None,
                           lora_targets=options.lora_targets, seed=train_cfg.seed)
        if options.peft != "none":
            log(trainable_summary(model))
        return model

    trainer = Trainer(train_cfg, strategy, model_fn, train_data, eval_data, evaluator, log=log,
                      run=description, restart_data=restart_data)
    if options.init_optimizer_state:
        continue_checkpoint_run(trainer, options.init_checkpoint, log=log)
    try:
        trainer.train()
    except tf.errors.InvalidArgumentError as err:
        if OVERLONG_MESSAGE not in err.message:
            raise
        message = err.message[err.message.index(OVERLONG_MESSAGE):].split("\n")[0]
        raise DataError(f"--overlong=error: {message}; raise the length or pass "
                        "--overlong=cut") from None
    finally:
        report = overlong.overlong_report(lengths)
        if report and is_chief(strategy):
            log(report)
    if trainer.stopped_by:
        if is_chief(strategy):
            log("To resume, run the same command again: "
                + shlex.join([os.path.basename(sys.executable), *sys.argv]))
        return trainer
    if evaluator is not None and is_chief(strategy):
        log("Sample generations:")
        for line in evaluator(trainer.model)[1][:5]:
            log("  " + line)
    log(f"Checkpoints in {train_cfg.model_dir} (latest: {trainer.manager.latest_checkpoint})")
    return trainer
