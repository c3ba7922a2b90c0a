"""napari-dcm layer data in a live viewer: adding layers, finding them again, ``view``."""

from __future__ import annotations

import contextlib
import os
import weakref
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Points, Shapes

from .. import _notify
from ..layers import LayerData, keys
from . import state
from .status import Image as DicomImage
from .status import Shapes as DicomShapes

LAYER_TYPES = {"image": DicomImage, "labels": Labels, "points": Points, "shapes": DicomShapes}


# --------------------------------------------------------------------------
# finding napari-dcm layers


def is_dicom_image(layer: Any) -> bool:
    return isinstance(layer, Image) and keys.is_image(layer.metadata)


def dicom_images(viewer: Any) -> list[Any]:
    """The napari-dcm image layers of a viewer, in layer order."""
    return [layer for layer in viewer.layers if is_dicom_image(layer)]


def image_of(viewer: Any, layer: Any) -> Any | None:
    """The napari-dcm image a layer belongs to (itself, or the image of its ROI/overlay layer)."""
    if layer is None:
        return None
    if is_dicom_image(layer):
        return layer
    md = layer.metadata
    name = md.get(keys.ROI, {}).get("image") or md.get(keys.OVERLAY_OF)
    if name and name in viewer.layers:
        return viewer.layers[name]
    return None


def roi_layer_for(viewer: Any, image: Any) -> Any | None:
    for layer in viewer.layers:
        if keys.ROI in layer.metadata and layer.metadata[keys.ROI].get("image") == image.name:
            return layer
    return None


def companions(viewer: Any, image: Any) -> list[Any]:
    """Layers drawn with an image (its ROI and overlay layers)."""
    out = []
    for layer in viewer.layers:
        md = layer.metadata
        if (keys.ROI in md and md[keys.ROI].get("image") == image.name) or md.get(keys.OVERLAY_OF) == image.name:
            out.append(layer)
    return out


def layer_data(layer: Any) -> LayerData:
    """A live image layer as napari-dcm layer data (for builders that take layer data)."""
    kw: dict[str, Any] = {
        "name": layer.name,
        "metadata": layer.metadata,
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "rgb": bool(getattr(layer, "rgb", False)),
    }
    units = tuple(str(u) for u in getattr(layer, "units", ()) or ())
    if units and any(u != "pixel" for u in units):
        kw["units"] = units
    return LayerData(layer.data, kw, "image")


# --------------------------------------------------------------------------
# adding layers


def center_sliders(viewer: Any) -> None:
    """Put every slider on its middle step (what napari does for the first layer)."""
    viewer.dims.current_step = tuple(int((n - 1) / 2) for n in viewer.dims.nsteps)


def is_sr_document(item: Any) -> bool:
    """Layer data that stands for a structured report (shown in the SR dock, never as a layer)."""
    return keys.SR_DOCUMENT in LayerData.of(item).metadata


def standalone_overlays(layers: list[Any]) -> list[Any]:
    """Segmentations and parametric maps shown on their own (their source images are not loaded)."""
    return [
        l
        for l in layers
        if isinstance(l.metadata.get(keys.OVERLAY), dict) and l.metadata[keys.OVERLAY].get("standalone")
    ]


def make_layers(items: list[Any]) -> tuple[list[Any], list[bool], list[str]]:
    """napari layers (hidden) for napari-dcm layer data: (layers, wanted visibility, SR document paths).

    Images become :class:`napari_dcm._qt.status.Image` (a napari Image whose
    status text has the pixel row/column, frame and value unit).
    """
    layers, shown, reports = [], [], []
    for item in items:
        if not item or item[0] is None:
            continue
        if is_sr_document(item):
            reports.append(LayerData.of(item).metadata[keys.SR_DOCUMENT])
            continue
        t = LayerData.of(item)
        kwargs = dict(t.kwargs)
        visible = kwargs.pop("visible", True)
        cls = LAYER_TYPES.get(t.layer_type)
        if cls is None:
            raise ValueError(f"unknown layer type {t.layer_type!r}")
        layers.append(cls(t.data, visible=False, **kwargs))
        shown.append(visible)
    alone = standalone_overlays(layers)
    if len(alone) > 1:  # unrelated objects would be piled into one canvas: show one, say so
        for l in alone[:-1]:
            shown[layers.index(l)] = False
        _notify.warning(
            f"napari-dcm: {len(alone)} segmentations / parametric maps whose images are not loaded "
            f"were opened on their own; showing {alone[-1].name!r}, the others are hidden "
            f"(tick them in the layer list): {', '.join(l.name for l in alone[:-1])}"
        )
    return layers, shown, reports


