"""EMBED ROIs as napari shapes layers: geometry, the per-image ROI model, layer data.

A shapes layer per annotated image, with the image's scale and translate.
Each ROI is a rectangle on pixel edges (napari pixel centres are integers, so
EMBED edge ``e`` is napari coordinate ``e - 0.5``).  On a multi-frame image an
ROI has one rectangle on every display frame of its scope.

``layer.features`` has one row per rectangle: ``roi`` (the ROI's id, file
order), ``path`` (its DICOM file as loaded) and ``frames`` ("all" or a JSON
list of stored frame indices).  ``layer.metadata["napari_dcm_roi"]`` holds
what export needs: the image geometry, the CSV rows as imported, and the
rows that matched no loaded file.

Export is in :mod:`.roi_export`, autosave in :mod:`.recovery`, live editing
in a viewer in ``napari_dcm._qt.roi_controller``.  No napari import here.
"""

from __future__ import annotations

import json

import numpy as np

from ..dicom.embed import EmbedRow, LoadedFile, Roi, match_rows, read_embed_csv
from . import keys
from .data import LayerData

META = keys.ROI
EDGE_COLOR = "#ffcc00"
#: features of a shape napari adds (drawn, pasted): no ROI yet
FEATURE_DEFAULTS = {"roi": -1, "path": "", "frames": ""}
#: ``roi`` feature of a shape that belongs to no ROI any more (refused, or a leftover copy of a
#: deleted ROI) until the layer is rewritten from the ROI state; never an ROI
DROPPED = -2


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


def frames_str(frames) -> str:
    """The ``frames`` feature of an ROI's rectangles: "all" or a JSON list of stored frames."""
    return _frames_str(frames)


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

    def replace(self, rois) -> None:
        """Replace every ROI (ids kept; new ROIs are numbered after the highest)."""
        self.rois = [
            {"id": int(r["id"]), "path": r["path"], "box": tuple(int(v) for v in r["box"]), "frames": r["frames"]}
            for r in rois
        ]
        self._next = max((r["id"] for r in self.rois), default=-1) + 1

    def places(self, roi) -> list:
        """Where an ROI has a rectangle: ``[None]`` on a 2D image, else its display frames."""
        return [None] if self.ndim == 2 else self.display_frames(roi["path"], roi["frames"])

    # -- to/from shapes
    def shapes(self):
        """(data, features) for the shapes layer."""
        data, feats = [], {"roi": [], "path": [], "frames": []}
        for r in self.rois:
            for t in self.places(r):
                data.append(box_vertices(r["box"], t))
                feats["roi"].append(r["id"])
                feats["path"].append(r["path"])
                feats["frames"].append(_frames_str(r["frames"]))
        return data, feats

    @classmethod
    def from_shapes(cls, data, features, meta: dict) -> RoiSet:
        """Rebuild the ROI state from shapes (e.g. a layer saved by another session).

        Boxes snap to pixel edges (not clamped: imported boxes are kept as they were);
        shapes marked ``DROPPED`` and empty boxes are no ROI."""
        s = cls(meta)
        import pandas as pd

        f = pd.DataFrame(features) if not isinstance(features, pd.DataFrame) else features
        seen = {}
        for i, verts in enumerate(data):
            rid = f["roi"].iloc[i] if "roi" in f and i < len(f) else -1
            rid = -1 if rid is None or (isinstance(rid, float) and np.isnan(rid)) else int(rid)
            if rid == DROPPED or (rid >= 0 and rid in seen):
                continue
            path = f["path"].iloc[i] if "path" in f and i < len(f) else ""
            frames = _frames_of(f["frames"].iloc[i]) if "frames" in f and i < len(f) else None
            if not path:
                path, frames = s.where(verts)
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

    def where(self, verts):
        """File and frames of a rectangle drawn on a display frame: the stored frame it was
        drawn on, or None (every frame, exported as ``[]``) when the file has a single frame."""
        v = np.asarray(verts)
        fp, d2s = self.meta["frame_paths"], self.meta["display_to_stored"]
        if self.ndim == 2 or v.shape[1] == 2:
            path, stored = fp[0], d2s[0]
        else:
            d = int(np.clip(round(float(v[0, 0])), 0, len(fp) - 1))
            path, stored = fp[d], d2s[d]
        if self.meta.get("nframes_by_path", {}).get(path, 1) <= 1:
            return path, None
        return path, [stored]

    # -- EMBED rows
    def rows_for_export(self) -> list[tuple[EmbedRow, int | None]]:
        """One row per file: imported rows (kept as imported when unedited) and new ones."""
        info = self.meta.get("rows", {})
        nframes = self.meta.get("nframes_by_path", {})
        by_path: dict[str, list[Roi]] = {}
        for r in self.rois:
            by_path.setdefault(r["path"], []).append(
                Roi(tuple(r["box"]), None if r["frames"] is None else list(r["frames"]))
            )
        out = []
        order = list(info.keys()) + [p for p in by_path if p not in info]
        for p in order:
            rois = by_path.get(p, [])
            ri = info.get(p)
            if ri is None and not rois:
                continue
            if ri is not None:
                row = EmbedRow(
                    path=ri["csv_path"], rois=rois, line=ri["line"], frames_cell=ri["frames_cell"], edited=ri["edited"]
                )
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
        "shape": [
            int(shape[-2 - int(image_kwargs.get("rgb", False))]),
            int(shape[-1 - int(image_kwargs.get("rgb", False))]),
        ],
        "frame_paths": list(fp),
        "display_to_stored": list(md["display_to_stored"]),
        "paths": list(md["paths"]),
        "nframes_by_path": nby,
        "rows": {},
        "unmatched": [],
        "source": None,
        "edited_at": None,
    }


