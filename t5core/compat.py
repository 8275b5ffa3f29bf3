"""Every private Keras and TensorFlow API t5core relies on, behind functions that say what they do
and why no public API serves (docs/architecture.md, Keras compatibility); `tests/test_compat.py`
checks each, and the hooks in `OVERRIDDEN_HOOKS`, on every upgrade."""

from __future__ import annotations

import contextlib
import gc

import keras
import tensorflow as tf
from tensorflow.core.protobuf import tensor_bundle_pb2

try:
    from keras.src.backend.common import global_state as _global_state
    from keras.src.backend.common.stateless_scope import StatelessScope as _StatelessScope
except ImportError:  # another Keras: loading falls back to building the model normally
    _global_state = _StatelessScope = None
try:
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope as _in_symbolic_scope
except ImportError:  # another Keras: token ids are checked everywhere, as before
    _in_symbolic_scope = None

# Keras hooks overridden by t5core's subclasses: "class.method" -> the subclass and why.
OVERRIDDEN_HOOKS = {
    "keras.layers.Layer._trackable_children": (
        "peft.lora.LoRADense: checkpoints hold the wrapped Dense's variables where a plain "
        "model holds them"),
    "keras.optimizers.Optimizer._clip_gradients": (
        "optimizers.clipping.ReplicaConsistentClipping: no clipping before the cross-replica sum"),
    "keras.optimizers.Optimizer._get_current_learning_rate": (
        "optimizers.clipping.ReplicaConsistentClipping: a schedule read at `iterations`, the "
        "update count, not at `_iterations`, the count of calls"),
    "keras.optimizers.Optimizer._backend_update_step": (
        "optimizers.clipping.ReplicaConsistentClipping: the norm and the clipping after the "
        "cross-replica sum"),
}


# -- variables created now, filled later ------------------------------------------------------
# Keras has no public way to create a variable without running its initializer; loading a
# checkpoint that way writes each weight once instead of filling it with random values first.

def deferred_initialization_available() -> bool:
    """Whether this Keras can create variables without values (`variables_created_empty`)."""
    return _StatelessScope is not None


def uninitialized_variables() -> list:
    """Keras' own registry of the variables created without a value (the list itself)."""
    return _global_state.get_global_attribute("uninitialized_variables", [],
                                              set_to_default=True)


@contextlib.contextmanager
def variables_created_empty():
    """Keras variables created inside hold no value until one is given.

    Yields the list of those variables (filled on exit, in creation order): fill each with
    `initialize_variable` or `initialize_from_initializer`, then `forget_uninitialized` them.
    """
    known = {id(v) for v in uninitialized_variables()}
    created: list = []
    with _StatelessScope(initialize_variables=False):
        yield created
    created.extend(v for v in uninitialized_variables() if id(v) not in known)


def is_uninitialized(variable) -> bool:
    """Whether `variable` was created empty and can still be given its first value."""
    return hasattr(variable, "_initialize") and getattr(variable, "_value", 0) is None


@contextlib.contextmanager
def _created_trainable(variable):
    # Keras' TensorFlow backend makes the tf.Variable with the Keras flag of the moment, and
    # TensorFlow's flag never changes afterwards: a variable filled while its layer was frozen
    # (a LoRA or prompt run being loaded) would stay unwatched by gradient tapes after
    # `layer.trainable = True`. Created trainable, as an eagerly built variable is, the Keras
    # flag alone decides whether it trains.
    keras_flag = variable.trainable
    variable.trainable = keras_flag or tf.as_dtype(variable.dtype).is_floating
    try:
        yield
    finally:
        variable.trainable = keras_flag


def initialize_variable(variable, value) -> None:
    """Gives an empty variable its first value (`assign` needs a value to be there)."""
    with _created_trainable(variable):
        variable._initialize(value)


def initialize_from_initializer(variable) -> None:
    """Fills an empty variable as Keras would have at creation (its initializer)."""
    with _created_trainable(variable):
        variable._deferred_initialize()


def forget_uninitialized(variables) -> None:
    """Drops `variables` from Keras' registry, so it neither keeps them alive nor fills them."""
    ours = {id(v) for v in variables}
    registry = uninitialized_variables()
    registry[:] = [v for v in registry if id(v) not in ours]


# -- layers ----------------------------------------------------------------------------------

def keep_call_argument_dtypes(layer) -> None:
    """Stops Keras casting a layer's floating call arguments to its compute dtype (the position bias
    must stay float32 under a mixed policy); Keras offers this only privately."""
    layer._convert_input_args = False