def _owner(layer: Any) -> str | None:
    """The name of the image a ROI / overlay layer belongs to (None: it is not a companion)."""
    md = layer.metadata
    return md.get(keys.ROI, {}).get("image") or md.get(keys.OVERLAY_OF)


def show_related_only(layers: list[Any], shown: list[bool]) -> list[bool]:
    """The first view of several unrelated images: show one, hide the rest, say so.

    Images in one canvas are placed by their patient coordinates (or from the origin when
    they have none), so unrelated images -- other patients, other studies, a mammogram
    beside a knee MR -- pile on top of each other at different sizes and the fitted view
    is mostly empty.  The first image (of the first path given, as read) stays visible
    with the images that share its frame of reference or its study (series of one
    examination, drawn where they are in the patient; the views of one mammography study,
    which the dock hangs) and the ROI / overlay layers of those; the others are
    hidden and listed in one notification.  They are one tick away in the layer list;
    mammograms hang side by side from the dock's Layout tab.  (A grid of every image was
    the alternative: it puts ROI and overlay layers in cells of their own, away from
    their images, and gives a dozen images stamp-sized cells.)
    """
    images = [i for i, l in enumerate(layers) if shown[i] and is_dicom_image(l)]
    if len(images) < 2:
        return shown
    top = layers[images[0]]

    def related(layer: Any) -> bool:
        return any(
            str(top.metadata.get(k) or "") and str(layer.metadata.get(k) or "") == str(top.metadata.get(k))
            for k in ("frame_of_reference_uid", "study_instance_uid")
        )

    keep = {layers[i].name for i in images if i == images[0] or related(layers[i])}
    hidden = [layers[i].name for i in images if layers[i].name not in keep]
    if not hidden:
        return shown
    out = list(shown)
    for i, layer in enumerate(layers):
        name = layer.name if is_dicom_image(layer) else _owner(layer)
        if name in hidden:
            out[i] = False
    _notify.info(
        f"napari-dcm: {len(images)} images of unrelated studies were opened; showing "
        f"{top.name!r}{' and its related series' if len(keep) > 1 else ''}, the other {len(hidden)} are hidden "
        f"(tick them in the layer list; mammograms hang side by side from the DICOM dock's Layout tab): "
        + ", ".join(hidden)
    )
    return out


def select_first_shown(viewer: Any, layers: list[Any], shown: list[bool]) -> None:
    """When some images were hidden (:func:`show_related_only`), make the shown image the
    active layer: napari selects the last one added, and the DICOM dock follows the active one."""
    images = [l for l in layers if is_dicom_image(l)]
    visible = [l for l, v in zip(layers, shown) if v and is_dicom_image(l)]
    if visible and len(visible) < len(images) and viewer.layers.selection.active is not visible[-1]:
        viewer.layers.selection.active = visible[-1]


def add_layer_tuples(viewer: Any, layers: list[Any]) -> list[Any]:
    """Add napari-dcm layer data to ``viewer`` (ROI controllers, key bindings, SR dock).

    Layers are added hidden and shown once the sliders are centred: napari
    slices a new first layer at frame 0 before centring, which would decode
    (or download) a frame nobody looks at.
    """
    from . import keys as keymod

    first = len(viewer.layers) == 0
    added, shown, reports = make_layers(layers)
    watch_frame_axis(viewer)
    wait_prefetch()  # the first frames decoded while the layers were built
    for layer in added:
        viewer.layers.append(layer)
        if isinstance(layer, Shapes) and keys.ROI in layer.metadata:
            from .roi_dock import attach_controller

            attach_controller(viewer, layer)
    if added and first:
        center_sliders(viewer)
        shown = show_related_only(added, shown)
    for layer, visible in zip(added, shown):
        layer.visible = visible
    if added and first:
        select_first_shown(viewer, added, shown)
        fit_visible(viewer)  # napari fitted the first layer only; show every visible layer whole
    if added:
        from .presentation import apply_displayed_area

        apply_displayed_area(viewer, added)  # a presentation state's displayed area (issue 9)
        keymod.install(viewer)
        from .readahead import follow

        follow(viewer)  # decode the frames around the shown ones in the background
        if first:
            keep_whole_view(viewer)
    if reports:
        open_reports(viewer, reports)
    return added


