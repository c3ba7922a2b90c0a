"""Annotations written back as DICOM with highdicom: TID 1500 SR, GSPS and SEG.

Pure (no napari): the inputs are plain values (boxes in EMBED edge
coordinates per SOP instance and frame, label arrays) and the headers of the
images they belong to; ``napari_dcm.layers.writeback`` turns ROI and labels
layers into these inputs.

Coordinates.  An EMBED box ``[ymin, xmin, ymax, xmax]`` holds integer pixel
*edges*, end exclusive: it covers rows ``ymin .. ymax-1`` and columns
``xmin .. xmax-1``.  DICOM SCOORD and GSPS graphic data in PIXEL units are
``(column, row)`` pairs with ``(0, 0)`` the top-left corner of the top-left
pixel (PS3.3 C.10.5.1.2 and C.18.6.1.1), i.e. the same pixel-edge lattice.
So a box is exactly the closed POLYLINE of its four corners
``(xmin, ymin) (xmax, ymin) (xmax, ymax) (xmin, ymax) (xmin, ymin)`` and
:func:`polyline_box` gives the box back, bit for bit.  Frames are zero-based
*stored* frame indices here (EMBED ``ROI_frames``) and 1-based Referenced
Frame Numbers in the objects; no frame list means every frame.

Objects are new instances (fresh UIDs) in a new series of the referenced
image's study, with its patient and study attributes (values the DICOM
standard would reject, e.g. a birth date ``00000000``, are left empty rather
than copied); the image files are only read.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.sr.coding import Code

MANUFACTURER = "napari-dcm"
MODEL = "napari-dcm"
DEVICE_SERIAL = "0"
ROI_PREFIX = "EMBED ROI "  # tracking identifier of an ROI: "EMBED ROI <n>"
SR_SERIES_NUMBER = 9901
GSPS_SERIES_NUMBER = 9902
SEG_SERIES_NUMBER = 9903
# (code value, coding scheme, meaning)
DEFAULT_FINDING = ("49755003", "SCT", "Morphologically abnormal structure")
QUALITATIVE = ("C0034375", "UMLS", "Qualitative Evaluations")
TRACKING_ID = "112039"
TRACKING_UID = "112040"
MEASUREMENT_GROUP = "125007"
IMAGE_REGION = "111030"
MEASUREMENT_REPORT_TEMPLATE = "1500"
DEFAULT_SEGMENT_CATEGORY = ("85756007", "SCT", "Tissue")
DEFAULT_SEGMENT_TYPE = ("85756007", "SCT", "Tissue")


class WritebackError(ValueError):
    """Inputs that cannot become a valid object (the message says why)."""


def require(module: str, what: str) -> None:
    """A clear ``ModuleNotFoundError`` when an optional library a feature needs is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(f"{what} needs the '{module}' package: pip install {module}", name=module)


# --------------------------------------------------------------------------
# geometry


def box_polyline(box: Sequence[int]) -> np.ndarray:
    """The closed POLYLINE (5 x (column, row)) of an EMBED edge box.

    ``[ymin, xmin, ymax, xmax]`` -> ``(xmin, ymin) (xmax, ymin) (xmax, ymax)
    (xmin, ymax) (xmin, ymin)``: DICOM PIXEL coordinates are pixel edges
    with (0, 0) the top-left corner of the top-left pixel, the lattice EMBED
    boxes live on, so nothing is shifted or rounded.
    """
    y0, x0, y1, x1 = (int(v) for v in box)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)


