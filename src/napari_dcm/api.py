"""The Python API without a viewer: ``read`` (and ``read_stacks``).

``napari_dcm.view`` (which opens napari) lives with the viewer code in
``napari_dcm._qt.viewer``; nothing here imports napari or Qt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from .dicom.discovery import scan_paths
from .dicom.embed import unmatched_message
from .dicom.filters import FILTER_FIELDS, matches, parse_filters
from .dicom.overlays import kind_of
from .dicom.report import ReadReport
from .dicom.series import stacks_from_headers
from .errors import DicomReadError, DicomSizeError, NoDicomFoundError, NotDicomError
from .layers import LayerData, keys

__all__ = ["FILTER_FIELDS", "ReadReport", "parse_filters", "read", "read_stacks"]

log = logging.getLogger("napari_dcm")


def read_stacks(
    paths,
    *,
    recursive: bool = True,
    filters=None,
    progress: Callable[[int, int], None] | None = None,
    report: ReadReport | None = None,
    scheduler=None,
    remote_decode: bool = False,
    insecure: bool = False,
):
    """Scan ``paths`` and build ImageStacks (the layer-independent core of ``read``).

    With ``scheduler`` (an address or a ``distributed.Client``) the paths are
    paths on its workers, and the scan runs there (see ``read``).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    flt = parse_filters(filters)
    report = report if report is not None else ReadReport()
    if scheduler is not None:
        from .dicom import cluster

        address = cluster.connect(scheduler, insecure=insecure)
        report.source = address
        result = cluster.scan(address, paths, recursive=recursive, progress=progress, remote_decode=remote_decode)
    else:
        result = scan_paths(paths, recursive=recursive, progress=progress)
    headers = result.headers
    if flt:
        kept = [h for h in headers if matches(h, flt)]
        report.filtered_out = len(headers) - len(kept)
        headers = kept
    report.overlays = [h for h in headers if kind_of(h.sop_class_uid)]
    headers = [h for h in headers if not kind_of(h.sop_class_uid)]
    stacks, skipped = stacks_from_headers(headers)
    report.n_files = result.n_files
    report.skipped = result.skipped + skipped
    report.n_series = len({(s.info.get("study_instance_uid"), s.info.get("series_instance_uid")) for s in stacks})
    report.n_layers = len(stacks)
    if not stacks and report.overlays:
        return stacks, report  # only overlay objects (SR, SEG, PM ...): they open on their own
    if not stacks:
        single = len(paths) == 1 and (os.path.isfile(paths[0]) if scheduler is None else result.n_files == 1)
        if single and report.skipped:
            path, reason = report.skipped[0]
            if reason == "not DICOM":
                raise NotDicomError(path, "not a DICOM file (no DICM preamble, no DICOM data elements)")
            if "too large" in reason or "beyond any memory" in reason:
                raise DicomSizeError(path, reason)
            raise DicomReadError(path, reason)
        if report.filtered_out and not report.skipped:
            raise NoDicomFoundError(
                ", ".join(paths), f"no image matches the filters ({report.filtered_out} filtered out)"
            )
        detail = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in report.skipped[:5])
        raise NoDicomFoundError(", ".join(paths), "no readable DICOM image" + (f" ({detail})" if detail else ""))
    return stacks, report


