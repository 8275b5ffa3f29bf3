"""The Task that the data options of train.py and evaluate.py name: a registered task or mixture,
or TSV/JSONL files, rendered by a prompt template or read by field. Training and scoring both
resolve their options here, so a test set is read exactly the way training read its files.
"""

from __future__ import annotations

from t5core.data import builtin_tasks  # noqa: F401  (registers the built-in tasks)
from t5core.data.files import file_format, file_task, templated_task
from t5core.data.tasks import get
from t5core.data.templates import make_template
from t5core.errors import DataError, FlagError
from t5core.metrics import check_metric_names


def task_from_options(*, name="", train_file="", eval_file=None, template="", template_args="",
                      instruction=False, seed=0, inputs_field="inputs", targets_field="targets",
                      lengths, metrics=(), labels=(), name_flag="--task"):
    """(task, template or None) for the data options.

    Args:
      name: a registered task or mixture; the files are then not read.
      train_file, eval_file: TSV/JSONL files (eval_file may be None).
      template, template_args, instruction, seed: a template rendering the files' rows
        (`t5core.data.templates.make_template`); "" reads `inputs_field`/`targets_field`.
      lengths: {"inputs": n, "targets": n}.
      metrics, labels: a file task's metric names and label set.
      name_flag: the flag that gave `name`, for the error.

    Raises:
      FlagError: an unknown task or mixture name.
    """
    if name:
        try:
            return get(name), None
        except KeyError as err:
            raise FlagError(f"{name_flag}: {err.args[0]}") from None
    if template:
        rendered = make_template(template, template_args, instruction, seed)
        return templated_task(train_file, eval_file, rendered, lengths, metrics), rendered
    return file_task(train_file, eval_file, inputs_field, targets_field, lengths, metrics,
                     labels=labels), None


def option_problems(*, template="", template_args="", instruction=False, files=(),
                    metrics="") -> list[str]:
    """The data options' problems, before any data is touched: template arguments (not JSON,
    missing, unknown), each file's type by suffix and the --metrics names; `files`: (flag,
    path), "" skipped."""
    problems = []
    try:
        check_metric_names([name for name in metrics.split(",") if name])
    except FlagError as err:
        problems.append(str(err))
    if template:
        try:
            make_template(template, template_args, instruction)
        except FlagError as err:
            problems.append(str(err))
    for flag, path in files:
        if path:
            try:
                file_format(path)
            except DataError as err:
                problems.append(f"{flag}: {err}")
    return problems
