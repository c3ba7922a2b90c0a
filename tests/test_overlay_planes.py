"""60xx overlay planes: parsed from images and presentation states, compared bit for bit
with pydicom, drawn lazily as labels layers that follow their image (and G)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import pack_bits
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import napari_dcm
from napari_dcm.dicom import overlay_planes as op
from napari_dcm.dicom.report import ReadReport


def planes_by_group(layers):
    return {t.metadata["napari_dcm_overlay"]["group"]: t for t in layers if t.layer_type == "labels"}


@pytest.fixture(autouse=True)
def _fresh_planes():
    op.reset()
    yield


def place_ref(bits, origin, shape):
    """The test's own placement of an overlay bitmap on an image grid (origin 1-based)."""
    out = np.zeros(shape, np.uint8)
    r0, c0 = origin[0] - 1, origin[1] - 1
    for r in range(bits.shape[0]):
        for c in range(bits.shape[1]):
            y, x = r0 + r, c0 + c
            if 0 <= y < shape[0] and 0 <= x < shape[1]:
                out[y, x] = bits[r, c]
    return out


def test_pr_overlay_six_planes_bit_for_bit(corpus):
    image = pydicom.dcmread(corpus / "presentation_state" / "overlay.dcm")
    pr = pydicom.dcmread(corpus / "presentation_state" / "prOverlay.dcm")
    report = ReadReport()
    layers = napari_dcm.read(
        [corpus / "presentation_state" / "overlay.dcm", corpus / "presentation_state" / "prOverlay.dcm"], report=report
    )
    img = layers[0]
    planes = planes_by_group(layers)
    assert sorted(planes) == [0x6000, 0x6002, 0x6004, 0x6006, 0x6008, 0x600A]  # "you should see 6 lines"
    for g, t in planes.items():
        assert t.name.startswith(f"{img.name} · overlay {g:04X}")
        assert t.metadata["napari_dcm_overlay_of"] == img.name
        assert tuple(t.kwargs["scale"]) == tuple(img.kwargs["scale"]) and t.data.shape == img.data.shape
    # Overlay Data in the image and in the presentation state: pydicom's overlay_array, bit for bit
    for g in (0x6004, 0x6006):
        assert np.array_equal(np.asarray(planes[g].data), image.overlay_array(g))
    for g in (0x6008, 0x600A):
        assert np.array_equal(np.asarray(planes[g].data), pr.overlay_array(g))
    # embedded in bits 15 and 14 of the pixel data (pydicom's overlay_array does not read those):
    # the bits of pydicom's raw Pixel Data, while the pixel values stay masked to Bits Stored
    raw = np.frombuffer(image.PixelData, "<u2").reshape(512, 512)
    assert np.array_equal(np.asarray(planes[0x6000].data), (raw >> 15) & 1)
    assert np.array_equal(np.asarray(planes[0x6002].data), (raw >> 14) & 1)
    assert np.asarray(planes[0x6000].data).sum() == 532 and np.asarray(planes[0x6002].data).sum() == 537
    assert np.array_equal(np.asarray(img.data), image.pixel_array)
    assert report.problems == []


def test_out_of_bounds_overlay_cut_to_the_image(corpus):
    path = corpus / "mammography" / "OutOfBoundsOverlay.dcm"
    ds = pydicom.dcmread(path)
    layers = napari_dcm.read(path)
    planes = planes_by_group(layers)
    assert sorted(planes) == [0x6000, 0x6002]
    for g in (0x6000, 0x6002):
        origin = [int(x) for x in ds[g, 0x0050].value]  # (704, 409) and (-25, -25): both cross an edge
        want = place_ref(ds.overlay_array(g), origin, (788, 1318))
        got = np.asarray(planes[g].data)
        assert np.array_equal(got, want)
        assert 0 < got.sum() < ds.overlay_array(g).sum()


