"""The package's layering and its one model-directory contract, checked on the source.

- `t5core/checkpoints/` and `t5core/data/` import nothing from `t5core/training/`: the loaders
  and the data path stand below the trainer, which receives ready datasets and evaluators.
- Outside `t5core/model_dir.py`, no code in t5core/ or scripts/ spells a model-directory file
  name as a string literal; it uses `t5core.model_dir`'s names.
"""

import ast
import pathlib
import re

import pytest

from t5core import model_dir

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "t5core"


def _modules(folder):
    return sorted(folder.rglob("*.py"))


def _imported_modules(path):
    """Every module a file imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("package", ["checkpoints", "data"])
def test_loaders_and_data_import_nothing_from_training(package):
    offenders = {str(path.relative_to(ROOT)): sorted(m for m in _imported_modules(path)
                                                    if m.startswith("t5core.training"))
                 for path in _modules(PACKAGE / package)}
    assert not {k: v for k, v in offenders.items() if v}


def _docstrings(tree):
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return {id(n.body[0].value) for n in nodes
            if n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}


# The names that only a model directory uses. ("best", "train", "eval" and "checkpoint" are
# also ordinary words of flags, splits and T5X's files; spiece.model and tokenizer.json are HF's
# names too: the loaders look for them in any checkpoint directory.)
_FILE_NAMES = [model_dir.CONFIG, model_dir.RUN, model_dir.TRAIN_LOG, model_dir.RESULTS,
               model_dir.TRIAL_LOG, model_dir.HPARAMS_MARKER]
_EXACT = [model_dir.LOCK, model_dir.CHECKPOINT_PREFIX, model_dir.EVAL_RECORD_PREFIX]
_PATTERN = re.compile(r"(^|/)(" + "|".join(map(re.escape, _FILE_NAMES)) + r")$"
                      r"|^(" + "|".join(map(re.escape, _EXACT)) + r")$")


def test_no_model_dir_file_name_is_spelt_outside_model_dir():
    offenders = []
    for path in _modules(PACKAGE) + _modules(ROOT / "scripts"):
        if path == PACKAGE / "model_dir.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings and _PATTERN.search(node.value):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders


def test_the_pattern_catches_a_spelt_name():
    assert _PATTERN.search("config.json") and _PATTERN.search("/train_log.jsonl")
    assert _PATTERN.search("ckpt") and not _PATTERN.search("ckpt_name")
    assert not _PATTERN.search("wrote config.json and more")


def test_moved_names_keep_their_documented_import_paths():
    import t5core
    from t5core.classifier import T5EncoderClassifier
    from t5core.data.files import file_task
    from t5core.tokenizer import ByteTokenizer, Tokenizer, find_tokenizer_file, load_tokenizer

    assert callable(file_task)
    assert t5core.T5EncoderClassifier is T5EncoderClassifier
    assert t5core.Tokenizer is Tokenizer and t5core.ByteTokenizer is ByteTokenizer
    assert t5core.load_tokenizer is load_tokenizer and callable(find_tokenizer_file)
