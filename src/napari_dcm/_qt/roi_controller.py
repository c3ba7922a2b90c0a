"""Live editing of EMBED ROI shapes layers in a viewer (snap, clamp, copies, autosave)."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..layers.recovery import save_recovery
from ..layers.rois import EDGE_COLOR, META, RoiSet, features_frame, snap_box

log = logging.getLogger("napari_dcm")

#: ROI outlines are this wide on screen at every zoom (napari's edge width is in data pixels,
#: so a fixed 2-pixel edge is sub-pixel, i.e. invisible, on a whole mammogram at fit zoom)
SCREEN_EDGE_PX = 2.0


def edge_width_for(layer, zoom: float) -> float:
    """Edge width in data pixels that is ``SCREEN_EDGE_PX`` screen pixels at camera ``zoom``."""
    s = float(np.max(np.abs(np.asarray(layer.scale, dtype=float)[-2:]))) or 1.0
    return SCREEN_EDGE_PX / max(float(zoom) * s, 1e-9)


def fit_edges(layer, zoom: float, force: bool = False) -> None:
    """Set a shapes layer's edge width (its shapes and new ones) for ``zoom``; skipped when within 15 %."""
    w = edge_width_for(layer, zoom)
    cur = float(layer.current_edge_width)
    if not force and cur > 0 and abs(w - cur) <= 0.15 * cur:
        return
    layer.current_edge_width = w
    if len(layer.data):
        layer.edge_width = w