def open_reports(viewer: Any, paths: list[str]) -> None:
    """Show structured reports in the SR dock (opened if needed)."""
    st = state.of(viewer)
    for p in paths:
        if p not in st.sr_documents:
            st.sr_documents.append(p)
    from .sr_dock import sr_dock

    sr_dock(viewer).refresh()


def reader_layers(items: list[Any]) -> list[Any]:
    """The npe2 reader's result: napari layers (not tuples), so images get napari-dcm's status text.

    When napari adds them as the first layers of a viewer it slices frame 0
    before centring the sliders; they are therefore made hidden and shown once
    the last one is in (napari's own insert handler, which centres, runs first).
    Structured reports go to the SR dock of the current viewer.
    """
    import napari

    layers, shown, reports = make_layers(items)
    wait_prefetch()  # the first frames decoded while the layers were built
    viewer = napari.current_viewer()
    watch_frame_axis(viewer)
    if viewer is None or len(viewer.layers):
        for layer, visible in zip(layers, shown):
            layer.visible = visible
        if viewer is not None and any(shown):
            refit_when_inserted(viewer, layers)
    elif layers:
        shown = show_related_only(layers, shown)
        pending = {id(l): (l, v) for l, v in zip(layers, shown)}

        def reveal(event: Any) -> None:
            pending.pop(id(event.value), None)
            if pending:
                return
            viewer.layers.events.inserted.disconnect(reveal)
            for layer, visible in zip(layers, shown):
                layer.visible = visible
            from qtpy.QtCore import QTimer

            # napari selects the layer it inserted after this handler: select once it is done
            QTimer.singleShot(0, lambda: select_first_shown(viewer, layers, shown))
            fit_visible(viewer)  # napari fitted the first layer only; show every visible layer whole
            keep_whole_view(viewer)

        viewer.layers.events.inserted.connect(reveal)
    if viewer is not None and reports:
        open_reports(viewer, reports)
    if not layers:
        return [(None,)]
    return layers


# --------------------------------------------------------------------------
# the frame axis's label

_labelled: weakref.WeakSet[Any] = weakref.WeakSet()


def _default_label(label: str, axis: int, ndim: int) -> bool:
    return label in (str(axis - ndim), str(axis), "")


def label_frame_axis(viewer: Any) -> None:
    """Name the slider of napari-dcm's frame axis ("frame" for multi-frame images, "slice" for
    series of single-frame files) instead of napari's "-3".

    Only when that axis still has napari's default label (a label someone set is kept) and
    no other layer with three or more dimensions shares it (its axis may mean something else).
    """
    ndim = int(viewer.dims.ndim)
    if ndim < 3:
        return
    axis = ndim - 3
    labels = list(viewer.dims.axis_labels)
    if not _default_label(str(labels[axis]), axis, ndim):
        return
    kinds = set()
    for layer in viewer.layers:
        if layer.ndim < 3:
            continue
        if not is_dicom_image(layer):
            if _owner(layer) is None:  # a layer of someone else's with a third axis
                return
            continue
        kinds.add("frame" if layer.metadata.get("multiframe") else "slice")
    if not kinds:
        return
    labels[axis] = "slice" if kinds == {"slice"} else "frame"
    viewer.dims.axis_labels = tuple(labels)


def watch_frame_axis(viewer: Any) -> None:
    """Label the frame axis whenever layers are added (napari has updated its dims by then)."""
    if viewer is None or viewer in _labelled:
        return
    ref = weakref.ref(viewer)

    def on_inserted(event: Any = None) -> None:
        v = ref()
        if v is not None:
            label_frame_axis(v)

    viewer.layers.events.inserted.connect(on_inserted)
    _labelled.add(viewer)


# --------------------------------------------------------------------------
# keeping the whole image in view


def _camera_key(viewer: Any) -> tuple:
    cam = viewer.scene.camera
    return (tuple(round(float(v), 9) for v in cam.center), round(float(cam.zoom), 9), tuple(cam.angles))


def visible_layers(viewer: Any) -> list[Any]:
    return [layer for layer in viewer.layers if layer.visible]


def whole_view(viewer: Any) -> bool:
    """Whether the canvas shows every visible layer whole (as after napari's fit), in 2D."""
    shown = visible_layers(viewer)
    if viewer.canvas.grid.enabled or viewer.dims.ndisplay == 3 or not shown:
        return True
    ext = viewer.layers.get_extent(shown)
    # the displayed (trailing) axes; pixels are drawn from -0.5 to +0.5 around their centres
    lo, hi = ext.world[0][-2:] - ext.step[-2:] / 2, ext.world[1][-2:] + ext.step[-2:] / 2
    cam = viewer.scene.camera
    half = np.asarray(viewer.canvas.size, dtype=float) / float(cam.zoom) / 2
    center = np.asarray(cam.center[-2:], dtype=float)
    slack = 1.0 / float(cam.zoom)  # one screen pixel
    return bool(np.all(lo >= center - half - slack) and np.all(hi <= center + half + slack))


