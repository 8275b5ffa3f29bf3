"""The private Keras / TensorFlow APIs behind t5core.compat still exist and behave as relied on.

When an upgrade removes or changes one, the failing test names the API (`relied_on`), so the
fix starts in t5core/compat.py rather than in a traceback deep inside loading or training.
"""

import ast
import contextlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from t5core import compat


@contextlib.contextmanager
def relied_on(api):
    try:
        yield
    except Exception as err:  # AssertionError included: a changed behaviour, not only a gone name
        pytest.fail(f"{api}: t5core relies on this private Keras/TensorFlow API (see "
                    f"t5core/compat.py) and it is gone or behaves differently now: "
                    f"{type(err).__name__}: {err}", pytrace=False)


def test_tf_checkpoint_index_messages_read_their_wire_format():
    with relied_on("tensorflow.core.protobuf.tensor_bundle_pb2: BundleHeaderProto, "
                   "BundleEntryProto"):
        assert compat.bundle_header(b"\x08\x03").num_shards == 3
        # dtype 1 (float), shape [5] (dim {size: 5}), shard 2
        entry = compat.bundle_entry(b"\x08\x01\x12\x04\x12\x02\x08\x05\x18\x02")
        assert (entry.dtype, [d.size for d in entry.shape.dim], entry.shape.unknown_rank,
                entry.shard_id, list(entry.slices)) == (1, [5], False, 2, [])


def test_a_gone_api_is_named():
    with pytest.raises(pytest.fail.Exception, match=r"tf\.__internal__\.no_such_api: .*compat"):
        with relied_on("tf.__internal__.no_such_api"):
            tf.__internal__.no_such_api  # noqa: B018


def test_variables_created_empty_are_registered_filled_and_forgotten():
    api = ("keras.src.backend.common.stateless_scope.StatelessScope(initialize_variables=False), "
           "keras.src.backend.common.global_state 'uninitialized_variables', "
           "Variable._value / _initialize / _deferred_initialize")
    with relied_on(api):
        assert compat.deferred_initialization_available(), "the keras.src modules do not import"
        before = len(compat.uninitialized_variables())
        with compat.variables_created_empty() as created:
            given = keras.Variable(initializer="ones", shape=(2,), name="given")
            default = keras.Variable(initializer="ones", shape=(3,), name="default")
        assert [id(v) for v in created] == [id(given), id(default)]
        assert compat.is_uninitialized(given) and compat.is_uninitialized(default)
        assert len(compat.uninitialized_variables()) == before + 2
        compat.initialize_variable(given, np.array([3.0, 4.0], np.float32))
        compat.initialize_from_initializer(default)
        assert not compat.is_uninitialized(given) and not compat.is_uninitialized(default)
        np.testing.assert_array_equal(given.numpy(), [3.0, 4.0])
        np.testing.assert_array_equal(default.numpy(), [1.0, 1.0, 1.0])
        compat.forget_uninitialized(created)
        assert len(compat.uninitialized_variables()) == before
    # A variable built the usual way is not taken for an empty one.
    assert not compat.is_uninitialized(keras.Variable(np.zeros(2, np.float32)))


class _ReturnsBias(keras.layers.Layer):
    def __init__(self, keep_dtypes, **kwargs):
        super().__init__(**kwargs)
        if keep_dtypes:
            compat.keep_call_argument_dtypes(self)

    def call(self, x, bias):
        return bias


def test_a_layer_keeps_its_float32_call_arguments_under_a_mixed_policy():
    x, bias = tf.ones([2]), tf.ones([2], tf.float32)
    with relied_on("keras.layers.Layer._convert_input_args"):
        # Without it Keras casts the argument (what the attribute is there to stop) ...
        assert _ReturnsBias(False, dtype="mixed_bfloat16")(x, bias).dtype == tf.bfloat16
        # ... and with it the argument arrives as given.
        assert _ReturnsBias(True, dtype="mixed_bfloat16")(x, bias).dtype == tf.float32


class _Holder(keras.layers.Layer):
    def __init__(self, flatten=False, **kwargs):
        super().__init__(**kwargs)
        self.flatten = flatten
        self.inner = keras.layers.Dense(3, name="inner")

    def build(self, input_shape=None):
        self.inner.build((None, 2))
        self.built = True

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = dict(compat.trackable_children(super(), save_type, **kwargs))
        if not self.flatten:
            return children
        children.pop("inner")
        return {**compat.trackable_children(self.inner, save_type, **kwargs), **children}


