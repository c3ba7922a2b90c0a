"""napari-dcm: fast, faithful DICOM in napari.

Public API::

    import napari_dcm
    layers = napari_dcm.read("study_dir")   # [(dask array, kwargs, "image"), ...]
    viewer = napari_dcm.view("study_dir")   # opens napari
"""

from __future__ import annotations

from .errors import (
    ClusterError,
    DicomDecodeError,
    DicomError,
    DicomReadError,
    DicomSizeError,
    DicomStoreError,
    DicomWebError,
    DimseError,
    EmbedCSVError,
    NoDicomFoundError,
    NotDicomError,
)

try:
    from ._version import __version__
except ImportError:  # pragma: no cover
    __version__ = "0.0.0"

__all__ = [
    "ClusterError",
    "DicomDecodeError",
    "DicomError",
    "DicomReadError",
    "DicomSizeError",
    "DicomStoreError",
    "DicomWebError",
    "DimseError",
    "EmbedCSVError",
    "NoDicomFoundError",
    "NotDicomError",
    "cache_info",
    "configure_readahead",
    "cases",
    "mammo_layout",
    "read",
    "read_dicomweb",
    "read_dimse",
    "save_embed_csv",
    "save_rois_gsps",
    "save_rois_sr",
    "save_seg",
    "set_cache_size",
    "set_limits",
    "store_dicomweb",
    "store_dimse",
    "view",
]


def read(paths, **options):
    """Read DICOM as napari layer-data tuples (see :func:`napari_dcm.api.read`)."""
    from .api import read as _read

    return _read(paths, **options)


def save_embed_csv(layers_or_viewer, csv_path, **options):
    """Export EMBED ROIs (a viewer, layers, or the tuples ``read`` returns) to a CSV."""
    from .layers.roi_export import save_embed_csv as _save

    return _save(layers_or_viewer, csv_path, **options)


def save_rois_sr(layers_or_viewer, out_dir, **options):
    """Write EMBED ROIs as DICOM SR (TID 1500), one per annotated file; returns the paths."""
    from .layers.writeback import save_rois_sr as _save

    return _save(layers_or_viewer, out_dir, **options)


def save_rois_gsps(layers_or_viewer, out_dir, **options):
    """Write EMBED ROIs as Grayscale Softcopy Presentation States; returns the paths."""
    from .layers.writeback import save_rois_gsps as _save

    return _save(layers_or_viewer, out_dir, **options)


def save_seg(labels_layer, source_layer, path, **options):
    """Write a labels layer over a napari-dcm image layer as a DICOM Segmentation; returns the path."""
    from .layers.writeback import save_seg as _save

    return _save(labels_layer, source_layer, path, **options)


def store_dicomweb(paths, url, **options):
    """STOW-RS DICOM files to a DICOMweb server; per-file results, ``DicomStoreError`` naming failures."""
    from .dicom.store import store_dicomweb as _store

    return _store(paths, url, **options)


def store_dimse(paths, host, port, **options):
    """C-STORE DICOM files to a DICOM node; per-file results, ``DicomStoreError`` naming failures."""
    from .dicom.store import store_dimse as _store

    return _store(paths, host, port, **options)


def read_dicomweb(url, study, series=None, instance=None, **options):
    """Layer-data tuples for a study/series/instance on a DICOMweb server (lazy, per-frame fetches)."""
    from .web import read_dicomweb as _rd

    return _rd(url, study, series, instance, **options)


def read_dimse(host, port=None, **options):
    """Layer-data tuples for a study/series retrieved from a PACS over DIMSE (C-GET or C-MOVE)."""
    from .pacs import read_dimse as _rd

    return _rd(host, port, **options)


def cases(source, **options):
    """The cases of a study folder tree, a DICOMDIR, an EMBED CSV or a list of paths, without a viewer
    (see :func:`napari_dcm.dicom.cases.build_index`): patient, study date, modalities, description,
    images, ROIs, reviewed flag; indexed once and kept in the user's cache directory."""
    from .dicom.cases import build_index

    return build_index(source, **options)


def mammo_layout(paths, layout=None, view=None, assign=None, patient=None):
    """Hanging layout of mammograms (paths, DICOMweb frame keys or headers): the layout's
    named slots (``.slots``, empty ones ``missing``) and each image's slot, cell (None
    when off the grid, with the reason) and flips (``.placements``).  ``layout``: "1x2",
    "1x3", "2x2", "2x4" (None: chosen from the images); ``view``: the view of a 1x2 /
    1x3; ``assign``: {path: cell or None}; ``patient``: the PatientID that hangs (None:
    the one with the most standard views in their newest study; ``.patient``, and the
    other patients' images are off the grid).  See :mod:`napari_dcm.dicom.mammo`."""
    from .dicom.mammo import mammo_layout as _ml

    return _ml(paths, layout, view, assign, patient)


def set_limits(max_frame_mb=None, max_frames=None, max_layer_mb=None):
    """Set the memory budget for hostile or huge input (see docs, "Bad input"); returns the old values.

    ``max_frame_mb``: one decoded frame (default 256); ``max_frames``: frames of one layer
    (default 65,536); ``max_layer_mb``: objects read whole, SEG and parametric maps (default 2048).
    """
    from .dicom.limits import set_limits as _set

    return _set(max_frame_mb=max_frame_mb, max_frames=max_frames, max_layer_mb=max_layer_mb)


def view(paths=None, **options):
    """Open DICOM in a napari viewer (see :func:`napari_dcm.api.view`)."""
    from ._qt.viewer import view as _view

    return _view(paths, **options)


def set_cache_size(megabytes=None):
    """Set the decoded-frame cache budget in MiB (None: the default, from ``NAPARI_DCM_CACHE_MB``
    or 1/16 of available memory within 128-512 MiB); returns the budget in bytes."""
    from .dicom.cache import set_cache_size as _set

    return _set(megabytes)


def cache_info():
    """The decoded-frame cache now: ``max_bytes``, ``nbytes``, ``peak_nbytes``, ``frames``."""
    from .dicom.cache import cache_info as _info

    return _info()


def configure_readahead(**settings):
    """Read-ahead settings: ``enabled``, ``ahead`` (frames in the direction of travel),
    ``behind``, ``threads``, ``fill`` (share of the cache budget); see docs/performance.md."""
    from .dicom.readahead import configure

    return configure(**settings)
