"""npe2 writer: ROI shapes layers -> EMBED CSV (File > Save Selected Layers…)."""

from __future__ import annotations

from .layers.roi_export import export_text
from .layers.rois import META


def write_embed_rois(path: str, layer_data: list) -> list[str]:
    """Write the EMBED ROIs of the given shapes layers to ``path``."""
    tuples = [(d, m, t) for d, m, t in layer_data if t == "shapes" and META in m.get("metadata", {})]
    if not tuples:
        return []
    text = export_text(tuples)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return [path]
