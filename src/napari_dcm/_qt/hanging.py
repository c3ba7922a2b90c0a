"""Mammography hangings in napari's grid (used by the dock, the CLI and scripts).

napari 0.9's grid draws every group of ``stride`` consecutive layers in its
own viewbox, all viewboxes sharing one camera (so every cell shows the same
world region) and one dims slider; hidden layers take no viewbox.  A hanging
here is therefore:

* one patient's images (see :func:`napari_dcm.dicom.mammo.arrange`; the
  others stay off the grid);
* one group of layers per cell of the layout, in cell order: hidden spacer
  layers padding the group to the stride ("· grid spacer", at the bottom of
  the group, not editable), the image, its ROI and overlay layers, and a
  *label layer* (an empty, non-editable shapes layer whose one-line name,
  "RCC" or "LMLO 2022-03-10" or "RCC (missing)", napari draws in the cell
  through the layer's public ``name_overlay``; shortened and set in a font
  that fits the cell); an empty cell is its label layer alone, so it stays
  in place, labelled;
* every image on one physical scale (mm, see :func:`napari_dcm.dicom.mammo.physical_spacing`);
  images without any spacing get the median height of their neighbours and
  are marked nominal (label and status bar);
* each image centred vertically, right breasts with their right edge (the
  chest wall) on the right edge of their cell, left breasts with their left
  edge on the left edge: the chest walls meet in the middle of each pair.
  Where a cell's edge lies in world units depends on the zoom, so
  :func:`fit` places the images and sets the camera together, after hanging,
  whenever the canvas changes size (the dock opening) and on napari's
  "reset view".  One zoom for all cells (one camera): the largest at which
  every image's height and its breast's width fit their cell;
* flips through negative scales (the data never change), everything else
  hidden and put after the grid.  Layer units are never changed: the scale
  is in mm while hung, the units stay the reader's (one unit for every
  layer, so napari has no "Inconsistent units" to warn about).

:func:`single_view` restores every layer's transform, units and visibility.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _notify
from ..dicom import mammo
from ..dicom.mammo import LAYOUTS, Layout
from ..layers import keys
from ..layers.images import full_resolution, is_multiscale
from . import state
from .viewer import companions, dicom_images

SAVED = keys.LAYOUT_SAVED
PLACEHOLDER = keys.PLACEHOLDER
MAMMO = keys.MAMMO
FILL = 0.97  # share of the cell the tallest image fills
BREAST_MARGIN = 0.05  # share of an image's width kept beyond its breast's edge
SPACING_PX = 4  # canvas pixels between cells
NOMINAL_NOTE = "size nominal: no pixel spacing"
NOMINAL_LABEL = "nominal size"
SPACER = "· grid spacer"  # the name of the hidden layers padding a cell's group
LABEL_PT = (7.0, 12.0)  # the labels' font size range (pt)
PX_PER_PT_CHAR = 1.08  # rendered width of one label character per point of font size (napari's font)
LABEL_PAD_PX = 14  # the label's box padding and the cell's margin


@dataclass
class Hanging:
    """The state of a viewer's current hanging."""

    layout: Layout
    cells: dict[int, Any] = field(default_factory=dict)  # cell -> image layer
    groups: dict[int, list[Any]] = field(default_factory=dict)  # cell -> layers drawn in it
    labels: dict[int, Any] = field(default_factory=dict)  # cell -> label layer
    spacing: dict[int, tuple[float, float]] = field(default_factory=dict)  # id(image) -> (sy, sx) mm
    nominal: set[str] = field(default_factory=set)  # names of images whose size is nominal
    extent: dict[int, float] = field(default_factory=dict)  # id(image) -> share of its width the breast takes
    images: list[Any] = field(default_factory=list)  # the images the layout was made from
    fitting: bool = False
    prefetch: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each parallel fetch


def current(viewer) -> Hanging | None:
    return state.of(viewer).hanging


def mammo_images(viewer) -> list:
    """The images a hanging places: MG images and any other that names a mammography view
    (a digitised film stored as RG or OT, say); all images when none does."""
    imgs = dicom_images(viewer)
    views = {"CC", "MLO", "ML", "LM", "LMO", "XCCL", "XCCM", "FB", "SIO", "ISO"}

    def is_mammo(layer) -> bool:
        md = layer.metadata
        view = str(md.get("view_position") or "").strip().upper()
        return str(md.get("modality", "")).upper() == "MG" or view in views or view.removesuffix("ID") in views

    mg = [layer for layer in imgs if is_mammo(layer)]
    return mg or imgs


