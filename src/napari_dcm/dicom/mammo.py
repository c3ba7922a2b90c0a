"""Mammography hanging rules: views, laterality, named slots, physical scale, flips.

Pure functions over headers (or paths), usable from scripts:

    >>> from napari_dcm import mammo_layout
    >>> lay = mammo_layout(["rcc.dcm", "lcc.dcm", "rmlo.dcm"])
    >>> lay.name, lay.grid, [(s.name, s.path) for s in lay.slots]        # LMLO: None (missing)
    >>> [(p.path, p.slot, p.cell, p.flip_h, p.flip_v) for p in lay.placements]

Layouts and their slots (cells numbered row by row)
---------------------------------------------------
* ``2x2``: RCC, LCC / RMLO, LMLO (the current study);
* ``1x2``: R and L of one view (``view="CC"`` or ``"MLO"``; by default the
  standard view the current study has most of, CC on a tie);
* ``1x3``: R and L of one view, then a free cell for one extra image (an
  off-grid image of that view: a spot compression or magnification first,
  then a prior, then a repeat; or the one assigned to it);
* ``2x4``: the current study on top (RCC, LCC, RMLO, LMLO), the prior below;
* ``1x1``: one image (the first).

One patient hangs at a time: the images of the other patients are off the
grid (``Placement.reason`` names their PatientID) and can be assigned by
hand.  The patient is chosen with ``patient=`` (a PatientID), else the one
with the most standard views in their newest study, then the newest study,
then the most images (``Layout.patient``; ``Layout.patients`` lists them).

An image goes into its slot or nowhere: a missing view leaves its cell empty
(``Slot.path is None``); images that fit no slot are off the grid with the
reason (``Placement.reason``): views with a modifier (spot compression,
magnification, implant displaced, ...), other views (ML, XCCL, ...), other or
older study dates, a second image of a view (the one with the highest
InstanceNumber hangs), unknown view or laterality.  ``assign`` puts any
image into any cell (the image there goes off the grid, or swaps places
when the assigned image was on the grid).

Precedence (documented; a disagreement is kept in ``Placement.conflicts``)
-------------------------------------------------------------------------
* laterality: ImageLaterality, Laterality, FrameLaterality (Enhanced
  functional groups), FrameAnatomySequence, then SeriesDescription /
  ProtocolName tokens ("R", "LEFT", "RCC", ...);
* view: ViewPosition, ViewCodeSequence, SeriesDescription / ProtocolName
  tokens, and last PatientOrientation when it holds a view name (digitised
  film sets such as CBIS-DDSM put "CC" there);
* view modifiers: ViewModifierCodeSequence, a ViewPosition ending in "ID"
  (implant displaced), description tokens (SPOT, MAG, ID).

Physical scale
--------------
PixelSpacing, else ImagerPixelSpacing divided by
EstimatedRadiographicMagnificationFactor, else a nominal spacing
(NominalScannedPixelSpacing, DetectorElementSpacing, or the detector's
active dimensions over the matrix); an image without any is scaled to the
height of its neighbours by the viewer (its size is nominal).

Orientation
-----------
Chest walls meet in the middle: right breasts hang on the left of the screen,
aligned to the right edge of their cell; left breasts on the right, aligned
to the left edge.  PatientOrientation says where an image's rows and columns
point; an image that faces the wrong way is flipped (horizontally when its
row direction points to the nipple side, vertically when an MLO's column
direction points to the head or a CC's to the medial side).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import os

    from pydicom import Dataset

    from .scan import Header

# View for Mammography (CID 4014) and View Modifier for Mammography (CID 4015):
# SNOMED CT codes and the legacy SNOMED-RT ones, both found in the field.
_VIEW_CODES = {
    "399162004": "CC",
    "R-10242": "CC",
    "399368009": "MLO",
    "R-10226": "MLO",
    "399260004": "ML",
    "R-10224": "ML",
    "399352003": "LM",
    "R-10228": "LM",
    "399099002": "LMO",
    "R-10230": "LMO",
    "399192008": "XCCL",
    "R-1024A": "XCCL",
    "399101009": "XCCM",
    "R-1024B": "XCCM",
    "399196006": "FB",
    "R-10244": "FB",
    "399188001": "SIO",
    "R-102D0": "SIO",
    "441555000": "ISO",
    "R-40AAA": "ISO",
    "127457009": "SPECIMEN",
    "G-8310": "SPECIMEN",
}
_MODIFIER_CODES = {
    "399055006": "spot compression",
    "R-102D7": "spot compression",
    "399163009": "magnification",
    "R-102D6": "magnification",
    "399209000": "implant displaced",
    "R-102D5": "implant displaced",
    "399226006": "rolled medial",
    "R-102D4": "rolled medial",
    "399197002": "rolled lateral",
    "R-102D3": "rolled lateral",
    "415670009": "rolled superior",
    "R-102C9": "rolled superior",
    "414493004": "rolled inferior",
    "R-102CA": "rolled inferior",
    "399110001": "tangential",
    "R-102C2": "tangential",
    "399011000": "axillary tail",
    "R-102D1": "axillary tail",
    "399161006": "cleavage",
    "R-102D2": "cleavage",
    "442581004": "nipple in profile",
    "R-40AB3": "nipple in profile",
    "442580003": "axillary tissue",
    "R-40AB2": "axillary tissue",
    "441752004": "anterior compression",
    "P2-00161": "anterior compression",
    "442593008": "infra-mammary fold",
    "R-40ABE": "infra-mammary fold",
}
# ViewPosition / description abbreviations (ACR) -> view
_VIEW_NAMES = {
    "CC": "CC",
    "MLO": "MLO",
    "ML": "ML",
    "LM": "LM",
    "LMO": "LMO",
    "XCCL": "XCCL",
    "XCC": "XCCL",
    "XCCM": "XCCM",
    "FB": "FB",
    "SIO": "SIO",
    "ISO": "ISO",
}
STANDARD_VIEWS = ("CC", "MLO")
_TOKEN_MODIFIERS = {"SPOT": "spot compression", "MAG": "magnification", "M": "magnification", "ID": "implant displaced"}

LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "1x3": (1, 3), "2x2": (2, 2), "2x4": (2, 4)}


# --------------------------------------------------------------------------
# what one image says about itself


def fmt_date(d: str | None) -> str:
    if d and len(d) == 8 and d.isdigit():
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    return d or ""


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[\s_\-/\\.,;:()\[\]]+", text.upper()) if t]


def _parse_token(tok: str) -> tuple[str | None, str | None, list[str]]:
    """(laterality, view, modifiers) one description token says ("RCC", "LMLOID", "LEFT", "SPOT" ...)."""
    if tok in ("R", "RIGHT"):
        return "R", None, []
    if tok in ("L", "LEFT"):
        return "L", None, []
    if tok in _TOKEN_MODIFIERS and tok != "M":
        return None, None, [_TOKEN_MODIFIERS[tok]]
    mods: list[str] = []
    core = tok
    if core.endswith("ID") and len(core) > 3:
        core, mods = core[:-2], ["implant displaced"]
    if core in _VIEW_NAMES:
        return None, _VIEW_NAMES[core], mods
    if core[:1] in ("R", "L") and core[1:] in _VIEW_NAMES:
        return core[0], _VIEW_NAMES[core[1:]], mods
    if core[:1] == "M" and core[1:2] in ("R", "L") and core[2:] in _VIEW_NAMES:  # "MRCC": magnified RCC
        return core[1], _VIEW_NAMES[core[2:]], mods + ["magnification"]
    return None, None, []


def _description_sources(values: dict[str, Any]) -> tuple[str | None, str | None, list[str], str]:
    """Laterality, view and modifiers from SeriesDescription / ProtocolName (first match wins)."""
    for key, label in (("series_description", "SeriesDescription"), ("protocol_name", "ProtocolName")):
        lat = view = None
        mods: list[str] = []
        for tok in _tokens(str(values.get(key) or "")):
            tl, tv, tm = _parse_token(tok)
            lat = lat or tl
            view = view or tv
            mods += [m for m in tm if m not in mods]
        if lat or view:
            return lat, view, mods, label
    return None, None, [], ""


def _norm_lat(v: Any) -> str | None:
    s = str(v or "").strip().upper()
    return s if s in ("R", "L") else None


def _view_position(v: Any) -> tuple[str | None, list[str]]:
    s = str(v or "").strip().upper()
    if not s:
        return None, []
    mods: list[str] = []
    if s.endswith("ID") and len(s) > 3:
        s, mods = s[:-2], ["implant displaced"]
    return _VIEW_NAMES.get(s), mods


def _view_code(code: dict[str, Any] | None) -> str | None:
    if not code:
        return None
    v = _VIEW_CODES.get(str(code.get("value", "")))
    if v:
        return v
    m = str(code.get("meaning", "")).lower()
    if "exaggerated" in m:
        return "XCCM" if "medial" in m else "XCCL"
    if "cranio" in m and "caudo-cranial" not in m:
        return "CC"
    if "oblique" in m:
        return "LMO" if m.startswith("latero") else "MLO"
    return None


def view_of(values: dict[str, Any]) -> str | None:
    """The view by the documented precedence (CC, MLO, ML, LM, LMO, XCCL, XCCM, FB, SIO, ISO)."""
    return _resolve(values)[1]


def laterality_of(values: dict[str, Any]) -> str | None:
    return _resolve(values)[0]


def _resolve(values: dict[str, Any]) -> tuple[str | None, str | None, list[str], list[str]]:
    """(laterality, view, modifiers, conflicts) by precedence."""
    lat_cands: list[tuple[str, str]] = []
    for key, label in (
        ("image_laterality", "ImageLaterality"),
        ("laterality", "Laterality"),
        ("frame_laterality", "FrameLaterality"),
        ("anatomy_laterality", "FrameAnatomySequence"),
    ):
        v = _norm_lat(values.get(key))
        if v:
            lat_cands.append((label, v))
    d_lat, d_view, d_mods, d_label = _description_sources(values)
    if d_lat:
        lat_cands.append((d_label, d_lat))
    view_cands: list[tuple[str, str]] = []
    mods: list[str] = []
    vp, vp_mods = _view_position(values.get("view_position"))
    if vp:
        view_cands.append(("ViewPosition", vp))
    mods += vp_mods
    vc = _view_code(values.get("view_code"))
    if vc:
        view_cands.append(("ViewCodeSequence", vc))
    if d_view:
        view_cands.append((d_label, d_view))
    po = values.get("patient_orientation") or []
    if isinstance(po, str):
        po = [po]
    if len(po) == 1:  # not an orientation at all: a view name in the wrong attribute (CBIS-DDSM)
        pv = _VIEW_NAMES.get(str(po[0]).strip().upper())
        if pv:
            view_cands.append(("PatientOrientation", pv))
    for m in values.get("view_modifiers") or []:
        name = _MODIFIER_CODES.get(str(m.get("value", ""))) or str(m.get("meaning", "")).lower() or "modified view"
        if name not in mods:
            mods.append(name)
    for m in d_mods:
        if m not in mods:
            mods.append(m)
    conflicts = []
    for what, cands in (("laterality", lat_cands), ("view", view_cands)):
        if len({v for _, v in cands}) > 1:
            conflicts.append(f"{what}: " + ", ".join(f"{src} {v}" for src, v in cands))
    lat = lat_cands[0][1] if lat_cands else None
    view = view_cands[0][1] if view_cands else None
    return lat, view, mods, conflicts


def physical_spacing(values: dict[str, Any]) -> tuple[tuple[float, float] | None, str, bool]:
    """(row, column) spacing in mm at the breast, where it came from, and whether it is nominal.

    PixelSpacing > ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor >
    NominalScannedPixelSpacing > DetectorElementSpacing > DetectorActiveDimensions / matrix.
    (None, "", True) when the header has none.
    """

    def pair(v: Any) -> tuple[float, float] | None:
        try:
            vals = [float(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
        except (TypeError, ValueError):
            return None
        if len(vals) == 1:
            vals = vals * 2
        if len(vals) < 2 or not all(x > 0 and x == x and x < 1e6 for x in vals[:2]):
            return None
        return vals[0], vals[1]

    ps = pair(values.get("pixel_spacing"))
    if ps:
        return ps, "PixelSpacing", False
    ips = pair(values.get("imager_pixel_spacing"))
    if ips:
        m = values.get("magnification_factor")
        try:
            mf = float(m[0] if isinstance(m, (list, tuple)) else m) if m not in (None, "", []) else 0.0
        except (TypeError, ValueError):
            mf = 0.0
        if mf > 0:
            return (ips[0] / mf, ips[1] / mf), "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor", False
        return ips, "ImagerPixelSpacing", False
    for key, label in (
        ("nominal_scanned_pixel_spacing", "NominalScannedPixelSpacing"),
        ("detector_element_spacing", "DetectorElementSpacing"),
    ):
        p = pair(values.get(key))
        if p:
            return p, f"{label} (nominal)", True
    dims = pair(values.get("detector_active_dimensions"))
    rows, cols = values.get("rows"), values.get("columns")
    if dims and rows and cols:
        sy, sx = dims[0] / float(rows), dims[1] / float(cols)
        if 0.5 < sy / sx < 2:
            return (sy, sx), "DetectorActiveDimensions / matrix (nominal)", True
    return None, "", True


# --------------------------------------------------------------------------
# placements, slots, layouts


@dataclass
class Placement:
    """One image of a hanging: what it is, where it hangs (or why not), how it is turned."""

    path: str
    view: str | None
    laterality: str | None
    study_date: str = ""
    instance_number: int | None = None
    patient: str = ""  # PatientID ("" when the header has none)
    cell: int | None = None  # None: off the grid
    slot: str | None = None  # the slot's name ("RCC", "LMLO prior", "extra"), None off the grid
    flip_h: bool = False
    flip_v: bool = False
    align: str = "left"  # "right" for right breasts (chest wall at the cell's right edge)
    patient_orientation: tuple[str, ...] = ()
    modifiers: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # contradictory tags (placed by precedence)
    reason: str = ""  # why the image is off the grid
    spacing: tuple[float, float] | None = None  # mm at the breast (None: unknown)
    spacing_source: str = ""
    nominal: bool = True  # the physical size is nominal (no calibrated spacing)
    rows: int | None = None
    columns: int | None = None

    @property
    def standard(self) -> bool:
        """A standard screening view (R/L CC/MLO without modifiers)."""
        return self.laterality in ("R", "L") and self.view in STANDARD_VIEWS and not self.modifiers

    @property
    def label(self) -> str:
        """The image's own view label: "RCC", "LMLO spot compression", "?CC"."""
        s = f"{self.laterality or '?'}{self.view or '?'}"
        if self.modifiers:
            s += " " + ", ".join(self.modifiers)
        return s


