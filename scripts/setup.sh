#!/usr/bin/env bash
# Install everything napari-dcm needs on a fresh Debian 12 machine (idempotent).
#   scripts/setup.sh [EXTRA]      EXTRA: the pip extra to install (default: test)
# System packages (Xvfb, GL and xcb libraries for Qt) come from apt when root;
# Python packages go into .venv (override with NAPARI_DCM_VENV).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NAPARI_DCM_VENV:-$ROOT/.venv}"
EXTRA="${1:-test}"

APT_PKGS=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libdbus-1-3 libfontconfig1
  libfreetype6 fonts-dejavu-core libx11-xcb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-glx0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
  libxcb-xfixes0 libxcb-xkb1 libxcb-xinerama0
  libopenjp2-7)  # OpenJPEG: reduced-resolution JPEG 2000 (napari_dcm.dicom.openjpeg)
if [ "$EXTRA" = "test" ]; then
  # real servers started privately by the tests (tests/servers.py): Orthanc (DICOMweb + DIMSE),
  # sshd; dciodvfy (dicom3tools) validates the DICOM objects the project writes
  APT_PKGS+=(orthanc orthanc-dicomweb openssh-server dicom3tools)
  # opj_decompress: the reference reduced-resolution JPEG 2000 decode (tests/test_multiscale.py)
  APT_PKGS+=(libopenjp2-tools)
fi
if [ -n "${NAPARI_DCM_EXTRA_APT:-}" ]; then
  read -r -a more <<<"$NAPARI_DCM_EXTRA_APT"
  APT_PKGS+=("${more[@]}")
fi
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  APT_PKGS+=(python3-venv python3-pip)
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install with apt: ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi
STAMP="$VENV/.napari-dcm-$EXTRA.stamp"
HASH="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "setup: pip install -e .[$EXTRA] into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[$EXTRA]"
  echo "$HASH" >"$STAMP"
else
  "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT" >/dev/null
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import napari_dcm, napari; print("napari-dcm", napari_dcm.__version__, "napari", napari.__version__)'))"
