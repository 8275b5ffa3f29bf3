"""Lazy imports of the metric packages (pip extra "metrics").

Importing t5core must not require sklearn, sacrebleu, rouge-score or seqeval,
so each metric imports its package on first use, with an error that says how
to install it.
"""

import importlib


def require(module: str, pip_name: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"this metric needs the '{pip_name}' package: pip install {pip_name} "
            f"(or pip install 't5core[metrics]')"
        ) from e