def image_values(layer) -> dict[str, Any]:
    """The hanging values of an image layer: read once from its header (a file, or a
    DICOMweb instance's metadata already fetched) and kept in its metadata."""
    md = layer.metadata
    v = md.get(MAMMO)
    if v is None:
        base = {
            k: md.get(k)
            for k in (
                "view_position",
                "series_description",
                "image_laterality",
                "laterality",
                "study_date",
                "patient_orientation",
                "instance_number",
                "patient_id",
            )
            if md.get(k) not in (None, "", [])
        }
        try:
            v = {**base, **mammo.header_values(md[keys.PATHS][0])}
        except Exception as exc:  # an unreadable header: hang by the layer's own values
            _notify.warning(f"napari-dcm: {md[keys.PATHS][0]}: header not readable for the hanging ({exc})")
            v = base
        rows, cols = _frame_shape(layer)
        v.setdefault("rows", rows)
        v.setdefault("columns", cols)
        md[MAMMO] = v
    return dict(v)


def _frame_shape(layer) -> tuple[int, int]:
    shape = layer.data.shape
    rgb = int(bool(getattr(layer, "rgb", False)))
    return int(shape[-2 - rgb]), int(shape[-1 - rgb])


def layout_for(
    viewer,
    layout: str | None = None,
    images=None,
    view: str | None = None,
    assign: dict | None = None,
    patient: str | None = None,
) -> tuple[Layout, dict[int, Any]]:
    """The layout of the viewer's mammograms and {cell: image layer}.

    ``assign``: {image layer name (or path): cell or None}; ``patient``: the PatientID
    that hangs (None: chosen by :func:`napari_dcm.dicom.mammo.patient_order`).
    """
    images = images if images is not None else mammo_images(viewer)
    placements = []
    by_id: dict[int, Any] = {}
    names_to_path: dict[str, str] = {}
    for img in images:
        path = img.metadata[keys.PATHS][0]
        if path in names_to_path.values():  # two layers of one file (orientation groups): keep them apart
            path = f"{path}#{img.name}"
        names_to_path[img.name] = path
        p = mammo.placement_from_values(path, image_values(img))
        placements.append(p)
        by_id[id(p)] = img
    resolved = {names_to_path.get(k, k): v for k, v in (assign or {}).items()}
    lay = mammo.arrange(placements, layout, view, resolved, patient)
    img_of = {p.path: by_id[id(p)] for p in lay.placements}
    return lay, {s.cell: img_of[s.path] for s in lay.slots if s.path is not None}


def layer_of(viewer, lay: Layout, path: str):
    """The image layer of a placement path."""
    for img in mammo_images(viewer):
        p0 = img.metadata[keys.PATHS][0]
        if path in (p0, f"{p0}#{img.name}"):
            return img
    return None


# --------------------------------------------------------------------------
# saving and restoring what a hanging changes


def _save(layer) -> None:
    if SAVED not in layer.metadata:
        layer.metadata[SAVED] = {
            "scale": list(layer.scale),
            "translate": list(layer.translate),
            "visible": layer.visible,
            "affine": np.asarray(layer.affine.affine_matrix).tolist(),
        }


def _restore(layer) -> None:
    s = layer.metadata.pop(SAVED, None)
    if s is None:
        return
    layer.scale = s["scale"]
    layer.translate = s["translate"]
    if "affine" in s:
        layer.affine = np.asarray(s["affine"])
    layer.visible = s["visible"]


def _saved_scale(layer) -> list[float]:
    return list(layer.metadata[SAVED]["scale"])


# --------------------------------------------------------------------------
# hanging


