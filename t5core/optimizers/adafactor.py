"""T5's Adafactor (Shazeer & Stern 2018) as Mesh-TF T5 and T5X configure it, a Keras 3 optimizer.

The update, its factoring rule and how it differs from `keras.optimizers.Adafactor`:
docs/architecture.md, "T5's Adafactor".
"""

import keras
import numpy as np
import tensorflow as tf

from t5core import compat
from t5core.dataclass_flags import FRACTION, POSITIVE, STEPS, check_bound
from t5core.optimizers.clipping import ReplicaConsistentClipping


# Adafactor's own constructor arguments (each stored under its name), added to Keras' config.
_CONFIG_KEYS = ("beta1", "decay_rate", "step_offset", "clipping_threshold",
                "multiply_by_parameter_scale", "factored", "min_dim_size_to_factor", "epsilon1",
                "epsilon2", "weight_decay_rate", "weight_decay_rate_lr_exponent")


def factored_axes(shape, min_dim_size_to_factor=128):
    """Axes `(second_largest, largest)` to factor over (`v_row` averages over `largest`,
    `v_col` over `second_largest`), or None for a full accumulator."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        return None
    order = np.argsort(shape, kind="stable")  # stable: on a tie the later axis sorts last
    second, largest = int(order[-2]), int(order[-1])
    if shape[second] < min_dim_size_to_factor:
        return None
    return second, largest


def _rms(x):
    return tf.sqrt(tf.reduce_mean(tf.square(x)))


@keras.saving.register_keras_serializable(package="t5core")
class Adafactor(ReplicaConsistentClipping, keras.optimizers.Optimizer):
    """T5 Adafactor.

    Args:
      learning_rate: a float or a `LearningRateSchedule`; relative step size (times
        max(epsilon2, RMS(param)) with `multiply_by_parameter_scale`). T5 fine-tunes at 1e-3,
        pretrains at `1/sqrt(max(step, 10000))`.
      beta1: momentum; None (T5's choice): no momentum, no `m` slot.
      decay_rate: of the second-moment decay `1 - (t + 1) ** -decay_rate`.
      step_offset: subtracted from the step there (T5X: restart the decay when fine-tuning).
      clipping_threshold: update clipping RMS; None disables it.
      multiply_by_parameter_scale: scale the step by max(epsilon2, RMS(param)).
      factored: allow factored second moments.
      min_dim_size_to_factor: both factored dims at least this (T5X: 128).
      epsilon1: added to the squared gradient.
      epsilon2: floor of the parameter scale.
      weight_decay_rate: None or r: p <- (1 - r) p - update (T5X; lr-scaled only with the
        exponent below); `exclude_from_weight_decay()` variables are not decayed.
      weight_decay_rate_lr_exponent: None, or e: r <- r * lr ** e.
      name: the optimizer's name.
      **kwargs: Keras optimizer arguments (`global_clipnorm`, ...). Keras' `weight_decay` is
        rejected: it would decay before the update, changing the parameter scale.

    Raises:
      ValueError: Keras' `weight_decay`, or beta1, clipping_threshold, weight_decay_rate or
        min_dim_size_to_factor out of range.
    """

    def __init__(self, learning_rate=1e-3, beta1=None, decay_rate=0.8, step_offset=0,
                 clipping_threshold=1.0, multiply_by_parameter_scale=True, factored=True,
                 min_dim_size_to_factor=128, epsilon1=1e-30, epsilon2=1e-3,
                 weight_decay_rate=None, weight_decay_rate_lr_exponent=None,
                 name="adafactor", **kwargs):
        if kwargs.get("weight_decay") is not None:
            raise ValueError("Adafactor: use `weight_decay_rate` (T5X semantics), not Keras' "
                             f"`weight_decay` (got weight_decay={kwargs['weight_decay']!r}).")
        kwargs.pop("weight_decay", None)
        for arg, value, bound in (("beta1", beta1, FRACTION),
                                  ("clipping_threshold", clipping_threshold, POSITIVE),
                                  ("weight_decay_rate", weight_decay_rate, FRACTION),
                                  ("min_dim_size_to_factor", min_dim_size_to_factor, STEPS)):
            check_bound(f"Adafactor: {arg}", value, bound)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta1 = beta1
        self.decay_rate = float(decay_rate)
        self.step_offset = int(step_offset)
        self.clipping_threshold = clipping_threshold
        self.multiply_by_parameter_scale = bool(multiply_by_parameter_scale)
        self.factored = bool(factored)
        self.min_dim_size_to_factor = int(min_dim_size_to_factor)
        self.epsilon1 = float(epsilon1)
        self.epsilon2 = float(epsilon2)
        self.weight_decay_rate = weight_decay_rate
        self.weight_decay_rate_lr_exponent = weight_decay_rate_lr_exponent

    def factored_axes(self, shape):
        """`(second_largest, largest)` for a variable of `shape` under these settings, or None."""
        if not self.factored:
            return None
        return factored_axes(shape, self.min_dim_size_to_factor)

    def slots(self, variable):
        """{"v_row", "v_col", "v", "m"} -> this variable's slot, None if unused (factored:
        `v_row`, `v_col`; else `v`; `m` with momentum); KeyError for an unknown variable."""
        index = compat.variable_index(self, variable)
        return {"v_row": self._v_row[index], "v_col": self._v_col[index], "v": self._v[index],
                "m": self._m[index]}

    def _add_slot(self, reference, shape, suffix):
        # float32 whatever the model variable's dtype; placed with the variable (matters for
        # parameter-server strategies), as add_variable_from_reference does.
        ref = reference.value if isinstance(reference, keras.Variable) else reference
        base = getattr(reference, "path", None) or reference.name
        name = f"{str(base).replace('/', '_').replace(':', '_')}_{suffix}"
        with compat.optimizer_strategy(self).extended.colocate_vars_with(ref):
            return self.add_variable(shape=shape, dtype="float32", name=name)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # One entry per model variable (index from compat.variable_index); None where unused.
        self._v_row, self._v_col, self._v, self._m = [], [], [], []
        for var in var_list:
            shape = tuple(var.shape)
            axes = self.factored_axes(shape)
            if axes is None:
                self._v_row.append(None)
                self._v_col.append(None)
                self._v.append(self._add_slot(var, shape, "v"))
            else:
                second, largest = axes
                row_shape = tuple(d for i, d in enumerate(shape) if i != largest)
                col_shape = tuple(d for i, d in enumerate(shape) if i != second)
                self._v_row.append(self._add_slot(var, row_shape, "v_row"))
                self._v_col.append(self._add_slot(var, col_shape, "v_col"))
                self._v.append(None)
            self._m.append(None if self.beta1 is None else self._add_slot(var, shape, "m"))

    def update_step(self, gradient, variable, learning_rate):
        index = compat.variable_index(self, variable)
        grad = tf.cast(tf.convert_to_tensor(gradient), tf.float32)  # densifies IndexedSlices
        param = tf.cast(tf.convert_to_tensor(variable), tf.float32)
        lr = tf.cast(learning_rate, tf.float32)

        step = tf.cast(self.iterations, tf.float32) - float(self.step_offset)
        decay = 1.0 - tf.pow(step + 1.0, -self.decay_rate)
        mixing = 1.0 - decay

        update_scale = lr
        if self.multiply_by_parameter_scale:
            update_scale = update_scale * tf.maximum(_rms(param), self.epsilon2)

        grad_sq = tf.square(grad) + self.epsilon1
        axes = self.factored_axes(variable.shape)
        if axes is not None:
            second, largest = axes
            v_row, v_col = self._v_row[index], self._v_col[index]
            new_row = decay * v_row + mixing * tf.reduce_mean(grad_sq, axis=largest)
            new_col = decay * v_col + mixing * tf.reduce_mean(grad_sq, axis=second)
            self.assign(v_row, new_row)
            self.assign(v_col, new_col)
            # `second` keeps its index in new_row because largest is removed: shift if after it.
            row_axis = second if second < largest else second - 1
            row_mean = tf.reduce_mean(new_row, axis=row_axis, keepdims=True)
            row_factor = tf.math.rsqrt(new_row / row_mean)
            col_factor = tf.math.rsqrt(new_col)
            update = (grad * tf.expand_dims(row_factor, axis=largest)
                      * tf.expand_dims(col_factor, axis=second))
        else:
            v = self._v[index]
            new_v = decay * v + mixing * grad_sq
            self.assign(v, new_v)
            update = grad * tf.math.rsqrt(new_v)

        if self.clipping_threshold is not None:
            update = update / tf.maximum(1.0, _rms(update) / self.clipping_threshold)

        subtrahend = update_scale * update
        if self.beta1 is not None:
            m = self._m[index]
            subtrahend = self.beta1 * m + (1.0 - self.beta1) * subtrahend
            self.assign(m, subtrahend)

        new_param = param - subtrahend
        decay_rate = self.weight_decay_rate
        if self.weight_decay_rate_lr_exponent:
            decay_rate = (1.0 if decay_rate is None else decay_rate) * tf.pow(
                lr, float(self.weight_decay_rate_lr_exponent))
        if decay_rate is not None and compat.uses_weight_decay(self, variable):
            new_param = new_param - decay_rate * param
        # Computed in float32 and rounded once to the variable's dtype (T5X does the same).
        self.assign(variable, new_param)

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update({k: getattr(self, k) for k in _CONFIG_KEYS})
        return config
