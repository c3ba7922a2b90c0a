"""Mammography hanging rules: view, laterality, layout, cell, flip.

Pure functions over headers (or paths), usable from scripts:

    >>> from napari_dcm import mammo_layout
    >>> lay = mammo_layout(["rcc.dcm", "lcc.dcm", "rmlo.dcm", "lmlo.dcm"])
    >>> lay.name, lay.grid, [(p.view, p.laterality, p.cell, p.flip_h) for p in lay.placements]

Rules
-----
* view: ViewPosition, else ViewCodeSequence, else SeriesDescription (CC or
  MLO; XCCL counts as CC; ML/LM/LMO as MLO-like "other" views keep their name);
* laterality: ImageLaterality, else Laterality, else FrameLaterality (Enhanced
  functional groups), else FrameAnatomySequence;
* 2x2: RCC, LCC / RMLO, LMLO;  1x2: R and L of one view;  1x3: sorted by view
  (CC, MLO, others), laterality (R, L), InstanceNumber;  2x4: current study on top, prior below (by
  StudyDate), each row RCC, LCC, RMLO, LMLO; with other than two dates of four
  images the given order is kept per row;
* chest walls meet in the middle: right breasts hang on the left of the
  screen, aligned to the right edge of their cell; left breasts on the right,
  aligned to the left edge.  An image whose PatientOrientation shows it faces
  the wrong way is flipped (horizontally when its row direction points to the
  nipple side, vertically when an MLO's column direction points to the head).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import os

    from .scan import Header

_VIEW_CODES = {  # ViewCodeSequence CodeValue (SNOMED-RT / SCT) -> view
    "R-10242": "CC",
    "399162004": "CC",
    "R-10226": "MLO",
    "399368009": "MLO",
    "R-1024A": "CC",
    "399196006": "CC",  # XCCL -> CC
    "R-10224": "ML",
    "399260004": "ML",
    "R-10230": "LM",
    "399352003": "LM",
    "R-10228": "LMO",
    "399099002": "LMO",
}
LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "1x3": (1, 3), "2x2": (2, 2), "2x4": (2, 4)}


def view_of(values: dict[str, Any]) -> str | None:
    """CC, MLO (or ML, LM, LMO), from ViewPosition, ViewCodeSequence, SeriesDescription."""
    vp = (values.get("view_position") or "").strip().upper()
    if vp:
        return _norm_view(vp)
    code = values.get("view_code")
    if code:
        v = _VIEW_CODES.get(str(code.get("value", "")))
        if v:
            return v
        m = str(code.get("meaning", "")).lower()
        if "cranio" in m:
            return "CC"
        if "oblique" in m:
            return "MLO"
    desc = " ".join(str(values.get(k) or "") for k in ("series_description", "protocol_name")).upper()
    for token in desc.replace("_", " ").replace("-", " ").split():
        v = _norm_view(token)
        if v in ("CC", "MLO"):
            return v
    for token in desc.replace("_", " ").split():
        for cand in ("XCCL", "MLO", "CC"):
            if token.endswith(cand):
                return _norm_view(cand)
    return None


def _norm_view(v: str) -> str | None:
    v = v.upper()
    if v in ("CC", "XCCL", "XCCM", "CCID", "FB"):
        return "CC"
    if v in ("MLO", "MLOID", "SIO"):
        return "MLO"
    if v in ("ML", "LM", "LMO"):
        return v
    return None


def laterality_of(values: dict[str, Any]) -> str | None:
    for k in ("image_laterality", "laterality", "frame_laterality", "anatomy_laterality"):
        v = (values.get(k) or "").strip().upper()
        if v in ("R", "L"):
            return v
    return None


@dataclass
class Placement:
    path: str
    view: str | None
    laterality: str | None
    study_date: str = ""
    instance_number: int | None = None
    cell: int = 0
    flip_h: bool = False
    flip_v: bool = False
    align: str = "left"  # "right" for right breasts (chest wall at the cell's right edge)
    patient_orientation: tuple[str, ...] = ()


@dataclass
class Layout:
    name: str
    grid: tuple[int, int]
    placements: list[Placement] = field(default_factory=list)

    def cell_of(self, path: str) -> int:
        for p in self.placements:
            if p.path == path:
                return p.cell
        raise KeyError(path)


def _orientation_flips(po: Sequence[str], laterality: str | None, view: str | None) -> tuple[bool, bool]:
    """Flips that make an image face the hanging convention.

    Row direction (PatientOrientation[0]) must point to the chest wall for a
    right breast (posterior, 'P') and away from it for a left one ('A'); an
    MLO's column direction must point to the feet ('F')."""
    flip_h = flip_v = False
    if po and len(po) >= 1 and laterality in ("R", "L"):
        row = str(po[0]).upper()
        want = "P" if laterality == "R" else "A"
        avoid = "A" if laterality == "R" else "P"
        if avoid in row and want not in row:
            flip_h = True
    if po and len(po) >= 2 and view == "MLO":
        col = str(po[1]).upper()
        if "H" in col and "F" not in col:
            flip_v = True
    return flip_h, flip_v