@dataclass
class Slot:
    cell: int
    name: str  # "RCC", "LCC prior", "extra", "image"
    laterality: str | None = None
    view: str | None = None
    date: str | None = None  # the study date it takes (None: any)
    label: str = ""  # what the cell says on the canvas ("RCC", "LMLO 2022-03-10")
    path: str | None = None  # the image hanging there (None: empty)

    @property
    def missing(self) -> bool:
        return self.path is None


@dataclass
class Layout:
    name: str
    grid: tuple[int, int]
    placements: list[Placement] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    view: str | None = None  # the view of a 1x2 / 1x3
    patient: str | None = None  # the PatientID that hangs (None: no image)
    patients: list[str] = field(default_factory=list)  # every PatientID of the images, the hung one first

    def cell_of(self, path: str) -> int | None:
        for p in self.placements:
            if p.path == path:
                return p.cell
        raise KeyError(path)

    def placement(self, path: str) -> Placement:
        for p in self.placements:
            if p.path == path:
                return p
        raise KeyError(path)

    @property
    def off_grid(self) -> list[Placement]:
        return [p for p in self.placements if p.cell is None]

    @property
    def by_cell(self) -> dict[int, Placement]:
        return {p.cell: p for p in self.placements if p.cell is not None}


def _orientation_flips(po: Sequence[str], laterality: str | None, view: str | None) -> tuple[bool, bool]:
    """Flips that make an image face the hanging convention.

    Row direction (PatientOrientation[0]) must point to the chest wall for a
    right breast (posterior, 'P') and away from it for a left one ('A'); an
    MLO's column direction must point to the feet ('F'); a CC's column
    direction must point medially (an RCC's to the patient's left, an LCC's
    to the right), so the lateral side is at the top."""
    flip_h = flip_v = False
    if len(po) < 2:  # one value is no orientation (see PatientOrientation in _resolve)
        return False, False
    if laterality in ("R", "L"):
        row = str(po[0]).upper()
        want = "P" if laterality == "R" else "A"
        avoid = "A" if laterality == "R" else "P"
        if avoid in row and want not in row:
            flip_h = True
    col = str(po[1]).upper()
    if view in ("MLO", "ML", "LM", "LMO", "SIO", "ISO") and "H" in col and "F" not in col:
        flip_v = True
    if view in ("CC", "XCCL", "XCCM", "FB") and laterality in ("R", "L"):
        want = "L" if laterality == "R" else "R"
        avoid = "R" if laterality == "R" else "L"
        if avoid in col and want not in col:
            flip_v = True
    return flip_h, flip_v


