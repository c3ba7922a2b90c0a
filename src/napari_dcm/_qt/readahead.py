"""Read-ahead in a live viewer: follow napari's sliders and decode the next frames.

:func:`follow` attaches one :class:`Follower` to a viewer.  On every change
of the sliders (``viewer.dims.events.current_step``), of the display, of the
layers, and after napari has sliced a napari-dcm image (``layer.events.set_data``:
also when a multiscale layer switches level on zoom), it tells the pure engine
(:class:`napari_dcm.dicom.readahead.ReadAhead`) which frame of which napari-dcm
image is on screen, at which resolution level, and in which direction the
reader is moving.  The engine decodes the neighbours on background threads;
nothing here waits for a decode, so the UI thread only computes the window.

Only public napari API is used: ``dims.point``, ``dims.displayed``,
``dims.ndisplay``, ``layer.world_to_data``, ``layer.data_level``, the events
named above.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..dicom import readahead as ra
from ..dicom.volume import FrameTable, frame_table
from ..layers.images import is_multiscale
from .viewer import is_dicom_image

_followers: weakref.WeakKeyDictionary[Any, Follower] = weakref.WeakKeyDictionary()


class Follower:
    """Keeps one viewer's read-ahead window on the frames shown."""

    def __init__(self, viewer: Any, engine: ra.ReadAhead | None = None) -> None:
        self._viewer = weakref.ref(viewer)
        self.engine = engine or ra.ReadAhead()
        self._last: dict[int, tuple[int, int]] = {}  # id(layer) -> (index, direction)
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self.targets: list[ra.Target] = []
        self._release_pending = False
        self._timer: Any = None
        viewer.dims.events.current_step.connect(self._on_step)
        viewer.dims.events.ndisplay.connect(self._on_change)
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._on_change)
        for layer in list(viewer.layers):
            self._watch(layer)
        weakref.finalize(viewer, self.engine.close)
        self.update()

    # ---- events

    def _watch(self, layer: Any) -> None:
        if layer in self._watched or not is_dicom_image(layer):
            return
        self._watched.add(layer)
        layer.events.visible.connect(self._on_change)
        layer.events.set_data.connect(self._on_change)

    def _on_inserted(self, event: Any) -> None:
        self._watch(event.value)
        self._hold_until_idle()  # the first picture (napari slices it now) before any read-ahead
        self.update()

    def _on_change(self, event: Any = None) -> None:
        self.update()

    def _on_step(self, event: Any = None) -> None:
        """A slider moved: hold new background decodes while napari slices and draws
        this step (the cores go to the picture first), resume when Qt is idle again."""
        self._hold_until_idle()
        self.update()

    def _hold_until_idle(self) -> None:
        """Hold new decodes; release ``quiet_after_step`` after Qt is idle again (a
        new step restarts the wait)."""
        self.engine.hold(True)
        if self._timer is None:
            from qtpy.QtCore import QTimer

            self._timer = QTimer()
            self._timer.setSingleShot(True)
            self._timer.timeout.connect(self._release)
        self._release_pending = True
        self._timer.start(int(1000 * max(0.0, self.engine.settings.quiet_after_step)))

    def _release(self) -> None:
        self._release_pending = False
        self.engine.hold(False)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Run Qt's event loop until read-ahead has nothing left to do (tests, benchmarks)."""
        import time

        from qtpy.QtWidgets import QApplication

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            QApplication.processEvents()
            if not self.engine.held and self.engine.wait_idle(0.02):
                return True
        return False

    # ---- the window

    def update(self) -> list[ra.Target]:
        """Tell the engine what is on screen now; returns the targets (never waits)."""
        viewer = self._viewer()
        if viewer is None:
            return []
        targets = [] if viewer.dims.ndisplay != 2 else self._targets(viewer)
        self.targets = targets
        self.engine.request(targets)
        return targets

    def _targets(self, viewer: Any) -> list[ra.Target]:
        out = []
        point = np.asarray(viewer.dims.point, dtype=float)
        displayed = set(viewer.dims.displayed)
        nworld = viewer.dims.ndim
        for layer in viewer.layers:
            if not layer.visible or not is_dicom_image(layer):
                continue
            if layer.ndim < 3:  # one frame: nothing ahead
                continue
            if nworld - layer.ndim in displayed:  # the frame axis is on screen (e.g. a side view)
                continue
            tables = _tables(layer)
            if not tables:
                continue
            level = int(layer.data_level) if len(tables) > 1 else 0
            level = min(max(level, 0), len(tables) - 1)
            table = tables[level]
            n = len(table)
            index = int(np.round(layer.world_to_data(point)[0]))
            if not 0 <= index < n:
                continue
            prev = self._last.get(id(layer))
            direction = 1 if prev is None else (prev[1] if index == prev[0] else (1 if index > prev[0] else -1))
            self._last[id(layer)] = (index, direction)
            thumb = tables[-1]
            extra = (thumb,) if len(tables) > 1 and thumb is not table else ()
            out.append(ra.Target(table, index, direction, extra))
        return out


def _tables(layer: Any) -> list[FrameTable]:
    """The frame tables of a napari-dcm image's levels (one for single scale), or []."""
    data = layer.data
    arrays = list(data) if is_multiscale(data) else [data]
    tables = [frame_table(a) for a in arrays]
    return [] if any(t is None for t in tables) else [t for t in tables if t is not None]


def follow(viewer: Any) -> Follower:
    """Keep read-ahead on ``viewer``'s shown napari-dcm images (once per viewer)."""
    f = _followers.get(viewer)
    if f is None:
        f = _followers[viewer] = Follower(viewer)
    return f


def follower(viewer: Any) -> Follower | None:
    """The viewer's follower, if read-ahead follows it."""
    return _followers.get(viewer)


def follow_current_viewer() -> Follower | None:
    """Follow the active viewer (the npe2 reader is called without one)."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # no Qt application, no viewer
        return None
    return follow(viewer) if viewer is not None else None