def apply_layout(
    viewer,
    layout: str | None = None,
    cells: dict | None = None,
    view: str | None = None,
    patient: str | None = None,
) -> Layout:
    """Hang the loaded mammograms in napari's grid.

    ``layout``: "1x2", "1x3", "2x2", "2x4" (chosen from the images when None;
    "1x1" goes back to one view).  ``view``: the view of a 1x2 / 1x3.
    ``cells``: manual placements {image layer name: cell, or None for off the
    grid}; an image moved onto an occupied cell swaps with it (or sends an
    off-grid image's occupant off the grid).  ``patient``: the PatientID that
    hangs (None: the one with the most standard views in their newest study).
    """
    from .roi_dock import ensure_roi_layer

    if layout == "1x1":
        single_view(viewer)
        return Layout("1x1", (1, 1))
    images = mammo_images(viewer)
    if not images:
        raise ValueError("no DICOM image to hang")
    prev = current(viewer)
    if prev is not None:
        _unhang(viewer, keep_state=True)
    lay, by_cell = layout_for(viewer, layout, images, view, cells, patient)
    n_cells = LAYOUTS[lay.name][0] * LAYOUTS[lay.name][1]
    prefetch_cells(viewer, list(by_cell.values()))
    for layer in viewer.layers:
        _save(layer)
    # every hung image gets an ROI layer, so drawing one later does not shift the groups;
    # a new one goes back with its image
    for img in by_cell.values():
        roi = ensure_roi_layer(viewer, img)
        if SAVED not in roi.metadata:
            roi.metadata[SAVED] = {**img.metadata[SAVED], "visible": True}
    hang = Hanging(lay, dict(by_cell), images=images)
    hang.spacing, hang.nominal = _physical_scales(lay, by_cell)
    hang.extent = {id(img): _breast_extent(viewer, lay, img) for img in by_cell.values()}
    groups = {
        c: [img] + [c2 for c2 in companions(viewer, img) if PLACEHOLDER not in c2.metadata]
        for c, img in by_cell.items()
    }
    # one batch: napari's canvas updates its scene graph once for the labels, spacers and moves
    with viewer.layers.batched_update():
        for c in range(n_cells):
            label = _label_layer(viewer, lay.slots[c], by_cell.get(c), hang.nominal)
            hang.labels[c] = label
            groups.setdefault(c, [])
            groups[c] = groups[c] + [label]
        stride = max(len(g) for g in groups.values())
        order: list[Any] = []
        for c in range(n_cells):
            g = [_pad(viewer, c, k) for k in range(stride - len(groups[c]))] + groups[c]
            hang.groups[c] = g
            order += g
        in_grid = {id(layer) for layer in order}
        for layer in viewer.layers:
            if id(layer) not in in_grid:
                layer.visible = False
        for i, layer in enumerate(order):
            viewer.layers.move(viewer.layers.index(layer), i)
    for layer in order:
        if not str(layer.metadata.get(PLACEHOLDER, "")).startswith("pad "):
            layer.visible = True
    for img in by_cell.values():
        # a presentation state's rotation is not carried into a hanging (chest walls decide)
        img.affine = np.eye(img.ndim + 1)
        for comp in companions(viewer, img):
            comp.affine = np.eye(comp.ndim + 1)
    state.of(viewer).hanging = hang
    grid = viewer.canvas.grid
    grid.stride = stride
    grid.shape = LAYOUTS[lay.name]
    grid.spacing = SPACING_PX
    grid.enabled = True
    _connect(viewer)
    fit(viewer)
    if by_cell:  # the first hung image is the active layer (not a label or pad)
        viewer.layers.selection.active = by_cell[min(by_cell)]
    return lay


def _physical_scales(lay: Layout, by_cell: dict[int, Any]) -> tuple[dict[int, tuple[float, float]], set[str]]:
    """(row, col) mm per pixel of every hung image; images without spacing get their
    neighbours' median height (all of them 0.1 mm per row when none has any)."""
    out: dict[int, tuple[float, float]] = {}
    nominal: set[str] = set()
    heights = []
    for c, img in by_cell.items():
        p = next(p for p in lay.placements if p.cell == c)
        if p.spacing is not None:
            out[id(img)] = p.spacing
            heights.append(_frame_shape(img)[0] * p.spacing[0])
        if p.nominal:
            nominal.add(img.name)
    target = float(np.median(heights)) if heights else None
    for img in by_cell.values():
        if id(img) not in out:
            rows, _ = _frame_shape(img)
            s = (target / rows) if target else 0.1
            out[id(img)] = (s, s)
    return out, nominal


