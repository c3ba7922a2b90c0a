#!/usr/bin/env bash
# Lint, format check and types (what CI runs before the tests).
#   scripts/lint.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" test >/dev/null
VENV="${NAPARI_DCM_VENV:-$ROOT/.venv}"
cd "$ROOT"
echo "lint: ruff check"
"$VENV/bin/ruff" check src tests bench scripts
echo "lint: ruff format --check"
"$VENV/bin/ruff" format --check src tests bench scripts
echo "lint: mypy (strict on src/napari_dcm/dicom)"
"$VENV/bin/mypy"
