"""The npe2 reader: DICOM files, folders and DICOMDIRs.

``get_reader`` returns None for anything that is not DICOM, so PNG, CSV etc.
still go to their own readers.
"""

from __future__ import annotations

import os

from . import _notify
from .errors import DicomError


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


class _Progress:
    """A napari progress bar created once the number of files is known."""

    def __init__(self):
        self.pbar = None
        self.done = 0

    def __call__(self, done: int, total: int):
        try:
            from napari.utils import progress
        except Exception:
            return
        if self.pbar is None:
            self.pbar = progress(total=total, desc="napari-dcm: reading headers")
        self.pbar.update(done - self.done)
        self.done = done

    def close(self):
        if self.pbar is not None:
            self.pbar.close()


def read_dicom(path, **options):
    """npe2 reader function: layer data for DICOM ``path`` (file, folder or list)."""
    from .api import ReadReport, read
    from .dicom.embed import unmatched_message

    _notify.install_decode_notifier()
    report = ReadReport()
    prog = _Progress()
    try:
        layers = read(_as_list(path), progress=prog, report=report, **options)
    except DicomError as exc:  # includes EmbedCSVError (line and reason)
        _notify.error(f"napari-dcm: {exc}")
        return [(None,)]
    finally:
        prog.close()
    if report.skipped:
        _notify.warning(report.summary())
    else:
        _notify.info(report.summary())
    if report.unmatched_rows:
        _notify.warning(unmatched_message(options.get("annotations"), report.unmatched_rows))
    return layers
