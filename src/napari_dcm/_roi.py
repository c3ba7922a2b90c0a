"""EMBED ROIs as napari shapes layers (layer data, model, export, recovery).

A shapes layer per annotated image, with the image's scale and translate.
Each ROI is a rectangle on pixel edges (napari pixel centres are integers, so
EMBED edge ``e`` is napari coordinate ``e - 0.5``).  On a multi-frame image an
ROI has one rectangle on every display frame of its scope.

``layer.features`` has one row per rectangle: ``roi`` (the ROI's id, file
order), ``path`` (its DICOM file as loaded) and ``frames`` ("all" or a JSON
list of stored frame indices).  ``layer.metadata["napari_dcm_roi"]`` holds
what export needs: the image geometry, the CSV rows as imported, and the
rows that matched no loaded file.

This module imports napari only inside :class:`RoiController`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import numpy as np

from .dicom.embed import EmbedRow, LoadedFile, Roi, format_embed_csv, match_rows, read_embed_csv, write_embed_csv

log = logging.getLogger("napari_dcm")

META = "napari_dcm_roi"
EDGE_COLOR = "#ffcc00"


# --------------------------------------------------------------------------
# geometry


def box_vertices(box, t=None) -> np.ndarray:
    """Rectangle vertices (napari data coordinates) of an EMBED edge box."""
    y0, x0, y1, x1 = (float(v) - 0.5 for v in box)
    v = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)
    if t is not None:
        v = np.column_stack([np.full(4, float(t)), v])
    return v


def snap_box(vertices, rows: int | None = None, cols: int | None = None):
    """EMBED edge box of a rectangle, snapped to pixel edges (and clamped to
    the image when ``rows``/``cols`` are given)."""
    v = np.asarray(vertices, dtype=float)[:, -2:]
    y0, x0 = v.min(axis=0) + 0.5
    y1, x1 = v.max(axis=0) + 0.5
    y0, y1, x0, x1 = (int(np.floor(c + 0.5)) for c in (y0, y1, x0, x1))
    if rows is not None:
        y0, y1 = (min(max(y, 0), rows) for y in (y0, y1))
    if cols is not None:
        x0, x1 = (min(max(x, 0), cols) for x in (x0, x1))
    return y0, x0, y1, x1


def _frames_str(frames) -> str:
    return "all" if frames is None else json.dumps(sorted(set(int(f) for f in frames)), separators=(",", ":"))


def _frames_of(s: str):
    if s in ("all", "", None) or (isinstance(s, float) and np.isnan(s)):
        return None
    return [int(x) for x in json.loads(s)]


# --------------------------------------------------------------------------
# the per-image ROI state


class RoiSet:
    """ROIs of one image layer (one or more files), in file order."""

    def __init__(self, meta: dict):
        self.meta = meta
        self.rois: list[dict] = []  # {"id", "path", "box", "frames"}
        self._next = 0

    # -- image geometry
    @property
    def ndim(self) -> int:
        return self.meta["ndim"]

    @property
    def rows(self) -> int:
        return self.meta["shape"][0]

    @property
    def cols(self) -> int:
        return self.meta["shape"][1]

    def display_frames(self, path: str, frames) -> list[int]:
        """Display indices of stored ``frames`` of ``path`` (all of that file's when None)."""
        fp, d2s = self.meta["frame_paths"], self.meta["display_to_stored"]
        if frames is None:
            return [d for d, p in enumerate(fp) if p == path]
        want = set(frames)
        return [d for d, (p, s) in enumerate(zip(fp, d2s)) if p == path and s in want]

    def add(self, path: str, box, frames) -> dict:
        roi = {"id": self._next, "path": path, "box": tuple(int(v) for v in box), "frames": frames}
        self._next += 1
        self.rois.append(roi)
        return roi

    # -- to/from shapes
    def shapes(self):
        """(data, features) for the shapes layer."""
        data, feats = [], {"roi": [], "path": [], "frames": []}
        for r in self.rois:
            if self.ndim == 2:
                places = [None]
            else:
                places = self.display_frames(r["path"], r["frames"])
            for t in places:
                data.append(box_vertices(r["box"], t))
                feats["roi"].append(r["id"])
                feats["path"].append(r["path"])
                feats["frames"].append(_frames_str(r["frames"]))
        return data, feats

    @classmethod
    def from_shapes(cls, data, features, meta: dict) -> RoiSet:
        """Rebuild the ROI state from shapes (e.g. a layer saved by another session)."""
        s = cls(meta)
        import pandas as pd

        f = pd.DataFrame(features) if not isinstance(features, pd.DataFrame) else features
        seen = {}
        for i, verts in enumerate(data):
            rid = f["roi"].iloc[i] if "roi" in f and i < len(f) else -1
            rid = -1 if rid is None or (isinstance(rid, float) and np.isnan(rid)) else int(rid)
            if rid >= 0 and rid in seen:
                continue
            path = f["path"].iloc[i] if "path" in f and i < len(f) else ""
            frames = _frames_of(f["frames"].iloc[i]) if "frames" in f and i < len(f) else None
            if not path:
                path, frames = s._where(verts)
            box = snap_box(verts)
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            roi = {"id": rid if rid >= 0 else -1, "path": path, "box": box, "frames": frames}
            if rid >= 0:
                seen[rid] = roi
            s.rois.append(roi)
        ids = [r["id"] for r in s.rois if r["id"] >= 0]
        s._next = max(ids, default=-1) + 1
        for r in s.rois:
            if r["id"] < 0:
                r["id"] = s._next
                s._next += 1
        return s

    def _where(self, verts):
        """File and stored frame of a rectangle drawn on a display frame."""
        v = np.asarray(verts)
        fp, d2s = self.meta["frame_paths"], self.meta["display_to_stored"]
        if self.ndim == 2 or v.shape[1] == 2:
            return fp[0], [d2s[0]]
        d = int(np.clip(round(float(v[0, 0])), 0, len(fp) - 1))
        return fp[d], [d2s[d]]

    # -- EMBED rows
    def rows_for_export(self) -> list[tuple[EmbedRow, int | None]]:
        """One row per file: imported rows (kept as imported when unedited) and new ones."""
        info = self.meta.get("rows", {})
        nframes = self.meta.get("nframes_by_path", {})
        by_path: dict[str, list[Roi]] = {}
        for r in self.rois:
            by_path.setdefault(r["path"], []).append(Roi(tuple(r["box"]), None if r["frames"] is None else list(r["frames"])))
        out = []
        order = list(info.keys()) + [p for p in by_path if p not in info]
        for p in order:
            rois = by_path.get(p, [])
            ri = info.get(p)
            if ri is None and not rois:
                continue
            if ri is not None:
                row = EmbedRow(path=ri["csv_path"], rois=rois, line=ri["line"], frames_cell=ri["frames_cell"], edited=ri["edited"])
            else:
                row = EmbedRow(path=p, rois=rois, edited=True)
            out.append((row, nframes.get(p)))
        return out


# --------------------------------------------------------------------------
# building layer data


def roi_meta(image_kwargs: dict, image_ndim: int, shape) -> dict:
    md = image_kwargs["metadata"]
    fp = md["frame_paths"]
    nby: dict[str, int] = {}
    for p, s in zip(fp, md["display_to_stored"]):
        nby[p] = max(nby.get(p, 0), s + 1)
    for p in md["paths"]:
        nby.setdefault(p, 1)
    if md.get("number_of_frames"):
        nby[md["paths"][0]] = md["number_of_frames"]
    return {
        "image": image_kwargs["name"],
        "ndim": 2 if image_ndim - int(image_kwargs.get("rgb", False)) == 2 else 3,
        "shape": [int(shape[-2 - int(image_kwargs.get("rgb", False))]), int(shape[-1 - int(image_kwargs.get("rgb", False))])],
        "frame_paths": list(fp),
        "display_to_stored": list(md["display_to_stored"]),
        "paths": list(md["paths"]),
        "nframes_by_path": nby,
        "rows": {},
        "unmatched": [],
        "source": None,
        "edited_at": None,
    }


def roi_layer_tuple(image_tuple, rows: dict[str, EmbedRow] | None = None, unmatched=(), source=None):
    """A shapes-layer tuple holding the EMBED ROIs of one image layer tuple."""
    data, kwargs, _ = image_tuple
    meta = roi_meta(kwargs, data.ndim, data.shape)
    rs = RoiSet(meta)
    for path in meta["paths"]:
        row = (rows or {}).get(path)
        if row is None:
            continue
        meta["rows"][path] = {"csv_path": row.path, "line": row.line, "frames_cell": row.frames_cell, "edited": False}
        for roi in row.rois:
            rs.add(path, roi.box, roi.frames)
    meta["unmatched"] = [row_to_json(r) for r in unmatched]
    meta["source"] = source
    shapes, feats = rs.shapes()
    return (shapes, shape_kwargs(kwargs, meta, feats, len(shapes)), "shapes")


def shape_kwargs(image_kwargs: dict, meta: dict, feats: dict, n: int) -> dict:
    ndim = meta["ndim"]
    scale = tuple(image_kwargs["scale"])[-ndim:]
    translate = tuple(image_kwargs["translate"])[-ndim:]
    kw = {
        "name": f"{image_kwargs['name']} · ROIs",
        "ndim": ndim,
        "shape_type": ["rectangle"] * n,
        "edge_color": EDGE_COLOR,
        "face_color": "transparent",
        "edge_width": 2,
        "scale": scale,
        "translate": translate,
        "features": features_frame(feats),
        "feature_defaults": {"roi": -1, "path": "", "frames": ""},
        "metadata": {META: meta},
        "text": {"string": "{roi}", "color": EDGE_COLOR, "anchor": "upper_left", "size": 9},
    }
    if image_kwargs.get("units"):
        kw["units"] = tuple(str(u) for u in image_kwargs["units"])[-ndim:]
    return kw


def features_frame(feats: dict):
    """Typed features (an empty layer must still accept string defaults)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "roi": pd.Series(feats.get("roi", []), dtype="int64"),
            "path": pd.Series(feats.get("path", []), dtype="object"),
            "frames": pd.Series(feats.get("frames", []), dtype="object"),
        }
    )


def row_to_json(row: EmbedRow) -> dict:
    return {
        "path": row.path,
        "line": row.line,
        "frames_cell": row.frames_cell,
        "rois": [[list(r.box), r.frames] for r in row.rois],
    }


def row_from_json(d: dict) -> EmbedRow:
    return EmbedRow(path=d["path"], rois=[Roi(tuple(b), f) for b, f in d["rois"]], line=d.get("line", 0), frames_cell=d.get("frames_cell", ""))


def attach_annotations(layer_tuples: list, csv_path, cwd: str | None = None, report: list | None = None) -> list:
    """Add an ROI shapes layer after every image tuple; rows matched by path."""
    table = read_embed_csv(csv_path)
    images = [t for t in layer_tuples if t[2] == "image"]
    files = []
    for data, kw, _ in images:
        md = kw["metadata"]
        n_by = roi_meta(kw, data.ndim, data.shape)["nframes_by_path"]
        files += [LoadedFile(p, n_by.get(p, 1)) for p in md["paths"]]
    matched, unmatched = match_rows(table, files, cwd)
    if report is not None:
        report.extend(unmatched)
    out = []
    first = True
    for t in layer_tuples:
        out.append(t)
        if t[2] == "image":
            out.append(roi_layer_tuple(t, matched, unmatched if first else (), table.source))
            first = False
    return out


# --------------------------------------------------------------------------
# export


def _roi_sources(obj):
    """(data, features, meta) of every ROI layer in a viewer, layer list, layers or tuples."""
    items = obj
    if hasattr(obj, "layers"):
        items = list(obj.layers)
    elif not isinstance(obj, (list, tuple)):
        items = [obj]
    elif len(obj) == 3 and isinstance(obj[2], str) and isinstance(obj[1], dict):
        items = [obj]
    out = []
    for it in items:
        if isinstance(it, tuple) and len(it) == 3 and isinstance(it[2], str):
            data, kw, kind = it
            if kind == "shapes" and META in kw.get("metadata", {}):
                out.append((data, kw.get("features", {}), kw["metadata"][META]))
        elif hasattr(it, "metadata") and META in getattr(it, "metadata", {}):
            out.append((it.data, it.features, it.metadata[META]))
    return out


def collect_rows(obj, include_unmatched: bool = True) -> list[tuple[EmbedRow, int | None]]:
    rows: list = []
    seen: set = set()
    unmatched: list = []
    for data, feats, meta in _roi_sources(obj):
        rs = RoiSet.from_shapes(data, feats, meta)
        for row, n in rs.rows_for_export():
            if row.key in seen:
                continue
            seen.add(row.key)
            rows.append((row, n))
        for u in meta.get("unmatched", []):
            unmatched.append(row_from_json(u))
    if include_unmatched:
        for u in unmatched:
            if u.key not in seen:
                seen.add(u.key)
                rows.append((u, None))
    # rows from the CSV keep their CSV order; new rows follow in load order
    imported = sorted((r for r in rows if r[0].line), key=lambda r: r[0].line)
    new = [r for r in rows if not r[0].line]
    return imported + new


def export_text(obj, include_unmatched: bool = True) -> str:
    return format_embed_csv(collect_rows(obj, include_unmatched))


def save_embed_csv(layers_or_viewer, csv_path, *, overwrite: bool = False, include_unmatched: bool = True) -> str:
    """Export the EMBED ROIs of a viewer, layers or ``read`` tuples to ``csv_path``.

    Refuses to replace an existing file unless ``overwrite=True`` (the CSV
    the ROIs were imported from included).  Returns the absolute path written.
    """
    rows = collect_rows(layers_or_viewer, include_unmatched)
    path = write_embed_csv(rows, csv_path, overwrite=overwrite)
    for data, feats, meta in _roi_sources(layers_or_viewer):
        meta["exported_at"] = time.time()
        clear_recovery(meta)
    return path


# --------------------------------------------------------------------------
# recovery files (autosave)


def cache_dir() -> str:
    base = os.environ.get("NAPARI_DCM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "napari-dcm"
    )
    d = os.path.join(base, "recovery")
    os.makedirs(d, exist_ok=True)
    return d


def recovery_path(paths) -> str:
    key = hashlib.sha1("\n".join(sorted(os.path.abspath(p) for p in paths)).encode()).hexdigest()[:20]
    return os.path.join(cache_dir(), f"{key}.json")


def save_recovery(meta: dict, rs: RoiSet) -> str:
    p = recovery_path(meta["paths"])
    state = {
        "saved_at": time.time(),
        "image": meta["image"],
        "paths": meta["paths"],
        "rows": meta["rows"],
        "rois": [dict(r, box=list(r["box"])) for r in rs.rois],
    }
    tmp = p + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    os.replace(tmp, p)
    return p


def load_recovery(paths) -> dict | None:
    p = recovery_path(paths)
    if not os.path.exists(p):
        return None
    try:
        with open(p, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def clear_recovery(meta: dict) -> None:
    p = recovery_path(meta["paths"])
    if os.path.exists(p):
        os.remove(p)


# --------------------------------------------------------------------------
# live editing in a viewer


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
                    sel_ids.add(int(layer.features["roi"].iloc[i]) if not np.isnan(layer.features["roi"].iloc[i]) else -1)
        data, feats = self.rs.shapes()
        mode = layer.mode
        self._syncing = True
        try:
            layer.selected_data = set()
            if len(layer.data):
                layer.data = []
            if data:
                layer.add_rectangles(data, edge_color=EDGE_COLOR, face_color="transparent", edge_width=2)
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
