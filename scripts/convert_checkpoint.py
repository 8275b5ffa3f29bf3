#!/usr/bin/env python3
"""`t5core-convert` (t5core/commands/convert_checkpoint.py): a checkpoint to HF or TF form."""

from t5core.commands.convert_checkpoint import main

if __name__ == "__main__":
    main()
