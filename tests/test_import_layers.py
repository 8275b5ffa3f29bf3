"""t5core's modules form layers: no import cycle among them, and a module's t5core imports sit at
its top, where the layering shows, rather than inside functions where a cycle hides.

Both tests read the sources (ast), so an import inside a function counts as much as one at the top.
"""

import ast
import os

import t5core

PACKAGE_DIR = os.path.dirname(os.path.abspath(t5core.__file__))

# t5core imports a function may make, with why. Each keeps TensorFlow out of a path that must not
# pay for it: a program's start before quiet_start hides TensorFlow's chatter, or the `--help` of
# a program whose flags need no TensorFlow.
DEFERRED_IMPORTS = {
    ("t5core.cli", "t5core.file_writes"): "quiet_start imports cli before TensorFlow loads",
    ("t5core.commands.inspect_model", "t5core.inspection"): "t5core-inspect --help",
    **{("t5core.commands.shared_flags", module): "t5core-inspect --help imports shared_flags"
       for module in ("t5core.checkpoints", "t5core.tokenizer", "t5core.decoding.beam",
                      "t5core.decoding.generation")},
}


def module_files(package_dir=PACKAGE_DIR):
    """{dotted module name: file} of every module in the package; a package is its __init__."""
    root = os.path.dirname(package_dir)
    files = {}
    for folder, _, names in os.walk(package_dir):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                files[module.removesuffix(".__init__")] = path
    return files


def imported_names(node, module, is_package):
    """The dotted names an Import/ImportFrom node imports, relative imports resolved; for
    `from a.b import c` both `a.b.c` (a submodule or a name in a.b) and `a.b` itself."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def owning_module(name, modules):
    """The module `name` lives in (a name inside a module resolves to the module), or None."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_by_module(files):
    """{module: [(import node, inside a function?, [t5core modules it imports])]}."""
    found = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        is_package = path.endswith("__init__.py")
        entries = []

        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    targets = {owning_module(name, files)
                               for name in imported_names(child, module, is_package)
                               if name.split(".")[0] == "t5core"}
                    entries.append((child, in_function, sorted(targets - {None, module})))
                visit(child, in_function or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(tree, False)
        found[module] = entries
    return found


def import_graph(files):
    """{module: set of t5core modules it imports}, counting imports inside functions too."""
    return {module: {target for _, _, targets in entries for target in targets}
            for module, entries in imports_by_module(files).items()}


def cycles(graph):
    """The strongly connected groups of two or more modules (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def test_no_import_cycle():
    found = cycles(import_graph(module_files()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(group) for group in found)


def test_t5core_imports_at_module_top():
    inside = []
    for module, entries in imports_by_module(module_files()).items():
        for node, in_function, targets in entries:
            allowed = {t for t in targets if (module, t) in DEFERRED_IMPORTS}
            # `from t5core import file_writes` names the package too: allowed with its module.
            late = [t for t in targets if t not in allowed
                    and not any(a.startswith(t + ".") for a in allowed)]
            if in_function and late:
                inside.append(f"{module} line {node.lineno}: {', '.join(late)}")
    assert not inside, "t5core imports inside functions (move them to the module's top):\n" \
        + "\n".join(inside)


def test_the_checks_see_cycles_and_late_imports(tmp_path):
    """The two checks above on a made-up package: a cycle through a package's __init__ and a
    relative import, and an import inside a function."""
    package = tmp_path / "t5core"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from t5core.sub import leaf\n")
    (package / "sub" / "leaf.py").write_text("def f():\n    from .. import sub\n")
    (package / "top.py").write_text("import t5core.sub.leaf as leaf\n")
    files = module_files(str(package))
    assert cycles(import_graph(files)) == [["t5core.sub", "t5core.sub.leaf"]]
    late = [(m, targets) for m, entries in imports_by_module(files).items()
            for _, in_function, targets in entries if in_function]
    assert late == [("t5core.sub.leaf", ["t5core", "t5core.sub"])]
    assert import_graph(files)["t5core.top"] == {"t5core.sub.leaf"}
