"""The programs (t5core.commands, run as scripts/*.py or the t5core-* entry points): the flags they
had before their options were generated from the dataclasses and every program moved to absl,
one way of parsing them, and `run()` leaving its caller's options as they were."""

import ast
import copy
import dataclasses
import importlib
import importlib.util
import inspect
import io
import json
import pathlib
import subprocess
import sys
import types

import pytest
from absl import flags

from t5core import cli, dataclass_flags
from t5core.commands import shared_flags
from t5core.errors import ConfigError, FlagError
from helpxml import read_flags
from t5core.training.run import RunOptions, run
from t5core.training.trainer import TrainConfig

REPO = pathlib.Path(__file__).resolve().parents[1]
BEFORE = json.loads((REPO / "tests" / "fixtures" / "script_flags_before.json").read_text())
ABSL_PROGRAMS = ("train", "evaluate", "sweep")
ARGPARSE_PROGRAMS = ("generate", "export", "convert_checkpoint", "inspect_model")
# The flag every program that loads a checkpoint gained.
# BLEU's and ROUGE's tokenization for Chinese and other unspaced scripts; SQuAD's rules for the
# answers' language.
METRIC_TOKENIZE = {"bleu_tokenize", "rouge_tokenize", "squad_lang"}
# Few-shot prompts from a shots file.
FEW_SHOT = {"num_shots", "shots_file", "shots_seed"}
# The write side's trust boundary: train's numbers and data checks, convert's and export's
# --overwrite; train's cluster resolvers.
ADDED = {"train": {*METRIC_TOKENIZE, "max_nonfinite_skips", "overlong", "data_changed",
                   "cluster_resolver", "slurm_port_base"},
         "sweep": set(),
         "evaluate": {"allow_nonfinite", *METRIC_TOKENIZE, *FEW_SHOT},
         **{name: {"allow_nonfinite"} for name in ARGPARSE_PROGRAMS}}
ADDED["generate"] = {"allow_nonfinite", *FEW_SHOT}
# --quantize, on the programs that serve.
for _name in ("generate", "evaluate", "export"):
    ADDED[_name] |= {"quantize"}
ADDED["export"] |= {"overwrite"}
# --quiet, on every program that loads a checkpoint (convert had it already).
for _name in ("generate", "evaluate", "export", "inspect_model"):
    ADDED[_name] |= {"quiet"}
ADDED["convert_checkpoint"] |= {"overwrite"}


def command(name):
    return importlib.import_module(f"t5core.commands.{name}")


def defined(name) -> flags.FlagValues:
    flag_values = flags.FlagValues()
    command(name).define_flags(flag_values)
    return flag_values


# Flags whose type widened since the fixture was captured: {program: {flag: (type, default)}}.
# --peak_flops also takes "auto" (measure once per machine); unset, no MFU is reported.
WIDENED = {"train": {"peak_flops": ("string", "")}}

def own_flags(flag_values) -> set:
    return {name for name in flag_values if flag_values[name].name == name}


def flag_table(flag_values) -> dict:
    """{name: (absl type, default value, choices)} read from absl's FlagValues."""
    flags_by_name = {name: flag_values[name] for name in own_flags(flag_values)}
    return {name: (flag.flag_type(), flag.default, list(getattr(flag.parser, "enum_values", [])))
            for name, flag in flags_by_name.items()}


def expected_default(flag, text):
    """The fixture's default (as --helpxml wrote it) parsed by the flag's own parser."""
    text = text.replace("<repo>", str(REPO))
    return None if text in ("", "None") else flag.parser.parse(text)


def parse(name, argv):
    return cli.parse_flags(command(name).define_flags, argv)[0]


