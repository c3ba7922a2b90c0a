"""A multi-frame object's own display rate (cine), from its header.

The rate is taken, in this order, from:

* Frame Time (0018,1063): milliseconds between frames (the acquisition's real
  time), rate = 1000 / FrameTime;
* Frame Time Vector (0018,1065): the mean of its intervals (the first value is 0);
* Cine Rate (0018,0040): frames per second;
* Recommended Display Frame Rate (0008,2144): frames per second.

Only these few elements are read (pydicom's ``specific_tags``, no pixel data).
Pure: no napari, no Qt.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("napari_dcm")

DEFAULT_FPS = 10.0  # napari's own playback default, used when the header names no rate
MAX_FPS = 240.0

_TAGS = {
    "FrameTime": 0x00181063,
    "FrameTimeVector": 0x00181065,
    "CineRate": 0x00180040,
    "RecommendedDisplayFrameRate": 0x00082144,
}


@dataclass(frozen=True)
class FrameRate:
    """A display rate and where it came from (the element's keyword, or "default")."""

    fps: float
    source: str

    @property
    def interval_ms(self) -> float:
        return 1000.0 / self.fps


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def rate_from_values(values: dict[str, Any]) -> FrameRate | None:
    """The rate named by header values (keyword -> value); None when none is usable."""
    ft = _number(values.get("FrameTime"))
    if ft is not None:
        return FrameRate(min(1000.0 / ft, MAX_FPS), "FrameTime")
    vec = values.get("FrameTimeVector")
    if vec is not None and not isinstance(vec, (str, bytes)):
        steps = [s for s in (_number(x) for x in list(vec)[1:]) if s is not None]
        if steps:
            return FrameRate(min(1000.0 / (sum(steps) / len(steps)), MAX_FPS), "FrameTimeVector")
    for kw in ("CineRate", "RecommendedDisplayFrameRate"):
        r = _number(values.get(kw))
        if r is not None:
            return FrameRate(min(r, MAX_FPS), kw)
    return None


def frame_rate(path: str | os.PathLike[str]) -> FrameRate:
    """The display rate of a file (``DEFAULT_FPS`` with source "default" when its header names none
    or the file cannot be read)."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(
                os.fspath(path), stop_before_pixels=True, force=True, specific_tags=list(_TAGS.values())
            )
        values = {kw: ds.get(kw) for kw in _TAGS}
    except Exception as exc:  # an unreadable header plays at the default rate
        log.info("cine rate of %s unreadable (%s); using %g fps", path, exc, DEFAULT_FPS)
        return FrameRate(DEFAULT_FPS, "default")
    return rate_from_values(values) or FrameRate(DEFAULT_FPS, "default")