def read(
    paths,
    *,
    recursive: bool = True,
    filters=None,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
    report: ReadReport | None = None,
    annotations=None,
    scheduler=None,
    remote_decode: bool = False,
    insecure: bool = False,
) -> list[LayerData]:
    """Read DICOM files or folders as napari layer data ``(data, kwargs, layer_type)``.

    Works without a viewer (scripts, notebooks, dask workers).  ``data`` is a
    lazy dask array, one chunk per frame.

    Parameters
    ----------
    paths : path or list of paths
        Files, folders (scanned recursively unless ``recursive=False``) or DICOMDIR files.
    filters : list of "FIELD=VALUE", dict, optional
        Keep only instances whose FIELD contains VALUE (case-insensitive);
        several filters must all match.  Fields: patient_id, patient_name,
        study_description, study_date, study_uid, series_description,
        series_number, series_uid, modality.
    strict : bool
        Raise ``DicomDecodeError`` from a frame that fails to decode instead
        of showing it blank.
    annotations : path, optional
        An EMBED ROI CSV: every image gets a shapes layer (after it) holding
        its ROIs; rows that match no loaded file are kept for export.
        Raises ``EmbedCSVError`` (line and reason) for an invalid CSV.
    scheduler : str or distributed.Client, optional
        Read files that live on the workers of this dask scheduler (``paths``
        are paths there): the header scan runs on the workers, each frame's
        stored bytes are fetched when shown and decoded here.  Addresses off
        the loopback interface need ``tls://`` or ``insecure=True`` (a dask
        scheduler runs any code it is sent: reach it through SSH).
    remote_decode : bool
        With ``scheduler``: decode frames on the workers and fetch the decoded
        pixels (a fast link and a weak client).

    Raises
    ------
    DicomReadError (NotDicomError, NoDicomFoundError, ClusterError)
        A single file that cannot be read, or nothing readable at all; a
        scheduler that cannot be used (``ClusterError`` names it and the reason).
    """
    from .layers.images import layer_tuples

    report = report if report is not None else ReadReport()
    if scheduler is not None:
        from .dicom import cluster

        scheduler = cluster.connect(scheduler, insecure=insecure)
    stacks, report = read_stacks(
        paths,
        recursive=recursive,
        filters=filters,
        progress=progress,
        report=report,
        scheduler=scheduler,
        remote_decode=remote_decode,
    )
    log.info(report.summary())
    layers = layer_tuples(stacks, strict=strict)
    if scheduler is not None:
        for t in layers:
            t.metadata[keys.SCHEDULER] = scheduler  # the files are on this scheduler's workers
    if any(s.info.get("overlay_groups") for s in stacks):  # 60xx overlay planes
        from .layers.overlays import overlay_plane_tuples

        planes, problems = overlay_plane_tuples(stacks, layers)
        report.problems += problems
        for n in problems:
            log.warning("%s: %s", *n)
        layers = _after_images(layers, planes)
    if report.overlays:
        if scheduler is not None:
            from .layers.cluster import overlay_tuples  # built on a worker, where the files are
        else:
            from .layers.overlays import overlay_tuples

        extra, notes = overlay_tuples(layers, report.overlays, report.problems)
        report.overlay_notes = notes
        for n in notes:
            log.info("%s: %s", *n)
        layers = _after_images(layers, extra)
    if not layers:
        where = ", ".join(map(os.fspath, [paths] if isinstance(paths, (str, os.PathLike)) else paths))
        why = "; ".join(f"{os.path.basename(p)}: {m}" for p, m in report.overlay_notes[:3])
        raise NoDicomFoundError(where, why or "no readable DICOM image or object")
    if annotations is not None:
        from .layers.rois import attach_annotations

        unmatched: list = []
        layers = attach_annotations(layers, annotations, report=unmatched)
        report.unmatched_rows = [r.path for r in unmatched]
        if unmatched:
            log.warning(unmatched_message(annotations, report.unmatched_rows))
    if report.overlays:
        # SRs napari-dcm wrote (EMBED ROIs as TID 1500) come back as editable ROI layers
        from .layers.writeback import rois_from_srs

        sr_notes: list = []
        layers = rois_from_srs(layers, sr_notes)
        for n in sr_notes:
            log.info("%s: %s", *n)
    return layers


def _after_images(images: list[LayerData], extra: list[LayerData]) -> list[LayerData]:
    """Each overlay layer right after its image (then its siblings); standalone ones at the end."""
    out: list[LayerData] = []
    for t in images:
        out.append(t)
        out += [e for e in extra if e.metadata.get(keys.OVERLAY_OF) == t.name]
    out += [e for e in extra if keys.OVERLAY_OF not in e.metadata]
    return out
