"""Segmentations (SEG, binary / fractional / label map) and Parametric Maps as arrays.

Pixels are read with napari-dcm's own frame decoders rather than highdicom:
highdicom goes through pydicom's pixel handling, which cannot decode 1-bit
RLE SEG frames or the deflated image-frame syntax; both decode here.  Each
stored frame comes with the image (SOP Instance UID, 1-based frame) it was
derived from, so the layer builders can place it on the right display frame.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LABEL_MAP_SEG = "1.2.840.10008.5.1.4.1.1.66.7"


def read_header(path: str) -> Any:
    """The pydicom header of an object (no pixel data)."""
    from .scan import read_dataset  # bounded: refuses FIFOs, never inflates a whole deflated file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_dataset(path)


def stored_frames(path: str) -> np.ndarray:
    """All stored frames of an object, in stored order, through napari-dcm's decoders."""
    from .scan import scan_header
    from .series import stacks_from_headers
    from .volume import stack_array

    h = scan_header(path)
    if (h.values.get("photometric") or "").upper() == "PALETTE COLOR":
        h.values["photometric"] = "MONOCHROME2"  # label maps: the stored indices, not the palette's colours
        h.needs_dataset = False
    stacks, skipped = stacks_from_headers([h])
    if not stacks:
        raise ValueError(skipped[0][1] if skipped else "no frames")
    st = stacks[0]
    check_layer_size(st.nframes, st.shape, st.dtype, path)
    arr = np.asarray(stack_array(st, force_3d=True).compute())  # type: ignore[no-untyped-call]  # dask's compute() has no annotations
    order = np.argsort([f.ref.index for f in st.frames])
    return arr[order]


def check_layer_size(nframes: int, shape: tuple[int, ...], dtype: Any, path: str) -> None:
    """Refuse to read a whole object larger than the layer budget (``limits.max_layer_bytes``)."""
    from .limits import LIMITS

    need = nframes * int(np.prod(shape)) * np.dtype(dtype).itemsize
    if need > LIMITS.max_layer_bytes:
        raise ValueError(
            f"{os.path.basename(path)}: {nframes} frames of {shape} ({need / 2**30:.1f} GiB) are too large to read "
            f"whole (the layer budget is {LIMITS.max_layer_bytes / 2**30:.1f} GiB; see NAPARI_DCM_MAX_LAYER_MB)"
        )


def functional_group(ds: Any, i: int, seq: str) -> Any:
    """Item of macro ``seq`` for stored frame ``i`` (per-frame, else shared), or None."""
    pf = ds.get("PerFrameFunctionalGroupsSequence")
    if pf is not None and i < len(pf) and pf[i].get(seq):
        return pf[i].get(seq)[0]
    sh = ds.get("SharedFunctionalGroupsSequence")
    if sh and sh[0].get(seq):
        return sh[0].get(seq)[0]
    return None


def _frame_numbers(v: Any) -> list[int] | None:
    if v is None or v == "":
        return None
    if isinstance(v, (list, tuple)) or (hasattr(v, "__iter__") and not isinstance(v, str)):
        return [int(x) for x in v]
    return [int(v)]


def source_of_frame(ds: Any, i: int) -> tuple[str | None, int | None]:
    """(SOP Instance UID, 1-based frame or None) of the image stored frame ``i`` was derived from."""
    der = functional_group(ds, i, "DerivationImageSequence")
    if der is not None:
        for src in der.get("SourceImageSequence", []) or []:
            fr = _frame_numbers(src.get("ReferencedFrameNumber"))
            return str(src.ReferencedSOPInstanceUID), (fr[0] if fr else None)
    return None, None