@pytest.mark.parametrize("name", ABSL_PROGRAMS)
def test_the_absl_programs_keep_their_flags(name):
    """Names, types, defaults and choices as before (help texts may be reworded)."""
    flag_values = defined(name)
    table = flag_table(flag_values)
    before = BEFORE[name]
    assert set(table) == set(before) | ADDED[name]
    for flag, old in before.items():
        kind, default, choices = table[flag]
        if flag in WIDENED.get(name, {}):
            assert (kind, default) == WIDENED[name][flag], flag
            continue
        assert kind == old["type"], flag
        if old["default"] in ("", "None"):
            assert default in (None, "", []), flag
        else:
            assert default == expected_default(flag_values[flag], old["default"]), flag
        old_choices = ["" if c is None else c for c in old["enum_values"]]  # helpxml's None
        if name == "train":  # generated from the dataclasses: the choices in the same order
            assert choices == old_choices, flag
        else:
            assert set(choices) == set(old_choices), flag


def test_train_helpxml_lists_the_flags_it_listed_before():
    """What the sweep reads from `scripts/train.py --helpxml`: the same flags, types, defaults."""
    table = read_flags(str(REPO / "scripts" / "train.py"))
    assert set(table) == set(BEFORE["train"]) | {"verbose"} | ADDED["train"]
    for flag, old in BEFORE["train"].items():
        info = table[flag]
        if flag in WIDENED["train"]:
            assert (info.type, info.default or "") == WIDENED["train"][flag], flag
            continue
        assert (info.type, info.default, list(info.enum_values)) == \
            (old["type"], old["default"], old["enum_values"]), flag


@pytest.mark.parametrize("name", ARGPARSE_PROGRAMS)
def test_the_argparse_programs_keep_their_flags_in_absl(name):
    flag_values = defined(name)
    before = BEFORE[name]
    assert own_flags(flag_values) == set(before) | ADDED[name]
    required = {flag: f"--{flag}=x" for flag, old in before.items() if old["required"]}
    for flag, old in before.items():
        new = flag_values[flag]
        kind = {"store_true": "bool", "append": "multi string"}.get(old["action"]) or (
            "string enum" if old["choices"] else
            {"int": "int", "float": "float", None: "string"}[old["type"]])
        assert new.flag_type() == kind, flag
        assert new.default == (False if old["action"] == "store_true" else old["default"]), flag
        if old["choices"]:
            assert list(new.parser.enum_values) == old["choices"], flag
        if old["required"]:
            others = [arg for other, arg in required.items() if other != flag]
            with pytest.raises(SystemExit):
                parse(name, others)
        for other in old["exclusive_with"]:
            with pytest.raises(SystemExit):
                parse(name, [*required.values(), f"--{flag}=a", f"--{other}=b"])
    parse(name, list(required.values()))  # all the required ones: parses


def test_repeated_and_boolean_flags_parse_as_argparse_did():
    args = parse("generate", ["--checkpoint", "c", "--input", "first text", "--input=second",
                              "--truncate", "--max_new_tokens", "7"])
    assert args.input == ["first text", "second"] and args.truncate is True
    assert args.max_new_tokens == 7 and args.seed is None and args.jit_compile == "auto"
    assert parse("generate", ["--checkpoint=c"]).input is None
    args = parse("convert_checkpoint", ["--input=a", "--output=b", "--no_torch", "--quiet"])
    assert (args.no_torch, args.quiet, args.format, args.dtype) == (True, True, "hf", "float32")
    args = parse("inspect_model", ["--input_ids=5,6", "--input_ids=7", "--no_png"])
    assert args.input_ids == ["5,6", "7"] and args.no_png is True
    assert parse("export", ["--checkpoint=c", "--output_dir=d", "--jit_compile"]).jit_compile


def test_checkpoint_programs_read_t5x_gin_files_as_config():
    """--config base.gin,size.gin: the gin files of a T5X run, in order, for every program."""
    tiny = REPO / "tests" / "fixtures" / "t5x_tiny"
    gin = f"{tiny / 't5_1_1_base.gin'},{tiny / 'tiny.gin'}"
    assert shared_flags.config_argument(gin) == gin.split(",")
    assert shared_flags.config_argument("t5-small") == "t5-small"
    assert shared_flags.config_argument(None) is None
    args = parse("generate", [f"--checkpoint={tiny / 'test_t5_tiny.checkpoint_0'}",
                              f"--config={gin}"])
    model = shared_flags.load_model(args)
    # base.gin's architecture with tiny.gin's sizes: both files were read, in that order.
    assert model.config.feed_forward_proj == "gated-gelu"
    assert (model.config.d_model, model.config.num_layers, model.config.d_kv) == (8, 2, 3)


