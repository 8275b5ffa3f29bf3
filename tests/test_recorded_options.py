"""A value an option takes from elsewhere than its own flag passes the checks the flag would:
the data options a run recorded in run.json (read by evaluate.py, generate.py, export.py and a
resume), and the flags evaluate.py defines without defaults (unset: the run's value)."""

import dataclasses
import importlib

import pytest
from absl import flags

from t5core import cli, dataclass_flags, model_dir
from t5core.errors import ModelDirError
from t5core.evaluation.reports import DATA_DEFAULTS
from t5core.training.run import RunOptions, read_run_checked, run_description
from t5core.training.trainer import TrainConfig

RECORDED = run_description(RunOptions(), "byte").data


def _of_another_type(value):
    if isinstance(value, bool):
        return "yes"
    return "abc" if isinstance(value, (int, float)) else 7


def _run_dir(tmp_path, **data):
    tmp_path.mkdir(exist_ok=True)
    run = run_description(RunOptions(), "byte")
    model_dir.write_run(str(tmp_path), dataclasses.replace(run, data={**run.data, **data}))
    return str(tmp_path)


def test_every_recorded_data_option_is_an_option_and_passes_its_checks():
    names = dataclass_flags.define_flags(RunOptions, flags.FlagValues())
    assert set(RECORDED) <= set(names), set(RECORDED) - set(names)
    assert dataclass_flags.value_problems(RunOptions, RECORDED) == []


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_a_recorded_value_of_another_type_is_refused_naming_the_file(tmp_path, name):
    location = _run_dir(tmp_path, **{name: _of_another_type(RECORDED[name])})
    with pytest.raises(ModelDirError, match=rf"run\.json: data\.{name} must be"):
        read_run_checked(location)


@pytest.mark.parametrize("name, value, expected", [
    ("inputs_length", -5, r"in \[1, 65536\)"),
    ("inputs_length", 10 ** 10, r"in \[1, 65536\)"),  # refused before any array of it
    ("targets_length", 0, r"in \[1, 65536\)"),
    ("rouge_tokenize", "letters", "one of auto, words, chars"),
    ("squad_lang", "fr", "one of auto, en, es"),
    ("eval_examples", 1.5, "a whole number"),
])
def test_a_recorded_value_out_of_its_options_range_is_refused(tmp_path, name, value, expected):
    location = _run_dir(tmp_path, **{name: value})
    with pytest.raises(ModelDirError, match=rf"run\.json: data\.{name} must be.*{expected}"):
        read_run_checked(location)


def test_a_run_recorded_before_an_option_existed_still_reads(tmp_path):
    location = _run_dir(tmp_path)
    run = model_dir.read_run(location)
    model_dir.write_run(location, dataclasses.replace(
        run, data={k: v for k, v in run.data.items() if k != "squad_lang"}))
    assert "squad_lang" not in read_run_checked(location).data


@pytest.mark.parametrize("program, argv", [
    ("evaluate", ["--max_examples=2"]),
    ("generate", ["--input=hello"]),
    ("export", ["--output_dir={out}"]),
])
def test_the_programs_refuse_a_hostile_recorded_length_before_any_work(tmp_path, capsys,
                                                                        program, argv):
    location = _run_dir(tmp_path / "run", inputs_length=10 ** 10)
    argv = [f"--checkpoint={location}", *(a.format(out=tmp_path / "out") for a in argv)]
    main = importlib.import_module(f"t5core.commands.{program}").main
    try:
        status = main(argv)
    except ModelDirError as err:
        message = str(err)
    else:  # generate reports a user's mistake itself: one line, status 2
        assert status == cli.USER_ERROR_STATUS, f"{program} read the hostile run.json"
        message = capsys.readouterr().err
    assert "run.json: data.inputs_length must be in [1, 65536)" in message


# evaluate.py's data flags that have a bound (the lengths).
BOUNDED = sorted(field.name for cls in (RunOptions, TrainConfig) for field in dataclasses.fields(cls)
                 if field.name in DATA_DEFAULTS and "bound" in field.metadata)


def test_evaluate_has_bounded_data_flags():
    assert {"inputs_length", "targets_length"} <= set(BOUNDED)


@pytest.mark.parametrize("name", BOUNDED)
def test_evaluate_s_unset_flags_keep_their_bounds(capsys, name):
    define_flags = importlib.import_module("t5core.commands.evaluate").define_flags
    with pytest.raises(SystemExit) as exit_:
        cli.parse_flags(define_flags, [f"--{name}=-1"], takes_arguments=False)
    assert exit_.value.code == cli.USER_ERROR_STATUS
    assert f"--{name} must be" in capsys.readouterr().err


def test_a_missing_data_file_is_named_by_its_flag_and_where_its_path_came_from(tmp_path):
    from t5core.errors import UserFileNotFoundError
    from t5core.evaluation import reports

    missing = str(tmp_path / "缺失.jsonl")
    options = reports.data_options({"eval_file": missing})
    with pytest.raises(UserFileNotFoundError, match=r"^--eval_file=.*缺失\.jsonl does not exist$"):
        reports.check_data_options(options)
    with pytest.raises(UserFileNotFoundError, match=r"does not exist \(the run's, as its run\.json"):
        reports.check_data_options(options, recorded=["eval_file"])
    with pytest.raises(UserFileNotFoundError, match=r"^--shots_file=.*缺失\.jsonl does not "
                                                    r"exist \(without --shots_file: the run's"):
        reports.read_shots(reports.data_options({}), missing, None)