def lab_to_rgb(lab: list[int] | tuple[int, ...]) -> tuple[float, float, float]:
    """DICOM CIELab (0..65535 scaled, PS3.3 C.10.7.1.1) -> sRGB 0..1 (D65)."""
    L = lab[0] / 65535 * 100
    a = lab[1] / 65535 * 255 - 128
    b = lab[2] / 65535 * 255 - 128
    fy = (L + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def finv(t: float) -> float:
        return t**3 if t**3 > 0.008856 else (t - 16 / 116) / 7.787

    X, Y, Z = 0.95047 * finv(fx), 1.0 * finv(fy), 1.08883 * finv(fz)
    r = 3.2406 * X - 1.5372 * Y - 0.4986 * Z
    g = -0.9689 * X + 1.8758 * Y + 0.0415 * Z
    bb = 0.0557 * X - 0.2040 * Y + 1.0570 * Z

    def gamma(c: float) -> float:
        c = max(0.0, min(1.0, c))
        return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055

    return gamma(r), gamma(g), gamma(bb)


# --------------------------------------------------------------------------
# SEG


@dataclass
class Segment:
    number: int
    label: str
    color: tuple[float, float, float] | None = None  # sRGB 0..1 from RecommendedDisplayCIELabValue


@dataclass
class SegFrame:
    """One stored frame: where it applies and what it labels."""

    source_uid: str | None
    source_frame: int | None  # 1-based, None: every frame of the source
    mask: np.ndarray  # bool (rows, cols)
    values: np.ndarray  # uint16 label of every pixel (meaningful where mask)


@dataclass
class Segmentation:
    path: str
    title: str
    segments: dict[int, Segment]
    frames: list[SegFrame] = field(default_factory=list)
    labels: np.ndarray | None = None  # (stored frames, rows, cols) uint16: the object on its own

    @property
    def names(self) -> dict[int, str]:
        return {n: s.label for n, s in self.segments.items()}


def read_segmentation(path: str) -> Segmentation:
    """A SEG object: segments (labels, colours) and every frame's mask, label values and source."""
    frames = stored_frames(path)
    ds = read_header(path)
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    labelmap = str(ds.get("SOPClassUID")) == LABEL_MAP_SEG
    maxfrac = float(ds.get("MaximumFractionalValue", 255) or 255)
    segments = {}
    for s in ds.get("SegmentSequence", []) or []:
        n = int(s.SegmentNumber)
        lab = s.get("RecommendedDisplayCIELabValue")
        color = lab_to_rgb([int(v) for v in lab]) if lab else None
        segments[n] = Segment(n, str(s.get("SegmentLabel", f"segment {n}")), color)
    seg = Segmentation(path, str(ds.get("SeriesDescription", "") or "SEG"), segments)
    own = np.zeros(frames.shape, dtype=np.uint16)
    for i in range(frames.shape[0]):
        sid = functional_group(ds, i, "SegmentIdentificationSequence")
        seg_no = int(sid.ReferencedSegmentNumber) if sid is not None else 1
        f = frames[i]
        if labelmap:
            mask, values = f > 0, f.astype(np.uint16)
        else:
            mask = (f / maxfrac >= 0.5) if seg_type == "FRACTIONAL" else f > 0
            values = np.full(f.shape, seg_no, np.uint16)
        own[i][mask] = values[mask]
        uid, fr = source_of_frame(ds, i)
        seg.frames.append(SegFrame(uid, fr, mask, values))
    seg.labels = own
    return seg


# --------------------------------------------------------------------------
# Parametric maps


@dataclass
class ParametricMap:
    path: str
    title: str
    values: np.ndarray  # (stored frames, rows, cols) float32, real-world values
    units: str
    sources: list[tuple[str | None, int | None]]  # per stored frame: (SOP uid, 1-based frame)
    limits: tuple[float, float]  # 1st / 99th percentiles of the finite values


def read_parametric_map(path: str) -> ParametricMap:
    """A Parametric Map: real-world values (RWV mapping applied), units and each frame's source."""
    frames = stored_frames(path).astype(np.float32)
    ds = read_header(path)
    rwv = functional_group(ds, 0, "RealWorldValueMappingSequence")
    units = ""
    if rwv is not None:
        s = float(rwv.get("RealWorldValueSlope", 1) or 1)
        b = float(rwv.get("RealWorldValueIntercept", 0) or 0)
        frames = frames * s + b
        u = rwv.get("MeasurementUnitsCodeSequence")
        units = str(u[0].get("CodeValue", "")) if u else ""
    finite = frames[np.isfinite(frames)]
    lo, hi = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1
    sources: list[tuple[str | None, int | None]] = []
    for i in range(frames.shape[0]):
        uid, fr = source_of_frame(ds, i)
        if not uid and i == 0:
            ref = (ds.get("ReferencedImageSequence") or [None])[0]
            uid = str(ref.ReferencedSOPInstanceUID) if ref is not None else None
        sources.append((uid, fr))
    title = str(ds.get("SeriesDescription", "") or "Parametric map")
    return ParametricMap(path, title or os.path.basename(path), frames, units, sources, (lo, hi))
