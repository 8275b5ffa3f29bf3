#!/usr/bin/env bash
# Installs t5core with its test extras and runs the test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[test]"
export TF_CPP_MIN_LOG_LEVEL=2
python3 -m pytest -q tests "$@"