def stored_dtype_reads():
    """A scope in which variables read in their stored dtype (float32 under a mixed policy), even
    inside a layer call that would hand out compute-dtype copies; Keras offers this privately."""
    return keras.src.backend.AutocastScope(None)


def trackable_children(obj, save_type="checkpoint", **kwargs) -> dict:
    """The children TensorFlow's object graph (checkpoints, SavedModel) saves under `obj`."""
    return obj._trackable_children(save_type, **kwargs)


def replace_tracked_sublayer(parent, old, new) -> None:
    """Swaps `old` for `new` in a built layer's (locked) list of sub-layers, keeping its place."""
    parent._tracker.replace_tracked_value("layers", old, new)


def in_shape_inference() -> bool:
    """Whether Keras is only inferring output shapes and dtypes (`compute_output_spec`), on
    placeholders no data will fill. Under a tf.distribute strategy Keras' `fit`/`evaluate` build
    the loss and metrics that way from `strategy.reduce("MEAN", first batch)`, whose integer
    token ids have become floats."""
    return _in_symbolic_scope is not None and _in_symbolic_scope()


def all_layers(model) -> list:
    """`model` and every layer under it, depth first (Keras' `layers` lists only direct ones)."""
    return list(model._flatten_layers())


# -- int8 layers -----------------------------------------------------------------------------
# The public `kernel` / `embeddings` of a quantized layer are computed views (unpacked, LoRA
# added); loading and the shared output projection need the stored int8 variable itself.

def int8_weights(layer) -> tuple:
    """(values, scale): the int8 variable of an int8-quantized Dense or Embedding, and the
    float variable of its scales (one per output column of a Dense, one per row of a table)."""
    if isinstance(layer, keras.layers.Embedding):
        return layer._embeddings, layer.embeddings_scale
    return layer._kernel, layer.kernel_scale


@contextlib.contextmanager
def gc_deferred():
    """One `gc.collect()` on exit instead of the one Keras' `Layer.__delattr__` runs for each
    dropped weight (about half a second each in a process holding TensorFlow)."""
    collect = gc.collect
    gc.collect = lambda *args, **kwargs: 0
    try:
        yield
    finally:
        gc.collect = collect
        gc.collect()


# -- optimizers and tf.distribute -------------------------------------------------------------
# A Keras optimizer subclass that changes what happens between the cross-replica sum and the
# update has to call the TensorFlow optimizer's own steps, which are private.

def optimizer_strategy(optimizer):
    """The tf.distribute strategy a Keras optimizer was created under."""
    return optimizer._distribution_strategy


def variable_index(optimizer, variable) -> int:
    """The index of `variable` in the optimizer's per-variable state lists (its slots)."""
    return optimizer._get_variable_index(variable)


def uses_weight_decay(optimizer, variable) -> bool:
    """Whether weight decay applies to `variable` (Keras' exclusion lists)."""
    return optimizer._use_weight_decay(variable)


def all_reduce_sum_gradients(optimizer, grads_and_vars) -> list:
    """(gradient, variable) pairs with each gradient summed across replicas."""
    return optimizer._all_reduce_sum_gradients(grads_and_vars)


def apply_update_step(optimizer, grads_and_vars, learning_rate) -> None:
    """The optimizer's per-variable update, across replicas as Keras' TF optimizer runs it."""
    tf.__internal__.distribute.interim.maybe_merge_call(
        optimizer._distributed_tf_update_step, optimizer._distribution_strategy,
        grads_and_vars, learning_rate)


def strategy_supports_no_merge_call() -> bool:
    """Whether the current strategy updates variables in replica context (no merge_call)."""
    return tf.__internal__.distribute.strategy_supports_no_merge_call()


def call_for_each_replica(strategy, fn, args=()):
    """Runs `fn(*args)` in each replica's context from cross-replica context."""
    return strategy.extended.call_for_each_replica(fn, args=args)


# -- TF checkpoint indexes --------------------------------------------------------------------
# TF's public API reads a checkpoint's index only by trusting it (its C++ reader aborts the
# process on some shapes), so t5core parses the entries itself, with TF's own message types.

def bundle_header(data: bytes):
    """The BundleHeaderProto (num_shards, ...) of a TF checkpoint index's header entry."""
    return tensor_bundle_pb2.BundleHeaderProto.FromString(data)


def bundle_entry(data: bytes):
    """The BundleEntryProto (dtype, shape, shard_id, slices, ...) of a tensor's index entry."""
    return tensor_bundle_pb2.BundleEntryProto.FromString(data)