def _placement(path: str, values: dict[str, Any]) -> Placement:
    view = view_of(values)
    lat = laterality_of(values)
    po = tuple(values.get("patient_orientation") or ())
    fh, fv = _orientation_flips(po, lat, view)
    return Placement(
        path=path,
        view=view,
        laterality=lat,
        study_date=str(values.get("study_date") or ""),
        instance_number=values.get("instance_number"),
        flip_h=fh,
        flip_v=fv,
        align="right" if lat == "R" else "left",
        patient_orientation=po,
    )


_ORDER4: list[tuple[str | None, str | None]] = [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]


def _rank4(p: Placement) -> int:
    try:
        return _ORDER4.index((p.laterality, p.view))
    except ValueError:
        return 4


def choose_layout(placements: list[Placement]) -> str:
    n = len(placements)
    if n <= 1:
        return "1x1"
    if n == 2:
        return "1x2"
    if n == 3:
        return "1x3"
    if n == 4:
        return "2x2"
    return "2x4"


def arrange(placements: list[Placement], layout: str | None = None) -> Layout:
    """Assign cells for ``layout`` (chosen from the image count when None)."""
    layout = layout or choose_layout(placements)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    grid = LAYOUTS[layout]
    ps = list(placements)
    if layout == "2x2":
        ordered = sorted(ps, key=lambda p: (_rank4(p), p.instance_number or 0))
    elif layout == "1x2":
        ordered = sorted(ps, key=lambda p: (0 if p.laterality == "R" else 1, p.instance_number or 0))
    elif layout == "1x3":
        view_rank: dict[str | None, int] = {"CC": 0, "MLO": 1}
        lat_rank: dict[str | None, int] = {"R": 0, "L": 1}  # right breasts hang on the left of the screen
        ordered = sorted(
            ps,
            key=lambda p: (
                view_rank.get(p.view, 2),
                p.view or "~",
                lat_rank.get(p.laterality, 2),
                p.instance_number or 0,
            ),
        )
    elif layout == "2x4":
        dates = sorted({p.study_date for p in ps}, reverse=True)
        if len(dates) == 2 and all(sum(p.study_date == d for p in ps) == 4 for d in dates):
            rows = [[p for p in ps if p.study_date == d] for d in dates]  # current (newest) on top
            ordered = []
            for row in rows:
                ordered += sorted(row, key=lambda p: (_rank4(p), p.instance_number or 0))
        else:
            ordered = ps  # keep the given order per row
    else:
        ordered = ps
    for i, p in enumerate(ordered):
        p.cell = i
    return Layout(layout, grid, ordered)


def mammo_layout(items: Iterable[str | os.PathLike[str] | Header], layout: str | None = None) -> Layout:
    """The hanging layout for mammograms given as paths or Header objects."""
    from .discovery import scan_one
    from .scan import Header

    placements = []
    for it in items:
        h = it if isinstance(it, Header) else scan_one(str(it))
        if not isinstance(h, Header):
            raise ValueError(f"{h[0]}: {h[1]}")
        placements.append(_placement(h.path, _mammo_values(h)))
    return arrange(placements, layout)


def _mammo_values(h: Header) -> dict[str, Any]:
    v = dict(h.values)
    if not v.get("view_position") or not (v.get("image_laterality") or v.get("laterality")):
        v.update(_dataset_values(h.path))  # ViewCodeSequence / FrameLaterality come before the description
    return v


def _dataset_values(path: str) -> dict[str, Any]:
    """ViewCodeSequence and frame laterality need a real parse (rare: read with pydicom;
    a DICOMweb instance's header comes from the server, never by opening its URL as a file)."""
    from .tags import read_header

    ds = read_header(path)
    out: dict[str, Any] = {}
    vcs = ds.get("ViewCodeSequence")
    if vcs:
        out["view_code"] = {"value": str(vcs[0].get("CodeValue", "")), "meaning": str(vcs[0].get("CodeMeaning", ""))}
    out["protocol_name"] = str(ds.get("ProtocolName", "") or "")
    for seq_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(seq_name)
        if not seq:
            continue
        fa = seq[0].get("FrameAnatomySequence")
        if fa:
            lat = fa[0].get("FrameLaterality")
            if lat:
                out["frame_laterality"] = str(lat)
            asq = fa[0].get("AnatomicRegionSequence")
            if asq:
                m = str(asq[0].get("CodeMeaning", "")).lower()
                if "right" in m:
                    out["anatomy_laterality"] = "R"
                elif "left" in m:
                    out["anatomy_laterality"] = "L"
    return out


def placement_for_layer_metadata(path: str, md: dict[str, Any]) -> Placement:
    """Placement from a napari-dcm image layer's metadata (avoids re-reading the header)."""
    values = {
        k: md.get(k)
        for k in (
            "view_position",
            "series_description",
            "image_laterality",
            "laterality",
            "study_date",
            "patient_orientation",
        )
    }
    values["instance_number"] = md.get("instance_number")
    if not values.get("view_position") or not laterality_of(values):
        values.update(_dataset_values(path))
    return _placement(path, values)
