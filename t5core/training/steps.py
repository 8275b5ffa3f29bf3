"""The compiled train and eval steps, one code path for every tf.distribute strategy: gradients
of each replica's unnormalised loss sum over the global batch's normaliser, so every strategy and
accumulation computes one device's update."""

from __future__ import annotations

import contextlib

import tensorflow as tf

from t5core import compat
from t5core.losses import cross_entropy_loss, global_normalizer
from t5core.model_inputs import model_features
from t5core.training.distribute import batch_slice, replica_slice

_SUMS = ("loss_sum", "normalizer", "z_loss_sum", "num_tokens", "correct")
# Evaluation measures the cross-entropy per target token, whatever the training objective adds
# (smoothing, z-loss) or how it weighs sequences: runs of other settings compare.
EVAL_LOSS = dict(label_smoothing=0.0, z_loss=0.0, loss_normalization="tokens")


class StepBuilder:
    """Builds `train_step(batch)` and `eval_step(batch)` tf.functions for a model and strategy."""

    def __init__(self, model, optimizer, strategy, *, grad_accum_steps=1, label_smoothing=0.0,
                 z_loss=0.0, loss_normalization="tokens", jit_compile=False,
                 skip_nonfinite=False, num_replicas=1, fuse_update=None):
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.grad_accum_steps = grad_accum_steps
        self.loss_kwargs = dict(label_smoothing=label_smoothing, z_loss=z_loss,
                                loss_normalization=loss_normalization)
        self.skip_nonfinite = skip_nonfinite
        self.num_replicas = num_replicas
        # jit_compile applies to the forward and backward pass (its default by device:
        # t5core.xla); the update is another matter (below).
        self._grads = tf.function(self._loss_and_grads, jit_compile=jit_compile)
        self._forward = tf.function(self._eval_sums, jit_compile=jit_compile)
        # With one replica nothing is all-reduced, so the gradient scaling and the optimizer
        # update compile into one XLA function: its elementwise passes over every parameter and
        # optimizer slot (about ten in graph mode for AdamW, memory-bound) fuse into a few loops.
        # Several replicas all-reduce inside apply_gradients, which stays in replica context;
        # skip_nonfinite keeps its tf.cond path.
        if fuse_update is None:
            fuse_update = num_replicas == 1 and not skip_nonfinite
        self._fused_update = None
        if fuse_update:
            if not optimizer.built:  # the XLA function cannot create the optimizer's slots
                with strategy.scope():
                    optimizer.build(model.trainable_variables)
            self._fused_update = tf.function(self._scaled_update, jit_compile=True)

    # -- per replica -----------------------------------------------------------------------------
    def _loss(self, features, training, loss_kwargs):
        # Models with another objective (the classification head) compute their own sums.
        if hasattr(self.model, "loss_sums"):
            return self.model.loss_sums(features, training=training, **loss_kwargs)
        logits = self.model(model_features(features), training=training)
        _, aux = cross_entropy_loss(
            logits, features["decoder_target_tokens"], features.get("decoder_loss_weights"),
            segment_ids=features.get("decoder_segment_ids"), **loss_kwargs)
        return aux

    def _loss_and_grads(self, features):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            aux = self._loss(features, training=True, loss_kwargs=self.loss_kwargs)
        grads = tape.gradient(aux["loss_sum"], variables)
        if self.grad_accum_steps > 1:  # embedding gradients come as IndexedSlices: make sums
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                     for g in grads]
        return grads, {k: aux[k] for k in _SUMS}

    def _eval_sums(self, features):
        aux = self._loss(features, training=False, loss_kwargs=EVAL_LOSS)
        return {k: aux[k] for k in _SUMS}

    def _replica_train(self, features):
        features = replica_slice(features, self.num_replicas)
        k = self.grad_accum_steps
        grads, sums = None, None
        for i in range(k):  # static micro-batches; each traced once
            micro = {n: batch_slice(v, i, k) for n, v in features.items()}
            g, s = self._grads(micro)
            grads = g if grads is None else [a + b for a, b in zip(grads, g)]
            sums = s if sums is None else {n: sums[n] + s[n] for n in s}
        context = tf.distribute.get_replica_context()
        # Counts: summed over micro-batches (above), then over replicas here.
        normalizer = global_normalizer(sums["normalizer"], self.loss_kwargs["loss_normalization"])
        # This replica's share of the objective; summed over replicas it is the step's loss.
        sums = {**sums, "loss": tf.math.divide_no_nan(sums["loss_sum"], normalizer),
                "z_loss": tf.math.divide_no_nan(sums["z_loss_sum"], normalizer)}
        scale = tf.math.divide_no_nan(1.0, normalizer)
        if self._fused_update is not None:
            # Embedding gradients come as IndexedSlices; the dense update needs them dense.
            grads = [tf.convert_to_tensor(g) for g in grads]
            # The gradient norm (logged, and used by clipping) is taken here rather than in the
            # XLA update: on CPU the graph executor reduces every gradient value faster than
            # XLA does.
            # (Keras' own gradient_accumulation_steps would update with a sum of several
            # steps' gradients, whose norm this is not: the optimizer then takes its own.)
            norm = None
            if (hasattr(self.optimizer, "given_gradient_norm")
                    and not getattr(self.optimizer, "gradient_accumulation_steps", None)):
                norm = (tf.cast(tf.linalg.global_norm(grads), tf.float32)
                        * tf.cast(scale, tf.float32))
            self._fused_update(grads, scale, norm)
            return sums
        grads = [g * tf.cast(scale, g.dtype) for g in grads]
        if self.skip_nonfinite:
            loss_sum = context.all_reduce(tf.distribute.ReduceOp.SUM, sums["loss_sum"])
            self._apply_if_finite(grads, tf.math.is_finite(loss_sum))
        else:
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return sums

    def _scaled_update(self, grads, scale, norm=None):
        grads = [g * tf.cast(scale, g.dtype) for g in grads]
        given = (self.optimizer.given_gradient_norm(norm) if norm is not None
                 else contextlib.nullcontext())
        with given:
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))

    def _apply_if_finite(self, grads, finite):
        variables = self.model.trainable_variables

        def apply(g):
            self.optimizer.apply_gradients(zip(g, variables))
            return tf.constant(True)

        if compat.strategy_supports_no_merge_call():
            tf.cond(finite, lambda: apply(grads), lambda: tf.constant(False))
            return

        # The optimizer's update needs a merge_call, which a cond in replica context cannot
        # hold: take the decision in cross-replica context, as Keras' LossScaleOptimizer does.
        def cross_replica(distribution, grads, finite):
            first = distribution.experimental_local_results(finite)[0]

            def do_apply():
                compat.call_for_each_replica(distribution, apply, args=(grads,))
                return tf.constant(True)  # cond branches must return alike

            tf.cond(first, do_apply, lambda: tf.constant(False))

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(grads, finite))

    # -- whole steps -----------------------------------------------------------------------------
    def _reduce(self, per_replica):
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()}

    def train_step(self):
        @tf.function
        def step(features):
            return self._reduce(self.strategy.run(self._replica_train, args=(features,)))
        return step

    def eval_step(self):
        @tf.function
        def step(features):
            run = lambda f: self._forward(replica_slice(f, self.num_replicas))  # noqa: E731
            return self._reduce(self.strategy.run(run, args=(features,)))
        return step
