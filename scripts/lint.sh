#!/usr/bin/env bash
# Lint, format check and types (what CI runs before the tests).
#   scripts/lint.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NAPARI_DCM_VENV:-$ROOT/.venv}"
# install only when the tools are missing (a fresh machine); re-running setup from another checkout
# that shares this venv would point its editable install there
[ -x "$VENV/bin/ruff" ] && [ -x "$VENV/bin/mypy" ] || bash "$ROOT/scripts/setup.sh" test >/dev/null
cd "$ROOT"
echo "lint: ruff check"
"$VENV/bin/ruff" check src tests bench scripts
echo "lint: ruff format --check"
"$VENV/bin/ruff" format --check src tests bench scripts
echo "lint: mypy (strict on src/napari_dcm/dicom)"
"$VENV/bin/mypy"