def _hung(viewer: Any) -> bool:
    """A mammography hanging is shown: it places its images and fits the camera itself
    (``napari_dcm._qt.hanging.fit``, on canvas resizes and napari's reset view)."""
    # the state's hanging (hanging.current) without importing the hanging module for a plain open
    return state.of(viewer).hanging is not None and bool(viewer.canvas.grid.enabled)


def fit_visible(viewer: Any) -> None:
    """Fit the camera to the visible layers (napari's own fit counts hidden ones too: a
    grid that hides some layers would show its cells tiny or off centre).  A mammography
    hanging fits itself."""
    from .compat import fit_to_layers

    if _hung(viewer):
        state.of(viewer).fit_camera = None
        return
    shown = visible_layers(viewer)
    if shown:
        fit_to_layers(viewer, shown)
    else:
        viewer.fit_to_view()
    state.of(viewer).fit_camera = _camera_key(viewer)


def refit_when_inserted(viewer: Any, layers: list[Any]) -> None:
    """A later read into a viewer whose camera still shows everything whole (several
    files dropped at once: napari calls the reader once per file and fits the first
    only): fit again once napari has inserted ``layers``.  A camera the user moved
    stays where it is."""
    st = state.of(viewer)
    if st.fit_camera is None or st.fit_camera != _camera_key(viewer):
        return
    pending = {id(layer) for layer in layers}

    def inserted(event: Any) -> None:
        pending.discard(id(event.value))
        if pending:
            return
        viewer.layers.events.inserted.disconnect(inserted)
        if st.fit_camera == _camera_key(viewer):
            fit_visible(viewer)

    viewer.layers.events.inserted.connect(inserted)


def keep_whole_view(viewer: Any) -> None:
    """Keep the image whole when the canvas resizes: a dock taking its share of the
    window, the window's first layout, a hanging.

    When the canvas shows every visible layer whole now, the camera is refitted
    (``viewer.fit_to_view`` on the visible layers) on every canvas resize until
    someone moves the camera (zoom, pan, a reset elsewhere).  A grid change refits to
    the visible layers once it is done; a mammography hanging fits itself.
    """
    st = state.of(viewer)
    if not st.fit_watch:
        ref = weakref.ref(viewer)

        def on_resize(event: Any = None) -> None:
            v = ref()
            if v is None:
                return
            vs = state.of(v)
            if vs.fit_camera is not None and vs.fit_camera == _camera_key(v) and not _hung(v):
                fit_visible(v)

        def on_grid(event: Any = None) -> None:
            from qtpy.QtCore import QTimer

            def later() -> None:
                v = ref()
                if v is not None and not _hung(v):
                    fit_visible(v)

            QTimer.singleShot(0, later)  # after the hanging (or napari) finished moving layers

        viewer.canvas.events.size.connect(on_resize)
        grid = viewer.canvas.grid
        for name in ("enabled", "shape", "stride"):
            getattr(grid.events, name).connect(on_grid)
        st.fit_watch = True
    st.fit_camera = _camera_key(viewer) if whole_view(viewer) else None


class _Progress:
    """A napari progress bar created once the number of files is known."""

    def __init__(self) -> None:
        self.pbar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        from napari.utils import progress

        if self.pbar is None:
            self.pbar = progress(total=total, desc="napari-dcm: reading headers")
        self.pbar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.pbar is not None:
            self.pbar.close()


# --------------------------------------------------------------------------
# the first frames, decoded while the layers are built

_prefetches: list[Any] = []
#: stacks whose first shown frame is decoded ahead (the layers napari shows at once)
PREFETCH_STACKS = 8