def placement_from_values(path: str, values: dict[str, Any]) -> Placement:
    lat, view, mods, conflicts = _resolve(values)
    po_raw = values.get("patient_orientation") or ()
    po = tuple(str(x) for x in ([po_raw] if isinstance(po_raw, str) else po_raw))
    fh, fv = _orientation_flips(po, lat, view)
    spacing, source, nominal = physical_spacing(values)
    inst = values.get("instance_number")
    try:
        inst = int(inst) if inst not in (None, "") else None
    except (TypeError, ValueError):
        inst = None
    return Placement(
        path=path,
        view=view,
        laterality=lat,
        study_date=str(values.get("study_date") or ""),
        instance_number=inst,
        patient=str(values.get("patient_id") or "").strip(),
        flip_h=fh,
        flip_v=fv,
        align="right" if lat == "R" else "left",
        patient_orientation=po,
        modifiers=mods,
        conflicts=conflicts,
        spacing=spacing,
        spacing_source=source,
        nominal=nominal,
        rows=values.get("rows"),
        columns=values.get("columns"),
    )


def choose_layout(placements: list[Placement]) -> tuple[str, str | None]:
    """(layout, view) for a set of images: two dates with standard views -> 2x4; both
    standard views -> 2x2; one standard view -> 1x2 of it; one image -> 1x1; else 2x2."""
    if len(placements) <= 1:
        return "1x1", None
    current, prior = _dates(placements)
    std = [p for p in placements if p.standard]
    if prior is not None and any(p.study_date == prior for p in std) and any(p.study_date == current for p in std):
        return "2x4", None
    views = {p.view for p in std if p.study_date == current}
    if len(views) == 1:
        return "1x2", next(iter(views))
    return "2x2", None


