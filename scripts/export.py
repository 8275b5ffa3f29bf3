#!/usr/bin/env python3
"""`t5core-export` (t5core/commands/export.py): a checkpoint as a SavedModel for TF Serving."""

from t5core.commands.export import main

if __name__ == "__main__":
    main()
