"""The status-bar text of napari-dcm image layers.

napari's status bar shows what the active layer's ``get_status`` returns: the
world coordinates and the value under the cursor.  A napari-dcm image says
more: the pixel row and column, the frame (display index, as napari's slider
counts it, index/last index, and the stored frame or the slice's file), and
the value's unit (HU for CT, the RescaleType, or a parametric map's
real-world-value unit), e.g.::

    [-61.2, 12.3, 45.6] mm · frame 12/23 (stored 11) · row 233, col 120: 45 HU

``get_status`` is public napari API meant to be overridden per layer type;
the subclass keeps the class name ``Image`` so napari still treats the layer
as an image everywhere (layer controls, writers, the layer list).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from napari.layers import Image as _NapariImage
from napari.layers import Shapes as _NapariShapes

from ..layers import keys


def value_unit(metadata: dict[str, Any]) -> str:
    """The unit of a napari-dcm layer's values ("" when the header names none)."""
    ov = metadata.get(keys.OVERLAY)
    if isinstance(ov, dict) and ov.get("units"):
        return str(ov["units"])
    return str(metadata.get(keys.VALUE_UNIT) or "")


def frame_text(metadata: dict[str, Any], d: int, n: int) -> str:
    """The frame as napari's slider counts it (index/last index): "frame 12/23 (stored 11)" for a
    multi-frame instance, "slice 12/23 (IM0012.dcm)" for a series of single-frame files."""
    fp = metadata.get(keys.FRAME_PATHS) or []
    d2s = metadata.get(keys.DISPLAY_TO_STORED) or []
    if not 0 <= d < len(d2s):
        return f"frame {d}/{n - 1}"
    if metadata.get("multiframe"):
        return f"frame {d}/{n - 1} (stored {d2s[d]})"
    return f"slice {d}/{n - 1} ({os.path.basename(str(fp[d]))})"


def status_text(layer: Any, position: Any, world: bool, coords: str, value: str) -> str | None:
    """The napari-dcm status line of ``layer`` at ``position`` (None: keep napari's)."""
    md = layer.metadata
    if not keys.is_image(md) and not isinstance(md.get(keys.OVERLAY), dict):
        return None
    pos = np.asarray(position, dtype=float)
    data_pos = np.asarray(layer.world_to_data(pos) if world else pos, dtype=float)[-layer.ndim :]
    shape = layer.data.shape[: layer.ndim]
    idx = np.round(data_pos).astype(int)
    parts = []
    unit = md.get(keys.WORLD_UNIT) or ""
    parts.append(f"{coords} {unit}" if unit else coords)
    if layer.ndim >= 3:
        parts.append(frame_text(md, int(idx[-3]), int(shape[-3])))
    row, col = int(idx[-2]), int(idx[-1])
    inside = 0 <= row < shape[-2] and 0 <= col < shape[-1]
    where = f"row {row}, col {col}" if inside else "outside the image"
    vunit = value_unit(md)
    shown = f"{value} {vunit}" if (value and vunit and inside) else value
    parts.append(f"{where}: {shown}" if inside and shown else where)
    return " · ".join(p for p in parts if p)


def format_value(v: Any) -> str:
    """A pixel value as the status bar shows it (an RGB pixel as its three values)."""
    arr = np.asarray(v)
    if arr.ndim:
        return ", ".join(format_value(x) for x in arr.ravel())
    if np.issubdtype(arr.dtype, np.integer) or (np.issubdtype(arr.dtype, np.floating) and float(arr).is_integer()):
        return str(int(arr))
    return f"{float(arr):.4g}"


_full_res_pool: Any = None


def _pool() -> Any:
    global _full_res_pool
    if _full_res_pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _full_res_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-dcm-status")
    return _full_res_pool


