"""napari-dcm layer data in a live viewer: adding layers, finding them again, ``view``."""

from __future__ import annotations

import os
from typing import Any

from napari.layers import Image, Labels, Points, Shapes

from .. import _notify
from ..layers import LayerData, keys

LAYER_TYPES = {"image": Image, "labels": Labels, "points": Points, "shapes": Shapes}


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


def add_layer_tuples(viewer: Any, layers: list[Any]) -> list[Any]:
    """Add napari-dcm layer data to ``viewer`` (ROI controllers, key bindings, SR dock).

    Layers are added hidden and shown once the sliders are centred: napari
    slices a new first layer at frame 0 before centring, which would decode
    (or download) a frame nobody looks at.
    """
    from . import keys as keymod

    added = []
    shown = []
    for item in layers:
        if not item or item[0] is None:
            continue
        t = LayerData.of(item)
        kwargs = dict(t.kwargs)
        visible = kwargs.pop("visible", True)
        cls = LAYER_TYPES.get(t.layer_type)
        if cls is None:
            raise ValueError(f"unknown layer type {t.layer_type!r}")
        layer = cls(t.data, visible=False, **kwargs)
        viewer.layers.append(layer)
        added.append(layer)
        shown.append(visible)
        if t.layer_type == "shapes" and keys.ROI in layer.metadata:
            from .roi_dock import attach_controller

            attach_controller(viewer, layer)
    if added and len(viewer.layers) == len(added):
        center_sliders(viewer)
    for layer, visible in zip(added, shown):
        layer.visible = visible
    if added:
        from .presentation import apply_displayed_area

        apply_displayed_area(viewer, added)  # a presentation state's displayed area (issue 9)
        keymod.install(viewer)
        if any(keys.SR_DOCUMENT in layer.metadata for layer in added):
            from .sr_dock import sr_dock

            sr_dock(viewer)
    return added


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


def read_with_notifications(paths: list[str], **options: Any) -> list[Any]:
    """``napari_dcm.read`` with a progress bar, and errors and skipped files as notifications."""
    from ..api import read
    from ..dicom.embed import unmatched_message
    from ..dicom.report import ReadReport
    from ..errors import DicomError

    _notify.install_decode_notifier()
    report = ReadReport()
    prog = _Progress()
    try:
        layers = read(paths, progress=prog, report=report, **options)
    except DicomError as exc:  # includes EmbedCSVError (line and reason)
        _notify.error(f"napari-dcm: {exc}")
        return [(None,)]
    finally:
        prog.close()
    if report.skipped or report.problems:
        _notify.warning(report.summary())
    else:
        _notify.info(report.summary())
    if report.unmatched_rows:
        _notify.warning(unmatched_message(options.get("annotations"), report.unmatched_rows))
    from .presentation import after_read

    after_read(layers)  # a presentation state's displayed area, once napari has added the layers
    return layers


def add_to_viewer(viewer: Any, paths: Any, **options: Any) -> list[Any]:
    """Read ``paths`` and add the layers to ``viewer``; errors become notifications."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return add_layer_tuples(viewer, read_with_notifications([os.fspath(p) for p in paths], **options))


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
