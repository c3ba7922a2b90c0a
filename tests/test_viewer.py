"""A real napari viewer under Xvfb: open, render, notify."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_dcm import _reader
from napari_dcm.dicom import decode

pytestmark = pytest.mark.viewer


def lit_fraction(img: np.ndarray, thresh: int = 30) -> float:
    rgb = img[..., :3].astype(int)
    return float((rgb.max(axis=-1) > thresh).mean())


@pytest.fixture
def notes():
    """Notifications dispatched during the test."""
    start = len(notification_manager.records)
    yield lambda: [str(n.message) for n in notification_manager.records[start:]]


def test_reader_declines_non_dicom(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    csv = tmp_path / "a.csv"
    csv.write_text("a,b\n1,2\n")
    assert _reader.get_reader(str(png)) is None
    assert _reader.get_reader(str(csv)) is None
    assert _reader.get_reader(str(tmp_path)) is None  # folder without DICOM
    assert _reader.get_reader([str(png), str(csv)]) is None


def test_reader_accepts_dicom_without_extension(corpus, sample_study):
    assert _reader.get_reader(str(corpus / "transfer_syntax" / "CT1_RLE")) is not None
    assert _reader.get_reader(str(sample_study)) is not None
    assert _reader.get_reader(str(corpus / "dicomdir/pydicom/dicomdirtests/DICOMDIR")) is not None


def test_open_folder_shows_image(make_napari_viewer, sample_study, notes):
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(sample_study), plugin="napari-dcm")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.data.shape == (40, 128, 128)
    assert layer.scale[0] == 3.0
    assert viewer.dims.current_step[0] == 19  # napari centres the slider
    assert layer.contrast_limits == pytest.approx([0.0, 79.0])  # header window 40/80 (LINEAR)
    img = viewer.screenshot(canvas_only=True, flash=False)
    frac = lit_fraction(img)
    assert 0.15 < frac < 0.9, frac
    assert any("1 series" in n and "40 file" in n for n in notes())


def test_volume_renders_in_3d(make_napari_viewer, sample_study):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(sample_study), plugin="napari-dcm")
    viewer.layers[0].contrast_limits = (-200, 1500)
    viewer.dims.ndisplay = 3
    viewer.scene.camera.angles = (0, 30, 60)
    img = viewer.screenshot(canvas_only=True, flash=False)
    assert lit_fraction(img) > 0.05


def test_monochrome1_inverted_by_colormap(make_napari_viewer, corpus):
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(corpus / "pixel_formats" / "dx_image.dcm"), plugin="napari-dcm")
    assert layer.colormap.name == "gray_r"
    import pydicom

    assert np.array_equal(
        np.asarray(layer.data), pydicom.dcmread(corpus / "pixel_formats" / "dx_image.dcm").pixel_array
    )


def test_broken_file_notifies_and_others_open(make_napari_viewer, corpus, tmp_path, notes):
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(corpus / "broken" / "MR_truncated.dcm", d / "MR_truncated.dcm")
    shutil.copy(corpus / "broken" / "Png16RBGATest.png", d / "x.png")
    shutil.copy(corpus / "transfer_syntax" / "CT_small.dcm", d / "ok.dcm")
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(d), plugin="napari-dcm")
    assert [l.data.shape for l in layers] == [(128, 128)]
    summary = [n for n in notes() if "skipped" in n]
    assert summary and "truncated" in summary[0] and "not DICOM" in summary[0]
    # a single unreadable file: a notification naming it, no exception, no layer
    before = len(viewer.layers)
    viewer.open(str(corpus / "broken" / "MR_truncated.dcm"), plugin="napari-dcm")
    assert len(viewer.layers) == before
    assert any("MR_truncated.dcm" in n for n in notes())


def test_frame_decode_failure_blank_and_one_notification(make_napari_viewer, corpus, notes):
    path = str(corpus / "broken" / "genFile.dcm")
    decode.reset()
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(path, plugin="napari-dcm")
    assert np.asarray(layer.data).max() == 0
    np.asarray(layer.data)  # a second access does not notify again
    msgs = [n for n in notes() if "genFile.dcm" in n and "blank" in n]
    assert len(msgs) == 1


def test_sample_data_menu(make_napari_viewer):
    viewer = make_napari_viewer(show=False)
    viewer.open_sample("napari-dcm", "sample_study")
    assert viewer.layers[0].data.shape == (40, 128, 128)


def test_dicomdir_opens_referenced_series(make_napari_viewer, corpus):
    viewer = make_napari_viewer(show=False)
    layers = viewer.open(str(corpus / "dicomdir/pydicom/dicomdirtests/DICOMDIR"), plugin="napari-dcm")
    assert len(layers) >= 2
    assert all(l.data.ndim >= 2 for l in layers)


def test_viewer_open_decodes_only_shown_frames(make_napari_viewer, big_multiframe, readahead_off):
    decode.CACHE.clear()
    decode.STATS.reset()
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(big_multiframe), plugin="napari-dcm")
    viewer.screenshot(canvas_only=True, flash=False)
    # napari slices once at step 0 while adding the first layer, then centres:
    # at most those two frames are decoded, never the volume
    assert decode.STATS.decodes <= 2, decode.STATS.decodes
    for k in range(5):
        viewer.dims.set_current_step(0, k)
    assert decode.STATS.decodes <= 2 + 5


def test_view_api_decodes_one_frame(make_napari_viewer, big_multiframe, readahead_off):
    """Through napari_dcm.view / the napari-dcm command only the shown frame is decoded."""
    import napari_dcm

    decode.CACHE.clear()
    decode.STATS.reset()
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(str(big_multiframe), viewer=viewer)
    img = viewer.screenshot(canvas_only=True, flash=False)
    assert lit_fraction(img) > 0.2
    # one decode at most (none when napari's own dask cache still holds the frame from an earlier test)
    assert decode.STATS.decodes <= 1, (decode.STATS.decodes, decode.STATS.cache_hits)
    assert viewer.dims.current_step[0] == (24 - 1) // 2 and viewer.layers[0].visible


def test_drag_and_drop_file(make_napari_viewer, corpus, qtbot):
    """A real drop event on the canvas (an extensionless DICOM: napari-dcm is the only reader)."""
    from qtevents import drop_files

    viewer = make_napari_viewer(show=True)
    drop_files(viewer, [corpus / "transfer_syntax" / "CT1_RLE"])
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=30000)
    assert viewer.layers[0].data.shape == (512, 512)
    assert viewer.layers[0].metadata["transfer_syntax"] == "1.2.840.10008.1.2.5"
