"""Just enough of gin's syntax to read model sizes from Mesh-TF and T5X config files."""

from __future__ import annotations

import ast
import os
import re

from t5core.errors import ConfigError
from t5core.file_reads import MAX_FILE_INT, is_remote, present, read_bytes, resolve_inside

_INTEGER = re.compile(r"[-+]?(\d[\d_]*|0[xob][0-9a-f_]+)", re.IGNORECASE)


def _logical_lines(text):
    """Lines with comments stripped and bracketed continuations joined, keeping indentation."""
    out, pending, depth = [], "", 0
    for raw in text.splitlines():
        line = _strip_comment(raw).rstrip()
        if not line.strip() and not pending:
            continue
        pending = pending + " " + line.strip() if pending else line
        depth += sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
        if depth <= 0:
            out.append(pending)
            pending, depth = "", 0
    if pending:
        out.append(pending)
    return out


def _strip_comment(line):
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#":
            return line[:i]
    return line


def _value(text, macros, path):
    text = text.strip()
    if text.startswith("%"):
        return macros.get(text[1:], text)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError):  # RecursionError: absurdly deep nesting
        value = text  # @references and anything else stay as written
    # An integer past any size t5core reads (or of more digits than Python converts) would be
    # carried on until a float conversion or a message overflows.
    if (isinstance(value, int) and abs(value) >= MAX_FILE_INT) or (
            isinstance(value, str) and _INTEGER.fullmatch(text)):
        shown = text if len(text) <= 24 else text[:20] + "..."
        raise ConfigError(f"{path}: the integer {shown} is out of range (|n| < 2**63)")
    return value


def parse_gin(paths, missing_includes=None):
    """Bindings {"scope/Name.param": value} of gin files applied in order (later files win);
    unresolvable includes go into `missing_includes` when a list is given."""
    if isinstance(paths, str):
        paths = [paths]
    bindings, macros = {}, {}
    for path in paths:
        _parse_file(path, bindings, macros, missing_includes, seen=set())
    return bindings


_MAX_GIN_FILES = 100  # files one gin file may pull in through includes, itself counted


def _included(path, target):
    """(the file an `include` in `path` names, or None, and why not). An include is a name read
    from a file: it is read only inside the including file's folder, links resolved."""
    try:
        found = resolve_inside(os.path.dirname(path), target, path, error=ConfigError,
                               unsafe=ConfigError, what="gin file", kind="its folder")
    except ConfigError as err:
        return None, f"not read: {err}"
    return (found, "") if present(found) else (None, "")


def _parse_file(path, bindings, macros, missing_includes, seen):
    key = os.path.realpath(path) if not is_remote(path) else path
    if key in seen:
        return
    if len(seen) >= _MAX_GIN_FILES:
        raise ConfigError(f"{path}: more than {_MAX_GIN_FILES} gin files included in all")
    seen.add(key)
    try:
        text = read_bytes(path, ConfigError).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte at offset {err.start})") from None
    block = None
    for line in _logical_lines(text):
        stripped = line.strip()
        indented = line[:1] in (" ", "\t")
        if stripped.startswith(("import ", "from ")):
            continue
        if stripped.startswith("include "):
            target = _value(stripped[len("include "):], macros, path)
            found, why = _included(path, target)
            if found:
                _parse_file(found, bindings, macros, missing_includes, seen)
            elif missing_includes is not None:
                missing_includes.append(f"{target} (included by {path}{'; ' + why if why else ''})")
            continue
        if stripped.endswith(":") and "=" not in stripped and not indented:
            block = stripped[:-1].strip()
            continue
        if "=" not in stripped:
            continue
        key, value = (s.strip() for s in stripped.split("=", 1))
        if indented and block:
            key = f"{block}.{key}"
        elif not indented:
            block = None
        if "." not in key and "/" not in key:
            macros[key] = _value(value, macros, path)
        bindings[key] = _value(value, macros, path)


def lookup(bindings, *names):
    """The first binding whose key is, or ends with, one of `names` after a scope or module."""
    for name in names:
        for key, value in bindings.items():
            if key == name or key.endswith(("/" + name, "." + name)):
                return value
    return None