def prefetch_first_frames(stacks: list[Any], viewer: Any = None, multiscale: bool = False) -> None:
    """Decode the frame napari will show first of each stack, in a background thread.

    It runs while the main thread imports dask.array, builds the layer data and
    napari's layers (the decoders release the GIL); the frame lands in the
    decoded-frame cache where napari's first slice finds it.  Only stacks whose
    window comes from the header: without one, building the layer data decodes
    that frame anyway (for the percentiles).  A multiscale JPEG 2000 stack opened
    as the first layer of ``viewer`` gets the resolution levels napari draws first
    (:func:`first_levels`), not the full resolution it does not show.
    """
    import threading

    from ..dicom.decode import load_frame_level
    from ..dicom.openjpeg import reduced_shape
    from ..layers.images import initial_frame

    todo = []
    for st in stacks[:PREFETCH_STACKS]:
        f = st.frames[initial_frame(st)]
        if (f.windows or st.windows) or (st.rgb and st.dtype.itemsize == 1):
            for level in first_levels(st, viewer) if multiscale else (0,):
                shape = tuple(st.shape)
                if level:
                    shape = reduced_shape(shape[0], shape[1], level) + shape[2:]
                todo.append((f, st, shape, level))
    if not todo:
        return

    def run() -> None:
        for f, st, shape, level in todo:
            # strict: no report from here; napari's own read reports the frame when it shows it
            with contextlib.suppress(Exception):
                load_frame_level(f.ref, f.desc, f.transform, shape, st.dtype.str, True, level)

    t = threading.Thread(target=run, name="napari-dcm-first-frame", daemon=True)
    t.start()
    _prefetches.append(t)


def first_levels(stack: Any, viewer: Any) -> tuple[int, ...]:
    """The resolution levels napari slices first when ``stack`` becomes the first layer
    of ``viewer``, coarsest first: its thumbnail level (the coarsest) down to the level
    it picks for the frame fitted to the canvas.  (0,) when the stack stays single
    scale, there is no viewer, or the viewer already has layers (its camera stays).

    napari's rule (``compute_multiscale_level``, restated because it is not public API)
    takes the coarsest level that still has more pixels than the canvas along the
    displayed extent, which (camera fitted) is the canvas size divided by the zoom.
    Without the fit's margin this gives the finest level napari may pick, so the
    levels listed always include the one it picks.
    """
    from ..dicom.volume import resolution_levels

    if viewer is None or len(viewer.layers):
        return (0,)
    n = resolution_levels(stack)
    if not n:
        return (0,)
    canvas = np.asarray(viewer.canvas.size, dtype=float)  # (height, width) in screen pixels
    spacing = np.asarray(stack.scale[-2:], dtype=float)  # world units per pixel (rows, columns)
    world = np.asarray(stack.shape[:2], dtype=float) * spacing
    per_screen_px = float(np.max(world / np.maximum(canvas, 1.0)))  # world units per screen pixel, fitted
    ratio = per_screen_px / spacing  # frame pixels per screen pixel along each axis
    level = 0
    while level < n and np.all(ratio > 2 ** (level + 1)):
        level += 1
    return tuple(range(n, level - 1, -1))


def wait_prefetch(timeout: float = 30.0) -> None:
    """Wait for the first-frame decodes (called before napari slices the new layers)."""
    while _prefetches:
        _prefetches.pop().join(timeout)


def read_with_notifications(paths: list[str], viewer: Any = None, **options: Any) -> list[Any]:
    """``napari_dcm.read`` with a progress bar, and errors and skipped files as notifications.

    With a ``viewer``, presentation states, CAD/SR regions, segmentations and
    parametric maps whose images are not in ``paths`` are placed on the images
    the viewer already shows (napari opens the files of one drop one by one).
    """
    from ..api import read
    from ..dicom.embed import unmatched_message
    from ..dicom.report import ReadReport
    from ..errors import DicomError, NoDicomFoundError

    _notify.install_decode_notifier()
    from ..dicom.scheduler import use_local_until_distributed

    use_local_until_distributed()  # napari's first compute would import distributed to look for a client
    report = ReadReport()
    prog = _Progress()
    options.setdefault("multiscale", True)  # large JPEG 2000: napari picks the resolution for the zoom
    try:
        layers = read(
            paths,
            progress=prog,
            report=report,
            on_stacks=lambda stacks: prefetch_first_frames(stacks, viewer, bool(options.get("multiscale"))),
            **options,
        )
    except NoDicomFoundError as exc:
        if viewer is not None and report.skipped:
            from .skipped_tab import record

            record(viewer, report.skipped, report.problems)
        layers = _on_shown_images(viewer, report, [])
        if not layers:
            _notify.error(f"napari-dcm: {exc}")
            return [(None,)]
        _notify.info(f"napari-dcm: {len(layers)} overlay layer(s) placed on the images already open")
        return layers
    except DicomError as exc:  # includes EmbedCSVError (line and reason)
        _notify.error(f"napari-dcm: {exc}")
        return [(None,)]
    finally:
        prog.close()
    layers = _on_shown_images(viewer, report, layers)
    if report.skipped or report.problems:
        _notify.warning(report.summary())
    else:
        _notify.info(report.summary())
    for notice in report.skipped_notices():  # every skipped file named with its reason
        _notify.warning(notice)
    if viewer is not None and (report.skipped or report.problems):
        from .skipped_tab import record

        record(viewer, report.skipped, report.problems)  # the DICOM dock's Skipped tab keeps them
    if report.unmatched_rows:
        _notify.warning(unmatched_message(options.get("annotations"), report.unmatched_rows))
    from .presentation import after_read

    after_read(layers)  # a presentation state's displayed area, once napari has added the layers
    return layers


