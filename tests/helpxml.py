"""A program's flag table as its `--helpxml` prints it (what a user of the command line sees):
the tests compare it with the dataclasses the flags are made from."""

import dataclasses
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

# Flags of absl/TF/keras themselves, listed by --helpxml but not the script's own.
_FRAMEWORK_MODULES = ("absl.", "tensorflow", "tensorboard", "keras", "tf_keras")


@dataclasses.dataclass(frozen=True)
class FlagInfo:
    name: str
    type: str  # absl's: "int", "float", "bool", "string", "string enum", "multi_string", ...
    default: str | None
    enum_values: tuple[str, ...] = ()


def parse_helpxml(xml_text: str) -> dict:
    flags = {}
    for node in ET.fromstring(xml_text).iter("flag"):
        if (node.findtext("file") or "").startswith(_FRAMEWORK_MODULES):
            continue
        name = node.findtext("name")
        flags[name] = FlagInfo(name, node.findtext("type") or "string", node.findtext("default"),
                               tuple(e.text for e in node.findall("enum_value")))
    return flags


def read_flags(script: str) -> dict:
    """{name: FlagInfo} of the script's own flags, from `python script --helpxml`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, script, "--helpxml"], capture_output=True, text=True,
                         env=env, timeout=300).stdout
    return parse_helpxml(out[out.index("<?xml"):])
