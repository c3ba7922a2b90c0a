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


class DicomWebError(DicomReadError):
    """A DICOMweb request failed; ``path`` is the server (no credentials), ``status`` the HTTP status."""

    def __init__(self, server: str, reason: str, status: int | None = None):
        self.status = status
        super().__init__(server, reason)


class ClusterError(DicomReadError):
    """A dask.distributed scheduler (or its workers) could not do what was asked.

    ``path`` is the scheduler's address, ``reason`` says why (unreachable, no
    workers, a path missing on the workers, no answer in time, refused as insecure).
    """

    def __init__(self, scheduler: str, reason: str):
        self.scheduler = scheduler
        super().__init__(scheduler, reason)


class DimseError(DicomReadError):
    """A DIMSE (C-ECHO, C-FIND, C-GET, C-MOVE) exchange with a PACS node failed.

    ``path`` is the node (``AET@host:port``), ``reason`` says what happened,
    ``status`` is the DIMSE status when the node sent one, and ``kind`` one of
    "connect", "rejected", "unknown-ae", "timeout", "aborted", "not-found",
    "failed", "local" (a problem on this side, e.g. the C-MOVE port in use).
    """

    def __init__(self, node: str, reason: str, status: int | None = None, kind: str = "failed"):
        self.status = status
        self.kind = kind
        if status is not None and f"0x{status:04X}" not in reason:
            reason = f"{reason} (DIMSE status 0x{status:04X})"
        super().__init__(node, reason)


class EmbedCSVError(DicomError):
    """An EMBED CSV is invalid.  ``errors`` lists ``(line, reason)``; line 1 is the header."""

    def __init__(self, csv_path: os.PathLike | str, errors: list[tuple[int, str]]):
        self.path = os.fspath(csv_path)
        self.errors = list(errors)
        self.line, self.reason = self.errors[0]
        more = f" (and {len(self.errors) - 1} more error(s))" if len(self.errors) > 1 else ""
        super().__init__(f"{self.path}: line {self.line}: {self.reason}{more}")


class DicomStoreError(DicomError):
    """Sending objects to a DICOMweb server (STOW-RS) or a DICOM node (C-STORE) failed for
    some of them.  ``destination`` names the server (no credentials); ``results`` has one
    ``napari_dcm.dicom.store.StoreResult`` per object (``ok``, ``reason``); the message
    names every object that was not stored and why.  The files themselves are untouched."""

    def __init__(self, destination: str, results: list):
        self.destination = destination
        self.results = list(results)
        failed = [r for r in self.results if not r.ok]
        self.failed = failed
        detail = "; ".join(f"{os.path.basename(r.path)}: {r.reason}" for r in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        super().__init__(f"{destination}: {len(failed)} of {len(self.results)} object(s) not stored: {detail}{more}")