def _checkpoint_names(tmp_path, root):
    path = tf.train.Checkpoint(root=root).write(os.path.join(tmp_path, "ckpt"))
    return sorted(name.split("/.ATTRIBUTES")[0] for name, _ in tf.train.list_variables(path)
                  if name != "_CHECKPOINTABLE_OBJECT_GRAPH")


def test_trackable_children_and_their_override_shape_a_checkpoint(tmp_path):
    with relied_on("keras.layers.Layer._trackable_children"):
        plain, flat = _Holder(), _Holder(flatten=True)
        plain.build()
        flat.build()
        assert "inner" in compat.trackable_children(plain)
        assert {"_kernel", "bias"} <= set(compat.trackable_children(plain.inner))
        assert _checkpoint_names(tmp_path / "plain", plain) == ["inner/_kernel", "inner/bias"]
        assert _checkpoint_names(tmp_path / "flat", flat) == ["_kernel", "bias"]


def test_a_built_layer_takes_a_replacement_sublayer():
    holder = _Holder()
    holder.build()
    new = keras.layers.Dense(3, name="replacement")
    new.build((None, 2))
    with pytest.raises(ValueError):  # what the private call is needed for
        holder.inner = new
    with relied_on("keras Layer._tracker.replace_tracked_value('layers', old, new)"):
        compat.replace_tracked_sublayer(holder, holder.inner, new)
        holder.inner = new
        assert [w.path for w in holder.weights] == ["replacement/kernel", "replacement/bias"]


def test_optimizer_internals():
    a = keras.Variable(np.ones(2, np.float32), name="a")
    b = keras.Variable(np.ones(3, np.float32), name="b")
    adamw = keras.optimizers.AdamW(learning_rate=0.5, weight_decay=0.1)
    adamw.exclude_from_weight_decay(var_names=["b"])
    adamw.build([a, b])
    with relied_on("keras Optimizer._distribution_strategy"):
        assert isinstance(compat.optimizer_strategy(adamw), tf.distribute.Strategy)
    with relied_on("keras Optimizer._get_variable_index"):
        assert (compat.variable_index(adamw, a), compat.variable_index(adamw, b)) == (0, 1)
    with relied_on("keras Optimizer._use_weight_decay"):
        assert compat.uses_weight_decay(adamw, a) and not compat.uses_weight_decay(adamw, b)
    sgd = keras.optimizers.SGD(learning_rate=0.5)
    sgd.build([a])
    grads_and_vars = [(tf.constant([1.0, 2.0]), a.value)]
    with relied_on("keras TFOptimizer._all_reduce_sum_gradients"):
        (summed, variable), = compat.all_reduce_sum_gradients(sgd, grads_and_vars)
        np.testing.assert_array_equal(summed.numpy(), [1.0, 2.0])
        assert variable is a.value
    with relied_on("tf.__internal__.distribute.interim.maybe_merge_call, keras "
                   "TFOptimizer._distributed_tf_update_step"):
        compat.apply_update_step(sgd, grads_and_vars, tf.constant(0.5))
        np.testing.assert_array_equal(a.numpy(), [0.5, 0.0])