def roi_layer_tuple(image_tuple, rows: dict[str, EmbedRow] | None = None, unmatched=(), source=None) -> LayerData:
    """A shapes-layer tuple holding the EMBED ROIs of one image layer tuple."""
    data, kwargs, _ = LayerData.of(image_tuple)
    meta = roi_meta(kwargs, data.ndim, data.shape)
    rs = RoiSet(meta)
    for path in meta["paths"]:
        row = (rows or {}).get(path)
        if row is None:
            continue
        meta["rows"][path] = {"csv_path": row.path, "line": row.line, "frames_cell": row.frames_cell, "edited": False}
        meta["rows"][path]["extra"] = dict(row.extra)  # the row's other CSV columns (DICOM SR write-back)
        for roi in row.rois:
            rs.add(path, roi.box, roi.frames)
    meta["unmatched"] = [row_to_json(r) for r in unmatched]
    meta["source"] = source
    shapes, feats = rs.shapes()
    return LayerData(shapes, shape_kwargs(kwargs, meta, feats, len(shapes)), "shapes")


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
        "feature_defaults": dict(FEATURE_DEFAULTS),
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
    return EmbedRow(
        path=d["path"],
        rois=[Roi(tuple(b), f) for b, f in d["rois"]],
        line=d.get("line", 0),
        frames_cell=d.get("frames_cell", ""),
    )


def attach_annotations(layer_tuples: list, csv_path, cwd: str | None = None, report: list | None = None) -> list:
    """Add an ROI shapes layer after every image tuple; rows matched by path."""
    table = read_embed_csv(csv_path)
    items = [LayerData.of(t) for t in layer_tuples]
    files = []
    for t in items:
        if not t.is_image:
            continue
        n_by = roi_meta(t.kwargs, t.data.ndim, t.data.shape)["nframes_by_path"]
        files += [LoadedFile(p, n_by.get(p, 1)) for p in t.metadata[keys.PATHS]]
    matched, unmatched = match_rows(table, files, cwd)
    if report is not None:
        report.extend(unmatched)
    out: list[LayerData] = []
    first = True
    for t in items:
        out.append(t)
        if t.is_image:
            out.append(roi_layer_tuple(t, matched, unmatched if first else (), table.source))
            first = False
    return out
