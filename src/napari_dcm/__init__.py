"""napari-dcm: fast, faithful DICOM in napari.

Public API::

    import napari_dcm
    layers = napari_dcm.read("study_dir")   # [(dask array, kwargs, "image"), ...]
    viewer = napari_dcm.view("study_dir")   # opens napari
"""

from __future__ import annotations

from .errors import (
    DicomDecodeError,
    DicomError,
    DicomReadError,
    DicomSizeError,
    DicomWebError,
    EmbedCSVError,
    NoDicomFoundError,
    NotDicomError,
)

try:
    from ._version import __version__
except ImportError:  # pragma: no cover
    __version__ = "0.0.0"

__all__ = [
    "DicomDecodeError",
    "DicomError",
    "DicomReadError",
    "DicomSizeError",
    "DicomWebError",
    "EmbedCSVError",
    "NoDicomFoundError",
    "NotDicomError",
    "cache_info",
    "configure_readahead",
    "mammo_layout",
    "read",
    "read_dicomweb",
    "save_embed_csv",
    "set_cache_size",
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


def read_dicomweb(url, study, series=None, instance=None, **options):
    """Layer-data tuples for a study/series/instance on a DICOMweb server (lazy, per-frame fetches)."""
    from .web import read_dicomweb as _rd

    return _rd(url, study, series, instance, **options)


def mammo_layout(paths, layout=None):
    """Hanging layout of mammograms (paths or headers): layout name, grid, each image's cell and flips."""
    from .dicom.mammo import mammo_layout as _ml

    return _ml(paths, layout)


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