def _breast_extent(viewer, lay: Layout, img) -> float:
    """Share of the image's width the breast takes, from the shown frame (decoded for
    display anyway; a frame that cannot be read counts as all breast)."""
    from .window import current_frame

    try:
        p = next(p for p in lay.placements if p.cell is not None and hanging_layer_match(img, p.path))
        d = current_frame(viewer, img)
        nd = img.data.ndim - int(bool(getattr(img, "rgb", False)))
        # a share of the width: any resolution does; a multiscale image's smallest level is cheapest
        data = img.data[-1] if is_multiscale(img.data) else img.data
        frame = np.asarray(data[d] if nd >= 3 else data)
        if frame.ndim == 3:  # RGB
            frame = frame.mean(axis=-1)
        chest_wall_right = (p.align == "right") != p.flip_h
        inverted = str(img.metadata.get("photometric", "")).upper() == "MONOCHROME1"
        return mammo.breast_extent(frame, chest_wall_right, inverted)
    except Exception:
        return 1.0


def hanging_layer_match(img, path: str) -> bool:
    p0 = img.metadata[keys.PATHS][0]
    return path in (p0, f"{p0}#{img.name}")


def label_texts(slot: mammo.Slot, image, nominal: set[str]) -> list[str]:
    """A cell's label, one line, longest first: shorter forms for narrow cells."""
    if image is None:
        if slot.name == "extra":
            return ["extra (assign an off-grid image)", "extra (assign)", "extra"]
        return _unique([f"{slot.label} (missing)", f"{slot.name} (missing)", f"{slot.name} –"])
    own = mammo.placement_from_values("", image_values(image))
    date = mammo.fmt_date(own.study_date)
    year = date[:4]
    if slot.laterality is None:  # the free cell of a 1x3, or a 1x1
        pre = "" if slot.name == "image" else "extra: "
        texts = [f"{pre}{own.label} {date}".strip(), f"{pre}{own.label} {year}".strip(), f"{pre}{own.label}"]
    elif (own.laterality, own.view, bool(own.modifiers)) != (slot.laterality, slot.view, False):
        texts = [f"{slot.label}: {own.label} {date}".strip(), f"{slot.label}: {own.label}", f"{slot.name}: {own.label}"]
    elif slot.label != slot.name:  # "RCC 2022-03-10": the year is enough in a narrow cell
        texts = [slot.label, f"{slot.name.removesuffix(' prior')} {year}".strip()]
    else:
        texts = [slot.label]
    if image.name in nominal:  # the status bar and the Layout tab say it in full
        texts = [f"{texts[0]} · {NOMINAL_LABEL}", f"{texts[0]} (nominal)"] + [f"{t} ≈" for t in texts]
    return _unique(texts)


def _unique(texts: list[str]) -> list[str]:
    out: list[str] = []
    for t in texts:
        if t not in out:
            out.append(t)
    return out


def _label_layer(viewer, slot: mammo.Slot, image, nominal: set[str]):
    """The cell's label: an empty, non-editable shapes layer whose name napari draws in the cell."""
    texts = label_texts(slot, image, nominal)
    layer = None
    for lyr in viewer.layers:
        if lyr.metadata.get(PLACEHOLDER) == f"label {slot.cell}":
            layer = lyr
    if layer is None:
        layer = viewer.add_shapes(ndim=2, name=texts[0], metadata={PLACEHOLDER: f"label {slot.cell}"})
    else:
        layer.name = texts[0]
    layer.editable = False
    ov = layer.name_overlay
    ov.visible = True
    ov.font_size = LABEL_PT[1]
    ov.color = (1.0, 0.85, 0.0, 1.0) if image is not None else (0.75, 0.75, 0.75, 1.0)
    ov.box = True
    ov.position = "top_left" if slot.laterality == "R" or slot.laterality is None else "top_right"
    layer.metadata["napari_dcm_slot"] = {
        "cell": slot.cell,
        "name": slot.name,
        "missing": image is None,
        "texts": texts,
    }
    return layer


def _pad(viewer, cell: int, k: int):
    """A hidden, non-editable spacer: the grid takes every ``stride`` layers as one cell."""
    key = f"pad {cell} {k}"
    for layer in viewer.layers:
        if layer.metadata.get(PLACEHOLDER) == key:
            layer.visible = False
            return layer
    layer = viewer.add_shapes(ndim=2, name=SPACER, metadata={PLACEHOLDER: key}, visible=False)
    layer.editable = False
    return layer