def polyline_box(points: Sequence[Sequence[float]] | np.ndarray) -> tuple[int, int, int, int] | None:
    """The EMBED box of a closed, axis-aligned rectangle on pixel edges (as
    :func:`box_polyline` writes it, any corner first, either direction), else None."""
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(p) == 5 and np.array_equal(p[0], p[-1]):
        p = p[:4]
    if len(p) != 4 or not np.array_equal(p, np.round(p)):
        return None
    xs, ys = sorted(set(p[:, 0].tolist())), sorted(set(p[:, 1].tolist()))
    if len(xs) != 2 or len(ys) != 2:
        return None
    corners = {(x, y) for x in xs for y in ys}
    if {(float(x), float(y)) for x, y in p} != corners:
        return None
    # consecutive corners share an edge (no bow-tie)
    for i in range(4):
        a, b = p[i], p[(i + 1) % 4]
        if (a[0] != b[0]) == (a[1] != b[1]):
            return None
    if min(xs) < 0 or min(ys) < 0:
        return None
    return int(ys[0]), int(xs[0]), int(ys[1]), int(xs[1])


@dataclass(frozen=True)
class BoxRoi:
    """One EMBED ROI: a box on pixel edges, its stored frames (None: all) and its number."""

    box: tuple[int, int, int, int]
    frames: tuple[int, ...] | None = None
    number: int = 0

    def frame_numbers(self) -> list[int] | None:
        """1-based Referenced Frame Numbers (None: every frame)."""
        return None if self.frames is None else [int(f) + 1 for f in sorted(set(self.frames))]


@dataclass
class SrRoi:
    """An ROI read back from an SR napari-dcm wrote."""

    sop_instance_uid: str
    roi: BoxRoi
    tracking_uid: str = ""
    extra: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------
# source headers


def read_source(path: str) -> Dataset:
    """The header (no pixel data) of a referenced image: a local file or a DICOMweb frame key."""
    from .tags import header_source

    remote = header_source(path)  # a file on a dask worker (napari_dcm.dicom.cluster)
    if remote is not None:
        return remote(path)
    if "/studies/" in path and "/instances/" in path and not os.path.exists(path):
        from . import dicomweb

        return copy.deepcopy(dicomweb.instance_dataset(path))
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _valid(vr: str, value: Any) -> bool:
    from pydicom.valuerep import DA, TM

    if value is None or value == "":
        return True
    try:
        if vr == "DA":
            DA(str(value))
        elif vr == "TM":
            TM(str(value))
    except ValueError:
        return False
    return True


_COPIED = {  # what highdicom copies from the first source into the new object's patient/study modules
    "PatientBirthDate": "DA",
    "StudyDate": "DA",
    "StudyTime": "TM",
}


def evidence(ds: Dataset) -> Dataset:
    """A copy of a source header highdicom accepts: the patient and study attributes it
    copies exist (Type 2: empty when missing) and values the standard rejects are emptied."""
    out = copy.deepcopy(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's remarks on the source's private values
        out.remove_private_tags()  # never copied into a new object
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if not str(out.get(kw, "") or ""):
            raise WritebackError(f"the referenced image has no {kw}")
    for kw in ("PatientID", "PatientName", "AccessionNumber", "StudyID", "ReferringPhysicianName"):
        if kw not in out:
            setattr(out, kw, None)
    for kw, vr in _COPIED.items():
        if kw not in out or not _valid(vr, out.get(kw)):
            setattr(out, kw, None)
    _clean_values(out)
    if str(out.get("PatientSex", "") or "") not in ("M", "F", "O"):
        out.PatientSex = None
    return out


_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT"}


def _clean_values(ds: Dataset) -> None:
    """In place, on a copy: NUL padding stripped from text values (some writers pad with NUL
    instead of space), and dates/times the standard rejects emptied, so what highdicom copies
    into the new object's patient and study modules is valid."""

    def fix(dataset: Dataset, elem: Any) -> None:
        if elem.VR not in _TEXT_VRS or elem.value is None:
            return
        if elem.VR in ("DA", "TM") and not elem.is_empty and not all(_valid(elem.VR, v) for v in _values(elem)):
            elem.value = None
            return
        raw = elem.value
        if isinstance(raw, str) and "\x00" in raw:
            elem.value = raw.replace("\x00", "").rstrip()
        elif hasattr(raw, "__iter__") and not isinstance(raw, (str, bytes)):
            vals = list(raw)
            if any(isinstance(v, str) and "\x00" in v for v in vals):
                elem.value = [v.replace("\x00", "").rstrip() if isinstance(v, str) else v for v in vals]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's remarks on the source's own (e.g. private, nested) values
        ds.walk(fix)


def _values(elem: Any) -> list[Any]:
    v = elem.value
    return list(v) if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)) else [v]


