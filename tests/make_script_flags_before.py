"""Writes tests/fixtures/script_flags_before.json: every script's flags on a tree from before the
scripts' flags were generated from the option dataclasses and moved into t5core/commands/.

    git worktree add /tmp/before c666361
    PYTHONPATH=/tmp/before python tests/make_script_flags_before.py /tmp/before

absl scripts (train, evaluate, sweep): name, type, default, choices and help from --helpxml.
argparse scripts (generate, export, convert_checkpoint, inspect_model): each option's action,
type, default, choices, help, whether it is required and what it excludes, read from the
ArgumentParser the script builds (its parse_args is stopped before parsing).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

ABSL_SCRIPTS = ("train", "evaluate", "sweep")
ARGPARSE_SCRIPTS = ("generate", "export", "convert_checkpoint", "inspect_model")
ACTIONS = {"_StoreAction": "store", "_StoreTrueAction": "store_true", "_AppendAction": "append"}
OUT = pathlib.Path(__file__).parent / "fixtures" / "script_flags_before.json"


def absl_flags(root, name):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    xml = subprocess.run([sys.executable, f"scripts/{name}.py", "--helpxml"], cwd=root, env=env,
                         capture_output=True, text=True).stdout
    table = {}
    for flag in ET.fromstring(xml[xml.index("<?xml"):]).iter("flag"):
        if flag.findtext("file") == f"scripts/{name}.py":
            default = (flag.findtext("default") or "").replace(str(root), "<repo>")
            table[flag.findtext("name")] = {
                "type": flag.findtext("type"), "default": default,
                "enum_values": [e.text for e in flag.findall("enum_value")],
                "help": flag.findtext("meaning")}
    return table


class _Parser(Exception):
    pass


def _stop(parser, args=None, namespace=None):
    raise _Parser(parser)


def argparse_flags(root, name):
    spec = importlib.util.spec_from_file_location(name, root / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        getattr(module, "parse_args", module.main)([])
    except _Parser as stopped:
        parser = stopped.args[0]
    exclusive = {}
    for group in parser._mutually_exclusive_groups:
        for action in group._group_actions:
            exclusive[action.dest] = sorted(a.dest for a in group._group_actions
                                            if a is not action)
    return {a.dest: {"action": ACTIONS[type(a).__name__],
                     "type": getattr(a.type, "__name__", None), "default": a.default,
                     "choices": list(a.choices) if a.choices else None, "required": a.required,
                     "help": a.help, "exclusive_with": exclusive.get(a.dest, [])}
            for a in parser._actions if not isinstance(a, argparse._HelpAction)}


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    table = {name: absl_flags(root, name) for name in ABSL_SCRIPTS}
    argparse.ArgumentParser.parse_args = _stop
    table.update({name: argparse_flags(root, name) for name in ARGPARSE_SCRIPTS})
    OUT.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