def patient_order(placements: list[Placement]) -> list[str]:
    """The PatientIDs of ``placements``, the one to hang first: most distinct standard
    views in the patient's newest study, then the newest study, then the most images."""
    groups: dict[str, list[Placement]] = {}
    for p in placements:
        groups.setdefault(p.patient, []).append(p)

    def key(pid: str) -> tuple[int, str, int]:
        ps = groups[pid]
        newest = max(p.study_date for p in ps)
        views = {(p.laterality, p.view) for p in ps if p.standard and p.study_date == newest}
        return len(views), newest, len(ps)

    return sorted(groups, key=key, reverse=True)


def _dates(placements: list[Placement]) -> tuple[str, str | None]:
    """(current, prior) study dates: the newest two ('' sorts oldest)."""
    dates = sorted({p.study_date for p in placements}, reverse=True)
    return (dates[0] if dates else ""), (dates[1] if len(dates) > 1 else None)


def _slots(layout: str, view: str | None, current: str, prior: str | None, multi_date: bool) -> list[Slot]:
    def lbl(name: str, date: str | None) -> str:
        return f"{name} {fmt_date(date)}".strip() if (multi_date and date) else name

    if layout == "1x1":
        return [Slot(0, "image", label="image")]
    if layout == "2x2":
        return [Slot(i, f"{lat}{v}", lat, v, current, lbl(f"{lat}{v}", current)) for i, (lat, v) in enumerate(_FOUR)]
    v = view or "CC"
    if layout == "1x2":
        return [Slot(i, f"{lat}{v}", lat, v, current, lbl(f"{lat}{v}", current)) for i, lat in enumerate("RL")]
    if layout == "1x3":
        out = [Slot(i, f"{lat}{v}", lat, v, current, lbl(f"{lat}{v}", current)) for i, lat in enumerate("RL")]
        return out + [Slot(2, "extra", None, v, None, "extra")]
    if layout == "2x4":
        out = [Slot(i, f"{lat}{v}", lat, v, current, lbl(f"{lat}{v}", current)) for i, (lat, v) in enumerate(_FOUR)]
        if prior is None:
            return out + [
                Slot(4 + i, f"{lat}{v} prior", lat, v, "", f"{lat}{v} prior") for i, (lat, v) in enumerate(_FOUR)
            ]
        return out + [
            Slot(4 + i, f"{lat}{v} prior", lat, v, prior, f"{lat}{v} {fmt_date(prior)}".strip())
            for i, (lat, v) in enumerate(_FOUR)
        ]
    raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")


