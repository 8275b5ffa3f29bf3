"""No flag silently ignored: each flag that acts only with another flag's value declares it
(`dataclass_flags.OnlyWith`, in its option's metadata or the program's `declare_only_with`
table), and every program refuses such a flag given without it, naming both, before any work.

The tests walk the declared tables, so a new declared flag is covered; and a flag whose help
says where it acts ("--method=sample: ...") must declare it, so a new undeclared one is caught.
"""

import dataclasses
import importlib
import os
import re
import subprocess
import sys

import pytest
from absl import flags

from t5core import cli, dataclass_flags
from t5core.commands import shared_flags
from t5core.dataclass_flags import OnlyWith, OnlyWithout, field_problems, flag_bound
from t5core.errors import FlagError
from t5core.training.run import RunOptions
from t5core.training.trainer import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ("train", "evaluate", "sweep", "generate", "export", "convert_checkpoint",
            "inspect_model")
# What each program cannot parse without.
REQUIRED = {"evaluate": ["--checkpoint=c"], "generate": ["--checkpoint=c"],
            "export": ["--checkpoint=c", "--output_dir=o"],
            "convert_checkpoint": ["--input=i", "--output=o"],
            "sweep": ["--space={}", "--objective=loss"]}
# Flags whose help names a flag they depend on, but which act without it too, and why.
ACTS_WITHOUT = {
    ("train", "labels"): "also the label set --train_file's targets are checked against, and "
                         "--rank_classification's candidates",
    # evaluate's data flags default to the run's recorded values: whether they act depends on
    # the run, not on the command line.
    ("evaluate", "labels"): "the run's recorded options decide",
    ("evaluate", "metrics"): "the run's recorded options decide",
    ("evaluate", "split"): "the run's recorded task is scored unless --eval_file is given, which "
                           "is what it declares",
}


def defined(program) -> flags.FlagValues:
    flag_values = flags.FlagValues()
    importlib.import_module(f"t5core.commands.{program}").define_flags(flag_values)
    return flag_values


def parse(program, argv):
    return cli.parse_flags(importlib.import_module(f"t5core.commands.{program}").define_flags,
                           REQUIRED.get(program, []) + argv)[0]


def is_off(value) -> bool:
    return value in (None, "", 0, False, [])


# Text flags a validator checks at parsing, with a value it accepts.
CHECKED_TEXT = {"max_shard_size": "1GB"}


def set_arg(flag, avoid=()) -> str:
    """An argument that gives `flag` a value that is on, other than its default and `avoid`."""
    if flag.flag_type() == "bool":
        return f"--{flag.name}" if not flag.default else f"--no{flag.name}"
    choices = getattr(flag.parser, "enum_values", None)
    if choices:
        value = next(c for c in choices if c and c != flag.default and c not in avoid)
    elif flag.flag_type() in ("int", "float"):  # within its bound: --top_p=2 is refused as such
        bound = flag_bound(flag)
        value = next(v for v in ((flag.default or 0) + 1, (flag.default or 1) / 2)
                     if bound is None or bound.problem(v) is None)
    else:
        value = CHECKED_TEXT.get(flag.name, "x")
    return f"--{flag.name}={value}"


def holding(flag_values, condition) -> list[str]:
    """Arguments under which `condition` holds."""
    if isinstance(condition, OnlyWithout):
        assert all(is_off(flag_values[n].default) for n in condition.names)
        return []
    name = condition.names[0]
    if condition.values:
        return [f"--{name}={condition.values[0]}"]
    return [set_arg(flag_values[name])]


def failing(flag_values, condition) -> list[str]:
    """Arguments under which `condition` fails."""
    if isinstance(condition, OnlyWithout):
        return [set_arg(flag_values[condition.names[0]])]
    args = []
    for name in condition.names:
        default = flag_values[name].default
        if condition.values and default in condition.values:
            args.append(set_arg(flag_values[name], avoid=condition.values))
        elif not condition.values:
            assert is_off(default), f"--{name}'s default turns it on"
    return args


def declared_cases():
    cases = []
    for program in PROGRAMS:
        for name, conditions in dataclass_flags.declared_only_with(defined(program)).items():
            for index in range(len(conditions)):
                cases.append(pytest.param(program, name, index, id=f"{program}-{name}-{index}"))
    return cases


@pytest.mark.parametrize("program,name,index", declared_cases())
def test_every_declared_flag_is_refused_without_its_condition_naming_both(program, name, index):
    flag_values = defined(program)
    conditions = dataclass_flags.declared_only_with(flag_values)[name]
    condition = conditions[index]
    others = [arg for i, c in enumerate(conditions) if i != index
              for arg in holding(flag_values, c)]
    given = [set_arg(flag_values[name])]

    def about_it(args, refuse):
        problems = dataclass_flags.flag_problems(parse(program, args), refuse)
        return [p for p in problems if p.startswith(f"--{name}=")]

    found = about_it(given + others + failing(flag_values, condition), condition.refuse)
    assert len(found) == 1 and all(f"--{other}" in found[0] for other in condition.names), found
    assert "has no effect" in found[0]
    # Where every condition holds the flag acts: nothing to say.
    satisfied = given + others + holding(flag_values, condition)
    assert about_it(satisfied, True) == about_it(satisfied, False) == []
    # Not given, it is never refused, whatever the others say.
    assert about_it(others + failing(flag_values, condition), condition.refuse) == []


