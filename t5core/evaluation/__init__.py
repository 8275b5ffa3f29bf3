"""Scoring a model on held-out data: the evaluators the trainer calls (`evaluators`), and the
test-set reports of `scripts/evaluate.py` (`reports`)."""
