"""Option bounds live in the fields' metadata and one checker applies them everywhere."""

import dataclasses
import importlib
import math
import types

import pytest
from absl import flags

from t5core import cli
from t5core.commands import shared_flags
from t5core.dataclass_flags import (COUNT, FINITE, FRACTION, NONNEGATIVE, POSITIVE, STEPS, Bound,
                                    check_bound, field_problems, flag_bound)
from t5core.errors import FlagError
from t5core.layers.dropout import Dropout
from t5core.losses import cross_entropy_loss
from t5core.optimizers import Adafactor, make_optimizer, make_schedule
from t5core.training.run import RunOptions
from t5core.training.trainer import TrainConfig


@pytest.mark.parametrize("bound, good, bad", [
    (COUNT, [1, 7], [0, -1, 2.5]),
    (STEPS, [0, 3], [-1, 0.5]),
    (NONNEGATIVE, [0.0, 1e-4], [-1e-9, math.nan, math.inf]),
    (POSITIVE, [1e-9, 3.0], [0.0, -2.0, math.nan]),
    (FRACTION, [0.0, 0.5], [1.0, -0.1, math.nan]),
    (Bound(1, high=65535, whole=True), [1, 65534], [0, 65535]),
    (FINITE, [-1.0, 0, 2.5], [math.nan, -math.inf]),
    (shared_flags.TOP_P, [1e-9, 1.0], [0.0, 1.0001, math.nan]),
])
def test_a_bound_accepts_its_range_and_names_what_it_refuses(bound, good, bad):
    for value in good:
        assert bound.problem(value) is None, value
    for value in bad:
        assert bound.problem(value).startswith("must be "), value
        assert repr(value) in bound.problem(value)


def _bounded_fields(options):
    return [f for f in dataclasses.fields(options) if "bound" in f.metadata]


@pytest.mark.parametrize("options", [TrainConfig(), RunOptions()])
def test_every_bounded_option_is_refused_out_of_range_by_its_flag_name(options):
    assert field_problems(options) == []
    fields = _bounded_fields(options)
    assert len(fields) >= 8
    for field in fields:
        bad = dataclasses.replace(options, **{field.name: -1})
        found = field_problems(bad)
        assert found == [f"--{field.name} {field.metadata['bound'].problem(-1)}"], found


def test_the_checks_of_the_options_report_their_bounds():
    with pytest.raises(FlagError, match=r"--label_smoothing must be in \[0, 1\) \(got 1.0\)"):
        TrainConfig(label_smoothing=1.0).check()
    with pytest.raises(FlagError, match=r"--lora_alpha must be a finite number >= 0 \(got nan\)"):
        RunOptions(lora_alpha=math.nan).check()
    with pytest.raises(FlagError, match="--learning_rate must be a finite number > 0"):
        TrainConfig(learning_rate=0.0).check()


def test_library_entry_points_use_the_same_bounds():
    with pytest.raises(ValueError, match=r"weight_decay must be a finite number >= 0 \(got -1"):
        make_optimizer("adamw", 1e-3, weight_decay=-1.0)
    with pytest.raises(ValueError, match=r"clip_norm must be a finite number >= 0 \(got nan\)"):
        make_optimizer("adamw", 1e-3, clip_norm=math.nan)
    with pytest.raises(ValueError, match=r"clipping_threshold must be a finite number > 0"):
        Adafactor(0.1, clipping_threshold=0.0)
    with pytest.raises(FlagError, match=r"warmup_steps \(--warmup_steps\) must be >= 0"):
        make_schedule("constant", 1e-3, warmup_steps=-1)
    with pytest.raises(ValueError, match=r"Dropout rate must be in \[0, 1\) \(got nan\)"):
        Dropout(math.nan)
    with pytest.raises(ValueError, match=r"z_loss must be a finite number >= 0 \(got -0.5\)"):
        cross_entropy_loss([[[0.0, 1.0]]], [[1]], z_loss=-0.5)
    check_bound("beta1", None, FRACTION)  # None: not given


PROGRAMS = ("train", "evaluate", "generate", "export", "convert_checkpoint", "inspect_model",
            "sweep")
# The number flags no bound fits, and why.
UNBOUNDED = {"shots_seed": "seeds Python's random.Random, which takes any integer"}


def _program_flags(name) -> flags.FlagValues:
    flag_values = flags.FlagValues()
    importlib.import_module(f"t5core.commands.{name}").define_flags(flag_values)
    return flag_values


