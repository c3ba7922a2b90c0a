"""Values of interest: windows, contrast limits and output value ranges.

Windows come from the header in modality units (after the modality LUT, as
PS3.3 C.11.2.1.2 defines them), so they apply directly to the values
napari-dcm shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Window:
    center: float
    width: float
    explanation: str = ""
    function: str = "LINEAR"

    def limits(self) -> tuple[float, float]:
        """Contrast limits (low, high) for napari's linear ramp.

        LINEAR (PS3.3 C.11.2.1.2.1): output is minimal at or below
        c - 0.5 - (w-1)/2 and maximal above c - 0.5 + (w-1)/2.
        LINEAR_EXACT: c -/+ w/2.  SIGMOID is approximated by its linear
        central part (c -/+ w/2).
        """
        c, w = self.center, self.width
        if self.function.upper() == "LINEAR" and w >= 1:
            return c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
        return c - w / 2, c + w / 2


def windows_from(
    centers: Any, widths: Any, explanations: Iterable[str] | None = None, function: str | None = None
) -> list[Window]:
    """Pair up WindowCenter/WindowWidth values (multi-valued) into Windows."""
    if not centers or not widths:
        return []
    centers = list(centers) if isinstance(centers, (list, tuple)) else [centers]
    widths = list(widths) if isinstance(widths, (list, tuple)) else [widths]
    expl = list(explanations or [])
    out = []
    for i, (c, w) in enumerate(zip(centers, widths)):
        try:
            c, w = float(c), float(w)
        except (TypeError, ValueError):
            continue
        if w <= 0:
            continue
        out.append(Window(c, w, expl[i] if i < len(expl) else "", (function or "LINEAR").upper()))
    return out


def without_padding(a: np.ndarray, padding: tuple[float, float] | None) -> np.ndarray:
    """The values of ``a`` that are not pixel padding, flattened.

    ``padding`` is the inclusive [low, high] range of padding values in the units
    of ``a`` (from PixelPaddingValue / PixelPaddingRangeLimit).  Lossy compression
    smears padding (-3024 HU comes back as -3340..-2600), so when the padding lies
    below (above) the frame's median, values within a fifth of the way from the
    padding to the median are taken as padding too.
    """
    if padding is None or a.size == 0:
        return a
    lo, hi = padding
    flat = np.asarray(a).ravel()
    med = float(np.median(flat))
    if hi < med:
        return flat[flat > hi + 0.2 * (med - hi)]
    if lo > med:
        return flat[flat < lo - 0.2 * (lo - med)]
    return flat[(flat < lo) | (flat > hi)]


def percentile_limits(
    frame: np.ndarray, low: float = 1.0, high: float = 99.0, padding: tuple[float, float] | None = None
) -> tuple[float, float]:
    """Contrast limits from percentiles of one frame (never the whole volume), pixel padding excluded."""
    a = np.asarray(frame)
    if a.size > 4_000_000:  # subsample huge frames: percentiles barely move
        step = int(np.ceil(np.sqrt(a.size / 4_000_000)))
        a = a[::step, ::step]
    a = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    a = without_padding(a, padding)
    if a.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(a, [low, high])
    lo, hi = float(lo), float(hi)
    if hi <= lo:
        lo, hi = float(a.min()), float(a.max())
        if hi <= lo:
            hi = lo + 1
    return lo, hi


_INT_TYPES: list[type[np.integer[Any]]] = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64]


def smallest_int_dtype(lo: float, hi: float) -> np.dtype:
    for t in _INT_TYPES:
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return np.dtype(t)
    return np.dtype(np.float64)


def stored_range(bits: int, signed: bool) -> tuple[int, int]:
    bits = max(1, min(bits, 32))
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def rescaled_dtype(bits: int, signed: bool, rescales: Iterable[tuple[float, float]]) -> np.dtype:
    """Smallest dtype holding ``slope*stored+intercept`` for every (slope, intercept)."""
    lo, hi = stored_range(bits, signed)
    rescales = list(rescales) or [(1.0, 0.0)]
    ints = all(float(s).is_integer() and float(b).is_integer() for s, b in rescales)
    vals = []
    for s, b in rescales:
        vals += [s * lo + b, s * hi + b]
    if ints:
        return smallest_int_dtype(min(vals), max(vals))
    return np.dtype(np.float32)


# CT presets (center, width) in HU
CT_PRESETS = [
    ("Brain", 40, 80),
    ("Subdural", 75, 215),
    ("Stroke", 40, 40),
    ("Lung", -600, 1500),
    ("Mediastinum", 50, 350),
    ("Abdomen", 60, 400),
    ("Liver", 90, 150),
    ("Bone", 480, 2500),
    ("Angio", 300, 600),
]


def full_dynamic(frame: np.ndarray, padding: tuple[float, float] | None = None) -> tuple[float, float]:
    """(min, max) of one frame, pixel padding excluded."""
    a = np.asarray(frame)
    if a.dtype.kind == "f":
        a = a[np.isfinite(a)]
    a = without_padding(a, padding)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
    return (lo, hi if hi > lo else lo + 1)


def sigmoid_ramp(n: int = 64, span: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """VOI LUT Function SIGMOID (PS3.3 C.11.2.1.3.1) sampled over c ± span*w.

    Returns (controls in 0..1 across the contrast limits, gray levels 0..1).
    With contrast limits (c - span*w, c + span*w), control t maps to
    x = c + (2t - 1) * span * w and y = 1 / (1 + exp(-4 (x - c) / w)).
    """
    t = np.linspace(0.0, 1.0, n)
    z = (2 * t - 1) * span
    y = 1.0 / (1.0 + np.exp(-4.0 * z))
    y = (y - y[0]) / (y[-1] - y[0])
    return t, y


def window_limits(center: float, width: float, function: str = "LINEAR") -> tuple[float, float]:
    """napari contrast limits for a window (SIGMOID: the span its colormap covers)."""
    f = (function or "LINEAR").upper()
    if f == "SIGMOID":
        return center - 2.0 * width, center + 2.0 * width
    return Window(center, width, "", f).limits()
