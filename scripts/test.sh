#!/usr/bin/env bash
# Quick start, command 2: set up .venv (with test tools and the NN backends) and run lint + the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,nn
.venv/bin/ruff check hal backends protocols tests benchmarks examples
exec .venv/bin/python -m pytest "$@"
