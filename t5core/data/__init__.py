"""tf.data pipelines for T5: sources, tasks and mixtures, preprocessors, span corruption and model
features. Importing this package registers the built-in tasks."""

from t5core.data import builtin_tasks  # noqa: F401  (registers the built-in tasks)
from t5core.data.counters import DropCounter
from t5core.data.features import pack_to_model_features, pad_to_model_features, to_model_features
from t5core.data.objectives import (iid_denoising, prefix_lm, random_spans_helper,
                                    random_spans_noise_mask, span_corruption)
from t5core.data.preprocessors import append_eos, drop_empty, rekey, tokenize, truncate
from t5core.data.sources import (ConllSource, DatasetNotPreparedError, JsonlSource, ListSource,
                                 ParallelTextSource, TfdsSource, TsvSource)
from t5core.data.tasks import (Mixture, Task, get, get_task, list_mixtures, list_tasks,
                               make_model_dataset, register_mixture, register_task)

__all__ = ["ConllSource", "DatasetNotPreparedError", "DropCounter", "JsonlSource", "ListSource",
           "Mixture", "ParallelTextSource", "Task", "TfdsSource", "TsvSource", "append_eos",
           "drop_empty", "get", "get_task", "iid_denoising", "list_mixtures", "list_tasks",
           "make_model_dataset", "pack_to_model_features", "pad_to_model_features", "prefix_lm",
           "random_spans_helper", "random_spans_noise_mask", "register_mixture", "register_task",
           "rekey", "span_corruption", "to_model_features", "tokenize", "truncate"]
