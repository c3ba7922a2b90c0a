"""Open studies from a PACS over DIMSE: ``read_dimse``.

The series is retrieved (C-GET, or C-MOVE to a temporary storage SCP) into
napari-dcm's private cache and read from there by the normal reader, lazily.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from .api import read
from .dicom import dimse
from .dicom.report import ReadReport
from .errors import DimseError
from .layers import LayerData

log = logging.getLogger("napari_dcm")


class PartialRetrieveWarning(UserWarning):
    """A retrieve brought only part of a series; what arrived was opened."""


def node_from(
    host: str | dimse.Node,
    port: int | None = None,
    called_ae: str | None = None,
    calling_ae: str | None = None,
    method: str | None = None,
    move_port: int | None = None,
    move_ae: str | None = None,
) -> dimse.Node:
    """A Node from ``read_dimse``'s arguments (``host`` may be a Node, ``AET@host:port``
    or the name of a saved node)."""
    if isinstance(host, dimse.Node):
        node = host
    elif port is None and "@" in host:
        node = dimse.Node.parse(host)
    elif port is None:
        saved = dimse.load_settings().node(host)
        if saved is None:
            raise ValueError(f"no saved PACS node named {host!r} (give host and port, or AET@host:port)")
        node = saved
    else:
        node = dimse.Node(called_ae or "ANY-SCP", host, int(port))
    changes: dict[str, Any] = {}
    if called_ae:
        changes["ae_title"] = called_ae
    if calling_ae:
        changes["calling_ae"] = calling_ae
    if method:
        changes["method"] = method.upper()
    if move_port:
        changes["move_port"] = int(move_port)
    if move_ae:
        changes["move_ae"] = move_ae
    if changes:
        from dataclasses import replace

        node = replace(node, **changes)
    node.validate()
    return node


def read_dimse(
    host: str | dimse.Node,
    port: int | None = None,
    *,
    called_ae: str | None = None,
    calling_ae: str | None = None,
    study: str,
    series: str | None = None,
    method: str | None = None,
    move_port: int | None = None,
    move_ae: str | None = None,
    cache: dimse.RetrieveCache | None = None,
    timeouts: dimse.Timeouts | None = None,
    strict: bool = False,
    report: ReadReport | None = None,
) -> list[LayerData]:
    """Layer-data tuples for a study or series retrieved from a PACS over DIMSE.

    ``host``/``port``: the node (or ``"AET@host:port"``, or a saved node's
    name); ``called_ae``: its AE title; ``calling_ae``: ours (default
    ``NAPARI_DCM``); ``method``: "C-GET" (default) or "C-MOVE", for which a
    temporary storage SCP listens on ``move_port`` under ``move_ae`` (default:
    the calling AE title) -- the node must know that destination.

    The instances land in the private retrieve cache (bounded; see
    ``napari_dcm.dicom.dimse.RetrieveCache``) and are read lazily by the normal
    reader.  A partial retrieve opens what arrived and warns
    (``PartialRetrieveWarning``) naming the node and the DIMSE status.
    Raises ``DimseError`` (association rejected, unknown AE, timeout, not
    found, nothing retrieved).
    """
    node = node_from(host, port, called_ae, calling_ae, method, move_port, move_ae)
    cache = cache or dimse.default_cache()
    got = dimse.retrieve(node, study, series, cache=cache, timeouts=timeouts)
    for folder in got.folders:
        cache.pin(folder)
    report = report if report is not None else ReadReport()
    layers = read(got.files, strict=strict, report=report)
    if got.partial:
        msg = f"napari-dcm: partial retrieve: {got.describe()}"
        log.warning(msg)
        warnings.warn(msg, PartialRetrieveWarning, stacklevel=2)
    return layers


__all__ = ["DimseError", "PartialRetrieveWarning", "node_from", "read_dimse"]
