"""napari workarounds, in one place.

napari-dcm uses napari's public API.  Where napari has no public hook for
something napari-dcm needs, the workaround lives here, with the reason, so a
napari release that changes it breaks one function and nothing else.
"""

from __future__ import annotations

from typing import Any


def qt_main_window(viewer: Any) -> Any | None:
    """The Qt main window of a viewer, or None (headless ViewerModel).

    Why: the close guard ("unexported ROI edits, close anyway?") must see the
    window's close request before napari tears the viewer down, and napari
    has no public "closing" event that can be refused.  Nothing else uses it.

    How: napari's public ``viewer.window.main_menu`` is the main window's menu
    bar, and Qt's ``QWidget.window()`` is the top-level window holding it (no
    private napari attribute).
    """
    window = getattr(viewer, "window", None)
    menu = getattr(window, "main_menu", None) if window is not None else None
    return menu.window() if menu is not None else None


def fit_to_layers(viewer: Any, layers: list[Any], margin: float = 0.05) -> None:
    """``viewer.fit_to_view(layers=layers)``, also when ``layers`` have fewer dimensions
    than the viewer.

    Why: napari 0.9 indexes the given layers' extent with the viewer's displayed
    axes, which raises IndexError when they are all 2D while another (hidden)
    layer has a frame axis (a mammography hanging beside a tomosynthesis stack).
    Then the same fit is made here with public API: the layers' world extent
    (trailing axes, as napari aligns them), the viewbox size of the canvas, and
    the camera's center and zoom (2D only; 3D falls back to napari's fit of all).
    """
    try:
        viewer.fit_to_view(layers=layers, margin=margin)
        return
    except IndexError:
        pass
    import numpy as np

    if viewer.dims.ndisplay != 2 or not layers:
        viewer.fit_to_view(margin=margin)
        return
    ext = viewer.layers.get_extent(layers)
    lo = np.asarray(ext.world[0][-2:], float) - np.asarray(ext.step[-2:], float) / 2
    hi = np.asarray(ext.world[1][-2:], float) + np.asarray(ext.step[-2:], float) / 2
    size = np.where(np.isclose(hi - lo, 0), 1.0, hi - lo)
    viewer.scene.camera.center = tuple((lo + hi) / 2)
    box = np.asarray(viewer.canvas.viewbox_size(viewer.layers), float)
    viewer.scene.camera.zoom = float((1 - margin) * np.min(box / size))