_FOUR = [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]


def arrange(
    placements: list[Placement],
    layout: str | None = None,
    view: str | None = None,
    assign: dict[str, int | None] | None = None,
    patient: str | None = None,
) -> Layout:
    """Hang ``placements`` in the named slots of ``layout`` (chosen from the images when None).

    ``view``: the view of a 1x2 / 1x3 ("CC", "MLO").  ``assign``: {path: cell or None}
    manual placements applied last (None takes an image off the grid).  ``patient``:
    the PatientID that hangs (by default the first of :func:`patient_order`); the
    other patients' images are off the grid.
    """
    everyone = list(placements)
    patients = patient_order(everyone)
    if patient is not None:
        patient = str(patient).strip()
        if patient not in patients:
            raise ValueError(f"no image of patient {patient!r}; the images are of {', '.join(map(repr, patients))}")
    elif patients:
        patient = patients[0]
    if patient is not None:
        patients = [patient] + [x for x in patients if x != patient]
    ps = [p for p in everyone if p.patient == patient]
    auto_view = None
    if layout is None:
        layout, auto_view = choose_layout(ps)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if view is not None:
        view = view.strip().upper()
        if view not in _VIEW_NAMES:
            raise ValueError(f"unknown view {view!r}; choose from CC, MLO, ML, LM, LMO, XCCL, XCCM, FB, SIO, ISO")
    current, prior = _dates(ps)
    if layout in ("1x2", "1x3") and view is None:
        view = auto_view or _main_view(ps, current)
    multi_date = len({p.study_date for p in ps}) > 1
    slots = _slots(layout, view, current, prior, multi_date)
    for p in everyone:
        p.cell, p.slot, p.reason = None, None, ""
    taken: set[str] = set()
    for s in slots:
        if s.laterality is None:
            continue
        cands = [
            p
            for p in ps
            if p.laterality == s.laterality
            and p.view == s.view
            and not p.modifiers
            and (s.date is None or p.study_date == s.date)
            and p.path not in taken
        ]
        if cands:
            best = max(cands, key=lambda p: (p.instance_number or 0, p.path))
            s.path = best.path
            taken.add(best.path)
            for other in cands:
                if other is not best:
                    other.reason = f"another {s.name} hangs in its cell (InstanceNumber {best.instance_number})"
    for s in slots:
        if s.name == "image" and ps:
            s.path = ps[0].path
            taken.add(ps[0].path)
        elif s.name == "extra":
            rest = [p for p in ps if p.path not in taken]
            # a view of the same kind first: a spot / magnification, then a prior, then a repeat
            rest.sort(
                key=lambda p: (p.view != s.view, not p.modifiers, p.study_date == current, p.instance_number or 0)
            )
            if rest:
                s.path = rest[0].path
                taken.add(rest[0].path)
    by_path = {p.path: p for p in everyone}
    for path, cell in (assign or {}).items():
        path = str(path)
        if path not in by_path:
            raise ValueError(f"cannot assign {path!r}: not one of the images")
        old = next((s for s in slots if s.path == path), None)
        if cell is None:
            if old is not None:
                old.path = None
            by_path[path].reason = "taken off the grid"
            continue
        if not 0 <= cell < len(slots):
            raise ValueError(f"cannot move {path!r} to cell {cell}: {layout} has cells 0-{len(slots) - 1}")
        target = slots[cell]
        occupant = target.path
        target.path = path
        if old is not None and old is not target:
            old.path = occupant  # swap (None when the target was empty)
        elif occupant is not None and occupant != path:
            by_path[occupant].reason = f"replaced in {target.name} by an assignment"
    for s in slots:
        if s.path is not None:
            p = by_path[s.path]
            p.cell, p.slot, p.reason = s.cell, s.name, ""
    for p in everyone:
        if p.cell is None and not p.reason:
            if p.patient != patient:
                p.reason = f"another patient ({p.patient or 'no PatientID'})"
            else:
                p.reason = _off_grid_reason(p, layout, view, current, prior)
    ordered = sorted(everyone, key=lambda p: (p.cell is None, p.cell if p.cell is not None else 0))
    return Layout(
        layout, LAYOUTS[layout], ordered, slots, view if layout in ("1x2", "1x3") else None, patient, patients
    )


