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


class Image(_NapariImage):
    """A napari image layer whose status text adds pixel row/column, frame and value unit."""

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
        if position is not None:
            text = status_text(self, position, world, status.get("coords", ""), status.get("value", ""))
            if text is not None:
                status["coordinates"] = text
        return status