def _code(c: Code | tuple[str, str, str] | Sequence[str]) -> Code:
    from pydicom.sr.coding import Code

    if isinstance(c, Code):
        return c
    value, scheme, meaning = (str(x) for x in c)
    return Code(value, scheme, meaning)


def _uid() -> str:
    import highdicom as hd

    return str(hd.UID())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """highdicom warns about source values it copies (single-component person names...)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*person name.*")
        warnings.filterwarnings("ignore", message=".*is unlikely to represent.*")
        yield


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-dcm")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0"


def _procedure(ds: Dataset) -> Code:
    from pydicom.sr.codedict import codes

    modality = str(ds.get("Modality", "") or "").upper()
    by_modality: dict[str, Code] = {
        "MG": codes.LN.BreastFfdMammogram,
        "CT": codes.LN.CTUnspecifiedBodyRegion,
        "MR": codes.LN.MRIUnspecifiedBodyRegion,
        "PT": codes.LN.PETUnspecifiedBodyRegion,
        "NM": codes.LN.NMUnspecifiedBodyRegion,
        "DX": codes.LN.XRUnspecifiedBodyRegion,
        "CR": codes.LN.XRUnspecifiedBodyRegion,
    }
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.1.2") or sop_class == "1.2.840.10008.5.1.4.1.1.13.1.3":
        return by_modality["MG"]  # digital mammography / breast tomosynthesis
    imaging: Code = codes.SCT.Imaging
    return by_modality.get(modality, imaging)


def _laterality(ds: Dataset) -> str:
    lat = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").upper()
    return lat if lat in ("L", "R") else ""


def _finding_site(ds: Dataset) -> list[Any]:
    """Breast with the image's laterality, for mammograms that say which breast."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    lat = _laterality(ds)
    if _procedure(ds) != codes.LN.BreastFfdMammogram or not lat:
        return []
    side = codes.SCT.Left if lat == "L" else codes.SCT.Right
    return [hd.sr.FindingSite(anatomic_location=codes.SCT.Breast, laterality=side)]


# --------------------------------------------------------------------------
# TID 1500 Measurement Report (Comprehensive 3D SR)


