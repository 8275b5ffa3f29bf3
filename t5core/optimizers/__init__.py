"""Optimizers and learning-rate schedules for training T5.

Under tf.distribute, create the optimizer inside `strategy.scope()` and call
`optimizer.build(model.trainable_variables)` there before the first distributed step (slot
variables cannot be created inside a replica function). A checkpoint may be restored before or
after `build`: slots created later are filled from it (deferred restoration).
"""

from t5core.optimizers.adafactor import Adafactor, factored_axes
from t5core.optimizers.clipping import AdamW, ReplicaConsistentClipping
from t5core.optimizers.factory import OPTIMIZER_NAMES, make_optimizer
from t5core.optimizers.schedules import (
    SCHEDULE_NAMES,
    ConstantSchedule,
    CosineDecaySchedule,
    LinearDecaySchedule,
    RsqrtSchedule,
    make_schedule,
)

__all__ = [
    "OPTIMIZER_NAMES",
    "SCHEDULE_NAMES",
    "Adafactor",
    "AdamW",
    "ConstantSchedule",
    "CosineDecaySchedule",
    "LinearDecaySchedule",
    "ReplicaConsistentClipping",
    "RsqrtSchedule",
    "factored_axes",
    "make_optimizer",
    "make_schedule",
]