def fit(viewer) -> None:
    """Place every hung image for the current canvas and fit the camera to the grid:
    the tallest image fills its cell's height (or the widest its width), chest walls
    on the inner cell edges."""
    hang = current(viewer)
    if hang is None or hang.fitting or not viewer.canvas.grid.enabled:
        return
    hang.fitting = True
    try:
        vh, vw = (float(x) for x in viewer.canvas.viewbox_size(viewer.layers))
        sizes = {}
        for c, img in hang.cells.items():
            rows, cols = _frame_shape(img)
            sy, sx = hang.spacing[id(img)]
            sizes[c] = (rows * sy, cols * sx)
        if not sizes:
            return
        H = max(h for h, _ in sizes.values())
        # the breast, not the background beside it, has to fit the cell's width
        W = max(min(1.0, hang.extent.get(id(hang.cells[c]), 1.0) + BREAST_MARGIN) * w for c, (_, w) in sizes.items())
        zoom = min(vh / H, vw / W) * FILL
        half_w = vw / (2 * zoom)
        for c, img in hang.cells.items():
            p = hang.layout.placement(_path_of(hang, img))
            rows, cols = _frame_shape(img)
            sy, sx = hang.spacing[id(img)]
            h, w = sizes[c]
            left = half_w - w if p.align == "right" else -half_w
            top = -h / 2
            ty = top + ((rows - 0.5) * sy if p.flip_v else 0.5 * sy)
            tx = left + ((cols - 0.5) * sx if p.flip_h else 0.5 * sx)
            for layer in hang.groups[c]:
                if PLACEHOLDER in layer.metadata:
                    continue
                scale = _saved_scale(layer)
                translate = list(layer.metadata[SAVED]["translate"])
                scale[-2], scale[-1] = (-sy if p.flip_v else sy), (-sx if p.flip_h else sx)
                translate[-2], translate[-1] = ty, tx
                layer.scale, layer.translate = scale, translate
        _label_fonts(hang, vw)
        center = list(viewer.scene.camera.center)
        center[-2:] = [0.0, 0.0]
        viewer.scene.camera.center = tuple(center)
        viewer.scene.camera.zoom = zoom
    finally:
        hang.fitting = False


def label_width_px(text: str, font_pt: float) -> float:
    """The width a label takes on the canvas (napari's font, its box and a margin)."""
    return len(text) * font_pt * PX_PER_PT_CHAR + LABEL_PAD_PX


def _label_fonts(hang: Hanging, vw: float) -> None:
    """One font size for every label: as large as LABEL_PT allows while every label fits
    its cell's width in full; when that is below 8 pt, 8 pt (7 at least) with each label
    in its longest form that fits (dates to years, "(missing)" without the date, "≈" for
    a nominal size), elided with "…" as a last resort."""
    lo, hi = LABEL_PT
    texts = {c: list(label.metadata["napari_dcm_slot"]["texts"]) for c, label in hang.labels.items()}
    if not texts:
        return

    def size_for(t: str) -> float:
        return (vw - LABEL_PAD_PX) / (max(4, len(t)) * PX_PER_PT_CHAR)

    size = min(hi, min(size_for(t[0]) for t in texts.values()))
    if size < lo + 1:
        size = max(lo, min(lo + 1, min(size_for(t[-1]) for t in texts.values())))
    chars = max(4, int((vw - LABEL_PAD_PX) / (size * PX_PER_PT_CHAR)))
    for c, label in hang.labels.items():
        t = next((x for x in texts[c] if len(x) <= chars), texts[c][-1])
        if len(t) > chars:
            t = t[: chars - 1].rstrip() + "…"
        if label.name != t:
            label.name = t
        label.name_overlay.font_size = size


def _path_of(hang: Hanging, img) -> str:
    p0 = img.metadata[keys.PATHS][0]
    for p in hang.layout.placements:
        if p.path in (p0, f"{p0}#{img.name}"):
            return p.path
    raise KeyError(img.name)


# --------------------------------------------------------------------------
# following the viewer while hung


def _connect(viewer) -> None:
    st = state.of(viewer)
    if st.hanging_hooks:
        return
    viewer.canvas.events.size.connect(_on_size(viewer))
    viewer.events.reset_view.connect(_on_reset(viewer))
    viewer.events.status.connect(_on_status(viewer))
    st.hanging_hooks = True


