"""Objects about images: presentation states, structured reports, segmentations, parametric maps.

They are recognised by SOP Class, never shown as images, and attached to the
images they reference by SOP Instance UID (and frame).  This module parses
them into plain geometry (pure Python + numpy; pydicom and highdicom for
reading); ``napari_dcm._overlays`` turns that into napari layers.

Coordinates: PIXEL graphic units are image-relative with the top-left corner
of the top-left pixel at (0, 0), i.e. pixel edges, so column ``x`` and row
``y`` are napari coordinates ``(y - 0.5, x - 0.5)``; DISPLAY units are
fractions of the displayed area (the whole image).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom import Dataset

    Point = tuple[float, float]
    ImageRef = tuple[str, list[int] | None]  # (SOP Instance UID, 1-based frames or None)

PR_PREFIX = "1.2.840.10008.5.1.4.1.1.11."
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
MAMMO_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
SEG_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
PM_CLASS = "1.2.840.10008.5.1.4.1.1.30"
RWVM_CLASS = "1.2.840.10008.5.1.4.1.1.67"


def kind_of(sop_class: str) -> str | None:
    """ "gsps", "sr", "cad_sr", "seg", "pm", "rwvm" or None (an image or something else)."""
    s = sop_class or ""
    if s.startswith(PR_PREFIX):
        return "gsps"
    if s == MAMMO_CAD_SR:
        return "cad_sr"
    if s.startswith(SR_PREFIX):
        return "sr"
    if s in SEG_CLASSES:
        return "seg"
    if s == PM_CLASS:
        return "pm"
    if s == RWVM_CLASS:
        return "rwvm"
    return None


@dataclass
class Graphic:
    """One graphic in image pixel coordinates (x = column, y = row; pixel edges)."""

    kind: str  # point, polyline, polygon, ellipse
    points: list[Point]  # [(x, y), ...]; ellipse/polygon: the outline
    filled: bool = False
    text: str = ""
    sop_uid: str = ""
    frames: list[int] | None = None  # 1-based ReferencedFrameNumber (None: every frame)
    layer: str = ""  # GSPS graphic layer / CAD category


@dataclass
class Annotations:
    source: str
    kind: str
    graphics: list[Graphic]
    windows: list[tuple[float, float, str]] = field(default_factory=list)  # (center, width, explanation)
    references: list[str] = field(default_factory=list)  # SOP Instance UIDs referenced
    label: str = ""


# --------------------------------------------------------------------------
# GSPS


def _refs_of(ds: Dataset) -> list[ImageRef]:
    out = []
    for s in ds.get("ReferencedSeriesSequence", []) or []:
        for r in s.get("ReferencedImageSequence", []) or []:
            fr = r.get("ReferencedFrameNumber")
            out.append((str(r.ReferencedSOPInstanceUID), _frames(fr)))
    return out


def _frames(v: Any) -> list[int] | None:
    if v is None or v == "":
        return None
    if isinstance(v, (list, tuple)) or hasattr(v, "__iter__") and not isinstance(v, str):
        return [int(x) for x in v]
    return [int(v)]


def ellipse_outline(
    p0: Sequence[float], p1: Sequence[float], q0: Sequence[float], q1: Sequence[float], n: int = 72
) -> list[Point]:
    """Outline of an ellipse given its major (p0-p1) and minor (q0-q1) axis endpoints."""
    cx, cy = (p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2
    a = math.hypot(p1[0] - p0[0], p1[1] - p0[1]) / 2
    b = math.hypot(q1[0] - q0[0], q1[1] - q0[1]) / 2
    ang = math.atan2(p1[1] - p0[1], p1[0] - p0[0])
    ca, sa = math.cos(ang), math.sin(ang)
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x, y = a * math.cos(t), b * math.sin(t)
        pts.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    return pts


def _points(data: Iterable[float]) -> list[Point]:
    d = [float(v) for v in data]
    return [(d[i], d[i + 1]) for i in range(0, len(d) - 1, 2)]


def _to_pixels(pts: list[Point], units: str, rows: int | None, cols: int | None) -> list[Point]:
    if str(units).upper() == "DISPLAY" and rows and cols:
        return [(x * cols, y * rows) for x, y in pts]
    return pts


def graphic_from_object(
    go: Dataset | dict[str, Any], rows: int | None = None, cols: int | None = None
) -> Graphic | None:
    gtype = str(go.get("GraphicType", "")).upper()
    pts = _to_pixels(_points(go.get("GraphicData", [])), go.get("GraphicAnnotationUnits", "PIXEL"), rows, cols)
    filled = str(go.get("GraphicFilled", "N")).upper() == "Y"
    if not pts:
        return None
    if gtype == "POINT":
        return Graphic("point", pts[:1], filled)
    if gtype in ("POLYLINE", "INTERPOLATED"):
        closed = len(pts) > 2 and pts[0] == pts[-1]
        return Graphic("polygon" if closed else "polyline", pts[:-1] if closed else pts, filled)
    if gtype == "CIRCLE" and len(pts) >= 2:
        r = math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1])
        c = pts[0]
        return Graphic(
            "ellipse", ellipse_outline((c[0] - r, c[1]), (c[0] + r, c[1]), (c[0], c[1] - r), (c[0], c[1] + r)), filled
        )
    if gtype == "ELLIPSE" and len(pts) >= 4:
        return Graphic("ellipse", ellipse_outline(pts[0], pts[1], pts[2], pts[3]), filled)
    if gtype == "MULTIPOINT":
        return Graphic("point", pts, filled)
    return None


def parse_gsps(ds: Dataset, rows: int | None = None, cols: int | None = None) -> Annotations:
    """Graphic and text objects of every graphic layer, with their image references."""
    graphics = []
    ps_refs = _refs_of(ds)
    for ga in ds.get("GraphicAnnotationSequence", []) or []:
        refs = [
            (str(r.ReferencedSOPInstanceUID), _frames(r.get("ReferencedFrameNumber")))
            for r in ga.get("ReferencedImageSequence", []) or []
        ]
        refs = refs or ps_refs  # no image list: the annotation applies to every image of the state
        layer = str(ga.get("GraphicLayer", ""))
        for go in ga.get("GraphicObjectSequence", []) or []:
            g = graphic_from_object(go, rows, cols)
            if g is None:
                continue
            for uid, frames in refs:
                graphics.append(Graphic(g.kind, g.points, g.filled, "", uid, frames, layer))
        for to in ga.get("TextObjectSequence", []) or []:
            text = str(to.get("UnformattedTextValue", "") or "").replace("\r\n", "\n")
            if "AnchorPoint" in to:
                pt = _to_pixels(_points(to.AnchorPoint), to.get("AnchorPointAnnotationUnits", "PIXEL"), rows, cols)[0]
            elif "BoundingBoxTopLeftHandCorner" in to:
                units = to.get("BoundingBoxAnnotationUnits", "PIXEL")
                tl = _to_pixels(_points(to.BoundingBoxTopLeftHandCorner), units, rows, cols)[0]
                pt = tl
            else:
                continue
            for uid, frames in refs:
                graphics.append(Graphic("text", [pt], False, text, uid, frames, layer))
    windows = []
    for voi in ds.get("SoftcopyVOILUTSequence", []) or []:
        c, w = voi.get("WindowCenter"), voi.get("WindowWidth")
        if c is not None and w is not None:
            c = float(c[0] if hasattr(c, "__len__") and not isinstance(c, str) else c)
            w = float(w[0] if hasattr(w, "__len__") and not isinstance(w, str) else w)
            windows.append((c, w, f"GSPS {ds.get('ContentLabel', '')}".strip()))
    return Annotations(
        str(getattr(ds, "filename", "") or ""),
        "gsps",
        graphics,
        windows,
        [u for u, _ in ps_refs],
        str(ds.get("ContentLabel", "")),
    )


# --------------------------------------------------------------------------
# SR content trees


@dataclass
class SrNode:
    value_type: str
    concept: str
    value: str = ""
    relationship: str = ""
    children: list[SrNode] = field(default_factory=list)
    code: tuple[str, ...] = ()  # (value, scheme, meaning) of the concept name
    value_code: tuple[str, ...] = ()  # CODE items: (value, scheme, meaning)
    refs: list[ImageRef] = field(default_factory=list)  # IMAGE/COMPOSITE: [(sop uid, frames)]
    scoord: tuple[str, list[Point]] | None = None  # (graphic type, points)
    scoord3d: tuple[str, list[tuple[float, float, float]], str] | None = (
        None  # (graphic type, points xyz, frame of reference uid)
    )
    number: float | None = None
    units: str = ""


def _code(seq: Sequence[Dataset] | None) -> tuple[str, ...]:
    if not seq:
        return ()
    c = seq[0]
    return (
        str(c.get("CodeValue", "") or c.get("LongCodeValue", "") or c.get("URNCodeValue", "")),
        str(c.get("CodingSchemeDesignator", "")),
        str(c.get("CodeMeaning", "")),
    )


def sr_node(item: Dataset) -> SrNode:
    vt = str(item.get("ValueType", ""))
    code = _code(item.get("ConceptNameCodeSequence"))
    n = SrNode(vt, code[2] if code else "", relationship=str(item.get("RelationshipType", "")), code=code)
    if vt == "TEXT":
        n.value = str(item.get("TextValue", ""))
    elif vt == "CODE":
        n.value_code = _code(item.get("ConceptCodeSequence"))
        n.value = n.value_code[2] if n.value_code else ""
    elif vt == "NUM":
        mv = (item.get("MeasuredValueSequence") or [None])[0]
        if mv is not None:
            n.number = float(mv.get("NumericValue", "nan"))
            n.units = _code(mv.get("MeasurementUnitsCodeSequence"))[0] if mv.get("MeasurementUnitsCodeSequence") else ""
            n.value = f"{n.number:g} {n.units}".strip()
    elif vt in ("DATE", "TIME", "DATETIME"):
        n.value = str(item.get(vt.capitalize() if vt != "DATETIME" else "DateTime", "") or "")
    elif vt == "UIDREF":
        n.value = str(item.get("UID", ""))
    elif vt == "PNAME":
        n.value = str(item.get("PersonName", ""))
    elif vt in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        for r in item.get("ReferencedSOPSequence", []) or []:
            n.refs.append((str(r.ReferencedSOPInstanceUID), _frames(r.get("ReferencedFrameNumber"))))
        n.value = ", ".join(u for u, _ in n.refs)
    elif vt == "SCOORD":
        n.scoord = (str(item.get("GraphicType", "")), _points(item.get("GraphicData", [])))
        n.value = f"{n.scoord[0]} ({len(n.scoord[1])} point(s))"
    elif vt == "SCOORD3D":
        d = [float(v) for v in item.get("GraphicData", [])]
        pts = [(d[i], d[i + 1], d[i + 2]) for i in range(0, len(d) - 2, 3)]
        n.scoord3d = (str(item.get("GraphicType", "")), pts, str(item.get("ReferencedFrameOfReferenceUID", "")))
        n.value = f"{n.scoord3d[0]} ({len(pts)} point(s), 3D)"
    elif vt == "CONTAINER":
        n.value = str(item.get("ContinuityOfContent", ""))
    for child in item.get("ContentSequence", []) or []:
        n.children.append(sr_node(child))
    return n


def parse_sr(ds: Dataset) -> SrNode:
    root = sr_node(ds)
    root.value_type = root.value_type or "CONTAINER"
    return root


def walk(node: SrNode, parents: tuple[SrNode, ...] = ()) -> Iterator[tuple[SrNode, tuple[SrNode, ...]]]:
    yield node, parents
    for c in node.children:
        yield from walk(c, parents + (node,))


def scoord_graphics(node: SrNode, text: str = "", unreferenced: bool = False) -> list[Graphic]:
    """Graphics of a SCOORD node, one per image it is SELECTED FROM."""
    if node.scoord is None:
        return []
    refs = [r for c in node.children if c.value_type == "IMAGE" for r in c.refs]
    gtype, pts = node.scoord
    g = graphic_from_object(
        {"GraphicType": gtype, "GraphicData": [v for p in pts for v in p], "GraphicAnnotationUnits": "PIXEL"}
    )
    if g is None:
        return []
    if not refs and unreferenced:
        refs = [("", None)]
    return [Graphic(g.kind, g.points, g.filled, text, uid, frames, node.concept) for uid, frames in refs]


def sr_regions(root: SrNode) -> list[tuple[Graphic, tuple[SrNode, ...]]]:
    """SCOORD regions with the image they are on: [(graphic, parents)]."""
    return [(g, parents + (node,)) for node, parents in walk(root) for g in scoord_graphics(node, node.concept, True)]


# --------------------------------------------------------------------------
# Mammography CAD SR (TID 4000)

SINGLE_IMAGE_FINDING = "111059"
COMPOSITE_FEATURE = "111015"
RENDERING_INTENT = "111056"
PRESENTATION_OPTIONAL = "111151"
CERTAINTY = "111012"


@dataclass
class CadFinding:
    finding: str  # concept meaning of the finding (e.g. "Mass")
    kind: str  # "single" or "composite"
    required: bool
    certainty: float | None
    graphics: list[Graphic]  # Graphic (pixel coordinates) with sop_uid/frames
    laterality: str = ""
    view: str = ""

    def label(self) -> str:
        parts = [self.finding]
        if self.certainty is not None:
            parts.append(f"{self.certainty:g}%")
        lv = f"{self.laterality}{self.view}".strip()
        if lv:
            parts.append(lv)
        return " · ".join(parts)


def _image_library(root: SrNode) -> dict[str, tuple[str, str]]:
    """SOP UID -> (laterality, view) from the Image Library entries."""
    out: dict[str, tuple[str, str]] = {}
    for node, _ in walk(root):
        if node.value_type != "IMAGE" or not node.refs:
            continue
        lat = view = ""
        for c in node.children:
            m = c.concept.lower()
            if "laterality" in m:
                lat = {"right": "R", "left": "L"}.get(c.value.lower(), c.value[:1].upper())
            elif "view" in m and c.value:
                v = c.value.lower()
                view = "CC" if "cranio" in v else "MLO" if "oblique" in v else c.value
        for uid, _ in node.refs:
            if lat or view:
                out[uid] = (lat, view)
    return out


def parse_cad_sr(ds: Dataset) -> list[CadFinding]:
    """Single Image Findings and Composite Features with SCOORD geometry."""
    root = parse_sr(ds)
    library = _image_library(root)
    findings = []
    for node, parents in walk(root):
        code = node.code[0] if node.code else ""
        if code not in (SINGLE_IMAGE_FINDING, COMPOSITE_FEATURE):
            continue
        if code == SINGLE_IMAGE_FINDING and any(p.code and p.code[0] == COMPOSITE_FEATURE for p in parents):
            continue  # drawn with its composite feature
        required, certainty, graphics = True, None, []
        for c in node.children:
            cc = c.code[0] if c.code else ""
            if cc == RENDERING_INTENT:
                required = not (c.value_code and c.value_code[0] == PRESENTATION_OPTIONAL)
            elif cc == CERTAINTY and c.number is not None:
                certainty = c.number
        for sub, _ in walk(node):
            graphics += scoord_graphics(sub)
        uid = graphics[0].sop_uid if graphics else ""
        lat, view = library.get(uid, ("", ""))
        findings.append(
            CadFinding(
                node.value or node.concept,
                "composite" if code == COMPOSITE_FEATURE else "single",
                required,
                certainty,
                graphics,
                lat,
                view,
            )
        )
    return findings
