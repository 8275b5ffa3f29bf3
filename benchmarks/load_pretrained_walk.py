"""The t5core modules one `load_pretrained` call passes, in the order it first enters them.

  python benchmarks/load_pretrained_walk.py tests/fixtures/reference/gated_silu

Every function call inside t5core is seen through `sys.setprofile`; the model's layers count as
one module with the model.
"""

import sys

from t5core.checkpoints import load_pretrained


def main(path):
    order = []

    def profile(frame, event, arg):
        module = frame.f_globals.get("__name__", "")
        if event != "call" or not module.startswith("t5core"):
            return
        if module == "t5core.model" or module.startswith("t5core.layers"):
            module = "t5core.model (+layers)"
        if module not in order:
            order.append(module)

    sys.setprofile(profile)
    try:
        load_pretrained(path)
    finally:
        sys.setprofile(None)
    print(f"{len(order)} modules: " + " -> ".join(m.replace("t5core.", "") for m in order))


if __name__ == "__main__":
    main(sys.argv[1])
