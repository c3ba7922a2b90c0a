"""The fast header scan agrees with pydicom on every corpus file."""

from __future__ import annotations

import warnings

import pydicom
import pytest

from conftest import CORPUS, corpus_files
from napari_dcm.dicom.discovery import scan_one, sniff
from napari_dcm.dicom.scan import Header, ScanError, scan_header

CHECKS = [
    ("rows", "Rows", int),
    ("columns", "Columns", int),
    ("bits_allocated", "BitsAllocated", int),
    ("bits_stored", "BitsStored", int),
    ("pixel_representation", "PixelRepresentation", int),
    ("samples_per_pixel", "SamplesPerPixel", int),
    ("photometric", "PhotometricInterpretation", str),
    ("patient_id", "PatientID", str),
    ("modality", "Modality", str),
    ("study_instance_uid", "StudyInstanceUID", str),
    ("series_instance_uid", "SeriesInstanceUID", str),
    ("instance_number", "InstanceNumber", int),
    ("image_position", "ImagePositionPatient", lambda v: [float(x) for x in v]),
    ("image_orientation", "ImageOrientationPatient", lambda v: [float(x) for x in v]),
    ("pixel_spacing", "PixelSpacing", lambda v: [float(x) for x in v]),
    ("rescale_slope", "RescaleSlope", lambda v: [float(v)]),
    ("rescale_intercept", "RescaleIntercept", lambda v: [float(v)]),
    (
        "window_center",
        "WindowCenter",
        lambda v: [float(x) for x in (v if hasattr(v, "__len__") and not isinstance(v, str) else [v])],
    ),
    (
        "window_width",
        "WindowWidth",
        lambda v: [float(x) for x in (v if hasattr(v, "__len__") and not isinstance(v, str) else [v])],
    ),
]


@pytest.mark.parametrize("rel", corpus_files(exclude=("broken/",)))
def test_scan_matches_pydicom(corpus, rel):
    path = str(corpus / rel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    h = scan_header(path)
    assert isinstance(h, Header)
    for name, kw, conv in CHECKS:
        el = ds.get(kw)
        if el is None or el == "":
            assert h.values.get(name) in (None, [], ""), (name, h.values.get(name))
            continue
        assert h.values.get(name) == conv(el), (name, h.values.get(name), el)
    assert h.sop_instance_uid == str(
        ds.get("SOPInstanceUID", "") or getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "") or ""
    )
    # the pixel data offset points at the value pydicom finds there
    full = (
        pydicom.dcmread(path, force=True, defer_size=None)
        if h.pixel_length >= 0 and h.pixel_length < 5_000_000
        else None
    )
    if full is not None and "PixelData" in full and h.transfer_syntax != "1.2.840.10008.1.2.1.99":
        with open(path, "rb") as fh:
            fh.seek(h.pixel_offset)
            raw = fh.read(h.pixel_length)
        assert raw == full.PixelData[: len(raw)]


def test_scan_reads_no_pixel_data(big_multiframe):
    """The header walk stops at the pixel data: it reads a small part of a big file."""
    import os

    assert big_multiframe.stat().st_size > 40_000_000

    real = os.read
    got = []

    def spy(fd, n):
        b = real(fd, n)
        got.append(len(b))
        return b

    os.read = spy
    try:
        h = scan_header(str(big_multiframe))
    finally:
        os.read = real
    assert h.pixel_offset > 0
    assert 0 < sum(got) < 200_000, got


def test_not_dicom(tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    assert sniff(str(png)) is None
    assert scan_one(str(png)) == (str(png), "not DICOM")
    with pytest.raises(ScanError):
        scan_header(str(png))


def _with_per_frame_groups() -> list[str]:
    """Multi-frame corpus files that have a Per-frame Functional Groups Sequence (Enhanced objects)."""
    out = []
    for rel in corpus_files("multiframe", "mammography", "seg_pm", "transfer_syntax", "pixel_formats"):
        path = CORPUS / rel
        if not path.is_file():
            return ["<corpus missing>"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, specific_tags=[0x52009230])
        if "PerFrameFunctionalGroupsSequence" in ds:
            out.append(rel)
    return out


FG_FILES = _with_per_frame_groups()


def test_functional_group_files_found(corpus):
    assert len(FG_FILES) >= 5, FG_FILES


@pytest.mark.parametrize("rel", FG_FILES)
def test_functional_groups_match_pydicom(corpus, rel):
    """Per-frame and shared functional group values walked by the scan equal pydicom's."""
    from napari_dcm.dicom.series import _fg_from_dataset

    path = str(corpus / rel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    h = scan_header(path)
    shared, per_frame = _fg_from_dataset(ds, int(ds.get("NumberOfFrames", 1) or 1))
    got_shared = (h.values.get("shared_fg") or [{}])[0]
    got_pf = h.values.get("per_frame_fg") or []
    assert len(got_pf) == len(per_frame)
    keys = (
        "image_position",
        "image_orientation",
        "pixel_spacing",
        "rescale_slope",
        "rescale_intercept",
        "window_center",
        "window_width",
    )
    for k in keys:
        if k in shared:
            assert got_shared.get(k) == shared[k], (k, got_shared.get(k), shared[k])
    for got, exp in zip(got_pf, per_frame):
        for k in keys:
            if k in exp:
                assert got.get(k) == exp[k], (k, got.get(k), exp[k])
