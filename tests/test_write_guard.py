"""The guard of t5core/file_writes.py: no other module of t5core opens a file for writing or
deletes one.

An AST scan, so a new raw write anywhere in the package fails here with its file and line.
TensorFlow's own writers (checkpoints, SavedModels, event files) are not calls this scan knows:
file_writes' docstring says how t5core confines them.
"""

from __future__ import annotations

import ast
import pathlib

import t5core

PACKAGE = pathlib.Path(t5core.__file__).parent
OWNER = PACKAGE / "file_writes.py"

# Calls that open a file: flagged when their mode writes (or cannot be read as a literal).
_OPENERS = {"open", "fdopen", "GFile", "File", "ZipFile", "TarFile"}
_WRITE_MODE = set("wax+")
# Module-level functions that write or delete by path, as (module, function).
_PATH_WRITERS = {
    ("os", n) for n in ("remove", "unlink", "rename", "renames", "replace", "rmdir",
                        "removedirs", "makedirs", "mkdir", "truncate", "symlink", "link")
} | {
    ("shutil", n) for n in ("rmtree", "move", "copy", "copy2", "copyfile", "copytree",
                            "copyfileobj")
} | {
    ("gfile", n) for n in ("remove", "rmtree", "rename", "makedirs", "mkdir", "copy")
} | {("np", "save"), ("np", "savez"), ("np", "savez_compressed"), ("numpy", "save")}
# Methods that write or delete whatever object they are called on (pathlib.Path and alike).
_PATH_METHODS = {"write_text", "write_bytes", "unlink", "rmdir", "touch", "mkdir", "symlink_to",
                 "hardlink_to"}
_OS_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}


def _mode(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "mode":
            return keyword.value
    # open(file, mode), GFile(name, mode), h5py.File(name, mode), ZipFile(file, mode)
    return call.args[1] if len(call.args) > 1 else None


def _writes(mode: ast.expr | None) -> bool:
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return bool(_WRITE_MODE & set(mode.value))
    return True  # a mode computed at run time may write


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def violations(source: str, filename: str) -> list[str]:
    """`file:line: what` for each raw write or deletion in `source`."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = _name(func)
        owner = _name(func.value) if isinstance(func, ast.Attribute) else ""
        what = ""
        if name == "open" and owner == "os":
            flags = {_name(n) for n in ast.walk(node.args[1])} if len(node.args) > 1 else set()
            if flags & _OS_WRITE_FLAGS:
                what = "os.open with write flags"
        elif name in _OPENERS and _writes(_mode(node)):
            what = f"{name}() for writing"
        elif (owner, name) in _PATH_WRITERS:
            what = f"{owner}.{name}()"
        elif isinstance(func, ast.Attribute) and name in _PATH_METHODS and owner != "file_writes":
            what = f".{name}()"
        elif name == "savefig" and not any(k.arg == "format" for k in node.keywords):
            what = "savefig() to a path (give it a file_writes.atomic_writer and format=)"
        if what:
            found.append(f"{filename}:{node.lineno}: {what}")
    return found


def test_no_write_or_delete_outside_file_writes():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path == OWNER:
            continue
        found += violations(path.read_text(encoding="utf-8"), f"t5core/{relative}")
    assert not found, ("files written or deleted outside t5core/file_writes.py (route them "
                       "through it):\n" + "\n".join(found))


def test_the_scan_sees_each_kind_of_write():
    """Each form the scan must catch, so a weakened scan fails here rather than passing all."""
    samples = [
        "open(p, 'w')", "open(p, mode='a')", "open(p, 'r+b')", "open(p, m)", "io.open(p, 'x')",
        "os.open(p, os.O_WRONLY | os.O_CREAT)", "os.remove(p)", "os.unlink(p)",
        "os.rename(a, b)", "os.replace(a, b)", "os.makedirs(p)", "shutil.rmtree(p)",
        "shutil.move(a, b)", "shutil.copy(a, b)", "tf.io.gfile.GFile(p, 'w')",
        "tf.io.gfile.GFile(p, 'wb')", "tf.io.gfile.remove(p)", "tf.io.gfile.rmtree(p)",
        "tf.io.gfile.rename(a, b, overwrite=True)", "tf.io.gfile.makedirs(p)",
        "pathlib.Path(p).write_text(t)", "Path(p).unlink()", "h5py.File(p, 'w')",
        "np.save(p, a)", "fig.savefig(p)", "gzip.open(p, 'wt')", "os.fdopen(fd, 'w')",
    ]
    for sample in samples:
        assert violations(sample, "x.py"), f"the scan misses {sample}"
    reads = ["open(p)", "open(p, 'rb')", "tf.io.gfile.GFile(p, 'rb')", "os.open(p, os.O_RDONLY)",
             "file_writes.write_text(p, t)", "s.replace('a', 'b')",
             "fig.savefig(f, format='png')"]
    for sample in reads:
        assert not violations(sample, "x.py"), f"the scan flags a read: {sample}"
