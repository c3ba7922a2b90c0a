"""60xx overlay planes (PS3.3 C.9.2, C.9.3): bitmaps drawn over an image.

An image (or a presentation state that activates them) may carry up to 16
overlay planes in the repeating groups 6000-601E.  Each has Overlay Rows /
Columns, an Overlay Origin (row, column of its top-left pixel on the image,
1-based, possibly outside the image), and its bits either in Overlay Data
(60xx,3000: one bit per pixel, packed little-endian like pydicom's
``Dataset.overlay_array`` reads them) or, retired but still found in CR/DX
and old MR files, in an unused high bit (Overlay Bit Position) of the pixel
data itself.  A multi-frame overlay (Number of Frames in Overlay) applies
frame by frame from Image Frame Origin (1 when absent).

Pure functions (numpy, pydicom for headers); napari_dcm.layers.overlays turns
the planes into lazy layers: an overlay in Overlay Data costs nothing more
than the header, an embedded one is read from its frame's stored bytes only
when that frame is shown.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydicom import Dataset

    from .imagepixel import PixelDesc
    from .sources import EncodedFrame, FrameRef

GROUPS = tuple(range(0x6000, 0x6020, 2))


class OverlayError(ValueError):
    """A malformed overlay plane (the message names the group and the reason)."""


@dataclass(frozen=True)
class OverlayPlane:
    group: int  # 0x6000 ... 0x601E
    rows: int
    columns: int
    origin: tuple[int, int]  # (row, column) of the overlay's top-left pixel on the image, 1-based
    bits_allocated: int  # 1 for Overlay Data; 8/16/... for a plane embedded in the pixel data
    bit_position: int  # embedded: the bit of every pixel value holding the overlay
    type: str = "G"  # G (graphics) or R (ROI)
    n_frames: int = 1  # Number of Frames in Overlay
    frame_origin: int = 1  # Image Frame Origin (1-based)
    description: str = ""
    label: str = ""
    data: bytes | None = None  # Overlay Data (None: embedded in the pixel data)
    activation_layer: str = ""  # Overlay Activation Layer (presentation states)

    @property
    def embedded(self) -> bool:
        return self.data is None

    @property
    def name(self) -> str:
        return f"overlay {self.group:04X}"

    def overlay_frame(self, image_frame: int) -> int | None:
        """The overlay frame (0-based) drawn on stored image frame ``image_frame`` (0-based), or None."""
        k = image_frame - (self.frame_origin - 1)
        return k if 0 <= k < self.n_frames else None

    def bits(self, k: int = 0) -> np.ndarray:
        """Overlay frame ``k`` of an Overlay Data plane as (rows, columns) uint8 0/1."""
        if self.data is None:
            raise OverlayError(f"{self.name}: embedded in the pixel data (read it from the frame)")
        n = self.rows * self.columns
        flat = np.unpackbits(np.frombuffer(self.data, np.uint8), bitorder="little")
        if flat.size < n * (k + 1):
            raise OverlayError(f"{self.name}: Overlay Data holds {flat.size} bits, frame {k + 1} needs {n * (k + 1)}")
        return flat[n * k : n * (k + 1)].reshape(self.rows, self.columns)


def _int(v: Any, default: int | None = None) -> int | None:
    if v is None or v == "":
        return default
    if isinstance(v, (list, tuple)) or (hasattr(v, "__iter__") and not isinstance(v, (str, bytes))):
        v = list(v)[0] if len(list(v)) else default
    try:
        return int(v) if v is not None else default
    except (TypeError, ValueError):
        return default


def plane_from_dataset(ds: Dataset, group: int, bulk_pending: bool = False) -> OverlayPlane:
    """The overlay plane of ``group``; raises OverlayError naming what is wrong.

    ``bulk_pending``: a DICOMweb header whose Overlay Data was left out as bulk data
    (fetched when the plane is first drawn)."""
    name = f"overlay {group:04X}"

    def el(elem: int) -> Any:
        e = ds.get((group << 16) | elem)
        return None if e is None else e.value

    rows, cols = _int(el(0x0010)), _int(el(0x0011))
    if not rows or not cols or rows < 0 or cols < 0:
        raise OverlayError(f"{name}: Overlay Rows/Columns missing or not positive ({rows} x {cols})")
    origin = el(0x0050)
    try:
        o = [int(x) for x in (origin if isinstance(origin, (list, tuple)) or hasattr(origin, "__iter__") else [])]
    except (TypeError, ValueError):
        o = []
    if len(o) != 2:
        raise OverlayError(f"{name}: Overlay Origin {origin!r} is not a (row, column) pair")
    bits_alloc = _int(el(0x0100), 1) or 1
    bit_pos = _int(el(0x0102), 0) or 0
    n_frames = _int(el(0x0015), 1) or 1
    frame_origin = _int(el(0x0051), 1) or 1
    data = el(0x3000)
    if bulk_pending and bits_alloc == 1 and not data:
        data = b""
    if data is not None and not isinstance(data, (bytes, bytearray)):
        raise OverlayError(f"{name}: Overlay Data is not binary")
    if data is None:
        if bits_alloc == 1:
            raise OverlayError(f"{name}: no Overlay Data and Overlay Bits Allocated is 1 (nothing to draw)")
        if not 0 <= bit_pos < bits_alloc:
            raise OverlayError(f"{name}: Overlay Bit Position {bit_pos} outside {bits_alloc} allocated bits")
    elif bits_alloc != 1:
        raise OverlayError(f"{name}: Overlay Data with Overlay Bits Allocated {bits_alloc} (must be 1)")
    else:
        need = rows * cols * n_frames
        if len(data) * 8 < need and len(data) > 0:
            raise OverlayError(
                f"{name}: Overlay Data holds {len(data) * 8} bits, {rows} x {cols} x {n_frames} need {need}"
            )
    if n_frames < 1 or frame_origin < 1:
        raise OverlayError(f"{name}: Number of Frames in Overlay {n_frames} / Image Frame Origin {frame_origin}")
    return OverlayPlane(
        group=group,
        rows=rows,
        columns=cols,
        origin=(o[0], o[1]),
        bits_allocated=bits_alloc,
        bit_position=bit_pos,
        type=str(el(0x0040) or "G"),
        n_frames=n_frames,
        frame_origin=frame_origin,
        description=str(el(0x0022) or ""),
        label=str(el(0x1500) or ""),
        data=bytes(data) if data is not None else None,
        activation_layer=str(el(0x1001) or ""),
    )


def groups_in(ds: Dataset) -> list[int]:
    """The overlay groups a dataset has (by Overlay Rows, Columns or Data)."""
    return [g for g in GROUPS if any(((g << 16) | e) in ds for e in (0x0010, 0x0011, 0x3000))]


def planes_from_dataset(ds: Dataset, bulk_pending: bool = False) -> tuple[list[OverlayPlane], list[tuple[int, str]]]:
    """Every overlay plane of a dataset, and [(group, reason)] for the malformed ones."""
    planes, problems = [], []
    for g in groups_in(ds):
        try:
            planes.append(plane_from_dataset(ds, g, bulk_pending))
        except OverlayError as exc:
            problems.append((g, str(exc)))
    return planes, problems


def activated_groups(ds: Dataset) -> dict[int, str]:
    """Groups a presentation state activates: {group: Overlay Activation Layer}."""
    out = {}
    for g in GROUPS:
        e = ds.get((g << 16) | 0x1001)
        if e is not None and e.value not in (None, ""):
            out[g] = str(e.value)
    return out


def embedded_bits(enc: EncodedFrame, desc: PixelDesc, bit: int) -> np.ndarray:
    """Bit ``bit`` of every stored pixel value of a native frame, as (rows, columns) uint8 0/1.

    The bits come from the stored bytes, before napari-dcm (and pydicom) mask
    the pixel values to Bits Stored."""
    from .scan import EXPLICIT_BE, NATIVE_SYNTAXES

    if enc.transfer_syntax not in NATIVE_SYNTAXES:
        raise OverlayError(
            f"overlay in bit {bit} of compressed pixel data ({enc.transfer_syntax}): embedded overlays need native pixel data"
        )
    nbytes = desc.bits_allocated // 8
    if nbytes not in (1, 2, 4) or desc.samples_per_pixel != 1:
        raise OverlayError(f"overlay in bit {bit} of {desc.bits_allocated}-bit, {desc.samples_per_pixel}-sample pixels")
    n = desc.rows * desc.columns
    raw = np.frombuffer(enc.data, np.uint8)
    start = enc.index * n * nbytes if enc.nframes > 1 else 0
    if raw.size < start + n * nbytes:
        raise OverlayError(f"overlay in bit {bit}: frame holds {raw.size - start} of {n * nbytes} bytes")
    dt = np.dtype(f"{'>' if enc.transfer_syntax == EXPLICIT_BE and nbytes > 1 else '<'}u{nbytes}")
    values = raw[start : start + n * nbytes].view(dt).reshape(desc.rows, desc.columns)
    return ((values >> bit) & 1).astype(np.uint8)


def place(bits: np.ndarray, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """An overlay bitmap on the image's pixel grid (rows, columns): its top-left pixel at
    ``origin`` (1-based row, column); the parts outside the image are cut off."""
    out = np.zeros(shape, np.uint8)
    r0, c0 = origin[0] - 1, origin[1] - 1
    rows, cols = bits.shape
    y0, x0 = max(0, r0), max(0, c0)
    y1, x1 = min(shape[0], r0 + rows), min(shape[1], c0 + cols)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = bits[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0]
    return out


def frame_mask(
    plane: OverlayPlane,
    image_frame: int,
    shape: tuple[int, int],
    ref: FrameRef | None = None,
    desc: PixelDesc | None = None,
) -> np.ndarray:
    """The plane drawn on stored image frame ``image_frame`` (0-based) of an image of
    ``shape``: uint8 0/1 on the image's pixel grid (all zero when it does not apply)."""
    k = plane.overlay_frame(image_frame)
    if k is None:
        return np.zeros(shape, np.uint8)
    if plane.embedded:
        if ref is None or desc is None:
            raise OverlayError(f"{plane.name}: embedded in the pixel data, but no frame to read it from")
        bits = embedded_bits(ref.read(), desc, plane.bit_position)
        bits = bits[: plane.rows, : plane.columns]
    else:
        bits = plane.bits(k)
    return place(bits, plane.origin, shape)


