"""A presentation state's displayed area on the live view (PS3.3 C.10.4).

The reader leaves the area in the image's metadata (``napari_dcm_displayed_area``:
corners in data coordinates, before the state's rotation / flip, which the
layer's affine applies); after the layers are added the camera is fitted to
it: SCALE TO FIT (and TRUE SIZE, which needs the screen's physical pixel size
napari does not know) fits the area to the canvas, MAGNIFY shows one image
pixel as ``magnification`` screen pixels.  Not in a mammography hanging
(its cells fit the breasts).
"""

from __future__ import annotations

import numpy as np

from ..layers.keys import DISPLAYED_AREA as AREA  # not layers.overlays: its imports cost the first image
from .viewer import is_dicom_image


def displayed_area_world(viewer, image) -> tuple[np.ndarray, np.ndarray] | None:
    """(min, max) world corners (last two dims) of an image's displayed area, or None."""
    from .window import current_frame

    area = image.metadata.get(AREA)
    if not area:
        return None
    (r0, c0), (r1, c1) = area["top_left"], area["bottom_right"]
    lead = [0.0] * (image.ndim - 2)
    if lead:
        lead[-1] = float(current_frame(viewer, image))
    corners = [(r0 - 0.5, c0 - 0.5), (r0 - 0.5, c1 + 0.5), (r1 + 0.5, c0 - 0.5), (r1 + 0.5, c1 + 0.5)]
    world = np.array([np.asarray(image.data_to_world([*lead, r, c]))[-2:] for r, c in corners])
    return world.min(axis=0), world.max(axis=0)


APPLIED = "napari_dcm_displayed_area_applied"


def apply_displayed_area(viewer, layers) -> bool:
    """Fit the camera to the displayed area of the last added image that has one (once)."""
    if viewer.canvas.grid.enabled:
        return False
    for image in reversed(list(layers)):
        if not is_dicom_image(image) or AREA not in image.metadata or image.metadata.get(APPLIED):
            continue
        image.metadata[APPLIED] = True
        box = displayed_area_world(viewer, image)
        if box is None:
            continue
        lo, hi = box
        area = image.metadata[AREA]
        center = list(viewer.scene.camera.center)
        center[-2:] = [float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2)]
        viewer.scene.camera.center = tuple(center)
        mag = area.get("magnification")
        if area.get("mode") == "MAGNIFY" and mag:
            viewer.scene.camera.zoom = float(mag) / float(np.abs(image.scale[-1]))
        else:
            h, w = (float(x) for x in viewer.canvas.size)
            size = np.maximum(hi - lo, 1e-9)
            viewer.scene.camera.zoom = float(min(h / size[0], w / size[1]))
        return True
    return False


def after_read(layer_data: list) -> None:
    """For layers napari adds itself (File > Open, ``viewer.open``): apply a displayed
    area once they are in the viewer (the reader does not see the viewer)."""
    if not any(
        isinstance(t, tuple) and len(t) > 1 and AREA in ((t[1] or {}).get("metadata") or {}) for t in layer_data
    ):
        return
    import napari
    from qtpy.QtCore import QTimer

    viewer = napari.current_viewer()
    if viewer is not None:
        QTimer.singleShot(0, lambda: apply_displayed_area(viewer, list(viewer.layers)))
