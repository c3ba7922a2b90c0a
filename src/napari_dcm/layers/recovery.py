"""Autosave of unexported ROI edits: one JSON file per image in the user's cache directory.

Keyed by the image's file paths, so reopening the same files finds them; an
export clears it.  Never written next to the user's data.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any


def cache_dir() -> str:
    base = os.environ.get("NAPARI_DCM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "napari-dcm"
    )
    d = os.path.join(base, "recovery")
    os.makedirs(d, exist_ok=True)
    return d


def recovery_path(paths) -> str:
    key = hashlib.sha1("\n".join(sorted(os.path.abspath(p) for p in paths)).encode()).hexdigest()[:20]
    return os.path.join(cache_dir(), f"{key}.json")


def save_recovery(meta: dict[str, Any], rs: Any) -> str:
    """Write the ROI state ``rs`` (a RoiSet) of an image atomically; returns the file."""
    p = recovery_path(meta["paths"])
    state = {
        "saved_at": time.time(),
        "image": meta["image"],
        "paths": meta["paths"],
        "rows": meta["rows"],
        "rois": [dict(r, box=list(r["box"])) for r in rs.rois],
    }
    tmp = p + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    os.replace(tmp, p)
    return p


def load_recovery(paths) -> dict | None:
    p = recovery_path(paths)
    if not os.path.exists(p):
        return None
    try:
        with open(p, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def clear_recovery(meta: dict) -> None:
    p = recovery_path(meta["paths"])
    if os.path.exists(p):
        os.remove(p)
