"""Reduced-resolution JPEG 2000: multiscale levels are OpenJPEG's reduced decodes, the
full level is pydicom's decode, and every consumer of a layer's data reads full resolution."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate

import napari_dcm
from napari_dcm.dicom import decode, openjpeg, volume
from napari_dcm.layers.images import Pyramid, full_resolution, is_multiscale


@pytest.fixture(scope="session")
def opj_decompress():
    """``opj_decompress`` (OpenJPEG's own command-line decoder, apt: libopenjp2-tools):
    the reference for reduced-resolution decodes (its ``-r`` option)."""
    from servers import require

    exe = shutil.which("opj_decompress")
    require(exe is not None, "opj_decompress (apt: libopenjp2-tools) is not installed")
    return exe


def opj_reduced(exe: str, codestream: bytes, level: int, tmp: Path) -> np.ndarray:
    """A direct OpenJPEG reduced decode: ``opj_decompress -r level`` to a PGM."""
    src, out = tmp / "f.j2k", tmp / "f.pgm"
    src.write_bytes(codestream)
    subprocess.run([exe, "-i", str(src), "-o", str(out), "-r", str(level)], check=True, capture_output=True)
    raw = out.read_bytes()
    fields, pos = [], 0
    while len(fields) < 4:  # P5, width, height, maxval (comments skipped)
        while raw[pos : pos + 1].isspace():
            pos += 1
        if raw[pos : pos + 1] == b"#":
            pos = raw.index(b"\n", pos) + 1
            continue
        end = pos
        while not raw[end : end + 1].isspace():
            end += 1
        fields.append(raw[pos:end])
        pos = end
    w, h, maxval = int(fields[1]), int(fields[2]), int(fields[3])
    data = raw[pos + 1 :]
    return np.frombuffer(data, ">u2" if maxval > 255 else "u1").reshape(h, w)


def _htj2k_file(path: Path, frames: int, rows: int, cols: int) -> tuple[Path, np.ndarray]:
    """A multi-frame HTJ2K lossless object (codestreams from OpenJPH through imagecodecs)."""
    import imagecodecs
    from pydicom.uid import HTJ2KLossless

    from synth import phantom_slice, write_multiframe

    write_multiframe(path, frames=frames, rows=rows, cols=cols, syntax="explicit")
    ds = pydicom.dcmread(path)
    stack = np.stack([phantom_slice(rows, cols, k, seed=k) for k in range(frames)])
    ds.PixelData = encapsulate([imagecodecs.htj2k_encode(f, reversible=True) for f in stack], has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = HTJ2KLossless
    ds.save_as(path, enforce_file_format=True)
    return path, stack


@pytest.fixture(scope="module")
def dbt_j2k(tmp_path_factory) -> Path:
    from synth import write_multiframe

    return write_multiframe(tmp_path_factory.mktemp("ms") / "dbt.dcm", frames=3, rows=2048, cols=1664, syntax="j2k")


def test_levels_of_a_j2k_dbt(dbt_j2k, opj_decompress, tmp_path):
    data, kw, _ = napari_dcm.read(dbt_j2k, multiscale=True)[0]
    assert kw["multiscale"] is True and isinstance(data, Pyramid)
    assert data.shapes == ((3, 2048, 1664), (3, 1024, 832), (3, 512, 416), (3, 256, 208))
    assert data.shape == (3, 2048, 1664) and data.ndim == 3 and data.dtype == np.uint16
    ref = pydicom.dcmread(dbt_j2k)
    full = ref.pixel_array
    table = volume.frame_table(data[0])
    for k in range(3):
        assert np.array_equal(np.asarray(data[0][k]), full[k])  # full level: pydicom's decode
        codestream = table.refs[k].read().data
        for lv in (1, 2, 3):
            got = np.asarray(data[lv][k])
            assert np.array_equal(got, opj_reduced(opj_decompress, codestream, lv, tmp_path)), (k, lv)
    # the default stays one array of frames (scripts index frames)
    plain = napari_dcm.read(dbt_j2k)[0]
    assert plain.kwargs["multiscale"] is False and plain.data.shape == (3, 2048, 1664)


@pytest.mark.parametrize(
    "name, levels",
    [
        ("mammography/MG1_J2KI", 4),  # 4664 x 3064, lossy
        ("pixel_formats/RG3_J2KI", 2),  # 1760 x 1760 MONOCHROME1, 10 bits, lossy
        ("transfer_syntax/JPEG2KLossless_1s_1f_u_16_16.dcm", 2),  # 1416 x 1420 DX, 16 bits
    ],
)
def test_levels_of_corpus_j2k_images(corpus, reference, opj_decompress, tmp_path, name, levels):
    path = corpus / name
    data, kw, _ = napari_dcm.read(path, multiscale=True)[0]
    assert is_multiscale(data) and len(data) == levels + 1
    rows, cols = data.shape
    for lv in range(1, levels + 1):
        assert data[lv].shape == (-(-rows // 2**lv), -(-cols // 2**lv))
    ref = reference(path)  # pydicom's pixels after the modality transform, (frames, rows, cols)
    assert np.array_equal(np.asarray(data[0]), ref.reshape(rows, cols))  # full level
    codestream = volume.frame_table(data[0]).refs[0].read().data
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    for lv in range(1, levels + 1):
        want = opj_reduced(opj_decompress, codestream, lv, tmp_path).astype(np.float64) * slope + intercept
        assert np.array_equal(np.asarray(data[lv]).astype(np.float64), want), lv


def test_levels_of_htj2k(tmp_path, opj_decompress):
    path, stack = _htj2k_file(tmp_path / "ht.dcm", frames=2, rows=1024, cols=1024)
    data = napari_dcm.read(path, multiscale=True)[0].data
    assert data.shapes == ((2, 1024, 1024), (2, 512, 512), (2, 256, 256))
    table = volume.frame_table(data[0])
    for k in range(2):
        assert np.array_equal(np.asarray(data[0][k]), pydicom.dcmread(path).pixel_array[k])
        assert np.array_equal(np.asarray(data[0][k]), stack[k])
        for lv in (1, 2):
            ref = opj_reduced(opj_decompress, table.refs[k].read().data, lv, tmp_path)
            assert np.array_equal(np.asarray(data[lv][k]), ref)


def test_frame_with_fewer_wavelet_levels_falls_back_to_subsampling(dbt_j2k, tmp_path):
    """A frame encoded with fewer decomposition levels than its neighbours still gives its
    reduced levels (full decode, subsampled), never an error or a blank."""
    import imagecodecs

    ds = pydicom.dcmread(dbt_j2k)
    full = ds.pixel_array
    frames = [
        imagecodecs.jpeg2k_encode(full[0], level=0, reversible=True, codecformat=imagecodecs.JPEG2K.CODEC.J2K),
        imagecodecs.jpeg2k_encode(
            full[1], level=0, reversible=True, resolutions=2, codecformat=imagecodecs.JPEG2K.CODEC.J2K
        ),  # one decomposition level only
    ]
    ds.NumberOfFrames = 2
    ds.PerFrameFunctionalGroupsSequence = ds.PerFrameFunctionalGroupsSequence[:2]
    ds.PixelData = encapsulate(frames, has_bot=True)
    p = tmp_path / "mixed.dcm"
    ds.save_as(p, enforce_file_format=True)
    data = napari_dcm.read(p, multiscale=True, strict=True)[0].data
    assert len(data) == 4  # from frame 0's codestream
    assert np.array_equal(np.asarray(data[3][1]), full[1][::8, ::8])
    assert np.array_equal(np.asarray(data[1][1]), openjpeg.decode(frames[1], 1))  # what it has, it gives


def test_what_stays_single_scale(tmp_path, corpus, monkeypatch):
    from synth import write_multiframe

    small = write_multiframe(tmp_path / "small.dcm", frames=2, rows=512, cols=512, syntax="j2k")
    jls = write_multiframe(tmp_path / "jls.dcm", frames=2, rows=2048, cols=1664, syntax="jpegls")
    rgb = corpus / "transfer_syntax" / "US1_J2KR"
    for p in (small, jls, rgb):
        t = napari_dcm.read(p, multiscale=True)[0]
        assert t.kwargs["multiscale"] is False and not is_multiscale(t.data), p
    monkeypatch.setenv("NAPARI_DCM_MULTISCALE", "0")
    assert napari_dcm.read(corpus / "mammography" / "MG1_J2KI", multiscale=True)[0].kwargs["multiscale"] is False


def test_reduced_levels_decode_their_own_frames_only(dbt_j2k):
    data = napari_dcm.read(dbt_j2k, multiscale=True)[0].data
    decode.STATS.reset()
    np.asarray(data[2][1])
    assert dict(decode.STATS.frames) == {(str(dbt_j2k), 1, 2): 1}
    np.asarray(data[2][1])  # cached
    assert decode.STATS.decodes == 1


# --------------------------------------------------------------------------
# in a real viewer


def test_viewer_picks_the_level_for_the_zoom(make_napari_viewer, dbt_j2k):
    from napari_dcm._qt import window
    from napari_dcm._qt.readahead import follower

    viewer = make_napari_viewer(show=True)
    napari_dcm.view(str(dbt_j2k), viewer=viewer)
    layer = viewer.layers[0]
    assert layer.multiscale and layer.data.shape == (3, 2048, 1664)
    viewer.screenshot(canvas_only=True, flash=False)
    fit_level = layer.data_level
    assert fit_level >= 1  # a 2048-row frame on a canvas a few hundred pixels high
    f = follower(viewer)
    assert f.targets and f.targets[0].table.level == fit_level
    assert f.targets[0].extra[0].level == 3  # napari's thumbnail level comes with it
    # zoomed in: napari asks for full resolution; read-ahead follows
    viewer.camera.zoom *= 16
    viewer.screenshot(canvas_only=True, flash=False)
    assert layer.data_level == 0
    assert f.targets[0].table.level == 0
    # consumers read full-resolution frames
    d = int(viewer.dims.current_step[0])
    ref = pydicom.dcmread(dbt_j2k).pixel_array
    assert np.array_equal(window.frame_array(layer, d), ref[d])
    assert full_resolution(layer.data).shape == (3, 2048, 1664)
