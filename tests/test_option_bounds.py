"""Option bounds live in the fields' metadata and one checker applies them everywhere."""

import dataclasses
import math

import pytest

from t5core.dataclass_flags import (COUNT, FRACTION, NONNEGATIVE, POSITIVE, STEPS, Bound,
                                    check_bound, field_problems)
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
