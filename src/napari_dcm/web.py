"""Open studies from a DICOMweb server: ``read_dicomweb`` and the launch URL."""

from __future__ import annotations

import logging
import urllib.parse

from .dicom import dicomweb as dw
from .dicom.discovery import header_from_dataset
from .dicom.report import ReadReport
from .dicom.scan import Header
from .dicom.series import stacks_from_headers
from .dicom.sources.web import WebInstance
from .layers import LayerData

log = logging.getLogger("napari_dcm")

_NEEDS_DATASET_KW = (
    "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence",
    "ModalityLUTSequence",
    "RedPaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
)


def header_from_metadata(server: dw.Server, ds) -> Header | tuple[str, str]:
    """A Header for a DICOMweb instance's metadata (its frames come from the server), or (key, reason)."""
    study, series, sop = (
        str(ds.get("StudyInstanceUID", "")),
        str(ds.get("SeriesInstanceUID", "")),
        str(ds.get("SOPInstanceUID", "")),
    )
    where = WebInstance(server.base, study, series, sop)
    key = where.key
    if not ds.get("Rows") or not ds.get("Columns"):
        return (key, "no pixel data" + (f" (SOP class {ds.get('SOPClassUID', '')})" if ds.get("SOPClassUID") else ""))
    h = header_from_dataset(key, ds)
    h.walked = True  # the metadata describes the instance completely
    h.source = where
    h.dataset = ds
    h.pixel_tag = 0x7FE00008 if "FloatPixelData" in ds else 0x7FE00009 if "DoubleFloatPixelData" in ds else 0x7FE00010
    h.pixel_offset = 0
    h.pixel_length = -1
    # AvailableTransferSyntaxUID when the server gives it; else the syntax arrives with each frame
    available = ds.get(0x00083002)
    h.transfer_syntax = str(available.value) if available is not None and available.value else ""
    h.needs_dataset = any(kw in ds for kw in _NEEDS_DATASET_KW)
    return h


def read_dicomweb(
    url: str,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    *,
    auth=None,
    token=None,
    verify=True,
    timeout=dw.DEFAULT_TIMEOUT,
    strict: bool = False,
    prompt: bool = False,
    report=None,
) -> list[LayerData]:
    """Layer-data tuples for a study, series or instance on a DICOMweb server.

    Only metadata is downloaded here; every frame is fetched (with its next
    neighbours) when it is first shown, in its stored transfer syntax.

    ``url``: the DICOMweb base (a bare ``http://host:8042`` becomes Orthanc's
    ``/dicom-web``).  ``auth``: ``(user, password)``; ``token``: a bearer
    token; both also come from ``NAPARI_DCM_DICOMWEB_USER`` /
    ``NAPARI_DCM_DICOMWEB_PASSWORD`` / ``NAPARI_DCM_DICOMWEB_TOKEN``.
    Raises ``DicomWebError`` naming the server and the reason.
    """
    from .layers.images import layer_tuples

    server = dw.connect(url, auth=auth, token=token, verify=verify, timeout=timeout, prompt=prompt)
    datasets = dw.metadata(server, study, series, instance)
    headers, skipped = [], []
    for ds in datasets:
        h = header_from_metadata(server, ds)
        (headers if isinstance(h, Header) else skipped).append(h)
    stacks, skipped2 = stacks_from_headers(headers)
    report = report if report is not None else ReadReport()
    report.n_files = len(datasets)
    report.skipped = skipped + skipped2
    report.n_series = len({s.info.get("series_instance_uid") for s in stacks})
    report.n_layers = len(stacks)
    if not stacks:
        detail = "; ".join(r for _, r in report.skipped[:3])
        raise dw.DicomWebError(
            server.base,
            "no displayable image in "
            + "/".join(x for x in (study, series, instance) if x)
            + (f" ({detail})" if detail else ""),
        )
    log.info(report.summary().replace("napari-dcm:", f"napari-dcm (DICOMweb {server.base}):"))
    layers = layer_tuples(stacks, strict=strict)
    if any(s.info.get("overlay_groups") for s in stacks):  # 60xx overlay planes (bulk data fetched when shown)
        from .layers.overlays import after_images, overlay_plane_tuples

        planes, problems = overlay_plane_tuples(stacks, layers)
        report.problems += problems
        layers = after_images(layers, planes)
    return layers


def parse_launch_url(url: str) -> dict:
    """``napari-dcm://open?dicomweb=URL&study=UID&series=UID&instance=UID`` -> options."""
    p = urllib.parse.urlsplit(url)
    if p.scheme != "napari-dcm":
        raise ValueError(f"not a napari-dcm:// URL: {url!r}")
    action = (p.netloc or p.path.strip("/")).lower()
    if action != "open":
        raise ValueError(f"unknown napari-dcm:// action {action!r} (expected 'open')")
    q = dict(urllib.parse.parse_qsl(p.query))
    if "dicomweb" not in q or "study" not in q:
        raise ValueError("a napari-dcm://open URL needs dicomweb= and study=")
    return {"url": q["dicomweb"], "study": q["study"], "series": q.get("series"), "instance": q.get("instance")}
