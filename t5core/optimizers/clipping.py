"""Global-norm gradient clipping after the cross-replica sum (Keras clips each replica's partial
gradient before it), so one device and many clip the same vector, as T5X does."""

import contextlib

import keras
import tensorflow as tf

from t5core import compat


class ReplicaConsistentClipping:
    """Mixin, first in the bases of a `keras.optimizers.Optimizer` (TensorFlow backend):
    `global_clipnorm` applies to the all-reduced gradient, and `gradient_norm` (a float32
    optimizer variable, so checkpointed) holds the last update's pre-clipping global norm."""

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._gradient_norm = self.add_variable(
            shape=(), dtype="float32", aggregation="only_first_replica", name="gradient_norm")

    @property
    def gradient_norm(self):
        """Global L2 norm of the summed gradient at the last update (before clipping)."""
        if not self.built:
            raise ValueError(f"Optimizer {self.name!r} is not built yet: call "
                             "`optimizer.build(model.trainable_variables)` or apply gradients "
                             "first.")
        return self._gradient_norm

    # A norm computed by the caller (see `given_gradient_norm`), in a list so that Keras'
    # attribute tracking leaves the tensor alone.
    _given_norm = ()

    @contextlib.contextmanager
    def given_gradient_norm(self, norm):
        """Updates inside take `norm` as their gradients' global norm (a caller that computes
        it faster, as the CPU graph executor does); valid only with one replica."""
        self._given_norm = [norm]
        try:
            yield
        finally:
            self._given_norm = ()

    # Keras hooks (t5core.compat.OVERRIDDEN_HOOKS).
    def _get_current_learning_rate(self):
        # Keras evaluates a schedule at its count of calls, which under
        # gradient_accumulation_steps counts micro-batches: a schedule counts updates.
        if isinstance(self._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            return self._learning_rate(self.iterations)
        return super()._get_current_learning_rate()

    def _clip_gradients(self, grads):
        if self.global_clipnorm:
            return grads  # done in _backend_update_step, after the cross-replica sum
        return super()._clip_gradients(grads)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Same steps as keras' TFOptimizer._backend_update_step, with the norm and the clipping
        # inserted between the all-reduce and the per-variable update.
        trainable_variables = [v.value if isinstance(v, keras.Variable) else v
                               for v in trainable_variables]
        grads = [g for g, _ in compat.all_reduce_sum_gradients(
            self, list(zip(grads, trainable_variables)))]
        norm = self._given_norm[0] if self._given_norm else tf.linalg.global_norm(grads)
        self._gradient_norm.assign(norm)
        if self.global_clipnorm:
            # A non-finite norm makes every gradient NaN, so a bad step cannot pass unnoticed.
            grads, _ = tf.clip_by_global_norm(grads, self.global_clipnorm, use_norm=norm)
        compat.apply_update_step(self, list(zip(grads, trainable_variables)), learning_rate)


@keras.saving.register_keras_serializable(package="t5core")
class AdamW(ReplicaConsistentClipping, keras.optimizers.AdamW):
    """Keras' AdamW (its constructor) with replica-consistent `global_clipnorm` and a
    `gradient_norm` record.

    Args:
      learning_rate: a float or a `LearningRateSchedule` (see `t5core.make_schedule`).
      weight_decay: decoupled, `p -= lr * weight_decay * p`; `exclude_from_weight_decay()`
        variables are not decayed.
      beta_1, beta_2, epsilon, amsgrad, use_ema, ema_momentum: as Keras' AdamW.
      ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name: as Keras'.
      clipnorm, clipvalue: per variable and per element, per replica before the sum (Keras').
      global_clipnorm: clip of the summed gradient's global norm (after the sum).
      **kwargs: other Keras optimizer arguments.
    """
