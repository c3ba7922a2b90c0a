"""SR document view and overlay keys.

* A dock listing the structured reports that were opened, each as a readable
  tree (concept names, values with units, dates, codes); double-clicking an
  image reference (or a region) jumps to that image and frame.
* ``G`` toggles every overlay layer; ``N`` jumps to the next image or frame
  that has an overlay.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from .. import _notify
from ..dicom import overlays as ov
from ..layers import keys
from ..layers.overlays import read_object
from . import state

OF, OVERLAY, SR_KEY = keys.OVERLAY_OF, keys.OVERLAY, keys.SR_DOCUMENT
DOCK = "sr"


def overlay_layers(viewer) -> list:
    return [l for l in viewer.layers if OVERLAY in l.metadata and not l.metadata[OVERLAY].get("document")]


def toggle_overlays(viewer) -> bool:
    """Show or hide every overlay (optional CAD marks stay as they were when showing)."""
    layers = overlay_layers(viewer)
    show = not any(l.visible for l in layers)
    for l in layers:
        if show and l.metadata[OVERLAY].get("optional"):
            continue
        l.visible = show
    return show


def _overlay_frames(layer) -> list[int]:
    if isinstance(layer, (Shapes, Points)):
        data = layer.data if isinstance(layer, Shapes) else [layer.data]
        if layer.ndim < 3:
            return [0]
        frames = set()
        for v in data:
            v = np.asarray(v)
            if v.size:
                frames.update(int(round(x)) for x in np.atleast_2d(v)[:, 0])
        return sorted(frames)
    if isinstance(layer, (Labels, Image)) and layer.data.ndim >= 3:
        arr = np.asarray(layer.data)
        if isinstance(layer, Labels):
            return [int(i) for i in np.nonzero(arr.reshape(arr.shape[0], -1).any(axis=1))[0]]
        return [int(i) for i in np.nonzero(np.isfinite(arr.reshape(arr.shape[0], -1)).any(axis=1))[0]]
    return [0]


def next_overlay(viewer):
    """Move to the next frame (then the next image) that has an overlay; returns (image name, frame)."""
    targets = []
    for l in overlay_layers(viewer):
        name = l.metadata.get(OF)
        if not name or name not in viewer.layers:
            continue
        for f in _overlay_frames(l):
            targets.append((viewer.layers.index(name), f, name))
    if not targets:
        _notify.info("napari-dcm: no overlay on the loaded images")
        return None
    targets = sorted(set(targets))
    active = viewer.layers.selection.active
    cur_img = active.metadata.get(OF, active.name) if active is not None else None
    cur_idx = viewer.layers.index(cur_img) if cur_img in viewer.layers else -1
    step = viewer.dims.current_step[0] if viewer.dims.ndim >= 3 else 0
    # the first target after (current image, current frame), wrapping around
    idx, f, name = next((t for t in targets if t[:2] > (cur_idx, step)), targets[0])
    img = viewer.layers[name]
    viewer.layers.selection.active = img
    if img.data.ndim - int(getattr(img, "rgb", False)) >= 3:
        viewer.dims.set_current_step(0, f)
    return name, f


def bind_overlay_keys(viewer) -> None:
    from .keys import install

    install(viewer)


def jump_to(viewer, uid: str, frames=None) -> bool:
    """Select the image holding SOP Instance ``uid`` and show its (1-based) frame."""
    for l in viewer.layers:
        md = l.metadata
        uids = md.get("sop_instance_uids")
        if not isinstance(l, Image) or not uids or uid not in uids:
            continue
        if frames:
            want = frames[0] - 1
            candidates = [d for d, (u, s) in enumerate(zip(uids, md["display_to_stored"])) if u == uid and s == want]
        else:
            candidates = [d for d, u in enumerate(uids) if u == uid]
        viewer.layers.selection.active = l
        if candidates and l.data.ndim - int(l.rgb) >= 3:
            viewer.dims.set_current_step(0, candidates[0])
        return True
    _notify.info(f"napari-dcm: the referenced image {uid} is not loaded")
    return False


class SrDock(QWidget):
    """Structured reports as readable trees."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        state.of(napari_viewer).docks[DOCK] = self
        bind_overlay_keys(napari_viewer)
        self.choice = QComboBox()
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Concept", "Value", "Relationship"])
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Structured report"))
        lay.addWidget(self.choice)
        lay.addWidget(self.tree)
        self.choice.currentIndexChanged.connect(self._show)
        self.tree.itemDoubleClicked.connect(self._jump)
        napari_viewer.layers.events.inserted.connect(lambda e: self.refresh())
        napari_viewer.layers.events.removed.connect(lambda e: self.refresh())
        self._paths: list = []
        self.refresh()

    def refresh(self):
        paths = [l.metadata[SR_KEY] for l in self.viewer.layers if SR_KEY in l.metadata]
        if paths == self._paths:
            return
        self._paths = paths
        self.choice.blockSignals(True)
        self.choice.clear()
        self.choice.addItems([p.rsplit("/", 1)[-1] for p in paths])
        self.choice.blockSignals(False)
        self._show(0)

    def _show(self, i: int):
        self.tree.clear()
        if not 0 <= i < len(self._paths):
            return
        root = ov.parse_sr(read_object(self._paths[i]))
        self.tree.addTopLevelItem(self._item(root))
        self.tree.expandToDepth(2)

    def _item(self, node: ov.SrNode) -> QTreeWidgetItem:
        value = node.value
        if node.value_type == "CODE" and node.value_code:
            value = f"{node.value_code[2]} ({node.value_code[1]} {node.value_code[0]})"
        it = QTreeWidgetItem([node.concept or node.value_type, value, node.relationship])
        it.setData(0, Qt.ItemDataRole.UserRole, node)
        if node.value_type in ("IMAGE", "SCOORD"):
            it.setToolTip(1, "double-click to show this image")
        for c in node.children:
            it.addChild(self._item(c))
        return it

    def _jump(self, item: QTreeWidgetItem, column: int = 0) -> bool:
        node = item.data(0, Qt.ItemDataRole.UserRole)
        refs = node.refs or [r for c in node.children if c.value_type == "IMAGE" for r in c.refs]
        if not refs:
            return False
        uid, frames = refs[0]
        return jump_to(self.viewer, uid, frames)


def sr_dock(viewer) -> SrDock:
    dock = state.dock(viewer, DOCK)
    if dock is None:
        dock = SrDock(viewer)
        viewer.window.add_dock_widget(dock, name="Structured report", area="right")
    return dock
