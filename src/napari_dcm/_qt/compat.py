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
