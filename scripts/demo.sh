#!/usr/bin/env bash
# Install napari-dcm and open the bundled sample study.
# With a display: a real napari window.  Without one: runs under Xvfb, saves a
# screenshot (default docs/images/demo.png) and exits 0.
#   scripts/demo.sh [napari-dcm args...]      e.g. scripts/demo.sh /path/to/study
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" test
VENV="${NAPARI_DCM_VENV:-$ROOT/.venv}"
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=(--sample)
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec "$VENV/bin/napari-dcm" "${ARGS[@]}"
fi
SHOT="${NAPARI_DCM_SCREENSHOT:-$ROOT/docs/images/demo.png}"
mkdir -p "$(dirname "$SHOT")"
xvfb-run -a -s "-screen 0 1280x1024x24" "$VENV/bin/napari-dcm" "${ARGS[@]}" --screenshot "$SHOT" --exit
test -s "$SHOT"
echo "demo: screenshot at $SHOT"
