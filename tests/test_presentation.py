"""VOI LUT Sequence and Presentation LUT Shape (image and presentation state), and a
presentation state's shutters, spatial transformation and displayed area: parsed,
and checked on a real viewer's screenshots."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_presentation_lut, apply_voi
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import napari_dcm
from napari_dcm.dicom import presentation as pres
from napari_dcm.dicom import voi
from napari_dcm.dicom.report import ReadReport

ROWS, COLS = 200, 300


def gamma_lut(n=4096, bits=12, gamma=3.0):
    x = np.arange(n) / (n - 1)
    return np.round(x**gamma * (2**bits - 1)).astype(np.uint16)


def write_ramp(path, *, photometric="MONOCHROME2", window=False, lut=None, plut_shape=None, marker=True):
    """A 12-bit horizontal ramp (0 at the left, 4095 at the right) with a bright square
    marker at rows/columns 10-29, written by pydicom."""
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX for presentation
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[str(path), "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path), "series"])
    ds.Modality, ds.PatientID, ds.PatientName, ds.StudyDate = "DX", "RAMP", "Ramp^Test", "20240101"
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "1", ""
    ds.PatientBirthDate, ds.PatientSex, ds.StudyTime = "", "O", "120000"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLS, 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.2, 0.2]
    arr = np.tile(np.round(np.linspace(0, 4095, COLS)).astype(np.uint16), (ROWS, 1))
    if marker:
        arr[10:30, 10:30] = 4095
    if window:
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
    if lut is not None:
        item = pydicom.Dataset()
        item.LUTDescriptor = [len(lut), 0, 12]
        item.LUTExplanation = "GAMMA 3"
        item.add_new(0x00283006, "US", [int(v) for v in lut])  # LUT Data (US: pydicom would pick OW)
        ds.VOILUTSequence = [item]
    if plut_shape:
        ds.PresentationLUTShape = plut_shape
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path, arr


# ---------------------------------------------------------------- VOI LUT, Presentation LUT Shape


def test_voi_lut_presets_and_default(tmp_path, corpus):
    lut = gamma_lut()
    path, arr = write_ramp(tmp_path / "lut.dcm", lut=lut)
    (t,) = napari_dcm.read(path)
    luts = t.metadata["voi_luts"]
    assert [(x["label"], x["lo"], x["hi"]) for x in luts] == [("VOI LUT 1: GAMMA 3", 0.0, 4095.0)]
    # no window in the header: the LUT is the default, through a colormap; the data stay raw
    assert t.kwargs["contrast_limits"] == (0.0, 4095.0)
    cm = t.kwargs["colormap"]
    assert cm["name"].startswith("voi-lut-")
    ds = pydicom.dcmread(path)
    sample = np.array(luts[0]["x"], dtype=np.int64)
    assert np.allclose(luts[0]["values"], apply_voi(sample, ds, 0) / 4095.0)
    grey = np.interp(np.linspace(0, 1, 11), cm["controls"], [c[0] for c in cm["colors"]])
    assert np.allclose(grey, np.linspace(0, 1, 11) ** 3, atol=2e-3)
    assert np.array_equal(np.asarray(t.data), arr)
    # with a window as well: the window is the default, the LUT a preset
    path2, _ = write_ramp(tmp_path / "both.dcm", lut=lut, window=True)
    (t2,) = napari_dcm.read(path2)
    assert t2.kwargs["colormap"] == "gray" and len(t2.metadata["voi_luts"]) == 1
    # the real mammogram's three LUTs (NORMAL, HARDER, SOFTER)
    (gh,) = napari_dcm.read(corpus / "mammography" / "GH133.dcm")
    assert [x["label"] for x in gh.metadata["voi_luts"]] == [
        "VOI LUT 1: NORMAL",
        "VOI LUT 2: HARDER",
        "VOI LUT 3: SOFTER",
    ]
    gds = pydicom.dcmread(corpus / "mammography" / "GH133.dcm", stop_before_pixels=True)
    for i, x in enumerate(gh.metadata["voi_luts"]):
        assert np.allclose(x["values"], apply_voi(np.array(x["x"], dtype=np.int64), gds, i) / 4095.0)


def test_presentation_lut_shape_and_monochrome1(tmp_path):
    lut = gamma_lut()
    cases = {
        ("MONOCHROME2", None): False,
        ("MONOCHROME2", "INVERSE"): True,
        ("MONOCHROME1", None): True,
        ("MONOCHROME1", "INVERSE"): True,  # the INVERSE the standard pairs with MONOCHROME1: one inversion
        ("MONOCHROME2", "IDENTITY"): False,
    }
    for (photometric, shape), inverted in cases.items():
        assert voi.display_inverted(photometric, shape) is inverted
        path, _ = write_ramp(
            tmp_path / f"{photometric}{shape}.dcm", photometric=photometric, plut_shape=shape, window=True
        )
        (t,) = napari_dcm.read(path)
        assert t.kwargs["colormap"] == ("gray_r" if inverted else "gray"), (photometric, shape)
        path, _ = write_ramp(
            tmp_path / f"lut{photometric}{shape}.dcm", photometric=photometric, plut_shape=shape, lut=lut
        )
        (t,) = napari_dcm.read(path)
        first = t.kwargs["colormap"]["colors"][0][0]
        assert first == (1.0 if inverted else 0.0), (photometric, shape)


def test_pr_luts_pipeline_equals_pydicom(corpus):
    d = corpus / "presentation_state"
    (t,) = napari_dcm.read([d / "imageForPrLUTs.dcm", d / "prLUTs.dcm"])
    (lut,) = t.metadata["voi_luts"]
    assert lut["label"] == "GSPS XLUT_P03" and lut["presentation"]
    pr = pydicom.dcmread(d / "prLUTs.dcm")
    x = np.arange(256)
    ref = apply_presentation_lut(apply_voi(apply_modality_lut(x, pr), pr.SoftcopyVOILUTSequence[0]), pr) / 255.0
    assert lut["x"] == list(map(float, x)) and np.array_equal(np.array(lut["values"]), ref)


# ---------------------------------------------------------------- presentation states built with highdicom


def build_gsps(image_path, dst, *, shape="IDENTITY", window=None, voi_lut=None, point=None, **attrs):
    import highdicom as hd
    from highdicom.pr import (
        GraphicAnnotation,
        GraphicLayer,
        GraphicObject,
        GrayscaleSoftcopyPresentationState,
        SoftcopyVOILUTTransformation,
    )

    img = pydicom.dcmread(image_path)
    layer = GraphicLayer(layer_name="MARKS", order=1)
    annotations = []
    if point is not None:
        annotations.append(
            GraphicAnnotation(
                referenced_images=[img],
                graphic_layer=layer,
                graphic_objects=[GraphicObject("POINT", np.array([point], dtype=float), "PIXEL")],
            )
        )
    vois = None
    if window is not None or voi_lut is not None:
        vois = [
            SoftcopyVOILUTTransformation(
                window_center=window[0] if window else None,
                window_width=window[1] if window else None,
                voi_luts=[hd.VOILUT(0, voi_lut, "GSPS GAMMA")] if voi_lut is not None else None,
            )
        ]
    gsps = GrayscaleSoftcopyPresentationState(
        referenced_images=[img],
        series_instance_uid=hd.UID(),
        series_number=99,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="napari-dcm tests",
        manufacturer_model_name="tests",
        software_versions="1",
        device_serial_number="1",
        content_label="DISPLAYTEST",
        graphic_layers=[layer] if annotations else None,
        graphic_annotations=annotations or None,
        voi_lut_transformations=vois,
        presentation_lut_transformation=hd.PresentationLUTTransformation(presentation_lut_shape=shape),
    )
    for k, v in attrs.items():
        setattr(gsps, k, v)
    gsps.save_as(dst)
    return dst


def test_gsps_inverse_decides_over_monochrome1(tmp_path):
    img, arr = write_ramp(tmp_path / "m1.dcm", photometric="MONOCHROME1", window=True)
    build_gsps(img, tmp_path / "pr.dcm", shape="IDENTITY", voi_lut=gamma_lut(bits=16))  # highdicom: 16-bit output
    (t,) = napari_dcm.read(tmp_path)
    assert t.kwargs["colormap"] == "gray_r"  # the image alone: MONOCHROME1 shows inverted
    (lut,) = t.metadata["voi_luts"]
    # the state's IDENTITY Presentation LUT decides: not inverted, the state's VOI LUT applied
    assert np.allclose(lut["values"], (np.array(lut["x"]) / 4095.0) ** 3, atol=1e-4)
    (tmp_path / "pr.dcm").unlink()
    build_gsps(img, tmp_path / "pr2.dcm", shape="INVERSE", window=(2048, 4096))
    (t,) = napari_dcm.read(tmp_path)
    (lut,) = t.metadata["voi_luts"]
    x = np.array(lut["x"])
    lo, hi = voi.Window(2048, 4096).limits()
    assert np.allclose(lut["values"], 1 - np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-9)


def test_shutter_masks():
    sh = pres.Shutter(shapes=["RECTANGULAR", "CIRCULAR"], rect=(11, 200, 21, 150), circle=(80.0, 100.0, 60.0))
    m = pres.shutter_mask(sh, (ROWS, COLS))
    rr, cc = np.mgrid[1 : ROWS + 1, 1 : COLS + 1]
    visible = (cc >= 11) & (cc <= 200) & (rr >= 21) & (rr <= 150) & ((rr - 80) ** 2 + (cc - 100) ** 2 <= 3600)
    assert np.array_equal(m, (~visible).astype(np.uint8))
    tri = pres.Shutter(shapes=["POLYGONAL"], polygon=[(10.0, 10.0), (10.0, 110.0), (110.0, 10.0)])
    m = pres.shutter_mask(tri, (ROWS, COLS))
    inside = (rr >= 10) & (cc >= 10) & (rr + cc <= 120)
    clear = (rr != 10) & (cc != 10) & (np.abs(rr + cc - 120) > 1)  # pixels on an edge may go either way
    assert np.array_equal((m == 0)[clear], inside[clear]) and m[~inside & clear].all()
    bitmap = np.zeros((ROWS, COLS), np.uint8)
    bitmap[:, :50] = 1
    m = pres.shutter_mask(pres.Shutter(shapes=["BITMAP"], bitmap_group=0x6000), (ROWS, COLS), bitmap)
    assert np.array_equal(m, bitmap)


def test_malformed_shutter_reported_image_still_shows(tmp_path):
    img, _ = write_ramp(tmp_path / "img.dcm", window=True)
    build_gsps(img, tmp_path / "pr.dcm", ShutterShape="RECTANGULAR", ShutterLeftVerticalEdge=10)
    report = ReadReport()
    layers = napari_dcm.read(tmp_path, report=report)
    assert [t.layer_type for t in layers] == ["image"]
    assert report.problems == [(str(tmp_path / "pr.dcm"), "GSPS DISPLAYTEST: rectangular shutter: an edge is missing")]
    assert "not shown: pr.dcm: GSPS DISPLAYTEST: rectangular shutter" in report.summary()


def test_spatial_matrix_rotations():
    # a 2 x 3 image: pixel (0, 0) top-left goes where the rotation / flip puts it
    for rot, flip, where in [
        (0, False, (0, 0)),
        (90, False, (0, 1)),  # clockwise: top-left -> top-right of the 3 x 2 result
        (180, False, (1, 2)),
        (270, False, (2, 0)),
        (90, True, (0, 0)),  # then flipped: back to the left
        (0, True, (0, 2)),
    ]:
        m = pres.spatial_matrix(rot, flip, 2, 3)
        r, c, _ = m @ np.array([0.0, 0.0, 1.0])
        assert (round(r), round(c)) == where, (rot, flip)


# ---------------------------------------------------------------- on screen


def shown(viewer):
    from qtpy.QtWidgets import QApplication

    viewer.canvas.background_color_override = "magenta"
    QApplication.processEvents()
    return viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)


def settle(viewer):
    """Let Qt lay the window out (docks), then fit the view."""
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    viewer.reset_view()


def image_box(shot):
    """Rows/columns of grey pixels (the image; not the magenta background or coloured marks)."""
    r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
    m = (np.abs(r - g) < 20) & (np.abs(g - b) < 20)
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


@pytest.mark.viewer
def test_voi_lut_renders_through_the_lut(make_napari_viewer, tmp_path):
    from napari_dcm._qt import dicom_dock as dd

    lut = gamma_lut()
    path, arr = write_ramp(tmp_path / "lut.dcm", lut=lut, window=True)
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(path), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    labels = [p[0] for p in dock._presets]
    default = next(i for i, label in enumerate(labels) if label.startswith("Default"))
    assert "VOI LUT 1: GAMMA 3" in labels and labels.index("VOI LUT 1: GAMMA 3") < default
    settle(viewer)

    def row_grey():
        shot = shown(viewer)
        y0, y1, x0, x1 = image_box(shot)
        y = (y0 + y1) // 2 + (y1 - y0) // 4  # below the marker
        xs = np.arange(x0 + 3, x1 - 3)
        cols = (xs - x0 + 0.5) / (x1 - x0) * COLS - 0.5
        return cols, shot[y, xs, 0]

    cols, grey = row_grey()  # the header window: linear
    assert np.allclose(grey, np.clip(cols / (COLS - 1), 0, 1) * 255, atol=8)
    assert dock.choose_preset("VOI LUT 1: GAMMA 3") == (0.0, 4095.0)
    cols, grey = row_grey()
    want = 255 * (cols / (COLS - 1)) ** 3
    assert np.abs(grey - want).max() <= 8, np.abs(grey - want).max()
    # the data and the status values stay raw
    assert np.array_equal(np.asarray(layer.data), arr)
    assert layer.get_value((100, 150)) == arr[100, 150]
    # back to the window: linear again
    dock.choose_preset("Header 1: 2048/4096")
    cols, grey = row_grey()
    assert np.allclose(grey, np.clip(cols / (COLS - 1), 0, 1) * 255, atol=8)


@pytest.mark.viewer
def test_pr_luts_preset_on_screen(make_napari_viewer, corpus, tmp_path):
    import shutil

    from napari_dcm._qt import dicom_dock as dd

    d = corpus / "presentation_state"
    for name in ("imageForPrLUTs.dcm", "prLUTs.dcm"):
        shutil.copy(d / name, tmp_path / name)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(tmp_path), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    dock.choose_preset("GSPS XLUT_P03")
    settle(viewer)
    shot = shown(viewer)
    y0, y1, x0, x1 = image_box(shot)
    row = shot[y0 + (y1 - y0) // 4, x0 + 2 : x1 - 2, 0]
    # the scrambled pixels and scrambled LUTs give a smooth ramp from black to white
    assert row[0] < 15 and row[-1] > 240
    assert (np.diff(row.astype(int)) >= -3).all()


@pytest.mark.viewer
def test_gsps_shutter_rotation_and_area_on_screen(make_napari_viewer, tmp_path):
    img, arr = write_ramp(tmp_path / "img.dcm", window=True)
    build_gsps(
        img,
        tmp_path / "pr.dcm",
        point=(20.0, 20.0),
        ShutterShape="RECTANGULAR",
        ShutterLeftVerticalEdge=1,
        ShutterRightVerticalEdge=150,
        ShutterUpperHorizontalEdge=1,
        ShutterLowerHorizontalEdge=200,
        ShutterPresentationValue=32768,
        ImageRotation=90,
        ImageHorizontalFlip="N",
    )
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(tmp_path), plugin="napari-dcm")
    image = layers[0]
    shutter = next(l for l in layers if l.name.endswith("shutter"))
    point = next(l for l in layers if l.name.endswith("GSPS DISPLAYTEST"))
    settle(viewer)
    shot = shown(viewer)
    y0, y1, x0, x1 = image_box(shot)
    # rotated 90 degrees clockwise: 300 rows by 200 columns on screen
    assert (y1 - y0) / (x1 - x0) == pytest.approx(COLS / ROWS, rel=0.03)
    h, w = y1 - y0, x1 - x0
    point.visible = False  # (its circle and label sit on the marker)
    shot = shown(viewer)
    # the marker (top-left of the data) is now top-right
    # (data rows 10-29 / columns 10-29 become screen rows 10-29 / columns 170-189 of 300 x 200)
    tr = shot[y0 + int(h * 12 / 300) : y0 + int(h * 28 / 300), x0 + int(w * 172 / 200) : x0 + int(w * 188 / 200), 0]
    tl = shot[y0 + int(h * 12 / 300) : y0 + int(h * 28 / 300), x0 + int(w * 12 / 200) : x0 + int(w * 28 / 200), 0]
    assert tr.size and tr.min() > 240 and tl.max() < 60
    # the shutter keeps columns 1-150 (now rows 1-150 from the top): the rest is grey 128
    lower = shot[y0 + int(h * 0.6) : y1 - 3, x0 + 3 : x1 - 3]
    assert np.abs(lower - 128).max() <= 2
    assert shot[y0 + int(h * 0.3), x0 + w // 2, 0] != 128
    # the graphic and the shutter turn with the image
    for layer in (shutter, point):
        assert np.allclose(layer.affine.affine_matrix[-3:, -3:], image.affine.affine_matrix[-3:, -3:])
    assert np.asarray(image.data).shape == (ROWS, COLS)  # the data never turn


@pytest.mark.viewer
def test_gsps_displayed_area_fits_the_view(make_napari_viewer, tmp_path):
    img, _ = write_ramp(tmp_path / "img.dcm", window=True)
    item = pydicom.Dataset()
    item.DisplayedAreaTopLeftHandCorner = [151, 101]  # column \ row
    item.DisplayedAreaBottomRightHandCorner = [300, 200]
    item.PresentationSizeMode = "SCALE TO FIT"
    item.PresentationPixelAspectRatio = [1, 1]
    build_gsps(img, tmp_path / "pr.dcm", DisplayedAreaSelectionSequence=[item])
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1000, 800)
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    viewer.open(str(tmp_path), plugin="napari-dcm")
    QApplication.processEvents()  # napari adds the layers, then the area is fitted
    # the area (columns 151-300, rows 101-200: 30 x 20 mm) fills the canvas, centred
    h, w = viewer.canvas.size
    assert viewer.scene.camera.zoom == pytest.approx(min(h / 20.0, w / 30.0), rel=1e-6)
    # (data rows 100-199 and columns 150-299: pixel edges 99.5-199.5 and 149.5-299.5, 0.2 mm pixels)
    assert tuple(viewer.scene.camera.center[-2:]) == pytest.approx(
        ((99.5 + 199.5) / 2 * 0.2, (149.5 + 299.5) / 2 * 0.2)
    )
    shot = shown(viewer)
    mid = shot.shape[0] // 2
    if w / 30.0 <= h / 20.0:  # the width fills: the ramp runs from column 151 (grey 128) to 300 (white)
        assert abs(shot[mid, 1, 0] - 128) <= 6 and shot[mid, -2, 0] >= 248
    top = viewer.scene.camera.center[-2] - h / 2 / viewer.scene.camera.zoom
    assert top > 29.5 * 0.2  # the marker (rows 10-29) is above the view
