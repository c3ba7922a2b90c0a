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


BROKEN = corpus_files("broken")


@pytest.mark.parametrize("rel", BROKEN)
def test_broken_file_typed_error_or_blank(corpus, rel):
    """A broken file gives a typed error (naming it) or blank frames, never a crash."""
    path = str(corpus / rel)
    decode.reset()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            layers = napari_dcm.read(path)
            for data, _, _ in layers:
                # touch first, middle and last frames only (some broken files are huge on paper)
                n = data.shape[0] if data.ndim > 2 else 1
                idx = (
                    sorted({0, n // 2, n - 1}) if data.ndim > 2 and not layers[0][1]["rgb"] or data.ndim == 4 else None
                )
                arr = data[idx].compute() if idx is not None else data.compute()
                assert arr.dtype == data.dtype
    except napari_dcm.DicomReadError as exc:
        assert exc.path == path and exc.reason
        assert rel.split("/")[-1] in str(exc)
        return
    # opened: any frame that failed must have been reported once, naming the file
    failed = [w for w in caught if issubclass(w.category, decode.DicomDecodeWarning)]
    assert len(failed) <= 1
    for w in failed:
        assert path in str(w.message)
