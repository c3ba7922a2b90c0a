"""The npe2 reader: DICOM files, folders and DICOMDIRs.

``get_reader`` returns None for anything that is not DICOM, so PNG, CSV etc.
still go to their own readers.
"""

from __future__ import annotations

import os


def _as_list(path) -> list[str]:
    if isinstance(path, (list, tuple)):
        return [os.fspath(p) for p in path]
    return [os.fspath(path)]


def get_reader(path):
    """npe2 reader hook: our reader if every path looks like DICOM, else None."""
    from .dicom.discovery import looks_like_dicom

    paths = _as_list(path)
    if not paths:
        return None
    try:
        if not all(looks_like_dicom(p) for p in paths):
            return None
    except OSError:
        return None
    return read_dicom


def read_dicom(path, **options):
    """npe2 reader function: napari layers for DICOM ``path`` (file, folder or list).

    Layers rather than layer-data tuples (napari accepts both) so that images
    get napari-dcm's status text; see ``napari_dcm._qt.viewer.read_for_napari``.
    """
    from ._qt.readahead import follow_current_viewer
    from ._qt.viewer import read_for_napari

    follow_current_viewer()  # read-ahead follows the sliders of the viewer the layers go to
    return read_for_napari(_as_list(path), **options)
