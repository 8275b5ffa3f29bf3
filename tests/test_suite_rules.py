"""Rules the test suite keeps so that its tests fail when, and only when, they should."""

import ast
import pathlib

TESTS = pathlib.Path(__file__).resolve().parent


def _importorskip_targets(tree):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "importorskip" and node.args
                and isinstance(node.args[0], ast.Constant)):
            yield node.lineno, node.args[0].value


def test_no_test_skips_when_a_t5core_module_fails_to_import():
    """importorskip of t5core's own modules would turn a broken module into a skip: import them."""
    found = [f"{path.name}:{line}: importorskip({name!r})"
             for path in sorted(TESTS.rglob("*.py"))
             for line, name in _importorskip_targets(ast.parse(path.read_text(encoding="utf-8")))
             if str(name).split(".")[0] == "t5core"]
    assert not found, "import t5core modules, never importorskip them:\n" + "\n".join(found)