def _main_view(ps: list[Placement], current: str) -> str:
    counts = {v: sum(1 for p in ps if p.standard and p.view == v and p.study_date == current) for v in STANDARD_VIEWS}
    return "MLO" if counts["MLO"] > counts["CC"] else "CC"


def _off_grid_reason(p: Placement, layout: str, view: str | None, current: str, prior: str | None) -> str:
    if p.laterality is None and p.view is None:
        return "view and laterality unknown"
    if p.laterality is None:
        return "laterality unknown"
    if p.view is None:
        return "view unknown"
    if p.modifiers:
        return ", ".join(p.modifiers)
    if p.view not in STANDARD_VIEWS:
        return f"{p.view} is not a slot of {layout}"
    dates = (current, prior) if layout == "2x4" else (current,)
    if p.study_date not in dates:
        return f"study date {fmt_date(p.study_date) or 'unknown'} (not in this layout)"
    if layout in ("1x2", "1x3") and p.view != view:
        return f"{p.view} is not the {view} of this {layout}"
    return "no free slot"


# --------------------------------------------------------------------------
# header values


def values_from_dataset(ds: Dataset) -> dict[str, Any]:
    """What the hanging reads from a header (pydicom Dataset, file or DICOMweb metadata)."""

    def get(kw: str) -> Any:
        try:
            v = ds.get(kw)
        except Exception:  # a malformed value must not stop the hanging
            return None
        if v is None or v == "":
            return None
        if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)):
            return [x for x in v]
        return v

    out: dict[str, Any] = {}
    for kw, key, conv in (
        ("ViewPosition", "view_position", str),
        ("ImageLaterality", "image_laterality", str),
        ("Laterality", "laterality", str),
        ("SeriesDescription", "series_description", str),
        ("ProtocolName", "protocol_name", str),
        ("StudyDate", "study_date", str),
        ("PatientID", "patient_id", str),
        ("InstanceNumber", "instance_number", int),
        ("Rows", "rows", int),
        ("Columns", "columns", int),
    ):
        v = get(kw)
        if v is not None:
            with contextlib.suppress(TypeError, ValueError):
                out[key] = conv(v)
    for kw, key in (
        ("PixelSpacing", "pixel_spacing"),
        ("ImagerPixelSpacing", "imager_pixel_spacing"),
        ("EstimatedRadiographicMagnificationFactor", "magnification_factor"),
        ("NominalScannedPixelSpacing", "nominal_scanned_pixel_spacing"),
        ("DetectorElementSpacing", "detector_element_spacing"),
        ("DetectorActiveDimensions", "detector_active_dimensions"),
    ):
        v = get(kw)
        if v is not None:
            with contextlib.suppress(TypeError, ValueError):
                out[key] = [float(x) for x in (v if isinstance(v, list) else [v])]
    po = get("PatientOrientation")
    if po is not None:
        out["patient_orientation"] = [str(x) for x in (po if isinstance(po, list) else [po])]
    vcs = get("ViewCodeSequence")
    mods: list[dict[str, str]] = []
    if vcs:
        item = vcs[0]
        out["view_code"] = {"value": _code_value(item), "meaning": str(item.get("CodeMeaning", "") or "")}
        for m in item.get("ViewModifierCodeSequence", None) or []:
            mods.append({"value": _code_value(m), "meaning": str(m.get("CodeMeaning", "") or "")})
    for m in get("ViewModifierCodeSequence") or []:  # some writers put it at the top level
        mods.append({"value": _code_value(m), "meaning": str(m.get("CodeMeaning", "") or "")})
    if mods:
        out["view_modifiers"] = mods
    for seq_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = get(seq_name)
        if not seq:
            continue
        fa = seq[0].get("FrameAnatomySequence")
        if fa:
            lat = fa[0].get("FrameLaterality")
            if lat:
                out.setdefault("frame_laterality", str(lat))
            asq = fa[0].get("AnatomicRegionSequence")
            if asq:
                m = str(asq[0].get("CodeMeaning", "")).lower()
                for word, v in (("right", "R"), ("left", "L")):
                    if word in m:
                        out.setdefault("anatomy_laterality", v)
    return out


