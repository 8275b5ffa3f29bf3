#!/usr/bin/env python3
"""`t5core-sweep` (t5core/commands/sweep.py): hyper-parameter sweep over the trainer's flags."""

from t5core.commands.sweep import main

if __name__ == "__main__":
    main()