def _on_size(viewer):
    def cb(event=None):
        fit(viewer)

    return cb


def _on_reset(viewer):
    def cb(event=None):
        hang = current(viewer)
        if hang is not None and not hang.fitting:
            fit(viewer)

    return cb


def _on_status(viewer):
    busy = [False]

    def cb(event=None):
        hang = current(viewer)
        if busy[0] or hang is None or not hang.nominal:
            return
        status = viewer.status
        names = [n for n in hang.nominal if n in (status.get("layer_name", "") if isinstance(status, dict) else status)]
        if not names:
            return
        busy[0] = True
        try:
            note = f"  [{NOMINAL_NOTE}]"
            if isinstance(status, dict):
                s = dict(status)
                if not str(s.get("coordinates", "")).endswith(note):
                    s["coordinates"] = f"{s.get('coordinates', '')}{note}"
                    viewer.status = s
            elif not status.endswith(note):
                viewer.status = status + note
        finally:
            busy[0] = False

    return cb


# --------------------------------------------------------------------------
# DICOMweb: the shown frame of every cell, fetched in parallel


def prefetch_cells(viewer, images: list) -> list[tuple[float, float]]:
    """Fetch (and decode) the shown frame of every DICOMweb image at once (threads),
    before napari slices the cells one after the other; returns each job's (start, end)."""
    from .window import current_frame

    jobs = []
    for img in images:
        d = current_frame(viewer, img)
        if "://" in img.metadata[keys.FRAME_PATHS][d]:
            nd = img.data.ndim - int(bool(getattr(img, "rgb", False)))
            data = full_resolution(img.data)
            jobs.append(data[d] if nd >= 3 else data)
    return prefetch_frames(jobs)


def prefetch_tuples(layer_data: list) -> list[tuple[float, float]]:
    """Before DICOMweb layers are added (napari would fetch their shown frames one after
    the other as it slices each new layer): fetch the frame each will show, all at once."""
    from ..layers import LayerData

    jobs = []
    for item in layer_data:
        t = LayerData.of(item)
        if not t.is_image:
            continue
        n = int(t.data.shape[0]) if t.spatial_ndim >= 3 else 1
        d = (n - 1) // 2  # napari centres its sliders on a new layer
        if "://" in t.metadata[keys.FRAME_PATHS][d]:
            data = full_resolution(t.data)
            jobs.append(data[d] if t.spatial_ndim >= 3 else data)
    if len(jobs) < 2:
        return []
    t0 = time.perf_counter()
    times = prefetch_frames(jobs)
    _notify.info(
        f"napari-dcm: fetched the shown frame of {len(jobs)} image(s) in parallel in {time.perf_counter() - t0:.2f} s"
    )
    return times


def prefetch_frames(jobs: list) -> list[tuple[float, float]]:
    """Compute lazy frames (each one dask chunk: the layer's own frame reference fetches
    it as the reader would, then it is decoded) in parallel; the decoded frames land in
    napari-dcm's frame cache, where napari's slicing finds them.  Errors are left for the
    real read to report."""
    if not jobs:
        return []

    def one(arr):
        t0 = time.perf_counter()
        with contextlib.suppress(Exception):
            arr.compute(scheduler="sync")
        return t0, time.perf_counter()

    with cf.ThreadPoolExecutor(max_workers=min(8, len(jobs)), thread_name_prefix="napari-dcm-hang") as pool:
        times = list(pool.map(one, jobs))
    LAST_PREFETCH[:] = times
    return times


LAST_PREFETCH: list[tuple[float, float]] = []


# --------------------------------------------------------------------------
# back to one view


def _unhang(viewer, keep_state: bool = False) -> None:
    state.of(viewer).hanging = None  # first: whoever follows the grid sees no hanging
    viewer.canvas.grid.enabled = False
    # one batch: napari's canvas rebuilds its scene graph (and runs gc.collect) once, not per layer
    with viewer.layers.batched_update():
        for layer in list(viewer.layers):
            if PLACEHOLDER in layer.metadata:
                viewer.layers.remove(layer)
    for layer in viewer.layers:
        _restore(layer)
    state.of(viewer).hanging = None


def single_view(viewer) -> None:
    """Back to one view: grid off, transforms, units and visibility restored, placeholders removed."""
    _unhang(viewer)
    viewer.reset_view()