def _code_value(item: Any) -> str:
    return str(item.get("CodeValue", "") or item.get("LongCodeValue", "") or "")


def header_values(path: str) -> dict[str, Any]:
    """The hanging values of a file or of a DICOMweb instance (by its frame key: the
    header comes from the metadata already fetched, never by opening the URL as a file)."""
    from .tags import read_header

    return values_from_dataset(read_header(path))


def mammo_layout(
    items: Iterable[str | os.PathLike[str] | Header],
    layout: str | None = None,
    view: str | None = None,
    assign: dict[str, int | None] | None = None,
    patient: str | None = None,
) -> Layout:
    """The hanging layout for mammograms given as paths (files, DICOMweb frame keys) or Headers.

    One patient hangs (``patient``: a PatientID; by default the one with the most
    standard views in their newest study); the others' images are off the grid."""
    from .scan import Header

    placements = []
    for it in items:
        if isinstance(it, Header):
            values = values_from_dataset(it.dataset) if it.dataset is not None else header_values(it.path)
            path = it.path
        else:
            path = str(it)
            values = header_values(path)
        placements.append(placement_from_values(path, values))
    return arrange(placements, layout, view, {str(k): v for k, v in (assign or {}).items()}, patient)


# --------------------------------------------------------------------------
# how much of an image the breast takes


