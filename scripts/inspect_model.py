#!/usr/bin/env python3
"""`t5core-inspect` (t5core/commands/inspect_model.py): look inside a T5 model."""

from t5core.commands.inspect_model import main

if __name__ == "__main__":
    main()