def test_a_bad_flag_in_process_is_one_line_and_status_2(capsys):
    with pytest.raises(SystemExit) as stop:
        parse("generate", ["--checkpoint=c", "--method=fairseq"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: flag --method=fairseq")
    with pytest.raises(SystemExit):
        command("generate").main(["--checkpoint=c", "stray"])  # no positional arguments
    assert "Unexpected arguments: stray" in capsys.readouterr().err


def test_a_user_error_in_process_is_one_line_and_status_2(tmp_path, capsys):
    """generate, inspect and convert end a bad input in one `error:` line, status 2, wherever
    their work finds it (called in this process as from a shell)."""
    missing = tmp_path / "absent.txt"
    runs = [("generate", [f"--checkpoint={tmp_path}", f"--input_file={missing}"],
             f"error: --input_file {missing} does not exist"),
            ("inspect_model", ["--preset=t5-small", "--input_ids=1,x"],
             "error: --input_ids '1,x' is not a comma-separated list of integers"),
            ("convert_checkpoint", [f"--input={missing}", f"--output={tmp_path / 'out'}"],
             f"error: No checkpoint at {missing}")]
    for name, argv, line in runs:
        assert command(name).main(argv) == 2, name
        errors = [e for e in capsys.readouterr().err.splitlines() if e.startswith("error:")]
        assert errors == [line], name


def test_each_program_shows_its_progress_reading_a_checkpoint(tmp_path, capsys):
    """generate and evaluate (inspect and export load through the same call) draw convert's
    bar while the checkpoint is read, minutes for a large one; rank classification counts its
    examples as decoding does."""
    tiny = REPO / "tests" / "fixtures" / "hf_tiny_random_t5"
    command("generate").main([f"--checkpoint={tiny}", "--input=hi", "--max_new_tokens=2"])
    assert "read: 100%" in capsys.readouterr().err
    test_file = tmp_path / "test.tsv"
    test_file.write_text("inputs\ttargets\ngood film\tpositive\nbad film\tnegative\n")
    command("evaluate").main([f"--checkpoint={tiny}", f"--eval_file={test_file}",
                              "--rank_classification", "--labels=positive,negative",
                              "--metrics=accuracy", "--inputs_length=8", "--targets_length=4"])
    err = capsys.readouterr().err
    assert "read: 100%" in err and "rank: 100%" in err and "2/2" in err


def test_quiet_turns_every_bar_off(tmp_path, capsys):
    """--quiet is a flag of every program that loads a checkpoint (a log file gets no bars)."""
    tiny = REPO / "tests" / "fixtures" / "hf_tiny_random_t5"
    for name in ("generate", "evaluate", "export", "inspect_model", "convert_checkpoint"):
        assert "quiet" in defined(name), name
    inputs = tmp_path / "in.txt"
    inputs.write_text("hi\nthere\n")
    command("generate").main([f"--checkpoint={tiny}", f"--input_file={inputs}",
                              "--max_new_tokens=2", "--quiet"])
    test_file = tmp_path / "test.tsv"
    test_file.write_text("inputs\ttargets\ngood film\tpositive\nbad film\tnegative\n")
    command("evaluate").main([f"--checkpoint={tiny}", f"--eval_file={test_file}",
                              "--rank_classification", "--labels=positive,negative",
                              "--metrics=accuracy", "--inputs_length=8", "--targets_length=4",
                              "--quiet"])
    err = capsys.readouterr().err
    assert "100%" not in err and "read:" not in err and "rank:" not in err


def _entry_points():
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            scripts = ast.literal_eval(node.value)["console_scripts"]
            return dict(line.replace(" ", "").split("=") for line in scripts)
    raise AssertionError("setup.py declares no entry_points")


def test_each_entry_point_and_script_runs_one_main_of_the_package():
    entries = _entry_points()
    assert set(entries) == {"t5core-train", "t5core-generate", "t5core-evaluate", "t5core-export",
                            "t5core-convert", "t5core-inspect", "t5core-sweep"}
    targets = {}
    for entry, target in entries.items():
        module, function = target.split(":")
        targets[module.rsplit(".", 1)[1]] = getattr(importlib.import_module(module), function)
    assert set(targets) == set(BEFORE)
    for name, main in targets.items():
        path = REPO / "scripts" / f"{name}.py"
        source = path.read_text()
        assert "sys.path" not in source, path  # the installed package, not an edited path
        spec = importlib.util.spec_from_file_location(f"script_{name}", path)
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        assert script.main is main, path


def test_a_command_module_runs_as_a_script(tmp_path):
    """`python -m t5core.commands.<name>` (and the sweep's default train script, the module's
    file, where no scripts/ tree is beside the package) parse as the scripts do."""
    proc = subprocess.run([sys.executable, "-m", "t5core.commands.convert_checkpoint",
                           f"--input={tmp_path / 'none'}", f"--output={tmp_path / 'out'}"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: No checkpoint at {tmp_path / 'none'}" in proc.stderr
    from t5core.commands.sweep import default_train_script

    assert default_train_script() == str(REPO / "scripts" / "train.py")


# -- the dataclasses' flags ------------------------------------------------------------------------

def test_flags_from_a_dataclass_round_trip_to_the_same_options():
    flag_values = flags.FlagValues()
    names = dataclass_flags.define_flags(RunOptions, flag_values)
    assert len(names) == len(set(names)) == len(BEFORE["train"]) + len(ADDED["train"])
    flag_values(["train", "--peft=lora", "--lora_rank=4", "--train_steps=7", "--nopack",
                 "--dropout_rate=0.25", "--jit_compile=false", "--optimizer=adafactor"])
    options = dataclass_flags.from_flags(RunOptions, flag_values)
    assert options == RunOptions(peft="lora", lora_rank=4, dropout_rate=0.25, jit_compile="false",
                                 train=TrainConfig(train_steps=7, optimizer="adafactor"))
    flag_values.unparse_flags()
    flag_values(["train"])
    assert dataclass_flags.from_flags(RunOptions, flag_values) == RunOptions()


def test_a_field_a_flag_cannot_hold_is_refused():
    import dataclasses

    @dataclasses.dataclass
    class Options:
        sizes: list = dataclasses.field(default_factory=list, metadata={"help": "Sizes."})

    with pytest.raises(TypeError, match="no default"):
        dataclass_flags.define_flags(Options, flags.FlagValues())

    @dataclasses.dataclass
    class Unhelpful:
        rate: float = 0.5

    with pytest.raises(TypeError, match="Unhelpful.rate has no help text"):
        dataclass_flags.define_flags(Unhelpful, flags.FlagValues())


# -- run() leaves the caller's options alone --------------------------------------------------------

def _classifier_run_dir(tmp_path):
    from t5core import model_dir

    directory = tmp_path / "classifier_run"
    directory.mkdir()
    model_dir.write_run(str(directory), model_dir.RunDescription(
        tokenizer="byte", head="classifier", labels=("negative", "positive")))
    return directory


def test_run_resolves_inherited_labels_into_a_copy(tmp_path):
    options = RunOptions(head="classifier", init_checkpoint=str(_classifier_run_dir(tmp_path)),
                         train=TrainConfig(train_steps=0))
    kept = copy.deepcopy(options)
    with pytest.raises(FlagError, match="--train_steps must be >= 1") as err:
        run(options)  # stops at the checks, after taking the run's labels
    assert "--labels" not in str(err.value)  # the inherited classes were seen by the checks
    assert options == kept and options.labels == ""


def test_run_resolves_jit_compile_into_a_copy():
    # The resolved value (True) differs from the TrainConfig's (False): a write would show.
    options = RunOptions(jit_compile="true", model="no-such-preset")
    kept = copy.deepcopy(options)
    with pytest.raises((ConfigError, FlagError, KeyError, ValueError)):
        run(options)  # stops at the model, after resolving jit_compile
    assert options == kept and options.train.jit_compile is False


def test_run_trains_with_the_resolved_config_and_leaves_the_options(tmp_path):
    options = RunOptions(jit_compile="false", eval_examples=4, train=TrainConfig(
        model_dir=str(tmp_path / "run"), train_steps=2, batch_size=8, eval_every=0, eval_steps=1,
        save_every=0, log_every=1, progress_bar=False, peak_flops=1e11, jit_compile=True))
    kept = copy.deepcopy(options)
    trainer = run(options, log=lambda *a: None)
    assert options == kept and options.train.jit_compile is True
    assert trainer.config.jit_compile is False and trainer.config is not options.train
    assert trainer.config == TrainConfig(**{**vars(options.train), "jit_compile": False})


def test_every_choice_field_is_checked_from_its_metadata():
    """RunOptions.check refuses a value outside a field's choices, for every such field, naming
    the flag, the choices and the value: one rule, read from the same metadata as the flags."""
    from t5core.errors import FlagError
    from t5core.training.run import RunOptions
    from t5core.training.trainer import TrainConfig

    for cls, wrap in ((RunOptions, lambda **kw: RunOptions(**kw)),
                      (TrainConfig, lambda **kw: RunOptions(train=TrainConfig(**kw)))):
        choice_fields = [f for f in dataclasses.fields(cls) if "choices" in f.metadata]
        assert choice_fields
        for field in choice_fields:
            with pytest.raises(FlagError) as err:
                wrap(**{field.name: "no-such-choice"}).check()
            message = str(err.value)
            assert f"--{field.name} must be one of" in message, message
            assert "(got 'no-such-choice')" in message and field.metadata["choices"][-1] in message


def test_generate_reads_its_inputs_as_every_data_file_is_read(tmp_path, monkeypatch):
    """A BOM and CRLF line ends (a file saved by Notepad, a pipe from Windows) are not part of
    the inputs, from --input_file or stdin: the model sees the text training saw."""
    from t5core.commands.generate import read_inputs

    path = tmp_path / "输入.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "问题：天空是什么颜色？\r\nabc\r\n".encode())
    args = types.SimpleNamespace(input=None, input_file=str(path))
    assert read_inputs(args)[0] == ["问题：天空是什么颜色？", "abc"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\ufeff问题\r\n\r\nabc\r\n"))
    assert read_inputs(types.SimpleNamespace(input=None, input_file=None))[0] == [
        "问题", "", "abc"]


def test_a_door_that_decodes_freely_says_when_the_run_ranks_its_labels(capsys):
    """A --rank_classification run is evaluated by ranking its label words; generate and the
    SavedModel decode freely, so they say so rather than answer otherwise in silence."""
    from t5core.commands import shared_flags
    from t5core.model_dir import RunDescription

    ranked = RunDescription(labels=("no", "yes"), data={"rank_classification": True})
    shared_flags.note_ranked_labels(ranked, "runs/rank", "generate")
    assert capsys.readouterr().err == (
        "note: runs/rank is evaluated by ranking the label words no,yes "
        "(--rank_classification); generate decodes freely, so its outputs may be none of them "
        "(evaluate.py ranks them)\n")
    for unranked in (None, RunDescription(labels=("no", "yes"))):
        shared_flags.note_ranked_labels(unranked, "runs/free", "generate")
    assert capsys.readouterr().err == ""
    for name in ("generate", "export"):
        assert "note_ranked_labels(run, args.checkpoint" in inspect.getsource(command(name))
