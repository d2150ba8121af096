#!/usr/bin/env bash
# Quick start, command 1: set up .venv and run the main job (the alloy HAL protocol) on its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hal run alloy "$@"
