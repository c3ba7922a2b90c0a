"""EMBED ROIs in a real napari viewer: import, pixels on screen, drawing, editing, recovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image, Shapes

import napari_dcm
from napari_dcm._qt import roi_dock as roi_widget
from napari_dcm._qt import state
from napari_dcm._qt.compat import qt_main_window
from napari_dcm.layers import recovery, roi_export, rois
from qtevents import key_press, mouse_drag, world_to_canvas
from synth import write_plain_image

pytestmark = pytest.mark.viewer
H = "anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DCM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def files(tmp_path, monkeypatch):
    d = tmp_path / "study"
    a = write_plain_image(d / "a.dcm", rows=40, cols=40, patient="A")
    dbt = write_plain_image(d / "dbt.dcm", rows=32, cols=24, frames=6, reverse_positions=True, patient="C")
    monkeypatch.chdir(tmp_path)
    return a, dbt


def test_imported_box_edges_on_pixel_edges(make_napari_viewer, files, tmp_path, qtbot):
    a, _ = files
    csv = tmp_path / "r.csv"
    csv.write_text(H + 'study/a.dcm,1,"[[10,20,30,35]]",[]\n')
    viewer = make_napari_viewer(show=True)
    viewer.open(str(a), plugin="napari-dcm")
    dock = roi_widget.roi_dock(viewer)
    (layer,) = dock.import_csv(csv)
    assert layer.metadata[rois.META]["image"] == viewer.layers[0].name
    qtbot.wait(100)
    viewer.layers[0].contrast_limits = (0, 255)  # dark image: the yellow outline stands out
    layer.opacity = 1.0
    layer.text.visible = False
    viewer.reset_view()
    qtbot.wait(50)
    img = viewer.screenshot(canvas_only=True, flash=False)
    yellow = (img[..., 0] > 150) & (img[..., 1] > 100) & (img[..., 2] < 80)
    top_left = world_to_canvas(viewer, 9.5, 19.5)  # EMBED edges (10, 20) -> napari (9.5, 19.5)
    bottom_right = world_to_canvas(viewer, 29.5, 34.5)
    zoom = viewer.scene.camera.zoom
    assert zoom > 5  # one data pixel spans many screen pixels: half a pixel off would fail

    def line_centres(mask_1d):
        idx = np.nonzero(mask_1d)[0]
        runs = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
        return [float(r.mean()) for r in runs if len(r)]

    mid_row = int((top_left[1] + bottom_right[1]) / 2)
    mid_col = int((top_left[0] + bottom_right[0]) / 2)
    xs = line_centres(yellow[mid_row])  # the two vertical sides
    ys = line_centres(yellow[:, mid_col])  # the two horizontal sides
    assert len(xs) == 2 and len(ys) == 2, (xs, ys)
    tol = 0.2 * zoom  # well under the 0.5 * zoom of a half-pixel error
    assert abs(xs[0] - top_left[0]) <= tol and abs(xs[1] - bottom_right[0]) <= tol, (xs, top_left, bottom_right, zoom)
    assert abs(ys[0] - top_left[1]) <= tol and abs(ys[1] - bottom_right[1]) <= tol, (ys, top_left, bottom_right, zoom)


def drag(viewer, start_yx, end_yx, qtbot):
    mouse_drag(viewer, world_to_canvas(viewer, *start_yx), world_to_canvas(viewer, *end_yx), qtbot=qtbot)


def test_mouse_drag_on_frame_k_exports_k(make_napari_viewer, files, tmp_path, qtbot):
    _, dbt = files
    viewer = make_napari_viewer(show=True)
    (img,) = viewer.open(str(dbt), plugin="napari-dcm")
    dock = roi_widget.roi_dock(viewer)
    viewer.dims.set_current_step(0, 1)  # display frame 1 is stored frame 4 (positions reversed)
    layer = roi_widget.draw_roi(viewer)
    qtbot.wait(100)  # let the dock's layout settle before mapping data to screen
    viewer.reset_view()
    qtbot.wait(50)
    assert layer.mode == "add_rectangle"
    drag(viewer, (5.2, 3.1), (14.7, 11.8), qtbot)
    c = roi_widget.controller(layer)
    assert len(c.rs.rois) == 1, layer.data
    roi = c.rs.rois[0]

    assert roi["frames"] == [4] and roi["path"] == str(dbt)
    assert roi["box"] == (6, 4, 15, 12)  # napari (5.2, 3.1)-(14.7, 11.8): nearest pixel edges
    out = tmp_path / "drawn.csv"
    assert dock.export_csv(out) == str(out)
    assert out.read_text() == H + f'{dbt},1,"[[6,4,15,12]]",[[4]]\n'
    assert not c.dirty


def test_edit_snap_clamp_scope_delete(make_napari_viewer, files, tmp_path):
    _, dbt = files
    csv = tmp_path / "r.csv"
    csv.write_text(H + 'study/dbt.dcm,1,"[[1,2,3,4]]",[[2]]\n')
    viewer = make_napari_viewer(show=True)
    viewer.open(str(dbt), plugin="napari-dcm")
    dock = roi_widget.roi_dock(viewer)
    (layer,) = dock.import_csv(csv)
    c = roi_widget.controller(layer)
    # move/resize the rectangle off-grid and past the image edge: snapped and clamped
    v = np.array(layer.data[0])
    v[:, 1:] = [[3.2, -4.0], [3.2, 30.0], [9.9, 30.0], [9.9, -4.0]]
    layer.data = [v]
    assert c.rs.rois[0]["box"] == (4, 0, 10, 24)
    assert c.dirty and layer.metadata[rois.META]["rows"][str(dbt)]["edited"]
    # scope: all frames -> a rectangle on each of the 6 frames
    layer.selected_data = {0}
    c.set_scope("all")
    assert len(layer.data) == 6 and set(layer.features["frames"]) == {"all"}
    # typed frame list via the dock
    layer.selected_data = {0}
    viewer.layers.selection.active = layer
    dock.scope.setCurrentText("frames:")
    dock.frames_edit.setText("0, 2-3")
    dock._apply_scope()
    assert c.rs.rois[0]["frames"] == [0, 2, 3] and len(layer.data) == 3
    out = tmp_path / "o.csv"
    dock.export_csv(out)
    assert out.read_text() == H + 'study/dbt.dcm,1,"[[4,0,10,24]]","[[0,2,3]]"\n'
    # an empty box is refused
    layer.add_rectangles([np.array([[1, 5, 5], [1, 5, 5.2], [1, 5.3, 5.2], [1, 5.3, 5]])])
    assert len(c.rs.rois) == 1
    # deleting one copy deletes the ROI
    layer.selected_data = {0}
    layer.remove_selected()
    assert c.rs.rois == [] and len(layer.data) == 0


def test_autosave_restore_after_close_without_export(make_napari_viewer, files, tmp_path, monkeypatch):
    a, _ = files
    asked = []
    monkeypatch.setattr(roi_widget, "confirm", lambda parent, title, text: asked.append(title) or True)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(a), plugin="napari-dcm")
    dock = roi_widget.roi_dock(viewer)
    layer = roi_widget.draw_roi(viewer)
    layer.add_rectangles([np.array([[2.5, 3.5], [2.5, 9.5], [7.5, 9.5], [7.5, 3.5]])])
    rec = recovery.recovery_path([str(a)])
    assert os.path.exists(rec)
    assert json.loads(Path(rec).read_text())["rois"][0]["box"] == [3, 4, 8, 10]
    # closing the window asks first (the guard sees the close event; the fixture closes for real)
    from qtpy.QtGui import QCloseEvent

    ev = QCloseEvent()
    assert state.of(viewer).close_guard.eventFilter(qt_main_window(viewer), ev) is False
    assert asked == ["Unexported ROI edits"]
    # a new session opens the same file: the dock offers the autosaved ROIs
    viewer2 = make_napari_viewer(show=True)
    viewer2.open(str(a), plugin="napari-dcm")
    dock2 = roi_widget.roi_dock(viewer2)
    assert dock2.restore_btn.isVisibleTo(dock2)
    dock2.restore_pending()
    (layer2,) = [l for l in viewer2.layers if rois.META in l.metadata]
    assert roi_widget.controller(layer2).rs.rois[0]["box"] == (3, 4, 8, 10)
    out = tmp_path / "restored.csv"
    dock2.export_csv(out)
    # a single-frame image: an ROI drawn on it covers "every frame", written [] as EMBED does
    assert out.read_text() == H + f'{a},1,"[[3,4,8,10]]",[]\n'
    assert not os.path.exists(rec)  # exported: nothing left to recover
    del dock, dock2


def test_close_guard_can_cancel(make_napari_viewer, files, monkeypatch):
    a, _ = files
    monkeypatch.setattr(roi_widget, "confirm", lambda *a: False)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(a), plugin="napari-dcm")
    layer = roi_widget.draw_roi(viewer)
    layer.add_rectangles([np.array([[2.5, 3.5], [2.5, 9.5], [7.5, 9.5], [7.5, 3.5]])])
    from qtpy.QtGui import QCloseEvent

    ev = QCloseEvent()
    assert state.of(viewer).close_guard.eventFilter(qt_main_window(viewer), ev) is True
    assert not ev.isAccepted()  # edits not exported: closing is cancelled
    roi_widget.controller(layer).dirty = False


def test_invalid_csv_in_dock_notifies(make_napari_viewer, files, tmp_path):
    from napari.utils.notifications import notification_manager

    a, _ = files
    csv = tmp_path / "bad.csv"
    csv.write_text(H + 'study/a.dcm,2,"[[1,2,3,4]]",[]\n')
    viewer = make_napari_viewer(show=False)
    viewer.open(str(a), plugin="napari-dcm")
    dock = roi_widget.roi_dock(viewer)
    n0 = len(notification_manager.records)
    assert dock.import_csv(csv) == []
    msgs = [str(n.message) for n in notification_manager.records[n0:]]
    assert any("line 2" in m and "num_ROI is 2" in m for m in msgs)
    assert not [l for l in viewer.layers if rois.META in l.metadata]


def test_r_key_starts_roi_tool(make_napari_viewer, files):
    a, _ = files
    viewer = make_napari_viewer(show=True)
    viewer.open(str(a), plugin="napari-dcm")
    roi_widget.roi_dock(viewer)
    key_press(viewer, "r")
    active = viewer.layers.selection.active
    assert rois.META in active.metadata and active.mode == "add_rectangle"


def test_view_api_with_annotations(make_napari_viewer, files, tmp_path):
    a, dbt = files
    csv = tmp_path / "r.csv"
    csv.write_text(H + 'study/a.dcm,1,"[[1,2,3,4]]",[]\nstudy/gone.dcm,1,"[[1,2,3,4]]",[]\n')
    viewer = make_napari_viewer(show=False)
    napari_dcm.view([str(a), str(dbt)], viewer=viewer, annotations=str(csv))
    assert [isinstance(l, t) for l, t in zip(viewer.layers, [Image, Shapes, Image, Shapes])] == [True] * 4
    text = roi_export.export_text(viewer)
    assert "study/gone.dcm" in text and 'study/a.dcm,1,"[[1,2,3,4]]",[]' in text