def breast_extent(frame: Any, chest_wall_right: bool, inverted: bool = False) -> float:
    """The share of an image's width, from its chest-wall edge, that holds the breast.

    Mammograms are mostly background on the nipple side; a hanging fits the
    breast, not the background, to its cell.  Pixels brighter (darker when
    ``inverted``) than the background level plus 10 % of the image's range
    count as breast (low, so the faint skin line and subcutaneous fat count:
    a threshold between breast and background such as Otsu's splits dense
    from fatty tissue when an image has little background, and cut breasts
    off); columns count when more than 2 % of their pixels do; the breast
    ends at the first gap of empty columns wider than 3 % of the image (so
    burned-in markers and labels beyond it do not count).  1.0 when nothing
    can be told (an image without background: all of it is breast).
    """
    import numpy as np

    a = np.asarray(frame)
    if a.ndim != 2 or a.size == 0:
        return 1.0
    step = max(1, int(max(a.shape) // 512))
    a = a[::step, ::step].astype(np.float32)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return 1.0
    lo, hi = np.percentile(finite, [0.5, 99.5])
    if hi <= lo:
        return 1.0
    tissue = a < hi - 0.1 * (hi - lo) if inverted else a > lo + 0.1 * (hi - lo)
    occupied = tissue.mean(axis=0) > 0.02
    if chest_wall_right:
        occupied = occupied[::-1]  # from the chest wall outwards
    cols = occupied.size
    gap_max = max(2, int(round(0.03 * cols)))
    last, gap = -1, 0
    for i, occ in enumerate(occupied):
        if occ:
            last, gap = i, 0
        else:
            gap += 1
            if gap > gap_max and last >= 0:
                break
    if last < 0:
        return 1.0
    return float(min(1.0, max(0.2, (last + 1) / cols)))
