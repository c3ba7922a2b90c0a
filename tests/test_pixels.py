"""Every corpus image opens, and every frame equals pydicom's reference decode."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import napari_dcm
from conftest import corpus_files
from napari_dcm.dicom import decode

IMAGE_CATEGORIES = ("multiframe", "transfer_syntax", "pixel_formats", "mammography", "ct_mr_series", "dicomdir")
LOSSY = ("4.50]", "4.51]", "4.91]", "4.81]", "4.203]", "4.53]", "Lossy", "Process 1)")
# pydicom (with every plugin) cannot decode these; they are checked against other evidence below
PYDICOM_FAILS = {
    "transfer_syntax/RG2_JPLY.dcm",
    "mammography/MG1_JPLY",
    "transfer_syntax/CTImage.dcm_JPEGProcess6_8TransferSyntax_1.2.840.10008.1.2.4.53.dcm",
    "transfer_syntax/liver_deflate.dcm",
}


def image_files():
    out = []
    for rel in corpus_files(*IMAGE_CATEGORIES):
        if rel.startswith("dicomdir/") and ("DICOMDIR" in rel or "TINY_ALPHA" in rel):
            continue  # DICOMDIR files and TINY_ALPHA (headers without pixel data) are tested elsewhere
        out.append(rel)
    return out


def _read_all(path):
    layers = napari_dcm.read(path, strict=True)
    # without the 60xx overlay planes' layers
    layers = [l for l in layers if l[1]["metadata"].get("napari_dcm_overlay", {}).get("kind") != "overlay_plane"]
    assert len(layers) == 1, [l[1]["name"] for l in layers]
    data, kwargs, kind = layers[0]
    if kind == "labels":  # a segmentation (SOP class SEG): shown as labels of its own frames
        arr = np.asarray(data)
        return (arr[None] if arr.ndim == 2 else arr), {
            "rgb": False,
            "metadata": {"display_to_stored": list(range(len(arr)))},
            "seg": True,
        }
    assert kind == "image"
    arr = np.asarray(data.compute())
    if arr.ndim == 2 + int(kwargs["rgb"]):
        arr = arr[None]
    return arr, kwargs


@pytest.mark.parametrize("rel", image_files())
def test_frames_equal_reference(corpus, manifest, reference, rel):
    path = str(corpus / rel)
    row = manifest[rel]
    arr, kwargs = _read_all(path)
    if rel in PYDICOM_FAILS:
        return  # covered by test_files_pydicom_cannot_decode
    ref = reference(path)
    ref = ref[kwargs["metadata"]["display_to_stored"]]
    assert arr.shape == ref.shape
    if kwargs.get("seg"):
        assert np.array_equal(arr > 0, ref > 0)
        return
    lossy = any(x in row["transfer_syntax"] for x in LOSSY)
    if arr.dtype.kind == "f" or ref.dtype.kind == "f" and not np.all(np.mod(ref, 1) == 0):
        np.testing.assert_allclose(arr, ref, rtol=1e-6, atol=1e-4)
    elif lossy:
        # same codec family, possibly another build: allow tiny differences
        diff = np.abs(arr.astype(np.float64) - ref.astype(np.float64))
        span = float(ref.max() - ref.min()) or 1.0
        assert diff.mean() <= 0.01 * span, diff.mean()
    else:
        assert np.array_equal(arr, ref.astype(arr.dtype)), "pixels differ from pydicom's reference"
        assert np.array_equal(arr.astype(np.float64), ref.astype(np.float64)), "output dtype cannot hold the values"


def test_files_pydicom_cannot_decode(corpus):
    """The cases worth winning: retired/quirky JPEG and the deflated image-frame syntax."""
    # WG04 RG2_JPLY (12-bit JPEG extended that libjpeg rejects) equals its fixed twin
    a, _ = _read_all(str(corpus / "transfer_syntax/RG2_JPLY.dcm"))
    b, _ = _read_all(str(corpus / "transfer_syntax/RG2_JPLY_fixed.dcm"))
    assert a.shape == b.shape == (1, 2140, 1760)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # MG1 JPEG extended against the J2K copy of the same mammogram (both lossy)
    a, _ = _read_all(str(corpus / "mammography/MG1_JPLY"))
    b, _ = _read_all(str(corpus / "mammography/MG1_J2KI"))
    assert a.shape == b.shape
    r = np.corrcoef(a[0, ::8, ::8].ravel().astype(float), b[0, ::8, ::8].ravel().astype(float))[0, 1]
    assert r > 0.99, r
    # retired JPEG 4.53: a plausible 12-bit CT image
    a, kw = _read_all(
        str(corpus / "transfer_syntax/CTImage.dcm_JPEGProcess6_8TransferSyntax_1.2.840.10008.1.2.4.53.dcm")
    )
    assert a.shape == (1, 512, 512) and a.max() - a.min() > 1000 and (a > -900).mean() > 0.2
    # deflated image frames (1.2.840.10008.1.2.8.1) equal the uncompressed SEG
    a, _ = _read_all(str(corpus / "transfer_syntax/liver_deflate.dcm"))
    b, _ = _read_all(str(corpus / "seg_pm/liver.dcm"))
    assert np.array_equal(a, b) and a.sum() > 0


# What every broken corpus file must give: a typed error (class and part of the reason), frames
# shown blank with one DicomDecodeWarning naming the file, or an image that opens (its shape).
BROKEN_EXPECTED = {
    "broken/1.2.840.10008.1.2.dcm": ("opens", (256, 256)),
    "broken/2026-05-26-oob-monochrome-65535.dcm": ("error", napari_dcm.DicomSizeError, "too large"),
    "broken/966.dcm": ("blank", (2128, 2000)),
    "broken/CR-MONO1-10-chest": ("opens", (440, 440)),
    "broken/ExplVR_BigEndNoMeta.dcm": ("error", napari_dcm.DicomReadError, "no pixel data"),
    "broken/GH1376.dcm": ("error", napari_dcm.DicomReadError, "truncated"),
    "broken/GH626.dcm": ("error", napari_dcm.DicomReadError, "no pixel data"),
    "broken/JPEG2000-embedded-sequence-delimiter.dcm": ("blank", (1024, 256)),
    "broken/JPEGLossless_1s_1f_i_16_16_bad.dcm": ("opens", (512, 512)),
    "broken/MR_truncated.dcm": ("error", napari_dcm.DicomReadError, "truncated"),
    "broken/MultiframeWindowing.dcm": ("error", napari_dcm.DicomReadError, "PixelRepresentation"),
    "broken/OT-PAL-8-face.dcm": ("opens", (480, 640, 3)),
    "broken/Png16RBGATest.png": ("error", napari_dcm.NotDicomError, "not a DICOM file"),
    "broken/badVR.dcm": ("error", napari_dcm.DicomReadError, "invalid IS value"),
    "broken/emri_small_jpeg_2k_lossless_too_short.dcm": ("opens", (10, 64, 64)),
    "broken/genFile.dcm": ("blank", (512, 512)),
    "broken/meta_missing_tsyntax.dcm": ("error", napari_dcm.DicomReadError, "Rows/Columns"),
    "broken/multiframe.dcm": ("blank-some", (140, 240, 240, 3)),
    "broken/no_meta.dcm": ("error", napari_dcm.NotDicomError, "not a DICOM file"),
    "broken/rtplan_truncated.dcm": ("error", napari_dcm.DicomReadError, "no pixel data"),
    "broken/zipMR.gz": ("error", napari_dcm.NotDicomError, "not a DICOM file"),
}
BROKEN = corpus_files("broken")


def test_every_broken_file_has_an_expectation(corpus):
    assert sorted(BROKEN) == sorted(BROKEN_EXPECTED)


@pytest.mark.parametrize("rel", BROKEN)
def test_broken_file_typed_error_or_blank(corpus, rel):
    """A broken file gives its documented outcome: a typed error naming it, or frames shown
    blank with exactly one warning naming it, or an image that opens; never a crash."""
    path = str(corpus / rel)
    kind, *want = BROKEN_EXPECTED[rel]
    if kind == "error":
        cls, reason = want
        with pytest.raises(cls) as info:
            napari_dcm.read(path)
        assert info.value.path == path and reason in info.value.reason, info.value
        assert rel.split("/")[-1] in str(info.value)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers = napari_dcm.read(path)
        (layer,) = layers
        data = layer.data
        assert data.shape == want[0]
        rgb = layer.kwargs["rgb"]
        n = data.shape[0] if data.ndim - int(rgb) == 3 else 1
        # first, middle and last frames only (some broken files are huge on paper)
        arr = data[sorted({0, n // 2, n - 1})].compute() if n > 1 else data.compute()[None]
        assert arr.dtype == data.dtype
    failed = [w for w in caught if issubclass(w.category, decode.DicomDecodeWarning)]
    blank = [not arr[i].any() for i in range(arr.shape[0])]
    if kind == "opens":
        assert not failed and not any(blank), (failed, blank)
    elif kind == "blank":
        assert len(failed) == 1 and all(blank), (failed, blank)
        assert path in str(failed[0].message)
    else:  # blank-some: some frames decode, the others are blank, one warning names the file
        assert len(failed) == 1 and path in str(failed[0].message)
