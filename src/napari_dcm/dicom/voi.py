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


def percentile_limits(frame: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """Contrast limits from percentiles of one frame (never the whole volume)."""
    a = np.asarray(frame)
    if a.size > 4_000_000:  # subsample huge frames: percentiles barely move
        step = int(np.ceil(np.sqrt(a.size / 4_000_000)))
        a = a[::step, ::step]
    a = a[np.isfinite(a)] if a.dtype.kind == "f" else a
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


def full_dynamic(frame: np.ndarray) -> tuple[float, float]:
    a = np.asarray(frame)
    if a.dtype.kind == "f":
        a = a[np.isfinite(a)]
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


# --------------------------------------------------------------------------
# VOI LUT Sequence and Presentation LUT Shape (PS3.3 C.11.2, C.11.6)

LUT_SAMPLES = 1024  # vispy draws colormaps through a 1024-entry texture


def display_inverted(photometric: str | None, presentation_lut_shape: str | None) -> bool:
    """Whether an image shows inverted (low values white) on its own.

    MONOCHROME1 shows inverted; so does Presentation LUT Shape INVERSE (which
    the standard pairs with MONOCHROME1 in DX/MG/CR images: both together mean
    one inversion, not two).  A presentation state's own Presentation LUT
    decides instead when it is applied (see ``napari_dcm.dicom.presentation``).
    """
    return str(photometric or "").upper() == "MONOCHROME1" or str(presentation_lut_shape or "").upper() == "INVERSE"


def _lut_descriptor(item: Any, signed: bool) -> tuple[int, int, int]:
    desc = [int(x) for x in item.LUTDescriptor]
    if len(desc) != 3:
        raise ValueError(f"LUT Descriptor {desc} does not have 3 values")
    n = desc[0] or 65536
    first = desc[1]
    if signed and first > 32767:
        first -= 65536
    return n, first, desc[2]


def voi_luts(ds: Any) -> list[dict[str, Any]]:
    """The VOI LUT Sequence (0028,3010) of a header as presets for a colormap.

    Each LUT is sampled (through pydicom's ``apply_voi``) at up to
    ``LUT_SAMPLES`` input values evenly spread over its input range
    ``[lo, hi]`` (modality values); ``values`` are its outputs scaled to 0..1
    by the LUT's bit depth.  Input values below ``lo`` / above ``hi`` take the
    first / last entry, as the standard says.  A LUT pydicom cannot apply is
    left out (``problems``)."""
    from pydicom.pixels import apply_voi  # type: ignore[attr-defined]  # pydicom.pixels re-exports without __all__

    out: list[dict[str, Any]] = []
    seq = ds.get("VOILUTSequence") if ds is not None else None
    if not seq:
        return out
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    for i, item in enumerate(seq):
        try:
            n, first, bits = _lut_descriptor(item, signed)
            x = np.unique(np.round(np.linspace(first, first + n - 1, min(n, LUT_SAMPLES))).astype(np.int64))
            one = lut_dataset(ds)
            one.VOILUTSequence = [item]
            one.PixelRepresentation = 1 if signed else 0
            y = np.asarray(apply_voi(x, one, 0), dtype=np.float64) / float(2**bits - 1)
        except Exception as exc:  # a malformed LUT is left out; the image still shows
            out.append({"problem": f"VOI LUT {i + 1}: {type(exc).__name__}: {exc}"})
            continue
        expl = str(item.get("LUTExplanation", "") or "")
        out.append(
            {
                "label": f"VOI LUT {i + 1}" + (f": {expl}" if expl else ""),
                "lo": float(x[0]),
                "hi": float(x[-1]),
                "x": x.astype(float).tolist(),
                "values": np.clip(y, 0.0, 1.0).tolist(),
            }
        )
    return out


def _stepwise(lut: dict[str, Any]) -> bool:
    """A LUT sampled at every integer input (up to 512 of them): drawn as steps, one per input
    value, so that neighbouring values never blend (a scrambled LUT stays exact)."""
    x = lut.get("x")
    if not x or len(x) > 512:
        return False
    d = np.diff(np.asarray(x, dtype=np.float64))
    return bool(len(x) >= 2 and np.all(d == 1.0) and float(x[0]).is_integer())


def lut_limits(lut: dict[str, Any]) -> tuple[float, float]:
    """napari contrast limits for ``lut_colormap(lut)``: its input range (half a value wider
    for a stepwise LUT, whose steps are centred on the integer inputs)."""
    lo, hi = float(lut["lo"]), float(lut["hi"])
    if _stepwise(lut):
        return lo - 0.5, hi + 0.5
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def lut_colormap(lut: dict[str, Any], inverted: bool = False) -> dict[str, Any]:
    """A napari colormap (as the dict napari's ``ensure_colormap`` takes) drawing ``lut``
    over contrast limits ``lut_limits(lut)``: grey = LUT output (inverted: 1 - it)."""
    import hashlib

    y = np.asarray(lut["values"], dtype=np.float64)
    g = 1.0 - y if inverted else y
    if _stepwise(lut):
        edges = np.linspace(0.0, 1.0, len(g) + 1)  # one step per integer input value
        colors = np.column_stack([g, g, g, np.ones_like(g)])
        digest = hashlib.sha1(np.round(g, 5).tobytes() + b"zero").hexdigest()[:12]
        return {
            "colors": colors.tolist(),
            "controls": edges.tolist(),
            "name": f"voi-lut-{digest}",
            "interpolation": "zero",
        }
    lo, hi = lut_limits(lut)
    x = np.asarray(lut.get("x") or np.linspace(lo, hi, len(y)), dtype=np.float64)
    t = (x - lo) / (hi - lo)
    if len(t) > LUT_SAMPLES:  # resample: vispy keeps 1024 entries anyway
        tt = np.linspace(0.0, 1.0, LUT_SAMPLES)
        g, t = np.interp(tt, t, g), tt
    if len(t) < 2:
        t, g = np.array([0.0, 1.0]), np.array([g[0], g[0]] if len(g) else [0.0, 1.0])
    t[0], t[-1] = 0.0, 1.0
    colors = np.column_stack([g, g, g, np.ones_like(g)])
    digest = hashlib.sha1(np.round(g, 5).tobytes() + t.tobytes()).hexdigest()[:12]
    return {"colors": colors.tolist(), "controls": t.tolist(), "name": f"voi-lut-{digest}", "interpolation": "linear"}


def lut_dataset(src: Any) -> Any:
    """An empty Dataset that reads OW LUT data the way ``src`` was encoded (its byte order)."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

    out = Dataset()
    meta = FileMetaDataset()
    ts = getattr(getattr(src, "file_meta", None), "TransferSyntaxUID", None)
    meta.TransferSyntaxUID = ExplicitVRBigEndian if ts == ExplicitVRBigEndian else ExplicitVRLittleEndian
    out.file_meta = meta
    return out
