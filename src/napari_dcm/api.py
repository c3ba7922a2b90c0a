"""The small Python API: ``read`` (no viewer) and ``view`` (opens napari)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from .dicom.discovery import scan_paths
from .dicom.scan import Header
from .dicom.series import stacks_from_headers
from .errors import DicomReadError, DicomSizeError, NoDicomFoundError, NotDicomError

log = logging.getLogger("napari_dcm")

FILTER_FIELDS = {
    "patient_id": "patient_id",
    "patient_name": "patient_name",
    "study_description": "study_description",
    "study_date": "study_date",
    "study_uid": "study_instance_uid",
    "series_description": "series_description",
    "series_number": "series_number",
    "series_uid": "series_instance_uid",
    "modality": "modality",
}


def parse_filters(filters) -> list[tuple[str, str]]:
    """Normalise filters: "FIELD=VALUE" strings, (field, value) pairs or a dict."""
    if not filters:
        return []
    if isinstance(filters, dict):
        items = list(filters.items())
    else:
        items = []
        for f in [filters] if isinstance(filters, str) else filters:
            if isinstance(f, str):
                if "=" not in f:
                    raise ValueError(f"filter {f!r} is not FIELD=VALUE")
                k, v = f.split("=", 1)
                items.append((k, v))
            else:
                items.append(tuple(f))
    out = []
    for k, v in items:
        k = str(k).strip().lower().replace("-", "_")
        if k not in FILTER_FIELDS:
            raise ValueError(f"unknown filter field {k!r}; choose from {', '.join(FILTER_FIELDS)}")
        out.append((FILTER_FIELDS[k], str(v)))
    return out


def matches(h: Header, filters: list[tuple[str, str]]) -> bool:
    for attr, want in filters:
        have = h.values.get(attr)
        if have is None:
            return False
        if want.lower() not in str(have).lower():
            return False
    return True


@dataclass
class ReadReport:
    """What a read found: counts and skipped files with reasons."""

    n_files: int = 0
    n_series: int = 0
    n_layers: int = 0
    skipped: list = field(default_factory=list)
    filtered_out: int = 0
    unmatched_rows: list = field(default_factory=list)
    overlays: list = field(default_factory=list)  # headers of GSPS / SR / SEG / PM objects
    overlay_notes: list = field(default_factory=list)  # (path, message)

    def summary(self) -> str:
        s = f"napari-dcm: {self.n_files} file(s), {self.n_series} series, {self.n_layers} layer(s)"
        if self.overlays:
            s += f", {len(self.overlays)} overlay object(s)"
        if self.overlay_notes:
            s += f" ({len(self.overlay_notes)} not attached to a loaded image)"
        if self.filtered_out:
            s += f", {self.filtered_out} filtered out"
        if self.skipped:
            reasons: dict = {}
            for _, r in self.skipped:
                reasons[r] = reasons.get(r, 0) + 1
            top = "; ".join(f"{n}x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:4])
            s += f", {len(self.skipped)} skipped ({top})"
        return s


def read_stacks(
    paths,
    *,
    recursive: bool = True,
    filters=None,
    progress: Callable[[int, int], None] | None = None,
    report: ReadReport | None = None,
):
    """Scan ``paths`` and build ImageStacks (the layer-independent core of ``read``)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    flt = parse_filters(filters)
    report = report if report is not None else ReadReport()
    result = scan_paths(paths, recursive=recursive, progress=progress)
    headers = result.headers
    if flt:
        kept = [h for h in headers if matches(h, flt)]
        report.filtered_out = len(headers) - len(kept)
        headers = kept
    from .dicom.overlays import kind_of

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
        single = len(paths) == 1 and os.path.isfile(paths[0])
        if single and report.skipped:
            path, reason = report.skipped[0]
            if reason == "not DICOM":
                raise NotDicomError(path, "not a DICOM file (no DICM preamble, no DICOM data elements)")
            if "too large" in reason or "beyond any memory" in reason:
                raise DicomSizeError(path, reason)
            raise DicomReadError(path, reason)
        if report.filtered_out and not report.skipped:
            raise NoDicomFoundError(", ".join(paths), f"no image matches the filters ({report.filtered_out} filtered out)")
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
) -> list[tuple]:
    """Read DICOM files or folders as napari layer-data tuples ``(data, kwargs, layer_type)``.

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

    Raises
    ------
    DicomReadError (NotDicomError, NoDicomFoundError)
        A single file that cannot be read, or nothing readable at all.
    """
    from ._layers import layer_tuples

    report = report if report is not None else ReadReport()
    stacks, report = read_stacks(paths, recursive=recursive, filters=filters, progress=progress, report=report)
    log.info(report.summary())
    layers = layer_tuples(stacks, strict=strict)
    if report.overlays:
        from ._overlays import overlay_tuples

        extra, notes = overlay_tuples(layers, report.overlays)
        report.overlay_notes = notes
        for n in notes:
            log.info("%s: %s", *n)
        layers = _after_images(layers, extra)
    if not layers:
        where = ", ".join(map(os.fspath, [paths] if isinstance(paths, (str, os.PathLike)) else paths))
        why = "; ".join(f"{os.path.basename(p)}: {m}" for p, m in report.overlay_notes[:3])
        raise NoDicomFoundError(where, why or "no readable DICOM image or object")
    if annotations is not None:
        from ._roi import attach_annotations

        unmatched: list = []
        layers = attach_annotations(layers, annotations, report=unmatched)
        report.unmatched_rows = [r.path for r in unmatched]
        if unmatched:
            log.warning(unmatched_message(annotations, report.unmatched_rows))
    return layers


def _after_images(images: list, extra: list) -> list:
    """Each overlay layer right after its image (then its siblings); standalone ones at the end."""
    out = []
    for t in images:
        out.append(t)
        out += [e for e in extra if e[1].get("metadata", {}).get("napari_dcm_overlay_of") == t[1]["name"]]
    out += [e for e in extra if "napari_dcm_overlay_of" not in e[1].get("metadata", {})]
    return out


def unmatched_message(csv_path, paths) -> str:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return (
        f"napari-dcm: {len(paths)} row(s) of {os.path.basename(os.fspath(csv_path))} match no loaded file "
        f"({shown}); they are kept and exported again unchanged"
    )


def view(paths=None, *, show: bool = True, viewer=None, dicomweb: str | None = None, study: str | None = None,
         series: str | None = None, instance: str | None = None, auth=None, token=None, verify=True, **options):
    """Open ``paths`` (and/or a DICOMweb study) in a napari viewer (created if not given) and return it.

    ``dicomweb``, ``study``, ``series``, ``instance``, ``auth``, ``token``,
    ``verify``: as in :func:`napari_dcm.read_dicomweb`.
    """
    import napari

    from ._reader import add_to_viewer

    if viewer is None:
        viewer = napari.Viewer(show=show)
    if paths:
        add_to_viewer(viewer, paths, **options)
    if dicomweb:
        from . import _notify
        from .dicom import dicomweb as dw
        from .widgets.dicomweb_dock import dicomweb_dock, open_from_web

        try:
            srv = dw.connect(dicomweb, auth=auth, token=token, verify=verify)
        except dw.DicomWebError as exc:
            _notify.error(f"napari-dcm: {exc}")
            return viewer
        if study:
            open_from_web(viewer, srv, study, series, instance)
        else:
            dicomweb_dock(viewer, srv)
    return viewer
