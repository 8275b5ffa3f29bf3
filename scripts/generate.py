#!/usr/bin/env python3
"""`t5core-generate` (t5core/commands/generate.py): decode texts with a T5 checkpoint."""

from t5core.commands.generate import main

if __name__ == "__main__":
    main()
