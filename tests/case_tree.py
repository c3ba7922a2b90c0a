"""A study folder tree for the case navigator tests, made from corpus files with edited tags.

    root/
      P001/S20240101/{rcc,lcc,rmlo,lmlo}.dcm   mammography 4-view set (current)
      P001/S20220101/{rcc,lcc,rmlo,lmlo}.dcm   the same patient's prior
      P002/S20240301/{rcc,lcc,rmlo,lmlo}.dcm   another 4-view set
      P003/CINE/cine.dcm                        multi-frame MR (10 frames) with FrameTime 50 ms
      P004/KNEE/*.dcm                           6 slices of the corpus knee MR series
      P005/BROKEN/truncated.dcm                 a truncated MR (the header reads, the pixels do not)
      notes.txt                                 not DICOM (ignored)

The mammograms are the corpus' 788 x 1318 JPEG lossless FFDM (mammography/OutOfBoundsOverlay.dcm)
with view, laterality, patient, study and UIDs rewritten.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

MG_SRC = "mammography/OutOfBoundsOverlay.dcm"
CINE_SRC = "multiframe/emri_small.dcm"
KNEE_SRC = "ct_mr_series/orthanc_Knee_T1"
BROKEN_SRC = "broken/MR_truncated.dcm"
VIEWS = (
    ("RCC", "CC", "R", ("P", "L")),
    ("LCC", "CC", "L", ("A", "R")),
    ("RMLO", "MLO", "R", ("P", "F")),
    ("LMLO", "MLO", "L", ("A", "F")),
)


def write_mg(corpus: Path, dst: Path, view: str, lat: str, po, *, patient: str, date: str, inst: int) -> Path:
    ds = pydicom.dcmread(corpus / MG_SRC)
    ds.ViewPosition = view
    ds.ImageLaterality = lat
    ds.StudyDate = date
    ds.PatientOrientation = list(po)
    ds.InstanceNumber = inst
    ds.PatientID = patient
    ds.PatientName = f"Test^{patient}"
    ds.StudyDescription = "MAMMO SCREENING"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["case-tree", patient, date])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["case-tree", patient, date, view, lat])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["case-tree", str(dst)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "ViewCodeSequence" in ds:
        del ds.ViewCodeSequence
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    return dst


def write_four_view(corpus: Path, folder: Path, patient: str, date: str) -> dict[str, Path]:
    return {
        name: write_mg(corpus, folder / f"{name.lower()}.dcm", view, lat, po, patient=patient, date=date, inst=i + 1)
        for i, (name, view, lat, po) in enumerate(VIEWS)
    }


def write_cine(corpus: Path, dst: Path, *, frame_time=50.0, cine_rate=12, recommended=15, patient="P003") -> Path:
    ds = pydicom.dcmread(corpus / CINE_SRC)
    if frame_time is not None:
        ds.FrameTime = frame_time
    if cine_rate is not None:
        ds.CineRate = cine_rate
    if recommended is not None:
        ds.RecommendedDisplayFrameRate = recommended
    ds.PatientID = patient
    ds.StudyDate = "20230505"
    ds.StudyDescription = "CINE TEST"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["case-tree", patient, "cine"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["case-tree", patient, "cine", "s"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["case-tree", str(dst)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    return dst


def make_case_tree(corpus: Path, root: Path) -> dict:
    """Write the tree; returns its parts by name."""
    out: dict = {"root": root}
    out["P001_current"] = write_four_view(corpus, root / "P001" / "S20240101", "P001", "20240101")
    out["P001_prior"] = write_four_view(corpus, root / "P001" / "S20220101", "P001", "20220101")
    out["P002"] = write_four_view(corpus, root / "P002" / "S20240301", "P002", "20240301")
    out["cine"] = write_cine(corpus, root / "P003" / "CINE" / "cine.dcm")
    knee = root / "P004" / "KNEE"
    knee.mkdir(parents=True)
    out["knee"] = []
    for f in sorted((corpus / KNEE_SRC).iterdir())[8:14]:
        shutil.copy(f, knee / f.name)
        out["knee"].append(knee / f.name)
    broken = root / "P005" / "BROKEN"
    broken.mkdir(parents=True)
    out["broken"] = broken / "truncated.dcm"
    shutil.copy(corpus / BROKEN_SRC, out["broken"])
    (root / "notes.txt").write_text("not DICOM\n")
    return out


def make_many_mg(corpus: Path, root: Path, n: int, views=("RCC", "LCC", "RMLO", "LMLO")) -> list[Path]:
    """``n`` mammography studies (P1000, P1001, ...) of ``views``, one folder each; returns the folders."""
    out = []
    for i in range(n):
        d = root / f"P{1000 + i}" / "S20240101"
        for k, (name, view, lat, po) in enumerate(v for v in VIEWS if v[0] in views):
            write_mg(
                corpus, d / f"{name.lower()}.dcm", view, lat, po, patient=f"P{1000 + i}", date="20240101", inst=k + 1
            )
        out.append(d)
    return out
