"""The errors t5core raises for what a user gave it: flags, files, data rows, configs, checkpoints.

Each derives from `T5CoreError` (a user's mistake: one line, exit status 2) and from the built-in
type callers catch (ValueError, FileNotFoundError, RuntimeError). A message names what to fix:
the flag, the file and line, the config field, the tensor.
"""

from __future__ import annotations


class T5CoreError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class FlagError(T5CoreError, ValueError):
    """A command-line flag (or the option of the same name) has a bad or contradictory value."""


class ConfigError(T5CoreError, ValueError):
    """A model config file or field is missing, malformed or out of range."""


class DataError(T5CoreError, ValueError):
    """A data file or one of its rows cannot be used; the message names the file and line."""


class CheckpointError(T5CoreError, ValueError):
    """A checkpoint is unreadable, malformed, unsafe, or does not fit the model."""


class ModelDirError(T5CoreError, ValueError):
    """A model directory belongs to another run, is locked, or is not a model directory."""


class UserFileNotFoundError(T5CoreError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class TrainingStoppedError(T5CoreError, RuntimeError):
    """Training cannot go on (for example, the loss became NaN); checkpoints are intact."""


# JSON's words for the kinds of value json.loads returns (bool before int: a bool is an int).
_JSON_KINDS = ((dict, "an object"), ((list, tuple), "a list"), (str, "a string"),
               ((int, float), "a number"))


def json_kind(value) -> str:
    """What a value read from JSON is, in JSON's words, for messages: null, a boolean (true), ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    return next((kind for types, kind in _JSON_KINDS if isinstance(value, types)),
                type(value).__name__)
