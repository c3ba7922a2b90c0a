"""Real Qt input events on a napari viewer's canvas, through public API only.

napari has no public way to synthesise mouse or key events, and its canvas
widget is private (``viewer.window._qt_viewer.canvas``).  These helpers find
the canvas as Qt sees it (the OpenGL widget of the main window, which napari's
public ``viewer.window.main_menu`` belongs to) and send it ordinary Qt events,
so the whole path a user's hand takes (Qt -> vispy -> napari -> our callbacks)
is exercised.  World coordinates map to canvas pixels through the public
camera (2D, no grid).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QEvent, QPoint, QPointF, Qt
from qtpy.QtGui import QKeyEvent, QMouseEvent
from qtpy.QtWidgets import QApplication, QWidget


def main_window(viewer) -> QWidget:
    return viewer.window.main_menu.window()


def canvas_widget(viewer) -> QWidget:
    """napari's canvas: the main window's OpenGL widget (the largest visible one)."""
    try:
        from qtpy.QtOpenGLWidgets import QOpenGLWidget
    except ImportError:  # Qt5
        from qtpy.QtWidgets import QOpenGLWidget
    gls = [w for w in main_window(viewer).findChildren(QOpenGLWidget) if w.isVisible()]
    assert gls, "no visible canvas (create the viewer with show=True)"
    return max(gls, key=lambda w: w.width() * w.height())


def world_to_canvas(viewer, y: float, x: float) -> tuple[float, float]:
    """Canvas pixel (x, y) of world point (y, x) in a 2D view."""
    cam = viewer.scene.camera
    h, w = viewer.canvas.size
    return (x - cam.center[-1]) * cam.zoom + w / 2, (y - cam.center[-2]) * cam.zoom + h / 2


def _mouse(widget, kind, pos, button, buttons) -> None:
    p = QPointF(float(pos[0]), float(pos[1]))
    g = QPointF(widget.mapToGlobal(QPoint(int(pos[0]), int(pos[1]))))
    ev = QMouseEvent(kind, p, p, g, button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def _pause(ms: int) -> None:
    """Let Qt run for ``ms`` (napari throttles mouse moves to one per 5 ms and drops the rest)."""
    import time

    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.002)


def mouse_drag(viewer, p0, p1, steps: int = 5, qtbot=None) -> None:
    """Press at canvas pixel ``p0``, move in ``steps`` to ``p1`` and release (left button),
    with a short pause after each event as a hand would leave."""
    w = canvas_widget(viewer)
    left = Qt.MouseButton.LeftButton
    none = Qt.MouseButton.NoButton
    _mouse(w, QEvent.Type.MouseButtonPress, p0, left, left)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        p = (p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1]))
        _mouse(w, QEvent.Type.MouseMove, p, none, left)
        _pause(10)
    _mouse(w, QEvent.Type.MouseButtonRelease, p1, left, none)
    _pause(20)


def mouse_move(viewer, p) -> None:
    """The cursor enters the canvas and moves (no button) to canvas pixel ``p``."""
    from qtpy.QtGui import QEnterEvent

    w = canvas_widget(viewer)
    local = QPointF(float(p[0]), float(p[1]))
    QApplication.sendEvent(w, QEnterEvent(local, local, QPointF(w.mapToGlobal(local.toPoint()))))
    _mouse(w, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)


def key_press(viewer, char: str) -> None:
    """Press and release a letter key on the canvas."""
    w = canvas_widget(viewer)
    w.setFocus()
    key = getattr(Qt.Key, f"Key_{char.upper()}")
    for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
        QApplication.sendEvent(w, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier, char))


def drop_files(viewer, paths) -> None:
    """Drop files on the canvas as a file manager would (drag enter, then drop)."""
    from qtpy.QtCore import QMimeData, QUrl
    from qtpy.QtGui import QDragEnterEvent, QDropEvent

    w = canvas_widget(viewer)
    while w is not None and not w.acceptDrops():  # napari's viewer widget, a parent of the canvas
        w = w.parentWidget()
    assert w is not None, "no widget accepts drops"
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(50, 50)
    enter = QDragEnterEvent(
        pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(w, enter)
    drop = QDropEvent(
        QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(w, drop)