def build_sr(
    source: Dataset,
    rois: Sequence[BoxRoi],
    *,
    extra: Mapping[str, str] | None = None,
    finding: Code | tuple[str, str, str] | None = None,
    observer: str | None = None,
    series_instance_uid: str | None = None,
    series_number: int = SR_SERIES_NUMBER,
    instance_number: int = 1,
    series_description: str = "EMBED ROIs (napari-dcm)",
) -> Any:
    """A Comprehensive 3D SR holding a TID 1500 Measurement Report for one image.

    One Planar ROI Measurements group (TID 1410) per box: tracking identifier
    ``EMBED ROI <n>`` and a fresh tracking UID, the finding (default
    SCT 49755003 "Morphologically abnormal structure"), the breast and its
    laterality as finding site on mammograms, the region as a closed POLYLINE
    (:func:`box_polyline`) SELECTED FROM the image and its frames, and every
    ``extra`` column of the image's EMBED row as a TEXT qualitative
    evaluation ``"<column>: <value>"``.
    """
    require("highdicom", "writing a DICOM SR")
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not rois:
        raise WritebackError("no ROIs to write")
    ev = evidence(source)
    rows, cols = int(ev.get("Rows", 0) or 0), int(ev.get("Columns", 0) or 0)
    multiframe = int(ev.get("NumberOfFrames", 1) or 1) > 1
    find = _code(finding or DEFAULT_FINDING)
    sites = _finding_site(ev)
    groups = []
    for r in rois:
        y0, x0, y1, x1 = r.box
        if not (0 <= y0 < y1 and 0 <= x0 < x1):
            raise WritebackError(f"ROI {r.number}: box {list(r.box)} is empty or negative")
        if rows and cols and (y1 > rows or x1 > cols):
            raise WritebackError(f"ROI {r.number}: box {list(r.box)} is outside the {rows}x{cols} image")
        frames = r.frame_numbers() if multiframe else None
        if not multiframe and r.frames not in (None, (0,)):
            raise WritebackError(f"ROI {r.number}: frames {list(r.frames or ())} on a single-frame image")
        src = hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=str(ev.SOPClassUID),
            referenced_sop_instance_uid=str(ev.SOPInstanceUID),
            referenced_frame_numbers=frames,
        )
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=box_polyline(r.box), source_image=src
        )
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid(), identifier=f"{ROI_PREFIX}{r.number}"),
            referenced_region=region,
            finding_type=find,
            finding_sites=sites or None,
        )
        for col, val in (extra or {}).items():
            if str(val).strip() == "":
                continue
            group[0].ContentSequence.append(
                hd.sr.TextContentItem(
                    name=_code(QUALITATIVE),
                    value=f"{col}: {val}",
                    relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
                )
            )
        groups.append(group)
    if observer:
        obs = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=observer),
        )
        context = hd.sr.ObservationContext(observer_person_context=obs)
    else:
        obs = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=_uid(), name=MANUFACTURER, manufacturer_name=MANUFACTURER, model_name=MODEL
            ),
        )
        context = hd.sr.ObservationContext(observer_device_context=obs)
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=_procedure(ev),
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    with _quiet():
        sr = hd.sr.Comprehensive3DSR(
            evidence=[ev],
            content=report[0],
            series_instance_uid=series_instance_uid or _uid(),
            series_number=series_number,
            sop_instance_uid=_uid(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description=series_description,
        )
    _equipment(sr)
    _copy_study(sr, source)
    _charset(sr)
    return sr


def _charset(obj: Dataset) -> None:
    """UTF-8 (ISO_IR 192) when any text is not ASCII (names, labels, EMBED columns), so every
    value is representable; pydicom encodes the copied patient/study values accordingly."""
    found = False

    def check(dataset: Dataset, elem: Any) -> None:
        nonlocal found
        if found or elem.VR not in _TEXT_VRS or elem.value is None:
            return
        found = any(isinstance(v, str) and not v.isascii() for v in _values(elem)) or (
            elem.VR == "PN" and not str(elem.value).isascii()
        )

    obj.walk(check)
    if found:
        obj.SpecificCharacterSet = "ISO_IR 192"


def _equipment(obj: Dataset) -> None:
    obj.ManufacturerModelName = MODEL
    obj.SoftwareVersions = software_version()


def _copy_study(obj: Dataset, source: Dataset) -> None:
    """Study attributes beyond highdicom's Type 1/2 copy."""
    desc = str(source.get("StudyDescription", "") or "")
    if desc:
        obj.StudyDescription = desc


# --------------------------------------------------------------------------
# reading an SR napari-dcm wrote back into ROIs


def _concept(item: Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].get("CodeValue", "")) if seq else ""


def is_napari_dcm_sr(ds: Dataset) -> bool:
    """A TID 1500 Measurement Report napari-dcm wrote."""
    tpl = ds.get("ContentTemplateSequence")
    tid = str(tpl[0].get("TemplateIdentifier", "")) if tpl else ""
    return str(ds.get("Manufacturer", "")) == MANUFACTURER and tid == MEASUREMENT_REPORT_TEMPLATE


