"""`from t5core.training.task_inputs import file_task`, the import earlier READMEs showed, still
works; the function lives in t5core.data.files."""

from t5core.data.files import file_task

__all__ = ["file_task"]