def test_the_overridden_optimizer_hooks_are_called_by_apply_gradients():
    calls = []

    class Recording(keras.optimizers.SGD):
        def _clip_gradients(self, grads):
            calls.append("_clip_gradients")
            return super()._clip_gradients(grads)

        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            calls.append("_backend_update_step")
            return super()._backend_update_step(grads, trainable_variables, learning_rate)

    variable = keras.Variable(np.ones(2, np.float32))
    with relied_on("keras.optimizers.Optimizer._clip_gradients / _backend_update_step"):
        Recording(learning_rate=1.0).apply_gradients([(tf.constant([1.0, 1.0]), variable)])
        assert calls == ["_clip_gradients", "_backend_update_step"]
        np.testing.assert_array_equal(variable.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("hook", sorted(compat.OVERRIDDEN_HOOKS))
def test_every_overridden_hook_exists(hook):
    *owner, method = hook.split(".")
    with relied_on(hook):
        target = keras
        for part in owner[1:]:
            target = getattr(target, part)
        assert callable(getattr(target, method))


def test_merge_call_helpers():
    with relied_on("tf.__internal__.distribute.strategy_supports_no_merge_call"):
        assert compat.strategy_supports_no_merge_call() is True  # the default strategy
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
        assert mirrored.run(compat.strategy_supports_no_merge_call) is False
    with relied_on("tf.distribute StrategyExtended.call_for_each_replica"):
        result = compat.call_for_each_replica(tf.distribute.get_strategy(), lambda x: x + 1,
                                              args=(tf.constant(1),))
        assert int(result) == 2


def test_all_layers_reaches_nested_layers():
    outer = keras.Sequential([_Holder(name="holder")])
    outer.build((None, 2))
    with relied_on("keras Layer._flatten_layers"):
        names = [layer.name for layer in compat.all_layers(outer)]
        assert names[0] == outer.name and {"holder", "inner"} <= set(names)


@pytest.mark.parametrize("layer, shape, scale_shape", [
    (keras.layers.Dense(3), (4, 3), (3,)),
    (keras.layers.Embedding(5, 4), (5, 4), (5,)),
])
def test_int8_weights_are_the_stored_int8_variable_and_its_scales(layer, shape, scale_shape):
    layer.build((None, 4) if isinstance(layer, keras.layers.Dense) else (None,))
    layer.quantize("int8")
    with relied_on("keras Dense._kernel / Embedding._embeddings of an int8 layer"):
        values, scale = compat.int8_weights(layer)
        assert (tuple(values.shape), keras.backend.standardize_dtype(values.dtype)) == (
            shape, "int8")
        assert tuple(scale.shape) == scale_shape
        assert {id(values), id(scale)} <= {id(v) for v in layer.weights}


def test_gc_deferred_runs_one_collection_for_all_the_dropped_weights(monkeypatch):
    calls = []
    monkeypatch.setattr("gc.collect", lambda *args, **kwargs: calls.append(1) or 0)

    def quantized_dense():
        layer = keras.layers.Dense(3)
        layer.build((None, 4))
        layer.quantize("int8")

    with relied_on("keras Layer.__delattr__ calling gc.collect() through the gc module"):
        quantized_dense()
        assert calls, "Keras no longer collects per dropped weight: gc_deferred has no use"
    calls.clear()
    with compat.gc_deferred():
        quantized_dense()
        quantized_dense()
        assert not calls
    assert len(calls) == 1


def _private_reads(tree, own):
    """(line, text) of each private attribute read on another object than self/cls/super() in
    `tree` whose name t5core does not define itself (in `own`), and each assignment to an
    attribute of an imported module (a library function swapped out)."""
    modules = {alias.asname or alias.name for node in ast.walk(tree)
               if isinstance(node, ast.Import) for alias in node.names}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) not in ("self", "cls",
                                                                              "super()"):
            names = [node.attr]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str)):
            names = [node.args[1].value]
        if any(n.startswith("_") and not n.startswith("__") and n not in own for n in names):
            found.append((node.lineno, ast.unparse(node)))
        if isinstance(node, ast.Assign):
            found += [(node.lineno, ast.unparse(t)) for t in node.targets
                      if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                      and t.value.id in modules]
    return found


# Private names of other libraries t5core reads, and why they stay outside compat.py.
_OTHER_LIBRARIES = {"_trial_id": "Optuna's way to reopen a trial (t5core/sweep), not Keras/TF"}


def test_private_keras_and_tf_apis_are_used_only_in_compat():
    root = os.path.dirname(os.path.abspath(compat.__file__))
    trees = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    trees[os.path.relpath(path, root)] = ast.parse(f.read())
    own = set(_OTHER_LIBRARIES)  # private names t5core itself defines
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("setattr__")
                  and isinstance(node.args[1], ast.Constant)):
                own.add(node.args[1].value)  # object.__setattr__(self, "_name", ...)
    found = [f"t5core/{path}:{line}: {text}" for path, tree in sorted(trees.items())
             if path != "compat.py" for line, text in _private_reads(tree, own)]
    assert not found, ("private Keras/TF APIs belong behind a function in t5core/compat.py:\n"
                       + "\n".join(found))


def test_the_private_api_check_catches_a_read_and_a_swap():
    tree = ast.parse("import gc\nlayer._kernel\ngetattr(layer, '_embeddings')\n"
                     "model._flatten_layers()\ngc.collect = None\nself._mine\nsuper()._hook()\n"
                     "model.get_layer('x')._kernel\n")
    assert sorted(line for line, _ in _private_reads(tree, own=set())) == [2, 3, 4, 5, 8]


def test_shape_inference_is_told_apart_from_running():
    with relied_on("keras.src.backend.common.symbolic_scope.in_symbolic_scope"):
        seen = []
        keras.src.backend.compute_output_spec(
            lambda x: seen.append(compat.in_shape_inference()) or x,
            keras.KerasTensor((2,), "float32"))
        assert seen == [True] and not compat.in_shape_inference()
