"""SR document view and overlay keys.

* A dock listing the structured reports that were opened, each as readable
  text (containers as headings, "concept: value unit" lines, codes in notes);
  clicking an image reference (or a region) jumps to that image and frame.
* ``G`` toggles every overlay layer; ``N`` jumps to the next image or frame
  that has an overlay.
"""

from __future__ import annotations

import html
import os

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from qtpy.QtWidgets import QComboBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from .. import _notify
from ..dicom import overlays as ov
from ..layers import keys
from ..layers.overlays import read_object
from . import state
from .viewer import keep_whole_view

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


def _esc(text) -> str:
    return html.escape(str(text or ""))


def _node_line(node: ov.SrNode) -> tuple[str, str]:
    """(value, note) of a content item as a reader wants it: value with its unit, code in a note."""
    if node.value_type == "CODE" and node.value_code:
        v, scheme, meaning = (list(node.value_code) + ["", "", ""])[:3]
        return meaning or v, f"{scheme} {v}".strip()
    if node.value_type == "NUM":
        if node.number is None:
            return "(no value)", ""
        unit = node.units
        unit = {"[hnsf'U]": "HU", "1": "", "{ratio}": ""}.get(unit, unit)
        return f"{node.number:g} {unit}".strip(), ""
    if node.value_type in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        frames = sorted({f for _, fr in node.refs for f in (fr or [])})
        return "", (f"frame(s) {', '.join(map(str, frames))}" if frames else "")
    if node.value_type == "CONTAINER":
        return "", ""
    return node.value, ""


def report_html(root: ov.SrNode, title: str = "", loaded=lambda uid: True) -> tuple[str, list[ov.SrNode]]:
    """The report as HTML (headings for containers, "concept: value unit" lines, links to
    images and regions) and the nodes the links point at (``node:<index>``).  References
    to images that ``loaded(uid)`` says are not open are shown, not linked."""
    links: list[ov.SrNode] = []
    out = [f"<h2>{_esc(root.concept or 'Structured report')}</h2>"]
    if title:
        out.append(f"<p style='color:#999'>{_esc(title)}</p>")

    def link(node: ov.SrNode, label: str) -> str:
        links.append(node)
        return f"<a href='node:{len(links) - 1}'>{_esc(label)}</a>"

    def emit(node: ov.SrNode, depth: int) -> None:
        pad = f"margin-left:{10 * max(depth - 1, 0)}px"
        if node.value_type == "CONTAINER":
            h = "h3" if depth <= 1 else "h4"
            out.append(f"<{h} style='{pad}'>{_esc(node.concept or 'Container')}</{h}>")
        else:
            value, note = _node_line(node)
            concept = _esc(node.concept or node.value_type.title())
            refs = node.refs or [r for c in node.children if c.value_type == "IMAGE" for r in c.refs]
            here = any(loaded(u) for u, _ in refs)
            if node.value_type in ("IMAGE", "COMPOSITE"):
                body = link(node, "show image") if here else "<i>image not loaded</i>"
            elif node.value_type in ("SCOORD", "SCOORD3D"):
                label = f"region: {node.value}"
                body = link(node, f"show {label}") if here or node.value_type == "SCOORD3D" else _esc(label)
            else:
                body = _esc(value)
            extra = f" <span style='color:#999'>({_esc(note)})</span>" if note else ""
            out.append(f"<p style='{pad};margin-top:2px;margin-bottom:2px'><b>{concept}</b>: {body}{extra}</p>")
        for c in node.children:
            emit(c, depth + 1)

    for c in root.children:
        emit(c, 1)
    if not root.children:
        out.append("<p><i>(empty report)</i></p>")
    return "\n".join(out), links


def referenced_uids(root: ov.SrNode) -> set[str]:
    return {u for node, _ in ov.walk(root) for u, _ in node.refs}