@pytest.mark.parametrize("name", PROGRAMS)
def test_every_number_flag_of_every_program_has_a_bound(name):
    """A number flag defined without a `Bound` (dataclass_flags.define_number, or a field's
    bound=) fails here: out of range, it would reach the work as a traceback or silently."""
    flag_values = _program_flags(name)
    numbers = [n for n in flag_values
               if isinstance(flag_values[n].parser, (flags.IntegerParser, flags.FloatParser))]
    assert numbers or name == "convert_checkpoint"  # (whose sizes are text: --max_shard_size=5GB)
    assert [n for n in numbers if flag_bound(flag_values[n]) is None and n not in UNBOUNDED] == []
    for n in numbers:  # each default (None: not given) lies within
        bound, default = flag_bound(flag_values[n]), flag_values[n].default
        assert bound is None or default is None or bound.problem(default) is None, n


def _parse(name, argv):
    define_flags = importlib.import_module(f"t5core.commands.{name}").define_flags
    return cli.parse_flags(define_flags, argv, takes_arguments=False)[0]


@pytest.mark.parametrize("name, argv, line", [
    ("evaluate", ["--batch_size=0"], "--batch_size must be >= 1 (got 0)"),
    ("evaluate", ["--method=beam", "--num_beams=0"], "--num_beams must be >= 1 (got 0)"),
    ("evaluate", ["--method=beam", "--alpha=nan"], "--alpha must be a finite number (got nan)"),
    ("evaluate", ["--max_examples=-1"], "--max_examples must be >= 0 (got -1)"),
    ("export", ["--max_new_tokens=0"], "--max_new_tokens must be >= 1 (got 0)"),
    ("export", ["--max_input_length=1"], "--max_input_length must be >= 2 (got 1)"),
    ("export", ["--method=sample", "--temperature=-1"],
     "--temperature must be a finite number >= 0 (got -1.0)"),
    ("export", ["--method=sample", "--top_p=2"], "--top_p must be in (0, 1] (got 2.0)"),
    ("inspect_model", ["--bucket_span=-1"], "--bucket_span must be in [1, 65536) (got -1)"),
    ("inspect_model", ["--input=a", "--top_k=0"], "--top_k must be >= 1 (got 0)"),
    ("generate", ["--batch_size=0"], "--batch_size must be >= 1 (got 0)"),
    ("convert_checkpoint", ["--max_shard_size=5XB"],
     "--max_shard_size '5XB': expected bytes or a size like '5GB'"),
    ("convert_checkpoint", ["--max_shard_size=0B"],
     "--max_shard_size must be at least 1MB (got '0B')"),
])
def test_a_number_flag_out_of_range_is_one_error_line_at_parsing(name, argv, line, tmp_path,
                                                                  capsys):
    required = {"evaluate": ["--checkpoint=c"], "generate": ["--checkpoint=c"],
                "export": ["--checkpoint=c", f"--output_dir={tmp_path / 'out'}"],
                "sweep": ["--space={}", "--objective=loss"],
                "convert_checkpoint": ["--input=c", f"--output={tmp_path / 'out'}"]}.get(name, [])
    with pytest.raises(SystemExit) as stop:
        _parse(name, required + argv)
    assert stop.value.code == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and errors[0].endswith(line)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, argv", [
    ("generate", ["--checkpoint=c", "--method=sample", "--temperature=0", "--top_k=0",
                  "--top_p=1", "--num_shots=0", "--seed=0"]),
    ("generate", ["--checkpoint=c", "--method=beam", "--alpha=0", "--num_beams=1"]),
    ("evaluate", ["--checkpoint=c", "--max_examples=0", "--lora_rank=0", "--method=beam",
                  "--alpha=-0.5"]),
    ("sweep", ["--space={}", "--objective=loss", "--trial_steps=0", "--max_trials=0"]),
    ("convert_checkpoint", ["--input=c", "--output=o", "--max_shard_size=1MB"]),
    ("convert_checkpoint", ["--input=c", "--output=o", "--max_shard_size=1000000"]),
    ("convert_checkpoint", ["--input=c", "--output=o", "--max_shard_size=500 MiB"]),
])
def test_the_documented_edge_values_pass_their_bounds(name, argv):
    """0 for greedy (--temperature), all (--top_k, --max_examples), none (--num_shots,
    --lora_rank, --trial_steps); 1 for all of --top_p; alpha 0 (no length penalty) or below;
    1MB, the least --max_shard_size."""
    _parse(name, argv)


def test_a_run_length_a_flag_refuses_is_a_flag_error_naming_the_run():
    args = _parse("export", ["--checkpoint=runs/x", "--output_dir=o"])
    with pytest.raises(FlagError, match=r"runs/x records inputs_length=1: .*--max_input_length "
                                        r"must be >= 2"):
        shared_flags.take_run_lengths(args, types.SimpleNamespace(data={"inputs_length": 1}))
