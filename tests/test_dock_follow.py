"""Docks that keep up (issue 10): the Window tab follows slices, drags and napari's slider; W/L
drags scaled to the value range; padding out of the windows; the Tags tab never stale and its
filter searching sequences; ROI outlines visible at every zoom; a readable SR dock."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import napari_dcm
from napari_dcm._qt import dicom_dock as dd
from napari_dcm._qt import sr_dock as srd
from napari_dcm._qt.roi_controller import SCREEN_EDGE_PX
from napari_dcm._qt.window import WindowLevelMode, current_frame, frame_windows, value_range
from napari_dcm.dicom import voi
from qtevents import mouse_drag, world_to_canvas
from synth import write_ct_series

pytestmark = pytest.mark.viewer
H = "anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n"


def boxes(dock):
    return dock.center.value(), dock.width.value()


# ---------------------------------------------------------------- the Window tab follows


def test_window_tab_follows_slices_drags_and_the_slider(make_napari_viewer, corpus, qtbot):
    viewer = make_napari_viewer(show=True)
    (layer,) = napari_dcm.view(corpus / "multiframe" / "MOVEKNEE.dcm", viewer=viewer).layers  # per-frame windows
    dock = dd.dicom_dock(viewer)
    dock.tabs.setCurrentWidget(dock.window_tab)
    qtbot.wait(50)
    d0 = current_frame(viewer, layer)
    w0 = frame_windows(layer, d0)[0]
    assert boxes(dock) == pytest.approx((w0["center"], w0["width"]))  # the header's numbers, as written
    assert dock._presets[0][0].startswith(f"Header 1: {w0['center']:g}/{w0['width']:g}")
    # another slice with another header window: presets and numbers follow
    other = next(d for d in range(layer.data.shape[0]) if frame_windows(layer, d) != frame_windows(layer, d0))
    w1 = frame_windows(layer, other)[0]
    viewer.dims.set_current_step(0, other)
    qtbot.waitUntil(
        lambda: dock._presets[0][0].startswith(f"Header 1: {w1['center']:g}/{w1['width']:g}"), timeout=20000
    )
    # napari's contrast-limits slider: the boxes show the new window, no preset matches
    layer.contrast_limits = (100.0, 900.0)
    assert boxes(dock) == pytest.approx((500.0, 800.0)) and dock.preset.currentIndex() == -1
    # a preset: its numbers as written (a LINEAR window's limits are c - 0.5 -/+ (w - 1) / 2)
    dock.choose_preset("Full dynamic")
    c, w = boxes(dock)
    assert dock.preset.currentText().startswith("Full dynamic")
    lo, hi = layer.contrast_limits
    assert (lo, hi) == pytest.approx((c - w / 2, c + w / 2))
    # a W/L drag: the boxes follow it
    dock.wl_button.setChecked(True)
    qtbot.wait(50)
    mouse_drag(viewer, (300.0, 300.0), (340.0, 300.0), qtbot=qtbot)
    assert boxes(dock)[1] == pytest.approx(w + 40 * value_range(viewer, layer) / 1024, abs=1.0)
    dock.wl_button.setChecked(False)


def test_ct_presets_fill_the_numbers_as_written(make_napari_viewer, corpus):
    viewer = make_napari_viewer(show=False)
    (layer,) = napari_dcm.view(corpus / "transfer_syntax" / "CT1_RLE", viewer=viewer).layers
    dock = dd.dicom_dock(viewer)
    labels = [p[0] for p in dock._presets]
    assert "Lung -600/1500" in labels and "Bone 480/2500" in labels
    lo, hi = dock.choose_preset("Lung")
    assert (lo, hi) == pytest.approx((-600 - 0.5 - 749.5, -600 - 0.5 + 749.5))  # LINEAR, PS3.3 C.11.2.1.2.1
    assert boxes(dock) == (-600.0, 1500.0) and dock.preset.currentText() == "Lung -600/1500"


def test_wl_drag_sensitivity_is_relative_to_the_value_range(make_napari_viewer, corpus, qtbot):
    """100 px of horizontal drag widen the window by 100/1024 of the frame's value range
    (whatever the modality); vertical drag moves the center by the same amount per pixel."""
    viewer = make_napari_viewer(show=True)
    for rel in ("transfer_syntax/CT1_RLE", "mammography/OutOfBoundsOverlay.dcm"):
        viewer.layers.clear()
        napari_dcm.view(corpus / rel, viewer=viewer)
        layer = viewer.layers[0]  # the image (its overlay planes, if any, come after it)
        viewer.layers.selection.active = layer
        dock = dd.dicom_dock(viewer)
        dock.refresh()
        qtbot.wait(50)
        frame = np.asarray(layer.data)
        pad = layer.metadata.get("padding")
        lo_v, hi_v = voi.full_dynamic(frame, padding=tuple(pad) if pad else None)
        per_px = (hi_v - lo_v) / WindowLevelMode.PIXELS_PER_RANGE
        c0, w0 = boxes(dock)
        dock.wl_button.setChecked(True)
        mouse_drag(viewer, (200.0, 200.0), (300.0, 200.0), qtbot=qtbot)
        c1, w1 = boxes(dock)
        assert w1 - w0 == pytest.approx(100 * per_px, abs=1.0), rel
        assert c1 == pytest.approx(c0, abs=1.0)
        mouse_drag(viewer, (200.0, 200.0), (200.0, 150.0), qtbot=qtbot)  # up: brighter center
        assert boxes(dock)[0] - c1 == pytest.approx(50 * per_px, abs=1.0), rel
        dock.wl_button.setChecked(False)
    # the readout sits top left, away from napari's notifications (bottom right)
    assert str(viewer.canvas.overlays["text"].position).endswith("top_left")


# ---------------------------------------------------------------- padding


def test_ct_padding_left_out_of_the_window_and_black(make_napari_viewer, corpus):
    """CT1_* have PixelPaddingValue -2000 (stored; -3024 HU) and no header window: the
    percentile window ignores the padding and the padding is below it (black)."""
    viewer = make_napari_viewer(show=False)
    for rel in ("transfer_syntax/CT1_RLE", "transfer_syntax/CT1_J2KI"):  # lossless, lossy (smeared padding)
        viewer.layers.clear()
        (layer,) = napari_dcm.view(corpus / rel, viewer=viewer).layers
        assert layer.metadata["padding"] == [-3024.0, -3024.0] and layer.metadata["value_unit"] == "HU"
        lo, hi = layer.contrast_limits
        frame = np.asarray(layer.data)
        assert (frame <= -2700).mean() > 0.15  # a fifth of the frame is padding
        assert -1100 < lo < -900 and 300 < hi < 600, (rel, lo, hi)  # air to bone, not -3024
        assert frame[frame <= -2700].max() < lo  # every padding pixel is below the window: black
        dock = dd.dicom_dock(viewer)
        dock.refresh()
        full = next(p for p in dock._presets if p[0].startswith("Full dynamic"))
        assert full[1] - full[2] / 2 > -1500, full  # min without padding (-3024), lossy ringing kept


# ---------------------------------------------------------------- the Tags tab


def test_tags_tab_never_stale_and_filter_searches_sequences(make_napari_viewer, corpus, qtbot):
    viewer = make_napari_viewer(show=False)
    (layer,) = napari_dcm.view(corpus / "ct_mr_series" / "orthanc_Knee_T1", viewer=viewer).layers
    dock = dd.dicom_dock(viewer)
    fp = layer.metadata["frame_paths"]
    assert dock._shown[0] == fp[current_frame(viewer, layer)]
    # scroll while the Window tab is shown, then come back: the tags are the current slice's
    dock.tabs.setCurrentWidget(dock.window_tab)
    viewer.dims.set_current_step(0, 3)
    dock.tabs.setCurrentWidget(dock.tags_tab)
    assert dock._shown[0] == fp[3]
    viewer.dims.set_current_step(0, 20)
    assert dock._shown[0] == fp[20]
    # the filter: words match keywords and names ("pixel spacing" -> PixelSpacing)
    dock.filter.setText("pixel spacing")
    rows = dock.tags_tab.visible_rows()
    assert any("PixelSpacing" in r for _, r in rows) and len(rows) <= 4, rows
    # ...and searches inside sequences, opening them to the match
    viewer.layers.clear()
    napari_dcm.view(corpus / "multiframe" / "MOVEKNEE.dcm", viewer=viewer)
    dock.refresh()
    dock.filter.setText("slice thickness")
    rows = dock.tags_tab.visible_rows()
    deep = [(d, r) for d, r in rows if "SliceThickness" in r]
    assert deep and all(d >= 4 for d, _ in deep), rows  # SharedFG > Item > PixelMeasures > Item > element
    assert any("SharedFunctionalGroupsSequence" in r for d, r in rows if d == 0)
    dock.filter.setText("")
    assert len(dock.tags_tab.visible_rows()) > 50


# ---------------------------------------------------------------- ROI outlines at every zoom


def test_roi_outlines_visible_on_a_whole_mammogram(make_napari_viewer, corpus, tmp_path, qtbot):
    mg = corpus / "mammography" / "GH133.dcm"  # 3062 x 2394: at fit zoom 1 screen pixel is ~5 pixels
    csv = tmp_path / "r.csv"
    csv.write_text(H + f'{mg},1,"[[1000,800,1600,1400]]",[]\n')
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(str(mg), viewer=viewer, annotations=str(csv))
    qtbot.wait(200)
    viewer.reset_view()
    qtbot.wait(200)
    (roi,) = [l for l in viewer.layers if "napari_dcm_roi" in l.metadata]
    img = viewer.layers[0]
    zoom = viewer.scene.camera.zoom
    assert zoom * img.scale[-1] < 0.5  # a data pixel is under half a screen pixel
    assert roi.edge_width[0] * zoom * img.scale[-1] == pytest.approx(SCREEN_EDGE_PX, rel=0.2)
    roi.text.visible = False
    shot = viewer.screenshot(canvas_only=True, flash=False)
    yellow = (shot[..., 0] > 150) & (shot[..., 1] > 120) & (shot[..., 2] < 90)
    x0, y0 = world_to_canvas(viewer, 999.5 * img.scale[-2], 799.5 * img.scale[-1])
    x1, y1 = world_to_canvas(viewer, 1599.5 * img.scale[-2], 1399.5 * img.scale[-1])
    side = yellow[int(y0) + 5 : int(y1) - 5, int(x0) - 3 : int(x0) + 4].any(axis=1)  # the left edge
    assert side.mean() > 0.9, side.mean()
    # zoomed in 8x: the outline stays SCREEN_EDGE_PX on screen (thinner in data pixels)
    viewer.scene.camera.zoom = zoom * 8
    assert roi.edge_width[0] * viewer.scene.camera.zoom * img.scale[-1] == pytest.approx(SCREEN_EDGE_PX, rel=0.2)


# ---------------------------------------------------------------- the SR dock


def _sr(path, image_uid, title, value):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    def code(v, s, m):
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = v, s, m
        return Sequence([c])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.dataset.FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "SR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = code("126000", "DCM", title)
    group = Dataset()
    group.RelationshipType, group.ValueType = "CONTAINS", "CONTAINER"
    group.ConceptNameCodeSequence = code("125007", "DCM", "Measurement Group")
    num = Dataset()
    num.RelationshipType, num.ValueType = "CONTAINS", "NUM"
    num.ConceptNameCodeSequence = code("410668003", "SCT", "Length")
    mv = Dataset()
    mv.NumericValue = value
    mv.MeasurementUnitsCodeSequence = code("mm", "UCUM", "millimeter")
    num.MeasuredValueSequence = Sequence([mv])
    img = Dataset()
    img.RelationshipType, img.ValueType = "CONTAINS", "IMAGE"
    img.ConceptNameCodeSequence = code("121112", "DCM", "Source of Measurement")
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = image_uid
    img.ReferencedSOPSequence = Sequence([ref])
    group.ContentSequence = Sequence([num, img])
    ds.ContentSequence = Sequence([group])
    ds.save_as(path, enforce_file_format=True)
    return path


def test_sr_dock_readable_follows_selection_and_jumps(make_napari_viewer, tmp_path, qtbot):
    a = write_ct_series(tmp_path / "a", n=5, rows=32, cols=32)
    dss = sorted((pydicom.dcmread(p) for p in a.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    _sr(a / "sr1.dcm", str(dss[3].SOPInstanceUID), "Lesion Report", 12.5)
    _sr(a / "sr2.dcm", "1.2.3.4.5.6.7.8.9", "Other Report", 7)  # refers to an image that is not loaded
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(str(a), viewer=viewer)
    assert not [l for l in viewer.layers if "napari_dcm_sr" in l.metadata]  # no empty "SR: ..." layers
    dock = srd.sr_dock(viewer)
    assert dock.choice.count() == 2 and dock.width() >= 320
    # readable: headings and "concept: value unit" lines
    dock.show_document(str(a / "sr2.dcm"))
    assert dock.text().startswith("Other Report")
    viewer.layers.selection.clear()
    viewer.layers.selection.active = viewer.layers[0]  # the image sr1 refers to: sr1 is shown
    assert dock.text().startswith("Lesion Report")
    assert "Measurement Group" in dock.text() and "Length: 12.5 mm" in dock.text()
    # a link jumps to the referenced slice
    viewer.dims.set_current_step(0, 0)
    (node,) = [n for n in dock.links if n.value_type == "IMAGE"]
    assert dock.jump(node) and viewer.dims.current_step[0] == 3
    # a reference to an image that is not open is said, not linked
    dock.show_document(str(a / "sr2.dcm"))
    assert "Source of Measurement: image not loaded" in dock.text()
    assert not [n for n in dock.links if n.value_type == "IMAGE"]


def test_unrelated_standalone_objects_are_not_piled_silently(make_napari_viewer, corpus):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer(show=False)
    n0 = len(notification_manager.records)
    napari_dcm.view(
        [str(corpus / "seg_pm" / "liver.dcm"), str(corpus / "seg_pm" / "parametric_map_float.dcm")], viewer=viewer
    )
    alone = [l for l in viewer.layers if l.metadata.get("napari_dcm_overlay", {}).get("standalone")]
    assert len(alone) == 2
    assert sum(l.visible for l in alone) == 1
    msgs = [str(n.message) for n in notification_manager.records[n0:]]
    assert any("opened on their own" in m and "hidden" in m for m in msgs), msgs


def test_presentation_state_opened_after_its_image(make_napari_viewer, corpus, tmp_path):
    """Two files dropped together are read one by one by napari: the presentation state read
    second is placed on the image already open (not refused as 'images not loaded')."""
    import numpy as np
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(corpus / "presentation_state" / "CR000000.dcm")
    ds.PixelData = (np.arange(ds.Rows * ds.Columns, dtype=np.uint32) % 4096).astype(np.uint16).tobytes()
    ds["PixelData"].VR = "OW"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 12, 11, 0, 1
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(tmp_path / "cr.dcm", enforce_file_format=True)
    (tmp_path / "pr.dcm").write_bytes((corpus / "presentation_state" / "PR000000.dcm").read_bytes())
    viewer = make_napari_viewer(show=False)
    (img,) = viewer.open(str(tmp_path / "cr.dcm"), plugin="napari-dcm")
    added = viewer.open(str(tmp_path / "pr.dcm"), plugin="napari-dcm")
    kinds = {l.metadata["napari_dcm_overlay"]["kind"] for l in added}
    assert added and kinds == {"gsps"} and all(l.metadata["napari_dcm_overlay_of"] == img.name for l in added)
    assert any(len(l.data) for l in added)


def test_no_unit_warnings_mixing_images_with_and_without_spacing(make_napari_viewer, corpus):
    """Scale-only layers: a mammogram in mm beside an image without PixelSpacing makes napari
    say nothing about inconsistent units; the unit is in the metadata and the status text."""
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer(show=False)
    n0 = len(notification_manager.records)
    napari_dcm.view(
        [str(corpus / "mammography" / "OutOfBoundsOverlay.dcm"), str(corpus / "pixel_formats" / "SC_rgb.dcm")],
        viewer=viewer,
    )
    mg = next(l for l in viewer.layers if l.metadata.get("modality") == "MG")
    assert mg.metadata["world_unit"] == "mm" and all(str(u) == "pixel" for u in mg.units)
    msgs = [str(n.message) for n in notification_manager.records[n0:]]
    assert not any("units" in m.lower() for m in msgs), msgs
    assert (
        "] mm · row 10, col 20: "
        in mg.get_status((mg.translate[0] + 10 * mg.scale[0], mg.translate[1] + 20 * mg.scale[1]), world=True)[
            "coordinates"
        ]
    )


def test_hanging_fits_the_placed_images_beside_a_hidden_stack(make_napari_viewer, corpus, tmp_path, qtbot):
    """Two mammograms and a 24-slice knee series (hidden by the hanging): the grid is fitted to the
    images it shows, and napari-dcm's whole-view refits leave the hanging's own fit alone."""
    src = corpus / "mammography" / "OutOfBoundsOverlay.dcm"
    paths = []
    for lat in ("R", "L"):
        ds = pydicom.dcmread(src)
        ds.ImageLaterality, ds.ViewPosition = lat, "CC"
        ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[lat])
        ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[lat, "sop"])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "ViewCodeSequence" in ds:
            del ds.ViewCodeSequence
        ds.save_as(tmp_path / f"{lat}.dcm")
        paths.append(str(tmp_path / f"{lat}.dcm"))
    viewer = make_napari_viewer(show=True)
    napari_dcm.view([*paths, str(corpus / "ct_mr_series" / "orthanc_Knee_T1")], viewer=viewer)
    assert viewer.dims.ndim == 3
    dock = dd.dicom_dock(viewer)
    qtbot.wait(200)
    dock.hang("1x2")
    qtbot.wait(200)
    shown = [l for l in viewer.layers if l.visible and l.metadata.get("modality") == "MG"]
    assert len(shown) == 2 and viewer.canvas.grid.enabled
    # the cells are fitted to the mammograms, not to the hidden 160 mm knee series beside them:
    # the taller image fills most of its cell's height or the wider most of its width
    from napari_dcm._qt import hanging

    vh, vw = viewer.canvas.viewbox_size(viewer.layers)
    zoom = viewer.scene.camera.zoom
    fill = max(max(788 * abs(l.scale[-2]) * zoom / vh, 1318 * abs(l.scale[-1]) * zoom / vw) for l in shown)
    assert fill > 0.8, fill
    hanging.fit(viewer)  # the hanging's own fit: nothing of napari-dcm's moved the camera since
    assert viewer.scene.camera.zoom == pytest.approx(zoom)