class RoiController:
    """Keeps an ROI shapes layer consistent while it is edited in napari.

    After every finished edit (a rectangle drawn, moved, resized or deleted)
    the layer is reconciled with the ROI state: boxes snap to pixel edges and
    are clamped to the image, empty boxes are refused, every copy of a
    multi-frame ROI follows the one that moved, deleting any copy deletes the
    ROI, a new rectangle belongs to the file and stored frame it was drawn on.
    Each edit autosaves the state to a recovery file.
    """

    def __init__(self, layer, viewer=None, notify=None):
        self.layer = layer
        self.viewer = viewer
        self.meta = layer.metadata[META]
        self.rs = RoiSet.from_shapes(layer.data, layer.features, self.meta)
        self.dirty = False
        self._syncing = False
        self._notify = notify or (lambda msg: log.warning(msg))
        layer.events.data.connect(self._on_data)
        layer.metadata[META + "_controller"] = True

    # ---- events
    def _on_data(self, event=None):
        if self._syncing:
            return
        action = str(getattr(event, "action", "changed")).lower()
        if action not in ("added", "changed", "removed"):
            return
        self.reconcile(removed=action == "removed")

    def current_display_frame(self) -> int:
        if self.meta["ndim"] == 2 or self.viewer is None:
            return 0
        return int(self.viewer.dims.current_step[0])

    def copies(self, roi) -> int:
        return 1 if self.meta["ndim"] == 2 else len(self.rs.display_frames(roi["path"], roi["frames"]))

    def reconcile(self, removed: bool = False) -> None:
        layer, rs = self.layer, self.rs
        data = list(layer.data)
        feats = layer.features
        by_id = {r["id"]: r for r in rs.rois}
        present: set = set()
        counts: dict = {}
        if removed and "roi" in feats:
            for v in feats["roi"]:
                counts[int(v)] = counts.get(int(v), 0) + 1
        changed_paths: set = set()
        refused = 0
        for i, verts in enumerate(data):
            rid = feats["roi"].iloc[i] if "roi" in feats and i < len(feats) else -1
            rid = -1 if rid is None or (isinstance(rid, float) and np.isnan(rid)) else int(rid)
            raw = snap_box(verts)
            box = snap_box(verts, rs.rows, rs.cols)
            empty = box[2] <= box[0] or box[3] <= box[1]
            if rid < 0 or rid not in by_id:
                if empty:
                    refused += 1
                    continue
                path, frames = rs._where(verts)
                roi = rs.add(path, box, frames)
                by_id[roi["id"]] = roi
                present.add(roi["id"])
                changed_paths.add(path)
                continue
            present.add(rid)
            roi = by_id[rid]
            if tuple(raw) != tuple(roi["box"]):  # moved or resized: snap and clamp
                if empty:
                    refused += 1
                    continue
                roi["box"] = box
                changed_paths.add(roi["path"])
        for r in list(rs.rois):
            # deleting any copy of a multi-frame ROI deletes the ROI
            if r["id"] not in present or (removed and counts.get(r["id"], 0) < self.copies(r)):
                rs.rois.remove(r)
                changed_paths.add(r["path"])
        if refused:
            self._notify("napari-dcm: an empty ROI (zero width or height after snapping to pixel edges) was refused")
        if changed_paths:
            self._mark_edited(changed_paths)
        self.refresh()

    def _mark_edited(self, paths) -> None:
        for p in paths:
            if p in self.meta["rows"]:
                self.meta["rows"][p]["edited"] = True
        self.meta["edited_at"] = time.time()
        self.dirty = True
        try:
            save_recovery(self.meta, self.rs)
        except OSError as exc:  # an autosave failure must be visible
            self._notify(f"napari-dcm: could not autosave ROIs ({exc})")

    def refresh(self) -> None:
        """Rewrite the layer from the ROI state (keeps the selected ROIs selected)."""
        layer = self.layer
        sel_ids = set()
        if len(layer.features):
            for i in layer.selected_data:
                if i < len(layer.features):
                    sel_ids.add(
                        int(layer.features["roi"].iloc[i]) if not np.isnan(layer.features["roi"].iloc[i]) else -1
                    )
        data, feats = self.rs.shapes()
        mode = layer.mode
        self._syncing = True
        try:
            layer.selected_data = set()
            if len(layer.data):
                layer.data = []
            if data:
                layer.add_rectangles(
                    data, edge_color=EDGE_COLOR, face_color="transparent", edge_width=float(layer.current_edge_width)
                )
            layer.features = features_frame(feats)
            layer.selected_data = {i for i, r in enumerate(feats["roi"]) if r in sel_ids}
            layer.mode = mode
        finally:
            self._syncing = False

    # ---- commands
    def selected_roi_ids(self) -> list[int]:
        f = self.layer.features
        return sorted({int(f["roi"].iloc[i]) for i in self.layer.selected_data if i < len(f)})

    def set_scope(self, scope, roi_ids=None) -> None:
        """Scope of ROIs (selected by default): "this" frame, "all" frames or a list of stored frames."""
        ids = set(roi_ids if roi_ids is not None else self.selected_roi_ids())
        if not ids:
            raise ValueError("select one or more ROIs first")
        d = self.current_display_frame()
        paths = set()
        for r in self.rs.rois:
            if r["id"] not in ids:
                continue
            if scope == "all":
                r["frames"] = None
            elif scope == "this":
                if self.meta["ndim"] == 2:
                    r["frames"] = [self.meta["display_to_stored"][0]]
                else:
                    if self.meta["frame_paths"][d] != r["path"]:
                        raise ValueError("the current frame belongs to another file than the ROI")
                    r["frames"] = [self.meta["display_to_stored"][d]]
            else:
                frames = sorted({int(x) for x in scope})
                n = self.meta["nframes_by_path"].get(r["path"], 1)
                bad = [x for x in frames if x < 0 or x >= n]
                if bad or not frames:
                    raise ValueError(f"frames {bad or frames} are outside 0..{n - 1}")
                r["frames"] = frames
            paths.add(r["path"])
        self._mark_edited(paths)
        self.refresh()

    def restore(self, state: dict) -> None:
        """Replace the ROI state with a recovery file's."""
        self.rs.rois = []
        self.rs._next = 0
        for r in state["rois"]:
            roi = self.rs.add(r["path"], r["box"], r["frames"])
            roi["id"] = r["id"]
        self.rs._next = max((r["id"] for r in self.rs.rois), default=-1) + 1
        for p, info in state.get("rows", {}).items():
            self.meta["rows"][p] = info
        self.dirty = True
        self.refresh()
