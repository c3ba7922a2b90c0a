"""The one layer-data type napari-dcm's builders return."""

from __future__ import annotations

from typing import Any, NamedTuple

from . import keys


class LayerData(NamedTuple):
    """``(data, kwargs, layer_type)``: what napari's readers return, with names.

    It is a tuple, so napari takes it as is; code reads ``.data``,
    ``.kwargs`` and ``.layer_type`` instead of indexing.
    """

    data: Any
    kwargs: dict[str, Any]
    layer_type: str = "image"

    @property
    def name(self) -> str:
        return str(self.kwargs.get("name", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        md = self.kwargs.get("metadata")
        return md if md is not None else {}

    @property
    def is_image(self) -> bool:
        """A napari-dcm image (not an overlay image such as a parametric map)."""
        return self.layer_type == "image" and keys.is_image(self.metadata)

    @property
    def rgb(self) -> bool:
        return bool(self.kwargs.get("rgb", False))

    @property
    def spatial_ndim(self) -> int:
        """Dimensions without the colour axis."""
        return int(self.data.ndim) - int(self.rgb)

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, columns) of one frame."""
        shape = self.data.shape
        rgb = int(self.rgb)
        return int(shape[-2 - rgb]), int(shape[-1 - rgb])

    @classmethod
    def of(cls, item: Any) -> LayerData:
        """A LayerData from any napari layer-data tuple (1 to 3 items)."""
        if isinstance(item, LayerData):
            return item
        t = tuple(item) + ({}, "image")[len(item) - 1 :] if len(item) < 3 else tuple(item)
        return cls(t[0], dict(t[1] or {}), str(t[2]))
