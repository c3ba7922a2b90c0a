"""ROI layers of a case: every image of the case gets its EMBED ROI shapes layer, built from the
case's rows as a review left them (edited rows stay marked edited, so an export writes them anew).

Rows are matched to the loaded files by absolute path (the case index resolved each CSV row to
its file), not by the CSV's path text.  No napari import here.
"""

from __future__ import annotations

import os

from ..dicom.embed import EmbedRow
from . import keys
from .data import LayerData
from .rois import roi_layer_tuple, roi_meta


def _bad_frames(row: EmbedRow, n: int) -> list[int]:
    return sorted({f for r in row.rois for f in (r.frames or []) if f >= n})


def frame_errors(layer_tuples: list, rows: dict[str, EmbedRow]) -> list[str]:
    """Rows whose ROI frames lie beyond their file (such rows are not shown and stay as they are)."""
    out = []
    for t in (LayerData.of(x) for x in layer_tuples):
        if not t.is_image:
            continue
        n_by = roi_meta(t.kwargs, t.data.ndim, t.data.shape)["nframes_by_path"]
        for p in t.metadata[keys.PATHS]:
            row = rows.get(os.path.abspath(p))
            bad = _bad_frames(row, n_by.get(p, 1)) if row is not None else []
            if row is not None and bad:
                out.append(f"{row.path}: ROI frame(s) {bad} beyond the file's {n_by.get(p, 1)} frame(s)")
    return out


def case_layer_tuples(layer_tuples: list, rows: dict[str, EmbedRow], source: str | None = None) -> list[LayerData]:
    """The case's layers with an ROI layer right after every image; ``rows`` by absolute file path."""
    out: list[LayerData] = []
    for t in (LayerData.of(x) for x in layer_tuples):
        out.append(t)
        if not t.is_image:
            continue
        n_by = roi_meta(t.kwargs, t.data.ndim, t.data.shape)["nframes_by_path"]
        mine = {}
        for p in t.metadata[keys.PATHS]:
            row = rows.get(os.path.abspath(p))
            if row is not None and not _bad_frames(row, n_by.get(p, 1)):
                mine[p] = row
        roi = roi_layer_tuple(t, mine, (), source)
        for p, info in roi.metadata[keys.ROI]["rows"].items():
            # edited rows (and rows of files the CSV has none for) are written anew by an export
            info["edited"] = bool(mine[p].edited or not mine[p].line)
        out.append(roi)
    return out