class FullResolution:
    """The full-resolution frames a multiscale layer's status reads its values from.

    napari's ``get_value`` of a multiscale layer is ``(level, value)`` at the level on
    screen: a reduced JPEG 2000 level's value is a wavelet low-pass, not the stored
    pixel.  The status bar shows the value of level 0 (the stored / modality value)
    at the full-resolution row and column instead.  Decoding a full frame takes long
    for a large DBT, so it is never done on the UI thread: the frame is decoded in the
    background (once; the decoded-frame cache keeps it for napari's own zoom-in too)
    and meanwhile the status shows the on-screen level's value marked as such.
    """

    KEEP = 2  # frames kept per layer (the one under the cursor and the one before)

    def __init__(self) -> None:
        self.frames: dict[tuple[int, ...], np.ndarray] = {}
        self.pending: dict[tuple[int, ...], Any] = {}

    def value(self, layer: Any, idx: tuple[int, ...]) -> Any | None:
        """The level-0 value at data index ``idx``, or None while its frame is being decoded."""
        key = tuple(idx[:-2])
        frame = self.frames.get(key)
        if frame is not None:
            return frame[idx[-2], idx[-1]]
        fut = self.pending.get(key)
        if fut is None:
            level0 = layer.data[0]
            fut = self.pending[key] = _pool().submit(lambda: np.asarray(level0[key] if key else level0))
        if not fut.done():
            return None
        del self.pending[key]
        try:
            frame = fut.result()
        except Exception:  # the decode failed: it is reported (and shown blank) by the reader
            return None
        self.frames[key] = frame
        while len(self.frames) > self.KEEP:
            self.frames.pop(next(iter(self.frames)))
        return frame[idx[-2], idx[-1]]


class Image(_NapariImage):
    """A napari image layer whose status text adds pixel row/column, frame and value unit.

    For multiscale data the value is the full-resolution (level 0) value, see
    :class:`FullResolution`.
    """

    def get_status(
        self,
        position=None,
        *,
        view_direction=None,
        dims_displayed=None,
        world: bool = False,
        value=None,
    ) -> dict[str, str]:
        if position is not None and value is None and self.multiscale:
            value = self.get_value(position, view_direction=view_direction, dims_displayed=dims_displayed, world=world)
        status = super().get_status(
            position, view_direction=view_direction, dims_displayed=dims_displayed, world=world, value=value
        )
        if position is not None:
            shown = status.get("value", "")
            if self.multiscale:
                shown = self._full_resolution_text(position, world, value)
            text = status_text(self, position, world, status.get("coords", ""), shown)
            if text is not None:
                status["coordinates"] = text
        return status

    def _full_resolution_text(self, position: Any, world: bool, value: Any) -> str:
        """The status value of a multiscale layer: level 0's value under the cursor, or the
        on-screen level's value marked as a preview while level 0 is being decoded."""
        level, shown = value if isinstance(value, tuple) and len(value) == 2 else (0, value)
        if shown is None:
            return ""
        if not level:
            return format_value(shown)
        pos = np.asarray(position, dtype=float)
        data_pos = np.asarray(self.world_to_data(pos) if world else pos, dtype=float)[-self.ndim :]
        idx = tuple(int(i) for i in np.round(data_pos))
        shape = self.data[0].shape[: self.ndim]
        if not all(0 <= i < n for i, n in zip(idx, shape)):
            return ""
        from .state import layer_state

        full = layer_state(self).setdefault("full_resolution", FullResolution())
        v = full.value(self, idx)
        if v is None:
            return f"~{format_value(shown)} (reduced level {level}; full-resolution value being decoded)"
        return format_value(v)


def roi_text(layer: Any, value: Any) -> str:
    """What a napari-dcm ROI layer's status says about the shape under the cursor:
    "ROI 3 (IM0001.dcm), frames all" (nothing when the cursor is on no ROI)."""
    shape = value[0] if isinstance(value, tuple) and value else value
    if shape is None or not isinstance(shape, (int, np.integer)):
        return ""
    feats = layer.features
    if not 0 <= int(shape) < len(feats):
        return ""
    row = feats.iloc[int(shape)]
    parts = [f"ROI {row['roi']}" if "roi" in feats and str(row["roi"]) != "" else f"shape {int(shape)}"]
    if "path" in feats and str(row["path"]):
        parts.append(f"({os.path.basename(str(row['path']))})")
    if "frames" in feats and str(row["frames"]) not in ("", "nan"):
        parts.append(f"frames {row['frames']}")
    return " ".join(parts)


class Shapes(_NapariShapes):
    """A napari shapes layer whose status names the ROI under the cursor instead of
    napari's raw "(shape index, vertex index)" value."""

    def get_status(
        self,
        position=None,
        *,
        view_direction=None,
        dims_displayed=None,
        world: bool = False,
        value=None,
    ) -> dict[str, str]:
        status = super().get_status(
            position, view_direction=view_direction, dims_displayed=dims_displayed, world=world, value=value
        )
        if position is not None and keys.ROI in self.metadata:
            v = self.get_value(position, view_direction=view_direction, dims_displayed=dims_displayed, world=world)
            text = roi_text(self, v)
            coords = status.get("coords", "")
            status["value"] = text
            status["coordinates"] = f"{coords} · {text}" if text else coords
        return status
