"""Mammography hanging layouts in napari's grid (used by the dock, the CLI and scripts)."""

from __future__ import annotations

from .. import _notify
from ..dicom.mammo import LAYOUTS, Layout, arrange, placement_for_layer_metadata
from ..layers import keys
from .viewer import companions, dicom_images

SAVED = keys.LAYOUT_SAVED
PLACEHOLDER = keys.PLACEHOLDER


def mammo_images(viewer) -> list:
    imgs = dicom_images(viewer)
    mg = [l for l in imgs if str(l.metadata.get("modality", "")).upper() == "MG"]
    return mg or imgs


def layout_for(viewer, layout: str | None = None, images=None) -> tuple[Layout, dict]:
    images = images if images is not None else mammo_images(viewer)
    by_path = {}
    placements = []
    for img in images:
        path = img.metadata[keys.PATHS][0]
        p = placement_for_layer_metadata(path, img.metadata)
        placements.append(p)
        by_path[id(p)] = img
    lay = arrange(placements, layout)
    return lay, {p.cell: by_path[id(p)] for p in lay.placements}


def _save(layer) -> None:
    if SAVED not in layer.metadata:
        layer.metadata[SAVED] = {
            "scale": list(layer.scale),
            "translate": list(layer.translate),
            "visible": layer.visible,
        }


def _restore(layer) -> None:
    s = layer.metadata.pop(SAVED, None)
    if s is not None:
        layer.scale = s["scale"]
        layer.translate = s["translate"]
        layer.visible = s["visible"]


def _world_size(layer) -> tuple[float, float]:
    """(height, width) of an image in world units."""
    rows, cols = layer.data.shape[-3:-1] if layer.rgb else layer.data.shape[-2:]
    sy, sx = (abs(float(v)) for v in layer.metadata[SAVED]["scale"][-2:])
    return rows * sy, cols * sx


def apply_layout(viewer, layout: str | None = None, cells: dict | None = None) -> Layout:
    """Hang the loaded mammograms in napari's grid.

    ``layout``: "1x2", "1x3", "2x2", "2x4" (chosen from the image count when
    None).  ``cells``: manual overrides {image layer name: cell index}; an
    image moved onto an occupied cell swaps with it.
    """
    from .roi_dock import ensure_roi_layer

    if layout == "1x1":
        single_view(viewer)
        return Layout("1x1", (1, 1))
    lay, by_cell = layout_for(viewer, layout)
    n_cells = LAYOUTS[lay.name][0] * LAYOUTS[lay.name][1]
    if len(by_cell) > n_cells:
        _notify.warning(f"napari-dcm: {len(by_cell)} images do not fit {lay.name}; showing the first {n_cells}")
        by_cell = {c: l for c, l in by_cell.items() if c < n_cells}
    for name, cell in (cells or {}).items():
        img = next((l for l in by_cell.values() if l.name == name), None)
        if img is None or not 0 <= cell < n_cells:
            raise ValueError(f"cannot move {name!r} to cell {cell}")
        old = next(c for c, l in by_cell.items() if l is img)
        other = by_cell.get(cell)
        by_cell[cell] = img
        if other is not None:
            by_cell[old] = other
        else:
            del by_cell[old]
        for p in lay.placements:
            if p.path == img.metadata[keys.PATHS][0]:
                p.cell = cell
    placements = {p.path: p for p in lay.placements}
    # every image gets an ROI layer so each cell has the same number of layers (grid stride)
    for img in by_cell.values():
        ensure_roi_layer(viewer, img)
    groups = {c: [img] + companions(viewer, img) for c, img in by_cell.items()}
    stride = max(len(g) for g in groups.values())
    # transforms: chest walls meet in the middle, flips through scale
    for g in groups.values():
        for l in g:
            _save(l)
    width = max(_world_size(img)[1] for img in by_cell.values())
    for c, img in by_cell.items():
        p = placements[img.metadata[keys.PATHS][0]]
        h, w = _world_size(img)
        sy, sx = (abs(float(v)) for v in img.metadata[SAVED]["scale"][-2:])
        rows, cols = round(h / sy), round(w / sx)
        left = width - w if p.align == "right" else 0.0
        ty = (rows - 0.5) * sy if p.flip_v else 0.5 * sy
        tx = left + ((cols - 0.5) * sx if p.flip_h else 0.5 * sx)
        for l in groups[c]:
            scale = list(l.metadata[SAVED]["scale"])
            translate = list(l.metadata[SAVED]["translate"])
            scale[-2], scale[-1] = (-sy if p.flip_v else sy), (-sx if p.flip_h else sx)
            translate[-2], translate[-1] = ty, tx
            l.scale, l.translate = scale, translate
            l.visible = True
    # order: cell groups first (padded to the stride), everything else hidden after them
    order = []
    for c in range(n_cells):
        if c in groups:
            g = groups[c] + [_placeholder(viewer, f"cell {c} pad {k}") for k in range(stride - len(groups[c]))]
        elif c < max(groups, default=-1):
            g = [_placeholder(viewer, f"cell {c} empty {k}") for k in range(stride)]
        else:
            continue
        order += g
    rest = [l for l in viewer.layers if l not in order]
    for l in rest:
        _save(l)
        l.visible = False
    for i, l in enumerate(order):
        viewer.layers.move(viewer.layers.index(l), i)
    grid = viewer.canvas.grid
    grid.stride = stride
    grid.shape = LAYOUTS[lay.name]
    grid.enabled = True
    viewer.reset_view()
    return lay


def _placeholder(viewer, name: str):
    for l in viewer.layers:
        if l.metadata.get(PLACEHOLDER) == name:
            return l
    return viewer.add_shapes(name=f"({name})", ndim=2, metadata={PLACEHOLDER: name})


def single_view(viewer) -> None:
    """Back to one view: grid off, transforms and visibility restored, placeholders removed."""
    viewer.canvas.grid.enabled = False
    for l in list(viewer.layers):
        if PLACEHOLDER in l.metadata:
            viewer.layers.remove(l)
    for l in viewer.layers:
        _restore(l)
    viewer.reset_view()
