#!/usr/bin/env bash
# Create .venv in the checkout (if missing) and install hal with the extras named in $1 (e.g. "test").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
extras=${1:-}
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp=".venv/.hal-installed-$(cat pyproject.toml "$0" | sha1sum | cut -c1-12)-${extras:-core}"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    case ",$extras," in  # torch first, pinned: a looser requirement would pull gigabytes of CUDA
        *,nn,*) .venv/bin/python -m pip install --quiet torch==2.13.0 ;;
    esac
    .venv/bin/python -m pip install --quiet -e "$spec"
    case ",$extras," in  # schnetpack without its pins (its imports are in the nn extra; see pyproject.toml)
        *,nn,*) .venv/bin/python -m pip install --quiet --no-deps schnetpack==2.1.1 ;;
    esac
    touch "$stamp"
fi
