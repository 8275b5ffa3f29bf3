#!/usr/bin/env python3
"""`t5core-evaluate` (t5core/commands/evaluate.py): score a trained checkpoint on a test set."""

from t5core.commands.evaluate import main

if __name__ == "__main__":
    main()