def other_value(field, options):
    value = getattr(options, field.name)
    if "choices" in field.metadata:
        return next(c for c in field.metadata["choices"] if c and c != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value + 1
    return "x"


def dataclass_cases():
    cases = []
    for cls in (RunOptions, TrainConfig):
        for field in dataclasses.fields(cls):
            for index, _ in enumerate(field.metadata.get("only_with", ())):
                cases.append(pytest.param(cls, field, index,
                                          id=f"{cls.__name__}-{field.name}-{index}"))
    return cases


@pytest.mark.parametrize("cls,field,index", dataclass_cases())
def test_every_declared_option_is_refused_by_the_python_api_too(cls, field, index):
    """run(RunOptions(...)) checks the same declarations: a value other than the default."""
    base = cls()
    conditions = field.metadata["only_with"]

    def values(condition, holds):
        name = condition.names[0]
        other = next(f for f in dataclasses.fields(cls) if f.name == name)
        if isinstance(condition, OnlyWithout) != holds:  # set it
            return {name: condition.values[0] if condition.values and holds
                    else other_value(other, base)}
        if condition.values and getattr(base, name) in condition.values:
            return {name: next(c for c in other.metadata["choices"] if c not in condition.values)}
        return {}

    settled = {}
    for i, condition in enumerate(conditions):
        if i != index:
            settled.update(values(condition, True))
    changed = {field.name: other_value(field, base), **settled}
    failing_options = dataclasses.replace(base, **changed, **values(conditions[index], False))
    found = [p for p in field_problems(failing_options) if p.startswith(f"--{field.name}=")]
    assert len(found) == 1 and f"--{conditions[index].names[0]}" in found[0], found
    holding_options = dataclasses.replace(base, **changed, **values(conditions[index], True))
    assert not [p for p in field_problems(holding_options) if p.startswith(f"--{field.name}")]


def test_a_flag_whose_help_says_where_it_acts_declares_it():
    """Help that opens "--method=sample: ..." says the flag acts only there: the declaration
    must say so too, or the flag would be taken and ignored elsewhere without a word."""
    undeclared = []
    for program in PROGRAMS:
        flag_values = defined(program)
        declared = dataclass_flags.declared_only_with(flag_values)
        for name in flag_values:
            help_text = re.sub(r"^<[^>]*>: ", "", flag_values[name].help or "")  # enum's choices
            found = re.match(r"--(\w+)(?:=(\w+))?:", help_text)
            if not found or (program, name) in ACTS_WITHOUT:
                continue
            other, value = found.groups()
            if not any(other in c.names and (value is None or value in c.values)
                       for c in declared.get(name, ())):
                undeclared.append(f"{program} --{name} ({found.group(0)})")
    assert undeclared == []


def test_an_undeclared_dependency_is_caught_by_the_help_rule(monkeypatch):
    """The rule above is no formality: a flag documented for one method but not declared fails."""
    original = dataclass_flags.declared_only_with
    monkeypatch.setattr(dataclass_flags, "declared_only_with", lambda fv: {
        k: v for k, v in original(fv).items() if k != "top_p"})
    with pytest.raises(AssertionError, match="generate --top_p"):
        test_a_flag_whose_help_says_where_it_acts_declares_it()


def program(define_extra=None):
    def define(flag_values):
        flags.DEFINE_enum("method", "greedy", ["greedy", "beam"], "m", flag_values=flag_values)
        flags.DEFINE_integer("num_beams", 4, "b", flag_values=flag_values)
        flags.DEFINE_bool("quiet", False, "q", flag_values=flag_values)
        dataclass_flags.declare_only_with(flag_values, {
            "num_beams": OnlyWith("method", ("beam",)),
            "quiet": OnlyWith("method", ("beam",), refuse=False)})
    return define


def test_the_programs_refuse_before_the_work_and_note_the_harmless(capsys):
    ran = []
    with pytest.raises(FlagError, match=r"--num_beams=4 has no effect without --method=beam "
                                        r"\(here --method='greedy'\)"):
        cli.command(program(), ran.append, ["--num_beams=4"])
    assert ran == []
    cli.command(program(), ran.append, ["--quiet"])
    assert len(ran) == 1 and "note: --quiet=True has no effect without --method=beam" \
        in capsys.readouterr().err
    cli.command(program(), ran.append, ["--method=beam", "--num_beams=2", "--quiet"])
    assert len(ran) == 2 and capsys.readouterr().err == ""


def test_a_declaration_naming_no_flag_is_refused():
    flag_values = flags.FlagValues()
    flags.DEFINE_integer("num_beams", 4, "b", flag_values=flag_values)
    with pytest.raises(KeyError, match="--num_beams is declared only with --method"):
        dataclass_flags.declare_only_with(flag_values, {"num_beams": OnlyWith("method")})


def test_the_script_ends_in_one_error_line_naming_both_flags(tmp_path):
    """As a stranger runs it: before the checkpoint (which does not exist) is opened."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "generate.py"),
                           f"--checkpoint={tmp_path / 'none'}", "--input=a", "--top_p=0.9"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: --top_p=0.9 has no effect without --method=sample "
                      "(here --method='greedy')"], proc.stderr
    assert "Traceback" not in proc.stderr


def test_flags_a_loaded_model_leaves_unread_are_noted(capsys):
    """A classifier-head checkpoint decodes nothing: the decoding flags given are named."""
    args = parse("generate", ["--method=beam", "--num_beams=2"])
    shared_flags.note_unread(args, shared_flags.DECODING_FLAGS, "runs/c is a classifier-head run")
    assert capsys.readouterr().err == ("note: --method, --num_beams: no effect, runs/c is a "
                                       "classifier-head run\n")
    shared_flags.note_unread(parse("generate", []), shared_flags.DECODING_FLAGS, "unused")
    assert capsys.readouterr().err == ""


def test_evaluation_options_in_a_run_that_evaluates_nothing_are_refused(tmp_path, monkeypatch):
    """--eval_examples=0 on the embedded tasks (as a --train_file without --eval_file) leaves no
    evaluation: early stopping and the best checkpoint would never act."""
    from t5core.training import run as run_module

    def no_trainer(*args, **kwargs):
        raise AssertionError("the refusal comes before the trainer")

    monkeypatch.setattr(run_module, "Trainer", no_trainer)
    options = RunOptions(eval_examples=0, train=TrainConfig(
        model_dir=str(tmp_path / "run"), early_stopping_patience=2, best_metric="eval_loss",
        train_steps=1, batch_size=2))
    with pytest.raises(FlagError) as err:
        run_module.run(options, log=lambda *a: None)
    assert str(err.value) == "; ".join(
        f"--{name} has no effect: this run evaluates nothing (give --eval_file, a --task with a "
        "validation split, or --eval_examples > 0)"
        for name in ("early_stopping_patience=2", "best_metric='eval_loss'"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("policy", ["error", "continue"])
def test_a_resume_with_a_changed_data_option_follows_data_changed(tmp_path, monkeypatch, policy):
    """--inputs_length changed on a resume replays another stream of rows from the saved data
    position: it is a change of the data, under --data_changed, not taken silently."""
    from t5core import model_dir
    from t5core.errors import DataError
    from t5core.training import run as run_module

    options = RunOptions(data_changed=policy, train=TrainConfig(model_dir=str(tmp_path),
                                                                inputs_length=32))
    saved = run_module.run_description(dataclasses.replace(options, train=TrainConfig(
        model_dir=str(tmp_path))), "byte")
    monkeypatch.setattr(run_module.file_reads, "latest_checkpoint", lambda path: "ckpt-1")
    monkeypatch.setattr(model_dir, "read_run", lambda path, *checks: saved)
    now = run_module.run_description(options, "byte")
    lines = []
    if policy == "error":
        with pytest.raises(DataError, match=r"--inputs_length: 24 then, 32 now\. Resume with "
                                            r"--data_changed=continue"):
            run_module.check_data_changed(options, now, lines.append)
    else:
        assert run_module.check_data_changed(options, now, lines.append) is False
        assert "--inputs_length: 24 then, 32 now; --data_changed=continue" in lines[0]
    assert run_module.check_data_changed(dataclasses.replace(
        options, train=TrainConfig(model_dir=str(tmp_path))), saved, lines.append) is False


def test_template_args_written_another_way_are_no_change_of_the_data(tmp_path, monkeypatch):
    from t5core import model_dir
    from t5core.errors import DataError
    from t5core.training import run as run_module

    def options(template_args):
        return RunOptions(template="classification", template_args=template_args,
                          train=TrainConfig(model_dir=str(tmp_path)))

    saved = run_module.run_description(options('{"label_words": ["负面", "正面"]}'), "byte")
    monkeypatch.setattr(run_module.file_reads, "latest_checkpoint", lambda path: "ckpt-1")
    monkeypatch.setattr(model_dir, "read_run", lambda path, *checks: saved)
    same = options('{"label_words":["负面","正面"]}')
    assert run_module.check_data_changed(same, run_module.run_description(same, "byte")) is False
    other = options('{"label_words": ["正面", "负面"]}')
    with pytest.raises(DataError, match="--template_args"):
        run_module.check_data_changed(other, run_module.run_description(other, "byte"))