class SrDock(QWidget):
    """Structured reports as readable text: headings, values with units, links that jump to images.

    Follows the layer selection: selecting an SR's overlay, or an image a report
    refers to, shows that report.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        state.of(napari_viewer).docks[DOCK] = self
        bind_overlay_keys(napari_viewer)
        self.choice = QComboBox()
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        self.view.setOpenExternalLinks(False)
        # links readable on napari's dark theme (Qt's default link blue is not)
        self.view.document().setDefaultStyleSheet("a { color: #6cb6ff; }")
        self.view.anchorClicked.connect(self._on_link)
        self.setMinimumWidth(320)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Structured report (click a link to show its image)"))
        lay.addWidget(self.choice)
        lay.addWidget(self.view)
        self.choice.currentIndexChanged.connect(self._show)
        napari_viewer.layers.selection.events.active.connect(self._on_active)
        # links follow what is open: an image opened later makes its references clickable
        napari_viewer.layers.events.inserted.connect(self._relink)
        napari_viewer.layers.events.removed.connect(self._relink)
        self._paths: list = []
        self._roots: dict = {}
        self.links: list[ov.SrNode] = []
        self.refresh()
        keep_whole_view(napari_viewer)  # the dock takes its share of the window

    # ---- the documents
    def documents(self) -> list[str]:
        st = state.of(self.viewer)
        legacy = [l.metadata[SR_KEY] for l in self.viewer.layers if SR_KEY in l.metadata]  # layer data added by hand
        return list(dict.fromkeys(st.sr_documents + legacy))

    def root(self, path: str) -> ov.SrNode:
        r = self._roots.get(path)
        if r is None:
            r = self._roots[path] = ov.parse_sr(read_object(path))
        return r

    def refresh(self):
        paths = self.documents()
        if paths == self._paths:
            return
        self._paths = paths
        self.choice.blockSignals(True)
        self.choice.clear()
        self.choice.addItems([f"{self.root(p).concept or 'SR'} ({os.path.basename(p)})" for p in paths])
        self.choice.blockSignals(False)
        self._show(0)

    def _show(self, i: int):
        self.view.clear()
        self.links = []
        if not 0 <= i < len(self._paths):
            return
        shown = {u for l in self.viewer.layers for u in (l.metadata.get("sop_instance_uids") or [])}
        text, self.links = report_html(
            self.root(self._paths[i]), os.path.basename(self._paths[i]), loaded=shown.__contains__
        )
        self.view.setHtml(text)

    def _relink(self, event=None) -> None:
        self.refresh()
        self._show(self.choice.currentIndex())

    def show_document(self, path: str) -> bool:
        if path not in self._paths:
            return False
        i = self._paths.index(path)
        if self.choice.currentIndex() != i:
            self.choice.setCurrentIndex(i)
        return True

    def text(self) -> str:
        return self.view.toPlainText()

    # ---- following the viewer
    def _on_active(self, event=None):
        layer = self.viewer.layers.selection.active
        if layer is None or not self._paths:
            return
        ovm = layer.metadata.get(OVERLAY)
        if isinstance(ovm, dict) and ovm.get("source") in self._paths:
            self.show_document(ovm["source"])
            return
        uids = set(layer.metadata.get("sop_instance_uids") or [])
        if uids:
            for p in self._paths:
                if referenced_uids(self.root(p)) & uids:
                    self.show_document(p)
                    return

    # ---- jumping
    def _on_link(self, url) -> None:
        s = url.toString()
        if s.startswith("node:"):
            self.jump(self.links[int(s[5:])])

    def jump(self, node: ov.SrNode) -> bool:
        """Show the image (and frame) a content item refers to."""
        refs = node.refs or [r for c in node.children if c.value_type == "IMAGE" for r in c.refs]
        if not refs:
            _notify.info("napari-dcm: this region names no image")
            return False
        uid, frames = refs[0]
        return jump_to(self.viewer, uid, frames)


def sr_dock(viewer) -> SrDock:
    dock = state.dock(viewer, DOCK)
    if dock is None:
        dock = SrDock(viewer)
        viewer.window.add_dock_widget(dock, name="Structured report", area="right")
    return dock
