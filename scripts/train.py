#!/usr/bin/env python3
"""`t5core-train` (t5core/commands/train.py): train or fine-tune a T5 model."""

from t5core.commands.train import main

if __name__ == "__main__":
    main()
