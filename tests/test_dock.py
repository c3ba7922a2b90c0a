"""The DICOM dock: tags, windows (presets, W/L mouse mode) and mammography layouts."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from napari_dcm._qt import dicom_dock as dd
from napari_dcm._qt.window import current_frame
from napari_dcm.dicom import tags as tagmod

# mammography hangings: tests/test_hanging.py


@pytest.mark.viewer
def test_tag_tree_equals_pydicom(make_napari_viewer, corpus, qtbot):
    path = corpus / "pixel_formats" / "MR-SIEMENS-DICOM-WithOverlays.dcm"
    viewer = make_napari_viewer(show=False)
    viewer.open(str(path), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    tree = dock.tree
    top = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    expected = [el for el in ds.file_meta] + [el for el in ds]
    assert [t.text(0) for t in top] == [f"({el.tag.group:04X},{el.tag.element:04X})" for el in expected]
    assert [t.text(1) for t in top] == [str(el.VR) for el in expected]
    for t, el in zip(top, expected):
        if el.VR == "SQ":
            assert t.text(3) == f"<sequence of {len(el.value)} item(s)>"
        elif el.VR in ("OB", "OW", "UN", "OF", "OD", "OL", "OV"):
            assert t.text(3) == f"<{len(el.value)} bytes>"
        else:
            full = tagmod._text(el.value)
            assert t.text(3) == (full if len(full) <= 120 else f"{full[:120]}… ({len(full)} chars)")
        if el.tag.is_private and not el.tag.is_private_creator:
            creator = ds[(el.tag.group << 16) | (el.tag.element >> 8)].value
            assert t.text(2).startswith(f"[{creator}]")
    # a sequence expands on demand
    seq = next(t for t, el in zip(top, expected) if el.VR == "SQ" and len(el.value))
    assert seq.childCount() == 0
    seq.setExpanded(True)
    assert seq.childCount() > 0
    seq.child(0).setExpanded(True)
    assert seq.child(0).childCount() > 0
    # filter on keyword, tag or value; a click copies the value
    dock.filter.setText("PatientName")
    shown = [t for t in top if not t.isHidden()]
    assert [t.text(2) for t in shown] == ["PatientName"]
    dock.tags_tab._copy(shown[0])
    from qtpy.QtWidgets import QApplication

    assert QApplication.clipboard().text() == str(ds.PatientName)
    dock.filter.setText("0008,0060")
    assert [t.text(2) for t in top if not t.isHidden()] == ["Modality"]


@pytest.mark.viewer
def test_tags_follow_slice_and_enhanced_frame(make_napari_viewer, sample_study, corpus):
    viewer = make_napari_viewer(show=False)
    (layer,) = viewer.open(str(sample_study), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    viewer.dims.set_current_step(0, 7)
    path = layer.metadata["frame_paths"][7]
    assert dock._shown == (path, 0)
    inst = pydicom.dcmread(path, stop_before_pixels=True).InstanceNumber
    items = {
        dock.tree.topLevelItem(i).text(2): dock.tree.topLevelItem(i).text(3)
        for i in range(dock.tree.topLevelItemCount())
    }
    assert items["InstanceNumber"] == str(inst)
    viewer.layers.clear()
    (mf,) = viewer.open(str(corpus / "multiframe" / "6_1.dcm"), plugin="napari-dcm")
    viewer.layers.selection.active = mf
    viewer.dims.set_current_step(0, 3)
    stored = mf.metadata["display_to_stored"][3]
    assert dock._shown[1] == stored
    top = [dock.tree.topLevelItem(i) for i in range(dock.tree.topLevelItemCount())]
    pf = next(t for t in top if t.text(2) == "PerFrameFunctionalGroupsSequence")
    assert pf.text(3) == "<sequence of 1 item(s)>"


def test_tags_read_no_pixel_data(big_multiframe, bytes_read):
    ds = tagmod.read_header(str(big_multiframe))
    rows = tagmod.dataset_rows(ds)
    assert rows and 0 < sum(bytes_read) < 1_000_000 < big_multiframe.stat().st_size


@pytest.mark.viewer
def test_presets_set_expected_limits(make_napari_viewer, sample_study, corpus):
    viewer = make_napari_viewer(show=False)
    (layer,) = viewer.open(str(sample_study), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    labels = [p[0] for p in dock._presets]
    assert labels[:2] == ["Header 1: 40/80 BRAIN", "Header 2: 400/2000 BONE"]
    assert {
        "Default",
        "Full dynamic",
        "Brain",
        "Subdural",
        "Stroke",
        "Lung",
        "Mediastinum",
        "Abdomen",
        "Liver",
        "Bone",
        "Angio",
    } <= set(labels)
    assert dock.choose_preset("Header 2: 400/2000 BONE") == pytest.approx((400 - 0.5 - 999.5, 400 - 0.5 + 999.5))
    assert tuple(layer.contrast_limits) == pytest.approx((-600.0, 1399.0))
    assert dock.choose_preset("Lung") == pytest.approx((-600 - 0.5 - 749.5, -600 - 0.5 + 749.5))
    frame = np.asarray(layer.data[current_frame(viewer, layer)])
    assert dock.choose_preset("Full dynamic") == pytest.approx((frame.min(), frame.max()))
    assert dock.choose_preset("Default") == pytest.approx((0.0, 79.0))
    for name, c, w in [("Brain", 40, 80), ("Angio", 300, 600)]:
        lo, hi = dock.choose_preset(name)
        assert (lo + hi) / 2 == pytest.approx(c - 0.5) and hi - lo == pytest.approx(w - 1)
    # numeric entry (LINEAR_EXACT: c -/+ w/2)
    dock.center.setValue(100)
    dock.width.setValue(50)
    dock._apply_numbers()
    assert tuple(layer.contrast_limits) == pytest.approx((75.0, 125.0))


@pytest.mark.viewer
def test_voi_functions_honoured(make_napari_viewer, tmp_path):
    from synth import write_plain_image

    p = write_plain_image(tmp_path / "s.dcm")
    ds = pydicom.dcmread(p)
    ds.WindowCenter, ds.WindowWidth = [100, 50], [40, 20]
    ds.VOILUTFunction = "SIGMOID"
    ds.save_as(p)
    viewer = make_napari_viewer(show=False)
    (layer,) = viewer.open(str(p), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    lo, hi = dock.choose_preset(0)
    assert (lo, hi) == pytest.approx((100 - 80, 100 + 80)) and layer.colormap.name == "sigmoid"
    ds.VOILUTFunction = "LINEAR_EXACT"
    ds.save_as(p)
    viewer.layers.clear()
    viewer.open(str(p), plugin="napari-dcm")
    assert tuple(viewer.layers[0].contrast_limits) == pytest.approx((80.0, 120.0))


@pytest.mark.viewer
def test_window_level_mouse_drag(make_napari_viewer, sample_study, qtbot):
    from vispy.app.canvas import MouseEvent

    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(sample_study), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    dock.wl_button.setChecked(True)
    assert dock.wl.active and viewer.text_overlay.visible
    lo0, hi0 = layer.contrast_limits
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    p0 = (200.0, 200.0)
    canvas.events.mouse_press(pos=p0, modifiers=(), button=1)
    for k in range(1, 6):
        p = (200.0 + 20 * k, 200.0 + 10 * k)  # right (wider) and down (lower center)
        canvas.events.mouse_move(
            pos=p, modifiers=(), button=1, press_event=MouseEvent(pos=p0, type="mouse_press", button=1)
        )
        qtbot.wait(5)
    canvas.events.mouse_release(pos=p, modifiers=(), button=1)
    lo1, hi1 = layer.contrast_limits
    assert hi1 - lo1 > hi0 - lo0 and (lo1 + hi1) / 2 < (lo0 + hi0) / 2
    assert viewer.text_overlay.text.startswith("WC ") and " / WW " in viewer.text_overlay.text
    dock.wl_button.setChecked(False)
    assert not viewer.text_overlay.visible