# --------------------------------------------------------------------------
# headers: a file's, or a DICOMweb instance's (its metadata, the bulk data fetched)


@functools.lru_cache(maxsize=64)
def planes_of(path: str) -> tuple[tuple[OverlayPlane, ...], tuple[tuple[int, str], ...]]:
    """The overlay planes of a file or DICOMweb instance (by its frame key), cached."""
    from .tags import read_header

    ds = read_header(path)
    if "://" in path:
        _fetch_bulk(path, ds)
    planes, problems = planes_from_dataset(ds)
    return tuple(planes), tuple(problems)


def _fetch_bulk(key: str, ds: Dataset) -> None:
    """DICOMweb metadata leaves Overlay Data out (bulk data): fetch it where a plane needs it."""
    from .dicomweb import bulk_element

    for g in groups_in(ds):
        tag = (g << 16) | 0x3000
        bits = ds.get((g << 16) | 0x0100)
        if tag in ds and ds[tag].value:
            continue
        if bits is not None and _int(bits.value, 1) != 1:
            continue  # embedded in the pixel data
        try:
            value = bulk_element(key, tag)
        except Exception:
            continue  # reported as "no Overlay Data" by the plane parser
        if value:
            ds.add_new(tag, "OW", value)


def planes_listed(path: str) -> tuple[tuple[OverlayPlane, ...], tuple[tuple[int, str], ...]]:
    """The overlay planes of a file, or of a DICOMweb instance without fetching its bulk
    Overlay Data (what opening needs: which planes there are, and which are malformed)."""
    if "://" not in path:
        return planes_of(path)
    from .tags import read_header

    planes, problems = planes_from_dataset(read_header(path), bulk_pending=True)
    return tuple(planes), tuple(problems)


def plane_of(path: str, group: int) -> OverlayPlane | None:
    planes, _ = planes_of(path)
    return next((p for p in planes if p.group == group), None)


def reset() -> None:
    planes_of.cache_clear()


def summary(planes: Iterable[OverlayPlane]) -> str:
    return ", ".join(p.name for p in planes)
