"""Hanging sets made from the corpus mammograms with edited tags (tests and docs screenshots).

``Bases`` decodes a corpus mammogram once (pydicom) and keeps it, optionally
reduced by an integer factor (block mean; the spacing grows by the same
factor, so the physical size stays the same); ``write_view`` writes it as an
Explicit VR Little Endian file with the view, laterality, date, orientation
and spacing a test needs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

# the corpus mammograms used (path, what they are)
FFDM = "mammography/GH133.dcm"  # GE Senographe FFDM, R MLO, PatientOrientation P\FL, ImagerPixelSpacing 0.094
FILM = "mammography/1-130.dcm"  # CBIS-DDSM digitised film, L CC, no spacing at all
FFDM_L = "mammography/MG1_J2KI"  # NEMA WG04 MG1, L MLO, no spacing

VIEW_CODES = {
    "CC": ("399162004", "cranio-caudal"),
    "MLO": ("399368009", "medio-lateral oblique"),
    "ML": ("399260004", "medial-lateral"),
    "XCCL": ("399192008", "cranio-caudal exaggerated laterally"),
}
MODIFIER_CODES = {"spot": ("399055006", "Spot Compression"), "mag": ("399163009", "Magnification")}


class Bases:
    """Decoded corpus mammograms, reduced by ``factor`` (cached per instance)."""

    def __init__(self, corpus: Path, factor: int = 4):
        self.corpus = Path(corpus)
        self.factor = factor
        self._cache: dict[str, tuple[np.ndarray, Dataset]] = {}

    def get(self, rel: str) -> tuple[np.ndarray, Dataset]:
        if rel not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(self.corpus / rel)
                arr = ds.pixel_array
            f = self.factor
            if f > 1:
                r, c = (arr.shape[0] // f) * f, (arr.shape[1] // f) * f
                arr = arr[:r, :c].reshape(r // f, f, c // f, f).mean(axis=(1, 3))
            self._cache[rel] = (np.round(arr).astype(np.uint16), ds)
        return self._cache[rel]


def code_item(value: str, meaning: str) -> Dataset:
    it = Dataset()
    it.CodeValue, it.CodingSchemeDesignator, it.CodeMeaning = value, "SCT", meaning
    return it


def write_view(
    bases: Bases,
    dst,
    view: str | None,
    lat: str | None,
    *,
    base: str = FFDM,
    date: str = "20240101",
    po: tuple[str, ...] | None = None,
    inst: int = 1,
    patient: str = "MGTEST",
    spacing: str = "imager",  # "imager", "pixel", "none"
    modifier: str | None = None,
    view_code: bool = True,
    **tags,
) -> Path:
    """Write one view of a hanging set; returns its path.

    ``po`` defaults to what the base image really shows, so the hanging flips
    it when it stands for the other breast (GH133 is a right breast with its
    chest wall on the right: ``P\\F``; the films are left breasts: ``A\\F``).
    """
    arr, src = bases.get(base)
    f = bases.factor
    ds = Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(dst), patient, date])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "MG"
    ds.PatientID = patient
    ds.PatientName = patient
    ds.StudyDate = date
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient, date])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(dst), patient, date, "series"])
    ds.SeriesNumber = inst
    ds.InstanceNumber = inst
    ds.SeriesDescription = tags.pop("SeriesDescription", "MAMMOGRAPHY")
    if view:
        ds.ViewPosition = view
        if view_code and view in VIEW_CODES:
            item = code_item(*VIEW_CODES[view])
            if modifier:
                item.ViewModifierCodeSequence = Sequence([code_item(*MODIFIER_CODES[modifier])])
            ds.ViewCodeSequence = Sequence([item])
    if lat:
        ds.ImageLaterality = lat
    if po is None:  # what the base image shows: GH133 a right breast, the films left breasts
        row, right = ("P", True) if base == FFDM else ("A", False)
        po = (row, "F") if (view or "").endswith("MLO") else (row, "L" if right else "R")
    ds.PatientOrientation = list(po)
    if spacing != "none":
        sp = [float(x) * f for x in (src.get("ImagerPixelSpacing") or [0.1, 0.1])]
        if spacing == "imager":
            ds.ImagerPixelSpacing = sp
            ds.EstimatedRadiographicMagnificationFactor = 1.0
        else:
            ds.PixelSpacing = sp
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if base == FFDM:
        ds.BitsStored, ds.HighBit = 12, 11
        ds.WindowCenter, ds.WindowWidth = 2653, 900
    else:
        lo, hi = np.percentile(arr, [1, 99.5])
        ds.WindowCenter, ds.WindowWidth = float((lo + hi) / 2), float(hi - lo)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = arr.tobytes()
    ds.save_as(dst, enforce_file_format=True)
    return Path(dst)


def four_view(bases: Bases, d: Path, date: str = "20240101", patient: str = "MGTEST", skip=(), **kw) -> dict:
    """RCC, LCC, RMLO, LMLO (minus ``skip``) of one study from the FFDM base; the
    left views and the CCs are the right MLO relabelled, flipped by the hanging."""
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate(("RCC", "LCC", "RMLO", "LMLO")):
        if name in skip:
            continue
        lat, view = name[0], name[1:]
        po = ("P", "F") if view == "MLO" else ("P", "L" if lat == "R" else "R")
        out[name] = write_view(
            bases, d / f"{date}_{name}.dcm", view, lat, date=date, po=po, inst=i + 1, patient=patient, **kw
        )
    return out


def relabel(
    corpus: Path,
    src: str,
    dst,
    view: str,
    lat: str,
    *,
    date: str,
    po: tuple[str, str],
    inst: int,
    patient: str = "MGDEMO",
    **tags,
) -> Path:
    """A corpus mammogram with edited tags (its pixel data copied as they are, compressed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(Path(corpus) / src)
    ds.PatientID = ds.PatientName = patient
    ds.StudyDate = date
    ds.ViewPosition = view
    ds.ImageLaterality = lat
    if "Laterality" in ds:
        ds.Laterality = lat
    if "ViewCodeSequence" in ds:
        del ds.ViewCodeSequence
    if view in VIEW_CODES:
        ds.ViewCodeSequence = Sequence([code_item(*VIEW_CODES[view])])
    ds.PatientOrientation = list(po)
    ds.InstanceNumber = inst
    ds.SeriesDescription = f"{lat}{view}"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient, date])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(dst), patient, date, "series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(dst), patient, date])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(dst)
    return Path(dst)