def _on_shown_images(viewer: Any, report: Any, layers: list[Any]) -> list[Any]:
    """Overlay objects whose images were not in this read, placed on the viewer's images
    (replacing a segmentation or parametric map that was going to be shown on its own)."""
    if viewer is None or not report.overlays:
        return layers
    unplaced = {p for p, m in report.overlay_notes if "not loaded" in m}
    headers = [h for h in report.overlays if h.path in unplaced]
    images = [layer_data(l) for l in dicom_images(viewer)]
    if not headers or not images:
        return layers
    from ..layers.overlays import overlay_tuples

    extra, _ = overlay_tuples(images, headers)
    placed = [e for e in extra if keys.OVERLAY_OF in e.metadata]
    sources = {e.metadata[keys.OVERLAY]["source"] for e in placed}
    if not sources:
        return layers

    def standalone_of_placed(t: Any) -> bool:
        ov = LayerData.of(t).metadata.get(keys.OVERLAY)
        return isinstance(ov, dict) and bool(ov.get("standalone")) and ov.get("source") in sources

    return [t for t in layers if not standalone_of_placed(t)] + placed


def read_for_napari(paths: list[str], **options: Any) -> list[Any]:
    """What the npe2 reader gives napari (File > Open, drag and drop, ``viewer.open``): the
    layers of ``paths``, overlays placed on images the current viewer already shows."""
    import napari

    viewer = napari.current_viewer()
    return reader_layers(read_with_notifications(paths, viewer=viewer, **options))


def add_to_viewer(viewer: Any, paths: Any, **options: Any) -> list[Any]:
    """Read ``paths`` and add the layers to ``viewer``; errors become notifications."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return add_layer_tuples(viewer, read_with_notifications([os.fspath(p) for p in paths], viewer=viewer, **options))


def view(
    paths: Any = None,
    *,
    show: bool = True,
    viewer: Any = None,
    dicomweb: str | None = None,
    study: str | None = None,
    series: str | None = None,
    instance: str | None = None,
    auth: Any = None,
    token: str | None = None,
    verify: Any = True,
    **options: Any,
) -> Any:
    """Open ``paths`` (and/or a DICOMweb study) in a napari viewer (created if not given) and return it.

    ``dicomweb``, ``study``, ``series``, ``instance``, ``auth``, ``token``,
    ``verify``: as in :func:`napari_dcm.read_dicomweb`.
    ``scheduler``, ``remote_decode``, ``insecure``: as in :func:`napari_dcm.read`;
    ``tunnel="user@host"`` (with ``remote_python``, ``ssh_args``): start a dask
    scheduler and worker there over SSH, closed with the viewer (docs/remote.md).
    """
    import napari

    if viewer is None:
        viewer = napari.Viewer(show=show)
    if options.get("tunnel"):  # files on another machine, through SSH (napari_dcm._qt.remote)
        from .remote import remote_options

        keys_ = ("scheduler", "tunnel", "remote_python", "ssh_args", "remote_decode", "insecure")
        remote = remote_options(viewer, **{k: options.pop(k) for k in keys_ if k in options})
        if remote is None:
            return viewer
        options.update(remote)
    if paths:
        add_to_viewer(viewer, [os.fspath(p) for p in paths] if isinstance(paths, (list, tuple)) else paths, **options)
    if dicomweb:
        from ..dicom import dicomweb as dw
        from .dicomweb_dock import dicomweb_dock, open_from_web

        try:
            srv = dw.connect(dicomweb, auth=auth, token=token, verify=verify)
        except dw.DicomWebError as exc:
            _notify.error(f"napari-dcm: {exc}")
            return viewer
        if study:
            open_from_web(viewer, srv, study, series, instance)
        else:
            dicomweb_dock(viewer, srv)
    return viewer
