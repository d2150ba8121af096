#!/usr/bin/env bash
# Quick start, command 2: set up .venv (with test tools, the NN backends and PySCF) and run lint + the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,nn,dft
.venv/bin/ruff check hal backends protocols tests benchmarks examples
exec .venv/bin/python -m pytest "$@"