def sr_rois(ds: Dataset) -> list[SrRoi] | None:
    """The EMBED ROIs of an SR napari-dcm wrote, in document order; None when ``ds`` is
    another SR or holds a region that is not a box on pixel edges of one image."""
    if not is_napari_dcm_sr(ds):
        return None
    out: list[SrRoi] = []

    def walk(items: Sequence[Dataset]) -> bool:
        for it in items:
            if str(it.get("ValueType", "")) == "CONTAINER" and _concept(it) == MEASUREMENT_GROUP:
                roi = _group_roi(it)
                if roi is None:
                    return False
                out.append(roi)
            elif it.get("ContentSequence") and not walk(it.ContentSequence):
                return False
        return True

    if not walk(ds.get("ContentSequence", []) or []) or not out:
        return None
    return out


def _ints(v: Any) -> list[int]:
    if v is None or v == "":
        return []
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        return [int(v)]
    return [int(x) for x in v]


def _group_roi(group: Dataset) -> SrRoi | None:
    ident, tuid, region = "", "", None
    extra: dict[str, str] = {}
    for it in group.get("ContentSequence", []) or []:
        c, vt = _concept(it), str(it.get("ValueType", ""))
        if c == TRACKING_ID and vt == "TEXT":
            ident = str(it.get("TextValue", ""))
        elif c == TRACKING_UID and vt == "UIDREF":
            tuid = str(it.get("UID", ""))
        elif c == IMAGE_REGION and vt == "SCOORD":
            region = it
        elif c == QUALITATIVE[0] and vt == "TEXT":
            k, _, v = str(it.get("TextValue", "")).partition(": ")
            extra[k] = v
    if region is None or str(region.get("GraphicType", "")) != "POLYLINE" or not ident.startswith(ROI_PREFIX):
        return None
    d = [float(v) for v in region.get("GraphicData", [])]
    box = polyline_box(np.array(d).reshape(-1, 2)) if len(d) % 2 == 0 else None
    refs = [
        r
        for child in region.get("ContentSequence", []) or []
        if str(child.get("ValueType", "")) == "IMAGE"
        for r in child.get("ReferencedSOPSequence", []) or []
    ]
    if box is None or len(refs) != 1:
        return None
    numbers = _ints(refs[0].get("ReferencedFrameNumber"))
    frames = tuple(v - 1 for v in numbers) if numbers else None
    try:
        number = int(ident[len(ROI_PREFIX) :])
    except ValueError:
        return None
    return SrRoi(str(refs[0].ReferencedSOPInstanceUID), BoxRoi(box, frames, number), tuid, extra)


# --------------------------------------------------------------------------
# GSPS


