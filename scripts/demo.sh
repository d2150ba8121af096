#!/usr/bin/env bash
# Quick start, command 1: set up .venv and run the main job (the hexane bond-breaking study, reduced) on its
# embedded default: tblite GFN2-xTB as the oracle, no licence, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hal run hexane_smd "$@"
