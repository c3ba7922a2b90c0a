"""Typed exceptions raised by napari-dcm.

Every error that comes from a file names the file (``path``) and the reason
(``reason``), so scripts can catch them and the viewer can show them as
notifications.
"""

from __future__ import annotations

import os


class DicomError(Exception):
    """Base class of every napari-dcm error."""


class DicomReadError(DicomError):
    """A file (or folder) could not be read as DICOM.

    Attributes
    ----------
    path : str
        The file that failed.
    reason : str
        A short human-readable reason.
    """

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotDicomError(DicomReadError):
    """The file is not a DICOM file at all (no DICM preamble, no DICOM tags)."""


class DicomSizeError(DicomReadError):
    """The declared image size is absurd or does not fit in memory; refused before allocating."""


class DicomDecodeError(DicomReadError):
    """A frame's pixel data could not be decoded."""

    def __init__(self, path: os.PathLike | str, reason: str, frame: int | None = None):
        self.frame = frame
        where = f" (frame {frame})" if frame is not None else ""
        super().__init__(path, f"{reason}{where}")


class NoDicomFoundError(DicomReadError):
    """A folder or file list held no readable DICOM image."""
