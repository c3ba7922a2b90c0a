#!/usr/bin/env bash
# Install what the tests need, then run the whole suite (real napari viewers under Xvfb).
#   scripts/test.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" test
VENV="${NAPARI_DCM_VENV:-$ROOT/.venv}"
cd "$ROOT"
# pytest-xvfb starts Xvfb itself; --xvfb-backend=xvfb makes a missing Xvfb an error, not a skip
exec "$VENV/bin/python" -m pytest --xvfb-backend=xvfb "$@"
