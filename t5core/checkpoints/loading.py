"""Filling a model from a checkpoint reader through a rule table, all or nothing."""

from __future__ import annotations

import numpy as np

from t5core.checkpoints.rules import plan_mapping


def assign_from_reader(model, reader, rules, source: str):
    """Plans the mapping from names and shapes, then assigns tensor by tensor.

    `reader` has `.shapes` (name -> shape) and `.read(name)` -> ndarray. Only one source tensor is
    held in memory at a time besides the model's own variables.
    """
    variables = model.variables_by_name()
    plan = plan_mapping(reader.shapes, rules, {k: tuple(v.shape) for k, v in variables.items()},
                        source=source)
    for name, target, transform in plan.assignments:
        variable = variables[target]
        array = transform(reader.read(name))
        variable.assign(np.asarray(array, dtype=variable.dtype))
    return plan
