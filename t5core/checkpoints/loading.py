"""Filling a model from a checkpoint reader through a rule table, all or nothing."""

from __future__ import annotations

import logging

import ml_dtypes
import numpy as np

from t5core import compat, quantization
from t5core.checkpoints.reader import named_errors
from t5core.checkpoints.rules import CheckpointMismatchError, plan_mapping
from t5core.errors import CheckpointError
from t5core.model import T5Model

log = logging.getLogger(__name__)

_FINITE_CHECK_CHUNK = 1 << 20  # elements per np.isfinite call: a 1 MiB temporary, not a tensor's


def _set(variable, array):
    value = np.asarray(array, dtype=variable.dtype)
    if compat.is_uninitialized(variable):  # deferred (see new_model_for_loading)
        compat.initialize_variable(variable, value)
    else:
        variable.assign(value)


def is_floating(dtype) -> bool:
    """Whether numpy (or Keras) `dtype` is a floating-point or complex type, bfloat16 included."""
    dtype = np.dtype(ml_dtypes.bfloat16) if str(dtype) == "bfloat16" else np.dtype(dtype)
    return dtype.kind in "fc" or dtype == ml_dtypes.bfloat16


def check_stored_type(array, name, variable, target, source):
    """Raises CheckpointError when an integer or boolean tensor would fill a floating-point weight:
    converting it gives the integers' values (bfloat16 bits stored as uint16, as T5X did before
    its checkpoint version 3, become numbers in the thousands), so it is refused, as T5X does."""
    if is_floating(variable.dtype) and not is_floating(array.dtype):
        raise CheckpointError(f"{source}: tensor {name!r} is stored as {array.dtype.name}, but "
                              f"{target} is a {variable.dtype} weight: t5core does not turn "
                              "integers into weights (bfloat16 stored as uint16 is T5X's "
                              "checkpoint version 2, which T5X refuses too)")


def nonfinite_summary(array):
    """"2 NaN, 1 Inf" for a float array holding such values, else None; checked by chunks, so no
    tensor-sized boolean array is made."""
    if not is_floating(array.dtype):
        return None
    flat = array.reshape(-1)
    nan = inf = 0
    for start in range(0, flat.size, _FINITE_CHECK_CHUNK):
        chunk = flat[start:start + _FINITE_CHECK_CHUNK]
        if not np.isfinite(chunk).all():
            nan += int(np.count_nonzero(np.isnan(chunk)))
            inf += int(np.count_nonzero(np.isinf(chunk)))
    if not nan and not inf:
        return None
    counts = [f"{nan} NaN"] * bool(nan) + [f"{inf} Inf"] * bool(inf)
    return f"{', '.join(counts)} of {flat.size} values"


def assign_from_reader(model, reader, rules, source: str, progress=None, allow_nonfinite=False):
    """Plans the mapping from names and shapes, then assigns tensor by tensor.

    One source tensor at a time is held besides the model. Every check that needs no values
    (names, shapes, file integrity) runs before the first assignment; a later failed read
    raises and `load_pretrained` drops the fresh model, so no caller sees it half-loaded.
    `progress(nbytes_done_now, nbytes_total, name)` is called after each tensor. Every tensor
    holding NaN or Inf is listed in one CheckpointError once all are read, or, with
    `allow_nonfinite`, in a warning.
    """
    variables = quantization.assignable_weights(model)  # an int8 layer quantizes as it is filled
    plan = plan_mapping(reader.shapes, rules, {k: tuple(v.shape) for k, v in variables.items()},
                        source=source)
    # Assignments first: a tied copy (a check, no transform) is compared with what they filled.
    to_read = plan.assignments + [(name, target, None) for name, target in plan.checks]
    reader.validate([name for name, _, _ in to_read])
    total = sum(reader.nbytes(name) for name, _, _ in to_read) if progress else 0
    nonfinite, mismatched = [], []
    for name, target, transform in to_read:
        array = _read(reader, name, source)
        check_stored_type(array, name, variables[target], target, source)
        if summary := nonfinite_summary(array):
            nonfinite.append(f"{name}: {summary}")
        if transform is not None:
            _set(variables[target], transform(array))
        elif not _holds(variables[target], np.asarray(array, dtype=variables[target].dtype),
                        equal_nan=bool(nonfinite)):
            mismatched.append(f"{name} differs from {target}")
        del array
        if progress:
            progress(reader.nbytes(name), total, name)
    if mismatched:
        raise CheckpointMismatchError(
            f"{source}: tensors stored as tied copies hold different values (an untied "
            "checkpoint with a tied config, tie_word_embeddings=True?):\n  "
            + "\n  ".join(mismatched))
    if nonfinite:
        listing = f"{source}: {len(nonfinite)} tensor(s) hold NaN or Inf:\n  " + "\n  ".join(
            nonfinite)
        if not allow_nonfinite:
            raise CheckpointError(listing + "\nA model with them computes NaN; pass "
                                  "allow_nonfinite=True (the programs' --allow_nonfinite) to load "
                                  "them anyway (to inspect them).")
        log.warning("%s", listing)
    return plan


def _holds(variable, array, equal_nan):
    if hasattr(variable, "holds"):  # quantized as it was read: only a digest of it is left
        return variable.holds(array)
    return np.array_equal(array, variable.numpy(), equal_nan=equal_nan)


def _read(reader, name, source):
    with named_errors(source, f"could not read tensor {name!r}"):
        return reader.read(name)


class _Deferred:
    """The variables a deferred build left uninitialised."""

    def __init__(self, variables):
        self.variables = variables

    def finish(self):
        """Initialises what the checkpoint does not hold (dropout seed states) as Keras would."""
        try:
            for variable in self.variables:
                if compat.is_uninitialized(variable):
                    compat.initialize_from_initializer(variable)
        finally:
            compat.forget_uninitialized(self.variables)

    def forget(self, variables):
        """Drops `variables` (float weights an int8 layer replaced) unfilled."""
        dropped = {id(v) for v in variables}
        self.variables = [v for v in self.variables if id(v) not in dropped]
        compat.forget_uninitialized(variables)

    def discard(self):
        compat.forget_uninitialized(self.variables)  # lets the half-built model be collected


def new_model_for_loading(config, dtype=None):
    """(T5Model, handle): the model built with variable initialisation deferred (Keras 3's empty
    variables; elsewhere a normal build). Call `handle.finish()` once every weight is
    assigned, `handle.discard()` on failure."""
    if not compat.deferred_initialization_available():
        return T5Model(config, dtype=dtype), None
    with compat.variables_created_empty() as created:
        model = T5Model(config, dtype=dtype)
    handle = _Deferred(created)
    if not all(compat.is_uninitialized(v) for v in model.weights):
        # Not the Keras this was written against: initialise normally and carry on.
        handle.finish()
        return model, None
    return model, handle
