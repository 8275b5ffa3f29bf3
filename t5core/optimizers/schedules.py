"""Learning-rate schedules used to train T5 (`SCHEDULE_NAMES`), as serialisable Keras schedules
(their formulas: docs/architecture.md, "Learning-rate schedules")."""

import math

import keras
import tensorflow as tf

from t5core.dataclass_flags import STEPS, check_bound
from t5core.errors import FlagError


def _check_steps(kind, warmup_steps, total_steps=None):
    # The arguments are the trainer's --warmup_steps and --train_steps: the message names both.
    check_bound(f"{kind} schedule: warmup_steps (--warmup_steps)", warmup_steps, STEPS, FlagError)
    # Not a bound but a relation between the two: the message names both values.
    if total_steps is not None and (int(total_steps) != total_steps
                                    or total_steps <= warmup_steps):
        raise FlagError(f"{kind} schedule: total_steps (--train_steps) must be an integer > "
                        f"warmup_steps (--warmup_steps={warmup_steps}), got {total_steps!r}.")


def _linear_warmup(step, warmup_steps):
    if warmup_steps == 0:
        return tf.ones_like(step)
    return tf.minimum(1.0, step / float(warmup_steps))


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Stores every constructor argument under its own name; get_config returns them."""

    _config_keys = ()

    def get_config(self):
        return {k: getattr(self, k) for k in self._config_keys}

    def __call__(self, step):
        return self._value(tf.cast(step, tf.float32))


@keras.saving.register_keras_serializable(package="t5core")
class ConstantSchedule(_Schedule):
    _config_keys = ("learning_rate", "warmup_steps")

    def __init__(self, learning_rate, warmup_steps=0):
        _check_steps("constant", warmup_steps)
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)

    def _value(self, step):
        return self.learning_rate * _linear_warmup(step, self.warmup_steps)


@keras.saving.register_keras_serializable(package="t5core")
class RsqrtSchedule(_Schedule):
    """`learning_rate / sqrt(max(step, warmup_steps, 1))`; `linear_warmup` ramps the flat start
    from 0 (T5X's "constant * linear_warmup * rsqrt_decay")."""

    _config_keys = ("learning_rate", "warmup_steps", "linear_warmup")

    def __init__(self, learning_rate=1.0, warmup_steps=10000, linear_warmup=False):
        _check_steps("rsqrt", warmup_steps)
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.linear_warmup = bool(linear_warmup)

    def _value(self, step):
        value = self.learning_rate * tf.math.rsqrt(
            tf.maximum(step, float(max(self.warmup_steps, 1))))
        if self.linear_warmup:
            value = value * _linear_warmup(step, self.warmup_steps)
        return value


class _DecaySchedule(_Schedule):
    """Linear warm-up, then a decay (`_decayed` of the progress, 0 to 1) ending at total_steps."""

    def __init__(self, kind, learning_rate, total_steps, warmup_steps):
        _check_steps(kind, warmup_steps, total_steps)
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def _value(self, step):
        # 0 up to warmup_steps, rising linearly to 1 at total_steps, 1 after.
        progress = tf.clip_by_value((step - self.warmup_steps)
                                    / float(self.total_steps - self.warmup_steps), 0.0, 1.0)
        return self._decayed(progress) * _linear_warmup(step, self.warmup_steps)


@keras.saving.register_keras_serializable(package="t5core")
class LinearDecaySchedule(_DecaySchedule):
    _config_keys = ("learning_rate", "total_steps", "warmup_steps", "end_learning_rate")

    def __init__(self, learning_rate, total_steps, warmup_steps=0, end_learning_rate=0.0):
        super().__init__("linear", learning_rate, total_steps, warmup_steps)
        self.end_learning_rate = float(end_learning_rate)

    def _decayed(self, progress):
        return self.learning_rate + (self.end_learning_rate - self.learning_rate) * progress


@keras.saving.register_keras_serializable(package="t5core")
class CosineDecaySchedule(_DecaySchedule):
    _config_keys = ("learning_rate", "total_steps", "warmup_steps", "alpha")

    def __init__(self, learning_rate, total_steps, warmup_steps=0, alpha=0.0):
        super().__init__("cosine", learning_rate, total_steps, warmup_steps)
        self.alpha = float(alpha)

    def _decayed(self, progress):
        cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
        return self.learning_rate * (self.alpha + (1.0 - self.alpha) * cosine)


_SCHEDULES = {"constant": ConstantSchedule, "rsqrt": RsqrtSchedule,
              "linear": LinearDecaySchedule, "cosine": CosineDecaySchedule}
SCHEDULE_NAMES = tuple(_SCHEDULES)


# The schedules whose warmup_steps is a linear ramp up to the peak learning rate.
_RAMPED = ("constant", "linear", "cosine")


def fit_warmup(name, warmup_steps, total_steps):
    """(the warm-up a run of `total_steps` uses, a note to log or None): a linear warm-up not
    ending before the run (never at peak, nothing left to decay) is cut to a tenth of the run.
    rsqrt's warm-up sets its scale and is left as given."""
    if name not in _RAMPED or warmup_steps < total_steps:
        return warmup_steps, None
    fitted = total_steps // 10
    return fitted, (f"--warmup_steps={warmup_steps} is not shorter than the run "
                    f"(--train_steps={total_steps}): warming up over {fitted} steps instead, a "
                    "tenth of the run")


def make_schedule(name, learning_rate, warmup_steps=0, total_steps=None, **kwargs):
    """A learning-rate schedule by name.

    Args:
      name: "constant", "rsqrt", "linear" or "cosine".
      learning_rate: the peak (rsqrt: the numerator of lr / sqrt(step)).
      warmup_steps: linear warm-up from 0; rsqrt: its flat start.
      total_steps: where linear and cosine end their decay (required for them only).
      **kwargs: `linear_warmup` (rsqrt), `end_learning_rate` (linear), `alpha` (cosine).

    Returns:
      A serialisable `LearningRateSchedule`: optimizer step -> float32 learning rate.

    Raises:
      ValueError: an unknown `name`, or linear / cosine without `total_steps`.
      FlagError: warmup_steps not an integer >= 0, or total_steps not above it.
    """
    if name not in _SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; "
                         f"valid: {', '.join(SCHEDULE_NAMES)}.")
    if issubclass(_SCHEDULES[name], _DecaySchedule):
        if total_steps is None:
            raise ValueError(f"the {name} schedule needs total_steps (the step where it ends).")
        kwargs["total_steps"] = total_steps
    return _SCHEDULES[name](learning_rate, warmup_steps=warmup_steps, **kwargs)
