"""Per-viewer state kept beside napari's objects, never set on them.

napari's viewer and layers are evented models: attributes they do not
declare should not be set on them.  napari-dcm keeps what it needs per viewer
and per layer in weak dictionaries here, so a closed viewer takes its state
with it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ViewerState:
    keys_bound: bool = False
    close_guard: Any = None
    docks: dict[str, Any] = field(default_factory=dict)  # dock kind -> widget
    fit_camera: Any = None  # the camera (center, zoom, angles) of napari-dcm's last whole-image fit
    fit_watch: bool = False  # canvas resizes refit an untouched whole-image view
    sr_documents: list[str] = field(default_factory=list)  # structured reports opened (paths)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (what, path, reason) of reads into it
    hanging: Any = None  # the current mammography hanging (napari_dcm._qt.hanging.Hanging)
    hanging_hooks: bool = False  # the hanging follows canvas size, reset view, status


_viewers: weakref.WeakKeyDictionary[Any, ViewerState] = weakref.WeakKeyDictionary()
_layers: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def of(viewer: Any) -> ViewerState:
    """The napari-dcm state of ``viewer`` (created on first use)."""
    st = _viewers.get(viewer)
    if st is None:
        st = _viewers[viewer] = ViewerState()
    return st


def layer_state(layer: Any) -> dict[str, Any]:
    """napari-dcm's per-layer values (e.g. the visibility a layer is added with)."""
    st = _layers.get(layer)
    if st is None:
        st = _layers[layer] = {}
    return st


def dock(viewer: Any, kind: str) -> Any | None:
    return of(viewer).docks.get(kind)
