"""Deterministic synthetic DICOM for tests and benchmarks.

Everything here is generated (no patient data): CT series, large multi-frame
(DBT-like) objects in several transfer syntaxes, folders of many small files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    MRImageStorage,
    RLELossless,
)

BTO = "1.2.840.10008.5.1.4.1.1.13.1.3"  # Breast Tomosynthesis Image Storage
SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "j2k": JPEG2000Lossless,
    "jpegls": JPEGLSLossless,
    "rle": RLELossless,
}


def uid(*parts) -> str:
    return "2.25." + str(int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:30], 16))


def _file_ds(sop_class: str, sop_uid: str, ts: str = ExplicitVRLittleEndian) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ts
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def phantom_slice(rows: int, cols: int, k: int = 0, seed: int = 0, bits: int = 12) -> np.ndarray:
    """A smooth breast/body-like image with noise, values within ``bits``."""
    rng = np.random.default_rng(seed + k)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    top = 2**bits - 1
    base = 0.25 * top + 0.45 * top * np.exp(
        -(((x - 0.2 * cols) / (0.5 * cols)) ** 2 + ((y - 0.5 * rows) / (0.45 * rows)) ** 2)
    )
    blob = (
        0.15
        * top
        * np.exp(-(((x - (0.3 + 0.004 * k) * cols) / (0.03 * cols)) ** 2 + ((y - 0.45 * rows) / (0.03 * rows)) ** 2))
    )
    img = base + blob + rng.normal(0, 0.01 * top, (rows, cols)).astype(np.float32)
    return np.clip(img, 0, top).astype(np.uint16)


def write_ct_series(
    folder: Path,
    n: int = 12,
    rows: int = 64,
    cols: int = 64,
    shuffle_names: bool = True,
    spacing: float = 2.5,
    study: str = "study",
    series: str = "series",
    patient: str = "P1",
    orientation=(1, 0, 0, 0, 1, 0),
    instance_numbers=None,
    modality: str = "CT",
) -> Path:
    """A CT series; file names and instance numbers are scrambled relative to position."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    order = rng.permutation(n) if shuffle_names else np.arange(n)
    inst = (
        instance_numbers
        if instance_numbers is not None
        else (rng.permutation(n) + 1 if shuffle_names else np.arange(n) + 1)
    )
    for k in range(n):
        sop = uid(study, series, k)
        ds = _file_ds(CTImageStorage if modality == "CT" else MRImageStorage, sop)
        ds.PatientID = patient
        ds.PatientName = f"{patient}^Test"
        ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
        ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "120000", "1", "A1", ""
        ds.StudyDate = "20230405"
        ds.Modality = modality
        ds.StudyDescription = "Synthetic"
        ds.SeriesDescription = f"Series {series}"
        ds.StudyInstanceUID = uid(study)
        ds.SeriesInstanceUID = uid(study, series)
        ds.FrameOfReferenceUID = uid(study, "for")
        ds.SeriesNumber = 3
        ds.InstanceNumber = int(inst[k])
        # slice k is at z = -20 + k*spacing (descending z would be stored order reversed)
        ds.ImagePositionPatient = [-32.0, -32.0, -20.0 + k * spacing]
        ds.ImageOrientationPatient = list(orientation)
        ds.PixelSpacing = [0.8, 0.7]
        ds.SliceThickness = spacing
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        img = np.full((rows, cols), 1000 + 10 * k, np.uint16)  # slice k has value 1000+10k
        img[: rows // 2, : cols // 4] = 2000  # an asymmetric marker
        ds.PixelData = img.tobytes()
        ds.save_as(folder / f"slice_{int(order[k]):03d}.dcm", enforce_file_format=True)
    return folder


def write_multiframe(
    path: Path,
    frames: int = 64,
    rows: int = 2048,
    cols: int = 1664,
    syntax: str = "explicit",
    bits: int = 12,
    window=(2048, 4096),
    seed: int = 0,
    enhanced: bool = True,
) -> Path:
    """A DBT-like multi-frame object: uint16 with ``bits`` stored, per-frame positions.

    ``syntax`` is one of explicit, j2k (lossless, with a Basic Offset Table),
    jpegls or rle.
    """
    path = Path(path)
    ts = SYNTAXES[syntax]
    sop = uid("mf", path.name, syntax, frames, rows, cols)
    ds = _file_ds(BTO if enhanced else "1.2.840.10008.5.1.4.1.1.7.3", sop, ts)
    ds.PatientID = "DBT-1"
    ds.PatientName = "Synthetic^DBT"
    ds.StudyDate = "20240301"
    ds.Modality = "MG"
    ds.StudyInstanceUID = uid("dbt-study")
    ds.SeriesInstanceUID = uid("dbt-series", path.name)
    ds.FrameOfReferenceUID = uid("dbt-for")
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageLaterality = "L"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    if enhanced:
        shared = Dataset()
        pm = Dataset()
        pm.PixelSpacing = [0.1, 0.1]
        pm.SliceThickness = 1.0
        shared.PixelMeasuresSequence = Sequence([pm])
        po = Dataset()
        po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        shared.PlaneOrientationSequence = Sequence([po])
        if window:
            fv = Dataset()
            fv.WindowCenter, fv.WindowWidth = window
            shared.FrameVOILUTSequence = Sequence([fv])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        per = []
        for k in range(frames):
            it = Dataset()
            pp = Dataset()
            pp.ImagePositionPatient = [0.0, 0.0, float(k)]
            it.PlanePositionSequence = Sequence([pp])
            per.append(it)
        ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    else:
        ds.PixelSpacing = [0.1, 0.1]
        if window:
            ds.WindowCenter, ds.WindowWidth = window
    base = phantom_slice(rows, cols, 0, seed, bits)
    stack = np.empty((frames, rows, cols), np.uint16)
    for k in range(frames):
        # frames differ a little (a moving blob) without regenerating noise
        stack[k] = base
        c = int((0.3 + 0.004 * k) * cols)
        stack[k, rows // 2 - 20 : rows // 2 + 20, max(0, c - 20) : c + 20] = (2**bits - 1) - k
    if syntax == "explicit":
        ds.PixelData = stack.tobytes()
    else:
        from pydicom.pixels import get_encoder

        enc = get_encoder(ts)
        opts = dict(
            rows=rows,
            columns=cols,
            samples_per_pixel=1,
            bits_allocated=16,
            bits_stored=bits,
            pixel_representation=0,
            photometric_interpretation="MONOCHROME2",
            number_of_frames=1,
        )
        encoded = [enc.encode(stack[k], **opts) for k in range(frames)]
        ds.PixelData = encapsulate(encoded, has_bot=True)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return path


def write_small_files(folder: Path, n: int, per_series: int = 100, rows: int = 16, cols: int = 16) -> Path:
    """``n`` small MR files in ``n // per_series`` series (fast to write)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    template = _file_ds(MRImageStorage, uid("tmpl"))
    template.PatientID = "MANY"
    template.PatientName = "Many^Files"
    template.StudyDate = "20220101"
    template.Modality = "MR"
    template.StudyInstanceUID = uid("many")
    template.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    template.PixelSpacing = [1.0, 1.0]
    template.SliceThickness = 1.0
    template.SamplesPerPixel = 1
    template.PhotometricInterpretation = "MONOCHROME2"
    template.Rows, template.Columns = rows, cols
    template.BitsAllocated, template.BitsStored, template.HighBit, template.PixelRepresentation = 16, 12, 11, 0
    template.PixelData = np.zeros((rows, cols), np.uint16).tobytes()
    for i in range(n):
        s = i // per_series
        template.SeriesInstanceUID = uid("many", s)
        template.SeriesNumber = s + 1
        template.SeriesDescription = f"S{s}"
        template.InstanceNumber = i % per_series + 1
        template.SOPInstanceUID = uid("many", i)
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.ImagePositionPatient = [0.0, 0.0, float(i % per_series)]
        sub = folder / f"s{s:03d}"
        sub.mkdir(exist_ok=True)
        template.save_as(sub / f"i{i:05d}.dcm", enforce_file_format=True)
    return folder


def write_plain_image(
    path: Path,
    rows: int = 40,
    cols: int = 40,
    value: int = 20,
    frames: int = 1,
    reverse_positions: bool = False,
    patient: str = "ROI1",
) -> Path:
    """A small unsigned 8-bit image without PixelSpacing/position (scale 1, translate 0),
    or a multi-frame Enhanced one (positions reversed on request: display order != stored)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sop = uid("plain", path.name, rows, cols, frames)
    ds = _file_ds(BTO if frames > 1 else "1.2.840.10008.5.1.4.1.1.7", sop)
    ds.PatientID = patient
    ds.Modality = "MG"
    ds.StudyDate = "20240101"
    ds.StudyInstanceUID = uid("plain-study", patient)
    ds.SeriesInstanceUID = uid("plain-series", path.name)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.WindowCenter, ds.WindowWidth = 128, 256
    arr = np.full((frames, rows, cols), value, np.uint8)
    for k in range(frames):
        arr[k, 0, 0] = k  # a marker of the stored frame
    if frames > 1:
        ds.NumberOfFrames = frames
        shared = Dataset()
        po = Dataset()
        po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        shared.PlaneOrientationSequence = Sequence([po])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        per = []
        for k in range(frames):
            it, pp = Dataset(), Dataset()
            pp.ImagePositionPatient = [0.0, 0.0, float(-k if reverse_positions else k)]
            it.PlanePositionSequence = Sequence([pp])
            per.append(it)
        ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
