"""Every public name of `t5core` has a Google-style docstring a reader can scan.

Functions: an `Args:` section naming exactly their parameters (when they take any) and a
`Returns:` (or, for a generator, `Yields:`) section. Classes other than exceptions: an `Args:`
section naming exactly the constructor's parameters, or, for a dataclass, an `Attributes:`
section naming exactly its fields. Exceptions: a docstring saying when they are raised.
"""

import dataclasses
import inspect
import re

import pytest

import t5core

SECTION_RE = re.compile(r"^(\s*)(\w+):\s*$")
# One entry: `name: ...`, `name (type): ...` or several names sharing one description,
# `a, b, c: ...`; `*args` and `**kwargs` keep their stars.
ENTRY_RE = re.compile(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?:\([^)]*\))?:(?:\s|$)")


def sections(doc):
    """{section title: [lines of its body, dedented to the entries' indent]}."""
    found, title, body, indent = {}, None, [], 0
    for line in doc.splitlines() + [""]:
        heading = SECTION_RE.match(line)
        if heading and heading.group(2) in ("Args", "Attributes", "Returns", "Yields",
                                            "Raises", "Example", "Examples"):
            if title is not None:
                found[title] = body
            title, body, indent = heading.group(2), [], len(heading.group(1))
            continue
        if title is None:
            continue
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            found[title], title, body = body, None, []
            continue
        body.append(line)
    if title is not None:
        found[title] = body
    return found


def documented_names(body):
    """The names an `Args:`/`Attributes:` body documents, stars removed, in order."""
    lines = [line for line in body if line.strip()]
    assert lines, "the section is empty"
    entry_indent = min(len(line) - len(line.lstrip()) for line in lines)
    names = []
    for line in lines:
        if len(line) - len(line.lstrip()) != entry_indent:
            continue  # the continuation of an entry's description
        entry = ENTRY_RE.match(line.strip())
        assert entry, f"not a `name: description` entry: {line.strip()!r}"
        names += [name.strip().lstrip("*") for name in entry.group(1).split(",")]
    return names


def own_doc(obj):
    doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
    return inspect.cleandoc(doc) if doc else ""


def parameter_names(obj):
    params = inspect.signature(obj).parameters.values()
    return [p.name for p in params if p.name != "self"]


def public_objects():
    return [(name, getattr(t5core, name)) for name in t5core.__all__]


@pytest.mark.parametrize("name,obj", public_objects(), ids=[n for n, _ in public_objects()])
def test_public_name_docstring(name, obj):
    doc = own_doc(obj)
    assert doc, f"t5core.{name} has no docstring"
    first_line = doc.splitlines()[0].strip()
    assert first_line and not SECTION_RE.match(first_line), \
        f"t5core.{name}: the docstring should open with a summary line"
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return  # one sentence saying when it is raised is enough
    found = sections(doc)

    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        assert "Attributes:" in doc or "Args:" in doc, \
            f"t5core.{name}: a dataclass documents its fields under `Attributes:`"
        expected = [field.name for field in dataclasses.fields(obj)]
        documented = documented_names(found.get("Attributes") or found["Args"])
    else:
        expected = parameter_names(obj)
        if not expected and not inspect.isclass(obj):
            documented = []
        else:
            assert "Args" in found, f"t5core.{name}: no `Args:` section"
            documented = documented_names(found["Args"])

    twice = sorted({n for n in documented if documented.count(n) > 1})
    assert not twice, f"t5core.{name}: documented twice: {twice}"
    unknown = [n for n in documented if n not in expected]
    assert not unknown, f"t5core.{name}: documents names it does not take: {unknown}"
    missing = [n for n in expected if n not in documented]
    assert not missing, f"t5core.{name}: parameters not documented: {missing}"

    if not inspect.isclass(obj):
        key = "Yields" if inspect.isgeneratorfunction(obj) else "Returns"
        assert key in found and any(line.strip() for line in found[key]), \
            f"t5core.{name}: no `{key}:` section"


def test_sections_parser_reads_grouped_and_starred_entries():
    doc = inspect.cleandoc("""Summary.

    Args:
      a: first,
        continued.
      b, c (int): shared.
      **kwargs: passed on.

    Returns:
      something.
    """)
    found = sections(doc)
    assert documented_names(found["Args"]) == ["a", "b", "c", "kwargs"]
    assert [line.strip() for line in found["Returns"] if line.strip()] == ["something."]