def build_gsps(
    images: Sequence[tuple[Dataset, Sequence[BoxRoi]]],
    *,
    label: str = "EMBED ROIS",
    description: str = "EMBED ROIs (napari-dcm)",
    series_instance_uid: str | None = None,
    series_number: int = GSPS_SERIES_NUMBER,
    instance_number: int = 1,
    color: tuple[float, float, float] = (1.0, 0.8, 0.0),
) -> Any:
    """A Grayscale Softcopy Presentation State drawing the boxes of images of one series.

    One graphic layer ``ROIS``; one graphic annotation per image and frame
    scope (frame-scoped ROIs reference their 1-based frames), each box a
    closed POLYLINE in PIXEL units (:func:`box_polyline`) with its tracking
    identifier, and a text ``ROI <n>`` anchored at its top-left corner.
    """
    require("highdicom", "writing a DICOM presentation state")
    import highdicom as hd

    if not images or not any(rois for _, rois in images):
        raise WritebackError("no ROIs to write")
    evs = [(evidence(ds), rois) for ds, rois in images]
    for ev, _ in evs:
        # the presentation state copies the image's VOI; napari-dcm shows the header window
        # first, and highdicom refuses an image with both a window and a VOI LUT
        if "WindowCenter" in ev and "VOILUTSequence" in ev:
            del ev.VOILUTSequence
    series = {str(ev.SeriesInstanceUID) for ev, _ in evs}
    if len(series) != 1:
        raise WritebackError("a presentation state here covers the images of one series")
    layer = hd.pr.GraphicLayer(
        layer_name="ROIS",
        order=1,
        description="EMBED ROIs",
        display_color=hd.color.CIELabColor(*_rgb_to_lab(color)),
    )
    annotations = []
    for ev, rois in evs:
        multiframe = int(ev.get("NumberOfFrames", 1) or 1) > 1
        by_scope: dict[tuple[int, ...] | None, list[BoxRoi]] = {}
        for r in rois:
            key = tuple(r.frame_numbers() or ()) if multiframe and r.frames is not None else None
            by_scope.setdefault(key, []).append(r)
        for scope, group in by_scope.items():
            objects = [
                hd.pr.GraphicObject(
                    graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                    graphic_data=box_polyline(r.box),
                    units=hd.pr.AnnotationUnitsValues.PIXEL,
                    tracking_id=f"{ROI_PREFIX}{r.number}",
                    tracking_uid=_uid(),
                )
                for r in group
            ]
            texts = [
                hd.pr.TextObject(
                    text_value=f"ROI {r.number}",
                    units=hd.pr.AnnotationUnitsValues.PIXEL,
                    anchor_point=(float(r.box[1]), float(r.box[0])),
                    anchor_point_visible=False,
                )
                for r in group
            ]
            annotations.append(
                hd.pr.GraphicAnnotation(
                    referenced_images=[ev],
                    graphic_layer=layer,
                    referenced_frame_number=list(scope) if scope else None,
                    graphic_objects=objects,
                    text_objects=texts,
                )
            )
    with _quiet():
        gsps = hd.pr.GrayscaleSoftcopyPresentationState(
            referenced_images=[ev for ev, _ in evs],
            series_instance_uid=series_instance_uid or _uid(),
            series_number=series_number,
            sop_instance_uid=_uid(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL,
            software_versions=software_version(),
            device_serial_number=DEVICE_SERIAL,
            content_label=label,
            content_description=description,
            graphic_annotations=annotations,
            graphic_layers=[layer],
        )
    gsps.SeriesDescription = description
    # General Series Laterality (Type 2C): the side when the images agree on one, else empty (unknown)
    sides = {_laterality(ev) for ev, _ in evs}
    gsps.Laterality = sides.pop() if len(sides) == 1 and sides != {""} else None
    _copy_study(gsps, images[0][0])
    _charset(gsps)
    return gsps


def _rgb_to_lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """sRGB 0..1 -> CIE L*a*b* (D65)."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(float(c)) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    lab_l = max(0.0, min(100.0, 116 * fy - 16))
    lab_a = max(-127.0, min(127.0, 500 * (fx - fy)))
    lab_b = max(-127.0, min(127.0, 200 * (fy - fz)))
    return lab_l, lab_a, lab_b


# --------------------------------------------------------------------------
# SEG


@dataclass
class SegmentSpec:
    """One segment: the label value it comes from, its name, colour and codes."""

    value: int
    label: str
    color: tuple[float, float, float] | None = None  # sRGB 0..1
    category: tuple[str, str, str] = DEFAULT_SEGMENT_CATEGORY
    type: tuple[str, str, str] = DEFAULT_SEGMENT_TYPE


def build_seg(
    sources: Sequence[Dataset],
    labels: np.ndarray,
    segments: Sequence[SegmentSpec],
    *,
    labelmap: bool = False,
    description: str = "napari labels",
    series_instance_uid: str | None = None,
    series_number: int = SEG_SERIES_NUMBER,
    instance_number: int = 1,
) -> Any:
    """A Segmentation of ``labels`` over its source images.

    ``labels``: integer array (frames, rows, cols), one frame per source
    image for a series (in ``sources`` order) or one per stored frame of a
    single multi-frame source.  Label value ``segments[i].value`` becomes
    segment ``i + 1`` (DICOM numbers segments 1, 2, ... in order); BINARY
    (one bit per pixel per segment, empty frames left out) unless
    ``labelmap`` (Label Map Segmentation, one value per pixel).
    """
    require("highdicom", "writing a DICOM SEG")
    import highdicom as hd

    lab = np.asarray(labels)
    if lab.ndim == 2:
        lab = lab[None]
    if lab.ndim != 3 or not np.issubdtype(lab.dtype, np.integer):
        raise WritebackError(f"labels must be an integer (frames, rows, cols) array, not {lab.dtype} {lab.shape}")
    evs = [evidence(ds) for ds in sources]
    if not evs:
        raise WritebackError("no source images")
    rows, cols = int(evs[0].get("Rows", 0) or 0), int(evs[0].get("Columns", 0) or 0)
    nframes = int(evs[0].get("NumberOfFrames", 1) or 1) if len(evs) == 1 else len(evs)
    if lab.shape != (nframes, rows, cols):
        raise WritebackError(f"labels {lab.shape} do not match the source images ({nframes} frame(s) of {rows}x{cols})")
    present = sorted(int(v) for v in np.unique(lab) if v != 0)
    specs = sorted(segments, key=lambda s: s.value)
    known = {s.value for s in specs}
    missing = [v for v in present if v not in known]
    if missing:
        raise WritebackError(f"label value(s) {missing} have no segment description")
    if any(s.value <= 0 for s in specs):
        raise WritebackError("segment label values must be positive")
    if not present:
        raise WritebackError("the labels layer is empty: nothing to segment")
    specs = [s for s in specs if s.value in present]
    lut = np.zeros(max(s.value for s in specs) + 1, dtype=np.uint16)
    for i, s in enumerate(specs):
        lut[s.value] = i + 1
    if lab.min() < 0 or lab.max() >= len(lut):
        raise WritebackError("label values outside the described segments")
    numbered = lut[lab]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=(s.label or f"label {s.value}")[:64],
            segmented_property_category=_code(s.category),
            segmented_property_type=_code(s.type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            tracking_uid=_uid(),
            tracking_id=f"napari label {s.value}",
            display_color=hd.color.CIELabColor(*_rgb_to_lab(s.color)) if s.color is not None else None,
        )
        for i, s in enumerate(specs)
    ]
    with _quiet():
        seg = hd.seg.Segmentation(
            source_images=evs,
            pixel_array=numbered,
            segmentation_type=hd.seg.SegmentationTypeValues.LABELMAP
            if labelmap
            else hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=series_instance_uid or _uid(),
            series_number=series_number,
            sop_instance_uid=_uid(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL,
            software_versions=software_version(),
            device_serial_number=DEVICE_SERIAL,
            content_label="NAPARI",
            content_description=description[:64],
            series_description=description[:64],
        )
    _copy_study(seg, sources[0])
    if "SharedFunctionalGroupsSequence" in seg and not any(
        "PlaneOrientationSequence" in g for g in seg.SharedFunctionalGroupsSequence
    ):
        # no patient geometry (e.g. a projection mammogram): General Image's Patient Orientation (Type 2C)
        po = sources[0].get("PatientOrientation")
        seg.PatientOrientation = list(po) if po else None
    _charset(seg)
    return seg


# --------------------------------------------------------------------------
# files


def write_object(obj: Dataset, path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Write an object as a DICOM file (complete, then renamed into place); returns the absolute path.

    Refuses to replace an existing file unless ``overwrite``."""
    import pydicom

    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".napari-dcm-", suffix=".dcm", dir=d)
    try:
        with os.fdopen(fd, "wb") as fh:
            pydicom.dcmwrite(fh, obj, enforce_file_format=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
