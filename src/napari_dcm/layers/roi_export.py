"""EMBED ROI export: the rows of every ROI layer (viewer, layers or layer data) as one CSV."""

from __future__ import annotations

import time

from ..dicom.embed import EmbedRow, format_embed_csv, write_embed_csv
from .data import LayerData
from .recovery import clear_recovery
from .rois import META, RoiSet, row_from_json


def _roi_sources(obj):
    """(data, features, meta) of every ROI layer in a viewer, layer list, layers or tuples."""
    items = obj
    if hasattr(obj, "layers"):
        items = list(obj.layers)
    elif not isinstance(obj, (list, tuple)) or len(obj) == 3 and isinstance(obj[2], str) and isinstance(obj[1], dict):
        items = [obj]
    out = []
    for it in items:
        if isinstance(it, tuple) and len(it) == 3 and isinstance(it[2], str):
            t = LayerData.of(it)
            if t.layer_type == "shapes" and META in t.metadata:
                out.append((t.data, t.kwargs.get("features", {}), t.metadata[META]))
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
    for _data, _feats, meta in _roi_sources(layers_or_viewer):
        meta["exported_at"] = time.time()
        clear_recovery(meta)
    return path
