"""Patient geometry: slice order, spacing, scale and translate.

napari shows data in the image's own frame: axis 0 along the slice normal
(row x column direction cosines), axis 1 down the columns (row index), axis 2
along the rows (column index).  ``translate`` is the first frame's
ImagePositionPatient projected on those three axes, so series that share a
frame of reference and an orientation line up in napari.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def _unit(v: Sequence[float]) -> tuple[float, ...] | None:
    n = math.sqrt(sum(x * x for x in v))
    return tuple(x / n for x in v) if n > 0 else None


def normal(orientation: Sequence[float] | None) -> tuple[float, ...] | None:
    """Slice normal (row cosines x column cosines), or None."""
    if not orientation or len(orientation) != 6:
        return None
    r, c = orientation[:3], orientation[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    return _unit(n)


def orientation_key(orientation: Sequence[float] | None, tol: float = 1e-3) -> tuple[float, ...] | None:
    """A hashable key that equal orientations (within ``tol``) share."""
    if not orientation or len(orientation) != 6:
        return None
    return tuple(round(x / tol) * tol for x in orientation)


def project(position: Sequence[float] | None, orientation: Sequence[float] | None) -> tuple[float, float, float] | None:
    """(along normal, along column direction, along row direction) of a position."""
    if position is None or len(position) != 3:
        return None
    n = normal(orientation)
    if n is None or orientation is None:  # (normal() is None when orientation is)
        return None
    r, c = orientation[:3], orientation[3:]
    dot: Callable[[Sequence[float], Sequence[float]], float] = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    return dot(position, n), dot(position, c), dot(position, r)


def slice_spacing(distances: Sequence[float], fallback: float | None = None) -> tuple[float, bool]:
    """Spacing of sorted slice distances along the normal.

    Returns (spacing, uniform).  The median step is used; ``uniform`` is False
    when steps differ by more than 1 % (or 0.01 mm) from it, or positions repeat.
    """
    if len(distances) < 2:
        return (fallback or 1.0), True
    steps = [b - a for a, b in zip(distances, distances[1:])]
    s = sorted(abs(x) for x in steps)
    med = s[len(s) // 2]
    if med <= 1e-6:
        return (fallback or 1.0), False
    uniform = all(abs(abs(x) - med) <= max(0.01 * med, 0.01) for x in steps)
    return med, uniform


def in_plane_spacing(
    pixel_spacing: Sequence[float] | None, imager_pixel_spacing: Sequence[float] | None = None
) -> tuple[float, float] | None:
    """(row spacing, column spacing) in mm from PixelSpacing, else ImagerPixelSpacing."""
    for ps in (pixel_spacing, imager_pixel_spacing):
        if ps and len(ps) >= 2 and ps[0] > 0 and ps[1] > 0:
            return float(ps[0]), float(ps[1])
    return None
