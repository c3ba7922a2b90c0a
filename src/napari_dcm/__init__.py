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
    "NoDicomFoundError",
    "NotDicomError",
    "read",
    "view",
]


def read(paths, **options):
    """Read DICOM as napari layer-data tuples (see :func:`napari_dcm.api.read`)."""
    from .api import read as _read

    return _read(paths, **options)


def view(paths=None, **options):
    """Open DICOM in a napari viewer (see :func:`napari_dcm.api.view`)."""
    from .api import view as _view

    return _view(paths, **options)