def write_image(path, frames=1, rows=40, cols=48, overlays=(), bits_stored=12, pixel_fn=None):
    """A MONOCHROME2 16-bit image (optionally multi-frame) with overlay planes
    [(group, kwargs)] written by pydicom (Overlay Data packed with pydicom.pixels.pack_bits)."""
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.StudyDate = "OT", "OVL", "20240101"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.WindowCenter, ds.WindowWidth = 2**bits_stored // 2, 2**bits_stored  # no frame read for contrast limits
    if frames > 1:
        ds.NumberOfFrames = frames
    rng = np.random.default_rng(7)
    arr = rng.integers(0, 2**bits_stored, size=(frames, rows, cols), dtype=np.uint16)
    if pixel_fn is not None:
        arr = pixel_fn(arr)
    for g, kw in overlays:
        for k, v in kw.items():
            vr, value = v
            ds.add_new((g << 16) | k, vr, value)
    ds.PixelData = (arr if frames > 1 else arr[0]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path, arr


def plane_tags(
    bits, origin=(1, 1), n_frames=None, frame_origin=None, data=True, bit_position=0, bits_alloc=1, desc="test"
):
    rows, cols = bits.shape[-2:]
    kw = {
        0x0010: ("US", rows),
        0x0011: ("US", cols),
        0x0022: ("LO", desc),
        0x0040: ("CS", "G"),
        0x0050: ("SS", list(origin)),
        0x0100: ("US", bits_alloc),
        0x0102: ("US", bit_position),
    }
    if n_frames is not None:
        kw[0x0015] = ("IS", str(n_frames))
    if frame_origin is not None:
        kw[0x0051] = ("US", frame_origin)
    if data:
        kw[0x3000] = ("OW", pack_bits(bits.reshape(-1)))
    return kw


def test_overlays_written_by_pydicom(tmp_path):
    rng = np.random.default_rng(3)
    a = (rng.random((9, 13)) > 0.5).astype(np.uint8)
    b = np.zeros((40, 48), np.uint8)
    b[5:30, 10] = b[5, 10:40] = 1
    pattern = np.zeros((40, 48), np.uint16)
    pattern[20:25, :] = 1

    def embed(arr):
        return arr | (pattern << 13)  # bit 13: above Bits Stored (12), below Bits Allocated (16)

    path, arr = write_image(
        tmp_path / "ovl.dcm",
        overlays=[
            (0x6000, plane_tags(a, origin=(3, 5))),
            (0x6002, plane_tags(b)),
            (0x6004, plane_tags(pattern, data=False, bit_position=13, bits_alloc=16)),
        ],
        pixel_fn=embed,
    )
    ds = pydicom.dcmread(path)
    layers = napari_dcm.read(path)
    planes = planes_by_group(layers)
    assert np.array_equal(ds.overlay_array(0x6000), a) and np.array_equal(ds.overlay_array(0x6002), b)
    assert np.array_equal(np.asarray(planes[0x6000].data), place_ref(ds.overlay_array(0x6000), (3, 5), (40, 48)))
    assert np.array_equal(np.asarray(planes[0x6002].data), ds.overlay_array(0x6002))
    assert np.array_equal(np.asarray(planes[0x6004].data), pattern)
    raw = np.frombuffer(ds.PixelData, "<u2").reshape(40, 48)
    assert np.array_equal(np.asarray(planes[0x6004].data), (raw >> 13) & 1)
    # the image's values stay what pydicom gives (the overlay bit masked off)
    assert np.array_equal(np.asarray(layers[0].data), ds.pixel_array)
    assert planes[0x6000].metadata["napari_dcm_overlay"]["description"] == "test"


def test_multi_frame_overlay_with_image_frame_origin(tmp_path):
    rng = np.random.default_rng(5)
    bits = (rng.random((2, 40, 48)) > 0.7).astype(np.uint8)
    path, _ = write_image(
        tmp_path / "mf.dcm", frames=4, overlays=[(0x6000, plane_tags(bits, n_frames=2, frame_origin=2))]
    )
    ds = pydicom.dcmread(path)
    ref = ds.overlay_array(0x6000)
    assert ref.shape == (2, 40, 48)
    (img, plane) = napari_dcm.read(path)
    got = np.asarray(plane.data)
    assert got.shape == (4, 40, 48) == img.data.shape
    d2s = img.metadata["display_to_stored"]
    for d, stored in enumerate(d2s):
        want = ref[stored - 1] if stored in (1, 2) else np.zeros((40, 48), np.uint8)
        assert np.array_equal(got[d], want), (d, stored)


def test_embedded_multi_frame_overlay_reads_only_the_frame_shown(tmp_path, monkeypatch):
    from napari_dcm.dicom.sources import file as filesrc

    def embed(arr):
        out = arr.copy()
        for f in range(arr.shape[0]):
            out[f, f * 4 : f * 4 + 3, :] |= 1 << 15
        return out

    path, arr = write_image(
        tmp_path / "emb.dcm",
        frames=6,
        overlays=[(0x6000, plane_tags(np.zeros((6, 40, 48)), n_frames=6, data=False, bit_position=15, bits_alloc=16))],
        pixel_fn=embed,
    )
    reads: list = []
    real = filesrc.pread_into
    monkeypatch.setattr(filesrc, "pread_into", lambda p, start, n: (reads.append((p, start, n)), real(p, start, n))[1])
    img, plane = napari_dcm.read(path)
    assert reads == []  # opening read no pixel data (the window comes from the header)
    d = 3
    frame = np.asarray(plane.data[d])
    stored = img.metadata["display_to_stored"][d]
    assert len(reads) == 1 and reads[0][2] == 40 * 48 * 2
    want = np.zeros((40, 48), np.uint8)
    want[stored * 4 : stored * 4 + 3, :] = 1
    assert np.array_equal(frame, want)


def test_malformed_plane_reported_by_name_image_still_shows(tmp_path):
    good = np.ones((4, 4), np.uint8)
    bad = plane_tags(np.ones((40, 48), np.uint8))
    bad[0x3000] = ("OW", b"\x00" * 10)  # far too short for 40 x 48
    path, arr = write_image(tmp_path / "bad.dcm", overlays=[(0x6000, plane_tags(good)), (0x6002, bad)])
    report = ReadReport()
    layers = napari_dcm.read(path, report=report)
    assert [t.layer_type for t in layers] == ["image", "labels"]
    assert np.array_equal(np.asarray(layers[0].data), arr[0])
    assert report.problems == [(str(path), "overlay 6002: Overlay Data holds 80 bits, 40 x 48 x 1 need 1920")]
    assert "not shown: bad.dcm: overlay 6002: Overlay Data holds 80 bits" in report.summary()
    # no origin at all
    del_origin = plane_tags(good)
    del del_origin[0x0050]
    path2, _ = write_image(tmp_path / "bad2.dcm", overlays=[(0x6000, del_origin)])
    report = ReadReport()
    layers = napari_dcm.read(path2, report=report)
    assert [t.layer_type for t in layers] == ["image"]
    assert report.problems == [(str(path2), "overlay 6000: Overlay Origin None is not a (row, column) pair")]


def plane_colored(rgb):
    """Pixels drawn in the overlay planes' magenta (labels are yellow, the image grey)."""
    return (rgb[..., 0] > 180) & (rgb[..., 1] < 120) & (rgb[..., 2] > 180)


@pytest.mark.viewer
def test_overlay_plane_on_screen_follows_the_hanging_and_g(make_napari_viewer, corpus, tmp_path):
    from qtpy.QtWidgets import QApplication

    from mammo_sets import Bases, four_view, write_view
    from napari_dcm._qt import hanging
    from napari_dcm._qt.sr_dock import toggle_overlays

    bases = Bases(corpus, 4)
    study = four_view(bases, tmp_path / "s", skip=("RCC",))
    mark = np.zeros((765, 598), np.uint8)
    mark[300:310, :] = 1  # a horizontal bar across the whole image
    tags = plane_tags(mark, desc="bar")
    study["RCC"] = write_view(bases, tmp_path / "rcc.dcm", "CC", "R", po=("P", "L"))
    ds = pydicom.dcmread(study["RCC"])
    for k, (vr, v) in tags.items():
        ds.add_new((0x6000 << 16) | k, vr, v)
    ds.save_as(study["RCC"])
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 960)
    napari_dcm.view(list(map(str, study.values())), viewer=viewer)
    plane = next(l for l in viewer.layers if l.name.endswith("overlay 6000"))
    lay = hanging.apply_layout(viewer)
    hang = hanging.current(viewer)
    rcc = hang.cells[0]
    assert plane in hang.groups[0]
    assert tuple(plane.scale) == tuple(rcc.scale) and tuple(plane.translate) == tuple(rcc.translate)
    viewer.canvas.background_color_override = "black"
    QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    h, w = shot.shape[:2]
    cell = shot[: h // 2, : w // 2, :3].astype(int)
    rows = np.nonzero(plane_colored(cell).sum(axis=1) > 20)[0]
    assert rows.size > 0
    # the bar sits at rows 300-309 of 765: where the image maps them on screen
    top = rcc.data_to_world((299.5, 0))[-2]
    bottom = rcc.data_to_world((309.5, 0))[-2]
    zoom, cy = viewer.scene.camera.zoom, viewer.scene.camera.center[-2]
    ch = (h - hanging.SPACING_PX) / 2
    y0, y1 = ch / 2 + (top - cy) * zoom, ch / 2 + (bottom - cy) * zoom
    assert abs(rows.min() - y0) <= 2 and abs(rows.max() - y1) <= 2
    assert lay.name == "2x2"
    # G hides every overlay, G again shows them
    assert toggle_overlays(viewer) is False and not plane.visible
    QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    cell = shot[: h // 2, : w // 2, :3].astype(int)
    assert not plane_colored(cell).any()
    assert toggle_overlays(viewer) is True and plane.visible
