"""Notifications: napari's when napari is running, logging otherwise."""

from __future__ import annotations

import logging

log = logging.getLogger("napari_dcm")


def _napari_notifications():
    try:
        from napari.utils import notifications
    except Exception:  # napari not installed / importable
        return None
    return notifications


def info(msg: str) -> None:
    log.info(msg)
    n = _napari_notifications()
    if n is not None:
        n.show_info(msg)


def warning(msg: str) -> None:
    log.warning(msg)
    n = _napari_notifications()
    if n is not None:
        n.show_warning(msg)


def error(msg: str) -> None:
    log.error(msg)
    n = _napari_notifications()
    if n is not None:
        n.show_error(msg)


_installed = False


def install_decode_notifier() -> None:
    """Show one napari warning per file whose frames fail to decode."""
    global _installed
    if _installed:
        return
    from .dicom.decode import add_error_handler

    add_error_handler(_frame_failed)
    _installed = True


def _frame_failed(err) -> None:
    from .dicom.cluster import outage_notice

    notice = outage_notice(str(err))  # one notification per outage of a dask cluster, not one per file
    if notice is None:
        warning(frame_failed_text(err))
    elif notice:
        warning(notice)


def frame_failed_text(err) -> str:
    """A frame-decode failure as a notification: the file's name and the reason first (a
    collapsed napari toast shows one elided line), the full path last."""
    import os

    path = str(getattr(err, "path", "") or "")
    reason = getattr(err, "reason", None)
    if not path or reason is None:
        return f"napari-dcm: frame shown blank: {err}"
    name = os.path.basename(path.rstrip(os.sep)) or path
    return f"napari-dcm: {name}: frame shown blank: {reason}  [{path}]"
