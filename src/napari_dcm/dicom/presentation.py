"""What a Grayscale Softcopy Presentation State says about how to show its images.

Beside its graphics (:mod:`napari_dcm.dicom.overlays`) a presentation state
carries:

* a grayscale pipeline (PS3.4 N.2): its own Modality LUT / rescale, VOI LUT
  or window (per image), and Presentation LUT (a shape, IDENTITY or
  INVERSE, or a table).  :func:`grayscale_lut` samples the whole pipeline
  (pydicom applies each table) into one LUT over the image's values, drawn
  as a colormap; the image's own MONOCHROME1 / Presentation LUT Shape are
  then not used, the state's Presentation LUT decides;
* display shutters (PS3.3 C.7.6.11, C.7.6.15): rectangular, circular and
  polygonal shapes (pixels outside any of them are shuttered) and a bitmap
  (an overlay plane of the state: its set pixels are shuttered), shown in
  the Shutter Presentation Value;
* a spatial transformation (C.10.6): rotation clockwise by 90/180/270, then
  a horizontal flip;
* a displayed area (C.10.4): the region of the image (in pixels before the
  spatial transformation) to fit to the view, or a magnification.

Pure functions (numpy, pydicom); ``napari_dcm.layers.overlays`` makes layers
and layer transforms of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydicom import Dataset

from .voi import LUT_SAMPLES, Window, lut_dataset


class PresentationError(ValueError):
    """A malformed part of a presentation state (the message names it)."""


def _applies(item: Any, sop_uid: str, frame: int | None = None) -> bool:
    """Whether a sequence item with an optional Referenced Image Sequence applies to an image."""
    refs = item.get("ReferencedImageSequence")
    if not refs:
        return True
    for r in refs:
        if str(r.get("ReferencedSOPInstanceUID", "")) == sop_uid:
            fr = r.get("ReferencedFrameNumber")
            if fr in (None, "") or frame is None:
                return True
            frames = [int(x) for x in (fr if hasattr(fr, "__iter__") and not isinstance(fr, str) else [fr])]
            if frame in frames:
                return True
    return False


def _item_for(ds: Dataset, seq_name: str, sop_uid: str) -> Any | None:
    for item in ds.get(seq_name) or []:
        if _applies(item, sop_uid):
            return item
    return None


# --------------------------------------------------------------------------
# grayscale pipeline


def has_grayscale(ds: Dataset, sop_uid: str) -> bool:
    """Whether the state says more than a plain window with an IDENTITY Presentation LUT."""
    voi_item = _item_for(ds, "SoftcopyVOILUTSequence", sop_uid)
    shape = str(ds.get("PresentationLUTShape", "") or "").upper()
    return bool(
        ds.get("ModalityLUTSequence")
        or (voi_item is not None and voi_item.get("VOILUTSequence"))
        or ds.get("PresentationLUTSequence")
        or shape == "INVERSE"
    )


def grayscale_lut(
    ds: Dataset,
    sop_uid: str,
    rescale: tuple[float, float] | None,
    value_range: tuple[float, float],
    label: str,
) -> dict[str, Any]:
    """The state's grayscale pipeline for one image as a LUT over the image's values.

    ``rescale``: the image's own (slope, intercept), which made its values from the
    stored ones (a state's Modality LUT replaces it and applies to stored values);
    ``value_range``: the image's possible values, sampled when nothing narrower is
    known.  Returns {"label", "lo", "hi", "x", "values" (0..1 display grey),
    "presentation": True}."""
    from pydicom.pixels import (  # type: ignore[attr-defined]  # pydicom.pixels re-exports without __all__
        apply_modality_lut,
        apply_presentation_lut,
        apply_voi,
    )

    slope, intercept = rescale or (1.0, 0.0)
    mlut = ds.get("ModalityLUTSequence")
    voi_item = _item_for(ds, "SoftcopyVOILUTSequence", sop_uid)
    vlut = voi_item.get("VOILUTSequence") if voi_item is not None else None
    windows: list[Window] = []
    if voi_item is not None and not vlut:
        from .voi import windows_from

        windows = windows_from(
            _list(voi_item.get("WindowCenter")),
            _list(voi_item.get("WindowWidth")),
            _list(voi_item.get("WindowCenterWidthExplanation")),
            str(voi_item.get("VOILUTFunction", "") or "LINEAR"),
        )
    # the input range to sample (image values)
    if mlut:
        d = [int(v) for v in mlut[0].LUTDescriptor]
        n, first = (d[0] or 65536), d[1]
        lo, hi = slope * first + intercept, slope * (first + n - 1) + intercept
        count = n
    elif vlut:
        d = [int(v) for v in vlut[0].LUTDescriptor]
        n, first = (d[0] or 65536), d[1]
        lo, hi, count = float(first), float(first + n - 1), n
    elif windows:
        lo, hi = windows[0].limits()
        count = LUT_SAMPLES
    else:
        lo, hi = value_range
        count = LUT_SAMPLES
    if hi < lo:
        lo, hi = hi, lo
    x = np.linspace(lo, hi, int(min(max(count, 2), LUT_SAMPLES)))
    # tables take integer inputs: sample integers (exact for up to LUT_SAMPLES entries)
    x = np.unique(np.round(x) if (mlut or vlut) and slope == 1 and float(intercept).is_integer() else np.round(x, 6))
    # modality: the state's table or rescale on stored values, else the image's values as they are
    if mlut:
        stored = np.round((x - intercept) / slope).astype(np.int64)
        mds = lut_dataset(ds)
        mds.ModalityLUTSequence = mlut
        mds.PixelRepresentation = 0
        m = np.asarray(apply_modality_lut(stored, mds), dtype=np.float64)
    elif ds.get("RescaleSlope") is not None:
        stored_f = (x - intercept) / slope
        m = np.asarray(stored_f * float(ds.RescaleSlope) + float(ds.get("RescaleIntercept", 0) or 0), dtype=np.float64)
    else:
        m = np.asarray(x, dtype=np.float64)
    # VOI: a table, a window, or the whole sampled range
    if vlut:
        vds = lut_dataset(ds)
        vds.VOILUTSequence = vlut
        vds.PixelRepresentation = 0
        bits = int(vlut[0].LUTDescriptor[2])
        voi_out = np.asarray(apply_voi(np.round(m).astype(np.int64), vds, 0), dtype=np.float64)
        v = voi_out / float(2**bits - 1)
    elif windows:
        w = windows[0]
        wlo, whi = w.limits()
        if w.function.upper() == "SIGMOID":
            v = 1.0 / (1.0 + np.exp(-4.0 * (m - w.center) / w.width))
        else:
            v = (m - wlo) / (whi - wlo) if whi > wlo else (m >= whi).astype(float)
        voi_out = None
    else:
        mlo, mhi = float(np.min(m)), float(np.max(m))
        v = (m - mlo) / (mhi - mlo) if mhi > mlo else np.zeros_like(m)
        voi_out = None
    v = np.clip(v, 0.0, 1.0)
    # presentation: a table, or the shape
    plut = ds.get("PresentationLUTSequence")
    if plut:
        d = [int(val) for val in plut[0].LUTDescriptor]
        n = d[0] or 65536
        pin = (
            voi_out
            if (voi_out is not None and vlut is not None and int(vlut[0].LUTDescriptor[2]) == int(np.log2(n)))
            else v * (n - 1)
        )
        pds = lut_dataset(ds)
        pds.PresentationLUTSequence = plut
        p = np.asarray(apply_presentation_lut(np.round(pin).astype(np.int64), pds), dtype=np.float64)
        v = p / float(2 ** int(d[2]) - 1)
    elif str(ds.get("PresentationLUTShape", "") or "").upper() == "INVERSE":
        v = 1.0 - v
    return {
        "label": label,
        "lo": float(x[0]),
        "hi": float(x[-1]),
        "x": x.astype(float).tolist(),
        "values": np.clip(v, 0.0, 1.0).tolist(),
        "presentation": True,
    }


def _list(v: Any) -> list[Any] | None:
    if v is None or v == "":
        return None
    return list(v) if hasattr(v, "__iter__") and not isinstance(v, str) else [v]


# --------------------------------------------------------------------------
# shutters, spatial transformation, displayed area


@dataclass
class Shutter:
    shapes: list[str] = field(default_factory=list)  # RECTANGULAR, CIRCULAR, POLYGONAL, BITMAP
    rect: tuple[int, int, int, int] | None = None  # left, right, upper, lower (1-based columns/rows, inclusive)
    circle: tuple[float, float, float] | None = None  # center row, center column (1-based), radius
    polygon: list[tuple[float, float]] | None = None  # (row, column) vertices, 1-based
    bitmap_group: int | None = None
    value: float = 0.0  # Shutter Presentation Value, 0..1 of the P-value range


@dataclass
class Display:
    shutter: Shutter | None = None
    rotation: int = 0  # clockwise degrees
    flip: bool = False  # horizontal, after the rotation
    area: tuple[tuple[float, float], tuple[float, float]] | None = None  # ((row, col) top-left, bottom-right), 1-based
    size_mode: str = "SCALE TO FIT"
    magnification: float | None = None
    problems: list[str] = field(default_factory=list)


def _nums(v: Any) -> list[float]:
    if v is None or v == "":
        return []
    vals = list(v) if hasattr(v, "__iter__") and not isinstance(v, str) else [v]
    return [float(x) for x in vals]


def shutter_of(ds: Dataset) -> Shutter | None:
    """The display shutter of a state (None without one); raises PresentationError."""
    raw = ds.get("ShutterShape")
    if raw in (None, ""):
        return None
    shapes = [str(s).upper() for s in (raw if hasattr(raw, "__iter__") and not isinstance(raw, str) else [raw])]
    sh = Shutter(shapes=shapes)
    try:
        if "RECTANGULAR" in shapes:
            vals = [
                ds.get(k)
                for k in (
                    "ShutterLeftVerticalEdge",
                    "ShutterRightVerticalEdge",
                    "ShutterUpperHorizontalEdge",
                    "ShutterLowerHorizontalEdge",
                )
            ]
            if any(v in (None, "") for v in vals):
                raise PresentationError("rectangular shutter: an edge is missing")
            left, right, upper, lower = (int(v) for v in vals)
            if right < left or lower < upper:
                raise PresentationError(f"rectangular shutter: edges {left}-{right} x {upper}-{lower} are inverted")
            sh.rect = (left, right, upper, lower)
        if "CIRCULAR" in shapes:
            c = _nums(ds.get("CenterOfCircularShutter"))
            r = _nums(ds.get("RadiusOfCircularShutter"))
            if len(c) != 2 or len(r) != 1 or r[0] <= 0:
                raise PresentationError(f"circular shutter: center {c} / radius {r} invalid")
            sh.circle = (c[0], c[1], r[0])
        if "POLYGONAL" in shapes:
            v = _nums(ds.get("VerticesOfThePolygonalShutter"))
            if len(v) < 6 or len(v) % 2:
                raise PresentationError(
                    f"polygonal shutter: {len(v)} vertex values (needs row/column pairs, 3 or more)"
                )
            sh.polygon = [(v[i], v[i + 1]) for i in range(0, len(v), 2)]
        if "BITMAP" in shapes:
            g = ds.get("ShutterOverlayGroup")
            if g in (None, ""):
                raise PresentationError("bitmap shutter: no Shutter Overlay Group")
            sh.bitmap_group = int(g)
        unknown = [s for s in shapes if s not in ("RECTANGULAR", "CIRCULAR", "POLYGONAL", "BITMAP")]
        if unknown:
            raise PresentationError(f"unknown shutter shape {unknown[0]!r}")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PresentationError):
            raise
        raise PresentationError(f"shutter: {exc}") from None
    pv = ds.get("ShutterPresentationValue")
    if pv not in (None, ""):
        sh.value = float(pv) / 65535.0
    return sh


def shutter_mask(sh: Shutter, shape: tuple[int, int], bitmap: np.ndarray | None = None) -> np.ndarray:
    """uint8 (rows, columns): 1 where the shutter hides the image (outside every shape,
    or set in the bitmap), 0 where the image shows."""
    rows, cols = shape
    visible = np.ones(shape, bool)
    rr = np.arange(1, rows + 1, dtype=np.float64)[:, None]  # 1-based pixel centres
    cc = np.arange(1, cols + 1, dtype=np.float64)[None, :]
    if sh.rect is not None:
        left, right, upper, lower = sh.rect
        visible &= (rr >= upper) & (rr <= lower) & (cc >= left) & (cc <= right)
    if sh.circle is not None:
        cy, cx, r = sh.circle
        visible &= (rr - cy) ** 2 + (cc - cx) ** 2 <= r * r
    if sh.polygon is not None:
        visible &= polygon_inside(sh.polygon, shape)
    hidden = ~visible
    if bitmap is not None:
        hidden |= bitmap.astype(bool)
    return hidden.astype(np.uint8)


def polygon_inside(vertices: list[tuple[float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Pixels (1-based centres) inside a polygon of (row, column) vertices (even-odd rule), by scanlines."""
    rows, cols = shape
    out = np.zeros(shape, bool)
    v = np.asarray(vertices, dtype=np.float64)
    y0, x0 = v[:, 0], v[:, 1]
    y1, x1 = np.roll(y0, -1), np.roll(x0, -1)
    cc = np.arange(1, cols + 1, dtype=np.float64)
    for r in range(rows):
        y = r + 1.0
        crosses = (y0 <= y) != (y1 <= y)
        if not crosses.any():
            continue
        xs = x0[crosses] + (y - y0[crosses]) * (x1[crosses] - x0[crosses]) / (y1[crosses] - y0[crosses])
        xs.sort()
        for a, b in zip(xs[0::2], xs[1::2]):
            out[r] |= (cc >= a) & (cc <= b)
    return out


def display_of(ds: Dataset, sop_uid: str) -> Display:
    """Shutter, spatial transformation and displayed area of a state for one image;
    a malformed part is left out and named in ``problems``."""
    out = Display()
    try:
        out.shutter = shutter_of(ds)
    except PresentationError as exc:
        out.problems.append(str(exc))
    rot = ds.get("ImageRotation")
    if rot not in (None, ""):
        try:
            r = int(rot)
            if r not in (0, 90, 180, 270):
                raise ValueError
            out.rotation = r
        except (TypeError, ValueError):
            out.problems.append(f"spatial transformation: Image Rotation {rot!r} is not 0, 90, 180 or 270")
    out.flip = str(ds.get("ImageHorizontalFlip", "") or "").upper() == "Y"
    item = _item_for(ds, "DisplayedAreaSelectionSequence", sop_uid)
    if item is not None:
        tl = _nums(item.get("DisplayedAreaTopLeftHandCorner"))
        br = _nums(item.get("DisplayedAreaBottomRightHandCorner"))
        if len(tl) == 2 and len(br) == 2:
            # the values are column\row
            out.area = ((tl[1], tl[0]), (br[1], br[0]))
        elif tl or br:
            out.problems.append(f"displayed area: corners {tl} / {br} are not column/row pairs")
        out.size_mode = str(item.get("PresentationSizeMode", "") or "SCALE TO FIT").upper()
        mag = item.get("PresentationPixelMagnificationRatio")
        if mag not in (None, ""):
            try:
                out.magnification = float(mag)
            except (TypeError, ValueError):
                out.problems.append(f"displayed area: magnification {mag!r}")
    return out


def spatial_matrix(rotation: int, flip: bool, rows: int, cols: int) -> np.ndarray:
    """3x3 affine on (row, column) data coordinates: rotate the image clockwise by
    ``rotation`` degrees about its centre, then flip it horizontally; the result
    keeps the image's top-left corner at the origin (pixel centres at integers)."""
    k = (rotation // 90) % 4
    # clockwise on screen (rows down, columns right): (r, c) -> (c, -r)
    rot = np.array([[0.0, 1.0], [-1.0, 0.0]])
    m = np.linalg.matrix_power(rot, k)
    if flip:
        m = np.array([[1.0, 0.0], [0.0, -1.0]]) @ m
    # put the transformed image's box back at [-0.5, n - 0.5]
    corners = np.array([[-0.5, -0.5], [-0.5, cols - 0.5], [rows - 0.5, -0.5], [rows - 0.5, cols - 0.5]])
    t = corners @ m.T
    shift = -0.5 - t.min(axis=0)
    out = np.eye(3)
    out[:2, :2] = m
    out[:2, 2] = shift
    return out
