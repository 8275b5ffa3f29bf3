"""The seams a newcomer meets (issue 24, items 1-6): training on from PEFT runs, every program
reading the run's own tokenizer, output folders, mixed file types, template errors and their
reference, early stopping's default monitor and warm-up."""

import ast
import json
import os
import pathlib
import signal
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import t5core
from t5core import cli, model_dir
from t5core.checkpoints import load_pretrained
from t5core.commands import (convert_checkpoint, evaluate, export, generate, inspect_model, sweep,
                             train)
from t5core.data.files import file_task
from t5core.data.pairs import batched
from t5core.data.templates import TEMPLATES, make_template
from t5core.data.templates.reference import README_BEGIN, README_END, markdown_table
from t5core.errors import FlagError, T5CoreError
from t5core.evaluation import reports
from t5core.peft import lora_layers
from t5core.training import train_log
from t5core.training.run import RunOptions, run
from t5core.training.trainer import WATCHED, TrainConfig, Trainer
from conftest import bind_model_dir

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = {"model_type": "t5", "vocab_size": 384, "d_model": 16, "d_kv": 4, "num_heads": 2,
        "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "dropout_rate": 0.0,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
ROWS = [{"inputs": f"say {w}", "targets": w} for w in ("a", "bb", "ccc", "dd", "e", "ff")]
QUIET = dict(log=lambda *a: None)
SPIECE = ROOT / "tests" / "fixtures" / "t5_vocab" / "spiece.model"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_tsv(path, rows):
    path.write_text("inputs\ttargets\n" + "".join(f"{r['inputs']}\t{r['targets']}\n"
                                                  for r in rows))
    return str(path)


def options(tmp_path, name, train=None, **kw):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    settings = dict(model_dir=str(tmp_path / name), train_steps=2, batch_size=2,
                    inputs_length=16, targets_length=8, eval_every=0, eval_steps=1,
                    save_every=2, log_every=1, progress_bar=False, peak_flops=1e11,
                    learning_rate=1e-2)
    settings.update(train or {})
    kw.setdefault("train_file", write_jsonl(tmp_path / "train.jsonl", ROWS))
    kw.setdefault("model", "" if "init_checkpoint" in kw else str(config))
    return RunOptions(eval_examples=0, train=TrainConfig(**settings), **kw)


def variable_values(model):
    return {k: np.array(v.numpy()) for k, v in model.variables_by_name().items()}


# -- 1: training on from a LoRA, prompt or classifier run ----------------------------------------

def test_every_trainable_variable_of_a_loaded_peft_run_gets_a_gradient(tmp_path):
    """Variables filled while their layers were frozen (LoRA, prompt runs) still train."""
    run(options(tmp_path, "lora", peft="lora", lora_rank=2), **QUIET)
    run(options(tmp_path, "prompt", peft="prompt", prompt_length=3), **QUIET)
    features = {"encoder_input_tokens": tf.constant([[5, 6, 7, 1]]),
                "decoder_input_tokens": tf.constant([[0, 5, 6]])}
    for name in ("lora", "prompt"):
        model = load_pretrained(str(tmp_path / name))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(features, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
        assert model.trainable_variables and not missing, (name, missing)


@pytest.mark.parametrize("peft,head", [("lora", "seq2seq"), ("prompt", "seq2seq"),
                                       ("lora", "classifier")])
def test_a_peft_run_trains_on_without_peft_with_every_weight(tmp_path, peft, head):
    extra = dict(head="classifier", labels="a,bb,ccc,dd,e,ff") if head == "classifier" else {}
    # Only the options of its own method: the other's are refused (no effect).
    own = dict(lora_rank=2) if peft == "lora" else dict(prompt_length=3)
    first = run(options(tmp_path, "first", peft=peft, **own, **extra), **QUIET)
    before = variable_values(first.model)
    on = run(options(tmp_path, "on", init_checkpoint=str(tmp_path / "first"), **extra), **QUIET)
    model = on.model
    assert not lora_layers(model)  # merged
    assert len(model.trainable_variables) == len(model.variables_by_name())
    after = variable_values(model)
    changed = [k for k in after if k in before and not np.array_equal(after[k], before[k])]
    # Not only the adapters or the prompt: the base weights moved too.
    assert any(k.endswith("/q/kernel") for k in changed) and \
        any(k.endswith("/wo/kernel") for k in changed), changed
    assert model_dir.read_run(str(tmp_path / "on")).peft != "lora"


def test_a_lora_run_trains_on_with_peft_lora_as_new_adapters_over_its_merged_weights(tmp_path):
    run(options(tmp_path, "first", peft="lora", lora_rank=4), **QUIET)
    merged = variable_values(load_pretrained(str(tmp_path / "first")))
    lines = []
    on = run(options(tmp_path, "on", init_checkpoint=str(tmp_path / "first"), peft="lora",
                     lora_rank=2, train=dict(train_steps=1)), log=lines.append)
    layers = lora_layers(on.model)
    assert layers and {layer.rank for layer in layers.values()} == {2}
    trainable = {id(v) for v in on.model.trainable_variables}
    assert all(id(layer.base.kernel) not in trainable for layer in layers.values())
    for path, layer in layers.items():  # the bases hold the first run's merged weights
        np.testing.assert_array_equal(layer.base.kernel.numpy(), merged[path + "/kernel"])
    assert any("its adapters are merged into the weights, and new adapters" in line
               for line in lines)


def test_a_run_that_failed_before_its_first_checkpoint_does_not_block_a_retry(tmp_path):
    directory = str(tmp_path / "run")
    plain = t5core.T5Model(t5core.T5Config(**{k: v for k, v in TINY.items()
                                              if k != "model_type"}))
    bind_model_dir(directory, plain)  # what a run writes before it crashes
    assert os.path.exists(os.path.join(directory, model_dir.RUN))
    from t5core.peft import apply_peft

    other_vocab = pathlib.Path(directory).parent / "other" / "spiece.model"
    other_vocab.parent.mkdir()
    other_vocab.write_bytes(SPIECE.read_bytes()[:-1] + b"x")
    bind_model_dir(directory, plain, model_dir.RunDescription(tokenizer=str(SPIECE)))
    # the retry: another structure and another vocabulary file
    bind_model_dir(directory, apply_peft(plain, "lora", lora_rank=2),
                    model_dir.RunDescription(tokenizer=str(other_vocab)))
    assert model_dir.read_run(directory).lora_rank == 2
    assert (pathlib.Path(directory) / "spiece.model").read_bytes() == other_vocab.read_bytes()
    # Once a checkpoint is there, the model_dir is that model's.
    tf.train.Checkpoint(step=tf.Variable(1)).save(os.path.join(directory, "ckpt"))
    with pytest.raises(T5CoreError, match="another model"):
        bind_model_dir(directory, t5core.T5Model(plain.config))


# -- 2: every program reads the run's own tokenizer ----------------------------------------------

def test_inspect_reads_a_byte_level_runs_tokenizer(tmp_path, capsys):
    run(options(tmp_path, "byte"), **QUIET)
    assert model_dir.read_run(str(tmp_path / "byte")).tokenizer == "byte"
    inspect_model.main(["--checkpoint", str(tmp_path / "byte"), "--input", "say a",
                        "--max_new_tokens", "2", "--no_png"])
    assert "input pieces: s a y" in capsys.readouterr().out


def test_no_program_builds_a_tokenizer_but_through_load_tokenizer():
    """A tokenizer made from a path by hand skips the run's recorded one (byte-level runs)."""
    offenders = []
    for path in (ROOT / "t5core").rglob("*.py"):
        if "tokenizer" in path.relative_to(ROOT / "t5core").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                    node.func, "attr", "")) in ("Tokenizer", "ByteTokenizer"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


# -- 3: output flags ------------------------------------------------------------------------------

PROGRAMS = [convert_checkpoint, evaluate, export, generate, inspect_model, sweep, train]
# Flags named like outputs that are inputs.
INPUT_FLAGS = {"input_file", "train_file", "eval_file", "data_dir", "train_script", "shots_file"}


def program_flags(module):
    flag_values = flags.FlagValues()
    module.define_flags(flag_values)
    return flag_values


@pytest.mark.parametrize("module", PROGRAMS, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_output_flag_is_declared(module):
    flag_values = program_flags(module)
    outputs = cli.output_flags(flag_values)
    looks_like_output = {name for name in flag_values if name not in INPUT_FLAGS and (
        name.endswith(("_file", "_dir", "output")) or name in ("tensorboard", "output"))}
    assert looks_like_output <= set(outputs), looks_like_output - set(outputs)


@pytest.mark.parametrize("module", PROGRAMS, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_output_folders_are_made_or_refused_before_the_work(module, tmp_path):
    flag_values = program_flags(module)
    for name, kind in cli.output_flags(flag_values).items():
        target = tmp_path / name / "deep" / ("out.txt" if kind == "file" else "out")
        flag_values[name].value = str(target)
        cli.prepare_outputs(flag_values)
        assert target.parent.is_dir()
        flag_values[name].value = str(tmp_path / name)  # a folder where a file goes, or ...
        blocker = tmp_path / f"{name}.file"
        blocker.write_text("")
        if kind == "folder":
            flag_values[name].value = str(blocker)  # ... a file where a folder goes
        with pytest.raises(FlagError, match=f"--{name}="):
            cli.prepare_outputs(flag_values)
        flag_values[name].value = str(blocker / "below" / "x")  # a file as a folder on the way
        with pytest.raises(FlagError, match=f"--{name}="):
            cli.prepare_outputs(flag_values)
        flag_values[name].value = flag_values[name].default


@pytest.mark.parametrize("module", PROGRAMS, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_a_refused_output_flag_leaves_no_folder_made_for_another(module, tmp_path):
    flag_values = program_flags(module)
    names = list(cli.output_flags(flag_values))
    if len(names) < 2:
        pytest.skip("one output flag")
    for name in names[:-1]:
        flag_values[name].value = str(tmp_path / "new" / name / "deep" / "out")
    (tmp_path / "a_file").write_text("")
    flag_values[names[-1]].value = str(tmp_path / "a_file" / "below" / "x")
    with pytest.raises(FlagError, match=f"--{names[-1]}="):
        cli.prepare_outputs(flag_values)
    assert not (tmp_path / "new").exists()


def test_evaluate_writes_predictions_into_a_folder_that_did_not_exist(tmp_path):
    run(options(tmp_path, "run"), **QUIET)
    predictions = tmp_path / "new" / "folder" / "predictions.txt"
    report = tmp_path / "other" / "report.json"
    evaluate.main(["--checkpoint", str(tmp_path / "run"), "--eval_file", str(tmp_path /
                   "train.jsonl"), "--max_examples", "2", "--predictions_file", str(predictions),
                   "--report_file", str(report)])
    assert len(predictions.read_text().splitlines()) == 2
    assert json.loads(report.read_text())["examples"] == 2


# -- 4: each file's format follows its suffix -----------------------------------------------------

def test_a_jsonl_train_file_and_a_tsv_eval_file_each_read_as_themselves(tmp_path):
    train_file = write_jsonl(tmp_path / "train.jsonl", ROWS)
    eval_file = write_tsv(tmp_path / "eval.tsv", ROWS[:2])
    task = file_task(train_file, eval_file, "inputs", "targets", {"inputs": 16, "targets": 8},
                     ["accuracy"])
    for split, rows in (("train", ROWS), ("validation", ROWS[:2])):
        got = [ex["targets"].numpy().decode() for ex in task.source.get_dataset(split)]
        assert got == [r["targets"] for r in rows]


def test_a_data_file_of_unknown_type_is_refused_in_the_flag_check(tmp_path):
    odd = tmp_path / "train.csv"
    odd.write_text("inputs,targets\na,b\n")
    with pytest.raises(FlagError, match=r"--train_file: .*train\.csv.*\.tsv.*\.jsonl"):
        options(tmp_path, "run", train_file=str(odd)).check()


# -- 5: template arguments and reference ---------------------------------------------------------

BAD_TEMPLATE_ARGS = [
    ("classification", "{label_words: 1}", "not valid JSON"),
    ("classification", "[1, 2]", "must be a JSON object"),
    ("classification", "{}", "missing label_words"),
    ("translation", '{"source": "fr"}', "unknown source"),
]


@pytest.mark.parametrize("name,args,message", BAD_TEMPLATE_ARGS)
def test_bad_template_args_are_flag_errors_before_data_and_model(tmp_path, name, args,
                                                                 message):
    with pytest.raises(FlagError, match=message):
        make_template(name, args)
    # train: in the flag check, which runs before any data or model is built
    with pytest.raises(FlagError, match=message):
        options(tmp_path, "run", template=name, template_args=args).check()
    # evaluate: before the tokenizer and the model are loaded
    data = dict(reports.DATA_DEFAULTS, template=name, template_args=args,
                eval_file=str(tmp_path / "test.jsonl"))
    with pytest.raises(FlagError, match=message):
        reports.check_data_options(data)


def test_bad_template_args_end_train_in_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.guard(train.main)(["--train_file", write_jsonl(tmp_path / "t.jsonl", ROWS),
                               "--template=classification", "--template_args={oops",
                               f"--model_dir={tmp_path / 'run'}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was built


def test_readme_template_table_is_the_registry():
    text = (ROOT / "README.md").read_text()
    assert README_BEGIN in text and README_END in text
    table = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert table == markdown_table(), "regenerate: python -m t5core.data.templates.reference"


@pytest.mark.parametrize("module", [train, evaluate], ids=["train", "evaluate"])
def test_help_lists_each_templates_fields_arguments_and_metrics(module):
    help_text = program_flags(module)["template"].help
    for name in TEMPLATES:
        assert f"{name}: fields" in help_text
    assert "label_words (required)" in help_text and "metrics accuracy, f1_macro" in help_text


# -- 6: early stopping ---------------------------------------------------------------------------

def toy_features(n=32):
    rng = np.random.default_rng(0)
    tgt = rng.integers(2, 64, (n, 6)).astype(np.int32)
    return {"encoder_input_tokens": rng.integers(2, 64, (n, 8)).astype(np.int32),
            "decoder_target_tokens": tgt,
            "decoder_input_tokens": np.concatenate([np.zeros((n, 1), np.int32), tgt[:, :-1]], 1),
            "decoder_loss_weights": np.ones_like(tgt, np.float32)}


def early_stopping_trainer(tmp_path, lines, evaluator=None, **overrides):
    settings = dict(model_dir=str(tmp_path / "run"), train_steps=8, batch_size=4,
                    inputs_length=8, targets_length=6, log_every=100, save_every=0,
                    eval_every=1, eval_steps=2, early_stopping_patience=1, warmup_steps=5,
                    progress_bar=False, optimizer="adamw", learning_rate=1e-2, peak_flops=1e11)
    settings.update(overrides)
    config = TrainConfig(**settings)
    keras.utils.set_random_seed(0)
    model_config = t5core.T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=2, d_ff=32,
                                   num_layers=1, num_decoder_layers=1, dropout_rate=0.0)
    # Eight examples learnt by heart: the eval loss on them falls from the first steps.
    data = batched(toy_features(8), 4, seed=1)
    eval_data = tf.data.Dataset.from_tensor_slices(toy_features(8)).batch(4)
    # A decoded metric that stays at 0, as accuracy does in a run's first steps.
    evaluator = evaluator or (lambda model: ({"accuracy": 0.0}, []))
    return Trainer(config, tf.distribute.get_strategy(), lambda: t5core.T5Model(model_config),
                   data, eval_data, evaluator, log=lines.append)


def test_early_stopping_watches_the_eval_loss_by_default_and_says_so(tmp_path):
    lines = []
    trainer = early_stopping_trainer(tmp_path, lines, warmup_steps=0, train_steps=4,
                                     early_stopping_patience=2)
    trainer.train()
    assert trainer.step == 4  # the loss falls: no stop, although accuracy stays at 0
    assert any("best eval_loss (lower is better)" in line for line in lines), lines
    results = json.loads((tmp_path / "run" / model_dir.RESULTS).read_text())
    assert results["best"] == min(r["eval/eval_loss"] for r in trainer.history
                                  if "eval/eval_loss" in r)


def test_no_early_stop_inside_the_warm_up(tmp_path):
    lines = []
    trainer = early_stopping_trainer(tmp_path, lines, best_metric="accuracy")
    trainer.train()
    # accuracy never improves after step 1; evaluations at steps 2-5 are in the warm-up and do
    # not count, so the first counted one (step 6) stops the run.
    assert trainer.step == 6, [line for line in lines if "stop" in line.lower()]
    assert any(line.startswith("Early stopping at step 6: accuracy did not improve")
               for line in lines)
    assert any("best accuracy (higher is better)" in line and "warm-up (step 5)" in line
               for line in lines)


def test_a_resume_watching_another_metric_starts_its_best_again(tmp_path):
    """The best value a checkpoint holds measures the metric it watched: a resume with another
    --best_metric (or direction) starts the best and the patience count again, says so, and
    a resume killed before its first evaluation still passes the old metric on."""
    lines = []
    first = early_stopping_trainer(tmp_path, lines, warmup_steps=0, train_steps=2,
                                   early_stopping_patience=0, save_every=1)
    first.train()
    assert float(first.best.numpy()) == min(r["eval/eval_loss"] for r in first.history
                                            if "eval/eval_loss" in r)
    # A resume that saves before its first evaluation (step 3 here) records the metric it
    # restored, as a run killed there would leave it.
    early_stopping_trainer(tmp_path, [], warmup_steps=0, train_steps=4, eval_every=2,
                           early_stopping_patience=0, save_every=1).train()
    step_3 = model_dir.saved_settings(str(tmp_path / "run" / f"{model_dir.CHECKPOINT_PREFIX}-3"))
    assert step_3[WATCHED] == "eval_loss (lower is better)"
    lines = []
    resumed = early_stopping_trainer(tmp_path, lines, warmup_steps=0, train_steps=6,
                                     early_stopping_patience=0, save_every=1,
                                     best_metric="eval_token_accuracy")
    resumed.train()
    assert any("best/ followed the eval_loss (lower is better) until now; from here it follows "
               "the eval_token_accuracy (higher is better)" in line for line in lines), lines
    accuracies = [r["eval/eval_token_accuracy"] for r in resumed.history
                  if "eval/eval_token_accuracy" in r]
    assert float(resumed.best.numpy()) == max(accuracies)
    # The same metric again: nothing restarts.
    lines = []
    early_stopping_trainer(tmp_path, lines, warmup_steps=0, train_steps=7,
                           early_stopping_patience=0, save_every=1,
                           best_metric="eval_token_accuracy").train()
    assert not any("followed" in line for line in lines), lines


def test_a_signal_during_an_evaluation_stops_it_saves_the_step_and_the_resume_evaluates_it(
        tmp_path):
    """A preemption's grace period may be shorter than an evaluation: SIGTERM abandons it,
    saves the step, and training again evaluates that step first, then goes on."""
    calls = []

    def preempted_at_step_2(model):
        calls.append(len(calls))
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 60  # a long decode, interrupted
            while time.monotonic() < deadline:
                time.sleep(0.01)
            raise AssertionError("the evaluation went on after SIGTERM")
        return {"accuracy": float(len(calls))}, []

    lines = []
    first = early_stopping_trainer(tmp_path, lines, evaluator=preempted_at_step_2,
                                   warmup_steps=0, train_steps=4, early_stopping_patience=0,
                                   best_metric="accuracy")
    first.train()
    assert first.stopped_by == "SIGTERM" and first.step == 2
    assert any(line.startswith("Stopped by SIGTERM while evaluating step 2: saved ")
               and "ckpt-2. Train again" in line for line in lines), lines
    run = tmp_path / "run"
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-2")
    records = [r for r in train_log.read(str(run / model_dir.TRAIN_LOG)) if "eval/accuracy" in r]
    assert [r["step"] for r in records] == [1]  # nothing of the abandoned evaluation
    assert json.loads((run / model_dir.RESULTS).read_text())["stopped_by"] == "SIGTERM"
    lines = []
    resumed = early_stopping_trainer(tmp_path, lines, evaluator=preempted_at_step_2,
                                     warmup_steps=0, train_steps=4, early_stopping_patience=0,
                                     best_metric="accuracy")
    resumed.train()
    evaluated = [r["step"] for r in train_log.read(str(run / model_dir.TRAIN_LOG))
                 if "eval/accuracy" in r]
    assert evaluated == [1, 2, 3, 4] and resumed.step == 4


def test_the_logged_rate_is_the_one_the_update_used_and_evaluations_are_not_step_time(
        tmp_path, monkeypatch):
    """learning_rate at step N is the rate update N used: a linear warm-up from 0 over 2 steps
    logs 0 at step 1 (Keras reads the schedule before counting the step), half the peak at
    step 2, the peak at step 3.
    seconds_per_step leaves out evaluations and saves: on a clock that moves a millisecond per
    reading and 100 s in each evaluation and save, a step takes milliseconds."""
    from t5core.training import trainer as trainer_module

    class Clock:
        now = 0.0

        def perf_counter(self):
            self.now += 1e-3
            return self.now

    clock = Clock()
    monkeypatch.setattr(trainer_module, "time", clock)

    def slow_evaluator(model):
        clock.now += 100.0
        return {"accuracy": 0.0}, []

    lines = []
    run = early_stopping_trainer(tmp_path, lines, evaluator=slow_evaluator, warmup_steps=2,
                                 train_steps=3, log_every=1, early_stopping_patience=0,
                                 schedule="constant", learning_rate=1e-2, save_every=1)
    save = run._save

    def slow_save(*args, **kwargs):
        clock.now += 100.0
        return save(*args, **kwargs)

    run._save = slow_save
    history = [r for r in run.train() if "learning_rate" in r]
    assert [r["learning_rate"] for r in history] == pytest.approx([0.0, 5e-3, 1e-2])
    assert all(r["seconds_per_step"] < 0.1 for r in history), history


def test_evaluate_says_what_reading_left_out_and_an_eos_input_decodes_to_nothing(
        tmp_path, capsys, monkeypatch):
    """A row whose input tokenizes to nothing is left out by the data pipeline: evaluate says
    so (stderr and the report), since its predictions then do not follow the file's rows one
    for one. An input of EOS alone ("</s>") decodes to "", as generate and serving give."""
    from t5core.evaluation import evaluators

    tiny = ROOT / "tests" / "fixtures" / "hf_tiny_random_t5"
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"inputs": "a", "targets": "x"}\n{"inputs": "\\u200b", "targets": "x"}\n')
    report = tmp_path / "report.json"
    assert evaluate.main([f"--checkpoint={tiny}", f"--eval_file={rows}", "--inputs_length=8",
                          "--targets_length=4", "--quiet", f"--report_file={report}"]) in (0, None)
    note = f"1 examples of file {rows} left out, their input or target empty once tokenized"
    assert note in capsys.readouterr().err
    assert json.loads(report.read_text())["read"].startswith(note)
    tokenizer = t5core.load_tokenizer(str(tiny))
    monkeypatch.setattr(evaluators, "generate", lambda model, batch, *a, **k: (
        tf.fill([len(batch), 2], tokenizer.encode("a")[0]), None))
    evaluator = evaluators.DecodeEvaluator(
        [tokenizer.encode("</s>"), tokenizer.encode("a", add_eos=True)], ["", "a"], tokenizer,
        ["accuracy"], 8, 2)
    first, second = evaluator.predict(model=None)
    assert first == "" and second != ""


# -- README claims about run directories ----------------------------------------------------------


def test_readme_a_run_directory_holds_what_the_readme_lists(tmp_path):
    """README "The run directory": config.json, run.json, the tokenizer copied in, checkpoints,
    best/, train_log.jsonl, results.json; load_pretrained and load_tokenizer take it (and best/)."""
    config = dict(TINY, vocab_size=32128)
    (tmp_path / "big.json").write_text(json.dumps(config))
    run(options(tmp_path, "run", model=str(tmp_path / "big.json"), vocab=str(SPIECE),
                eval_file=write_jsonl(tmp_path / "eval.jsonl", ROWS), train=dict(eval_every=2)),
        **QUIET)
    directory = tmp_path / "run"
    names = set(os.listdir(directory))
    assert {model_dir.CONFIG, model_dir.RUN, "spiece.model", model_dir.BEST, model_dir.TRAIN_LOG,
            model_dir.RESULTS, "checkpoint"} <= names, names
    assert (directory / "spiece.model").read_bytes() == SPIECE.read_bytes()
    for where in (directory, directory / model_dir.BEST):
        assert isinstance(load_pretrained(str(where)), t5core.T5Model)
        assert t5core.load_tokenizer(str(where)).vocab_size == 32100
