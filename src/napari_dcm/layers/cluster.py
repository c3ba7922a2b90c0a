"""Overlay objects (GSPS, SR, CAD SR, SEG, parametric maps) of files on dask workers.

The overlay builders of :mod:`napari_dcm.layers.overlays` read their objects
by path; for a study on a cluster they run on a worker, where the files are,
and only the finished layer data comes back.  The images they attach to are
sent as stand-ins holding what the builders use (names, metadata, geometry,
the array's shape), never the lazy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..dicom import cluster
from ..dicom.sources.cluster import ClusterFile
from .data import LayerData


@dataclass(frozen=True)
class ShapeOnly:
    """An image's array as the overlay builders see it: its shape and dtype, no pixels."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def ndim(self) -> int:
        return len(self.shape)


def overlay_tuples(image_tuples: list, overlay_headers: list, problems: list | None = None) -> tuple[list, list]:
    """``layers.overlays.overlay_tuples`` run on a worker of the headers' scheduler.

    What the builders change on the images (a presentation state's window
    preset, VOI LUT, rotation, displayed area: image metadata) is copied back
    onto ``image_tuples``; ``problems`` collects the parts that cannot be shown.
    """
    addresses = {h.source.address for h in overlay_headers if isinstance(h.source, ClusterFile)}
    if len(addresses) != 1:
        return [], [(h.path, "overlay not read: not from one dask scheduler") for h in overlay_headers]
    address = addresses.pop()
    images = [t for t in (LayerData.of(x) for x in image_tuples) if t.is_image]
    stand_ins = [LayerData(ShapeOnly(tuple(t.data.shape), str(t.data.dtype)), t.kwargs, t.layer_type) for t in images]
    layers, notes, found, metadata = cluster.run(
        address,
        _worker_overlays,
        stand_ins,
        overlay_headers,
        timeout=cluster.SCAN_TIMEOUT,
        what=f"the {len(overlay_headers)} overlay object(s)",
    )
    for t, md in zip(images, metadata):
        t.metadata.clear()
        t.metadata.update(md)
    if problems is not None:
        problems += found
    return layers, notes


def _worker_overlays(stand_ins: list, headers: list) -> tuple[list[Any], list[Any], list[Any], list[dict]]:
    from .overlays import overlay_tuples as build

    problems: list[Any] = []
    layers, notes = build(stand_ins, headers, problems)
    return layers, notes, problems, [t.metadata for t in stand_ins]
