"""Live editing of EMBED ROI shapes layers in a viewer (snap, clamp, copies, autosave)."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..layers.recovery import save_recovery
from ..layers.rois import DROPPED, FEATURE_DEFAULTS, META, RoiSet, features_frame, frames_str, snap_box

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
    """Keeps an ROI shapes layer and its ROI state (``rs``, a :class:`RoiSet`) in step while
    the layer is edited in napari.

    napari reports every edit twice on ``layer.events.data``: when it starts ("adding",
    "changing", "removing": a mouse press, mid-drag) and when it is finished ("added",
    "changed", "removed": the release).  Nothing here touches the layer while an edit is in
    progress.  After a finished edit the ROI state is updated at once (and autosaved):
    boxes snap to pixel edges and are clamped to the image, empty boxes are refused, a
    shape that is no ROI yet (drawn, pasted) becomes a new ROI of the file and stored frame
    it was drawn on, the copy of a multi-frame ROI that moved moves the ROI, deleting any
    copy deletes the ROI.  The shapes' ``roi`` ids are written at once too; the outlines
    themselves are rewritten from the ROI state (snapped, clamped, every copy) only when
    they differ from it, once napari has finished handling the edit.
    """

    def __init__(self, layer, viewer=None, notify=None):
        self.layer = layer
        self.viewer = viewer
        self.meta = layer.metadata[META]
        self.rs = RoiSet.from_shapes(layer.data, layer.features, self.meta)
        self.dirty = False
        self._syncing = False  # our own writes to the layer (their data events are ours)
        self._editing = False  # napari reported the start of an edit and not yet its end
        self._sync_due = False  # the layer's outlines may differ from the ROI state
        self._seen: dict = {}  # (roi id, display frame) -> box the layer showed after the last edit
        self._notify = notify or (lambda msg: log.warning(msg))
        layer.events.data.connect(self._on_data)
        layer.events.features.connect(self._on_features)
        layer.metadata[META + "_controller"] = True
        self.sync_layer()

    def disconnect(self) -> None:
        """Stop following the layer (it was removed)."""
        self._sync_due = False
        self.layer.events.data.disconnect(self._on_data)
        self.layer.events.features.disconnect(self._on_features)

    # ---- events
    def _on_data(self, event=None):
        if self._syncing:
            return
        action = str(getattr(event, "action", "changed")).lower()
        if action in ("adding", "changing", "removing"):
            self._editing = True  # a drag or a removal is under way: hands off the layer
            return
        if action not in ("added", "changed", "removed"):
            return
        self._editing = False
        self.reconcile()
        if action == "removed":
            # napari has finished removing (a key, a button, code): drop the ROI's other copies now
            self.sync_layer()
        else:
            # napari still has its release handling to run after this event: rewrite after it
            self._schedule_sync()

    def _on_features(self, event=None):
        # napari pastes shapes (Ctrl+V) without a data event, only this one: the pasted
        # shapes become ROIs here (after any other finished edit this finds nothing new)
        if self._syncing or self._editing:
            return
        if self.reconcile():
            self._schedule_sync()

    def current_display_frame(self) -> int:
        if self.meta["ndim"] == 2 or self.viewer is None:
            return 0
        return int(self.viewer.dims.current_step[0])

    def copies(self, roi) -> int:
        return len(self.rs.places(roi))

    def _frame_of(self, verts):
        """The display frame a shape is on (None on a 2D image)."""
        if self.meta["ndim"] == 2:
            return None
        return int(round(float(np.asarray(verts)[0, 0])))

    def _layer_ids(self) -> list[int]:
        """The ``roi`` feature of every shape (-1: none)."""
        f = self.layer.features
        n = len(self.layer.data)
        if "roi" not in f:
            return [-1] * n
        out = []
        for i in range(n):
            v = f["roi"].iloc[i] if i < len(f) else -1
            out.append(-1 if v is None or (isinstance(v, float) and np.isnan(v)) else int(v))
        return out

    def reconcile(self) -> bool:
        """Bring the ROI state up to date with the layer after a finished edit (the layer's
        outlines are left as they are; only their ``roi`` ids are written).  True when
        something changed."""
        layer, rs = self.layer, self.rs
        data = list(layer.data)
        ids = self._layer_ids()
        by_id = {r["id"]: r for r in rs.rois}
        claimed: dict = {}  # (roi id, frame) -> shape index
        fresh: list[int] = []  # shapes that are no ROI yet
        moved: dict = {}  # roi id -> the shape index of the copy that moved
        for i, verts in enumerate(data):
            rid = ids[i]
            if rid == DROPPED:
                continue
            r = by_id.get(rid)
            key = (rid, self._frame_of(verts))
            if r is None or key in claimed or key[1] not in rs.places(r):
                fresh.append(i)  # drawn, pasted, or a copy where its ROI has none
                continue
            claimed[key] = i
            if snap_box(verts) != self._seen.get(key, tuple(r["box"])) and rid not in moved:
                moved[rid] = i
        changed_paths: set = set()
        refused = 0
        new_ids = list(ids)
        for rid, i in moved.items():
            r = by_id[rid]
            box = snap_box(data[i], rs.rows, rs.cols)
            if box[2] <= box[0] or box[3] <= box[1]:
                refused += 1  # the outline goes back to the ROI's box
            elif box != tuple(r["box"]):
                r["box"] = box
                changed_paths.add(r["path"])
        for r in list(rs.rois):
            # deleting any copy of a multi-frame ROI deletes the ROI
            if any((r["id"], t) not in claimed for t in rs.places(r)):
                rs.rois.remove(r)
                changed_paths.add(r["path"])
                for t in rs.places(r):
                    if (r["id"], t) in claimed:
                        new_ids[claimed.pop((r["id"], t))] = DROPPED
        for i in fresh:
            box = snap_box(data[i], rs.rows, rs.cols)
            if box[2] <= box[0] or box[3] <= box[1]:
                refused += 1
                new_ids[i] = DROPPED
                continue
            path, frames = rs.where(data[i])
            roi = rs.add(path, box, frames)
            new_ids[i] = roi["id"]
            claimed[(roi["id"], self._frame_of(data[i]))] = i
            changed_paths.add(path)
        self._seen = {key: snap_box(data[i]) for key, i in claimed.items()}
        if new_ids != ids or refused or changed_paths:
            self._write_features(new_ids)
        if refused:
            self._notify("napari-dcm: an empty ROI (zero width or height after snapping to pixel edges) was refused")
        if changed_paths:
            self._mark_edited(changed_paths)
        return bool(new_ids != ids or refused or changed_paths or moved)

    def _write_features(self, ids: list[int]) -> None:
        """Set every shape's features from its ROI id (the layer's data and state untouched)."""
        by_id = {r["id"]: r for r in self.rs.rois}
        feats: dict = {"roi": [], "path": [], "frames": []}
        for rid in ids:
            r = by_id.get(rid)
            feats["roi"].append(rid)
            feats["path"].append(r["path"] if r else "")
            feats["frames"].append(frames_str(r["frames"]) if r else "")
        self._set_features(feats)

    def _set_features(self, feats: dict) -> None:
        layer = self.layer
        self._syncing = True
        try:
            layer.features = features_frame(feats)
            # napari makes a column's last value the default of the next shape: a shape drawn
            # next would carry the last ROI's id and be taken for a move of that ROI
            layer.feature_defaults = dict(FEATURE_DEFAULTS)
        finally:
            self._syncing = False

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

    def _schedule_sync(self) -> None:
        if self._sync_due:
            return
        self._sync_due = True
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, self._sync_later)

    def _sync_later(self) -> None:
        if self._sync_due and not self._editing:  # else: after the edit under way finishes
            self.sync_layer()

    def flush(self) -> None:
        """Rewrite the layer now if a finished edit left it out of step (before an export)."""
        if self._sync_due:
            self.sync_layer(force=True)

    def sync_layer(self, force: bool = False) -> None:
        """Make the layer show the ROI state: one snapped, clamped rectangle per ROI and
        display frame.  Nothing is written when it already does; selected ROIs stay
        selected and the layer's mode is kept.  Skipped while an edit is under way
        (unless ``force``)."""
        if self._editing and not force:
            return
        self._sync_due = False
        layer = self.layer
        data, feats = self.rs.shapes()
        cur = list(layer.data)
        ids = self._layer_ids()
        same = (
            len(cur) == len(data)
            and ids == list(feats["roi"])
            and all(t == "rectangle" for t in layer.shape_type)
            and all(np.asarray(a).shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-3) for a, b in zip(cur, data))
        )
        places = [(rid, self._frame_of(v)) for rid, v in zip(feats["roi"], data)]
        self._seen = {key: snap_box(v) for key, v in zip(places, data)}
        if same:
            if list(layer.features["path"]) != feats["path"] or list(layer.features["frames"]) != feats["frames"]:
                self._set_features(feats)
            return
        sel = {(ids[i], self._frame_of(cur[i])) for i in layer.selected_data if i < len(cur)}
        mode = layer.mode
        width = float(layer.current_edge_width)
        self._syncing = True
        try:
            layer.selected_data = set()
            layer.data = [(v, "rectangle") for v in data]
            if len(data):
                layer.edge_width = width  # shapes napari adds to fit a longer list get its default
            layer.features = features_frame(feats)
            layer.feature_defaults = dict(FEATURE_DEFAULTS)
            layer.selected_data = {i for i, key in enumerate(places) if key in sel}
            if layer.mode != mode:
                layer.mode = mode
        finally:
            self._syncing = False

    def refresh(self) -> None:
        """Rewrite the layer from the ROI state now (keeps the selected ROIs selected)."""
        self.sync_layer(force=True)

    # ---- commands
    def selected_roi_ids(self) -> list[int]:
        ids = self._layer_ids()
        known = {r["id"] for r in self.rs.rois}
        return sorted({ids[i] for i in self.layer.selected_data if i < len(ids) and ids[i] in known})

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
        self.rs.replace(state["rois"])
        for p, info in state.get("rows", {}).items():
            self.meta["rows"][p] = info
        self.dirty = True
        self.refresh()
