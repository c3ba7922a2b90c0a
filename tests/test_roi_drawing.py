"""Drawing and editing EMBED ROIs with the mouse on a real mammogram (issue: a second drawn
rectangle replaced the first).

Real viewer, real corpus file, real Qt mouse events (``qtevents``): rectangles drawn one after
another are separate ROIs with the corners where the mouse was pressed and released; moving,
resizing and deleting with the mouse reach the ROI state, the autosave and the exported CSV.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image
from qtpy.QtCore import QEvent, Qt
from qtpy.QtGui import QKeyEvent
from qtpy.QtWidgets import QApplication

import napari_dcm
from napari_dcm._qt import roi_dock as rd
from napari_dcm._qt.roi_controller import SCREEN_EDGE_PX
from napari_dcm.dicom.embed import read_embed_csv
from napari_dcm.layers import recovery
from qtevents import canvas_widget, mouse_drag, world_to_canvas

pytestmark = pytest.mark.viewer


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DCM_CACHE", str(tmp_path / "cache"))  # autosaves go here


class Mammo:
    """GH133 (3062 x 2394) in a viewer with the ROI dock and the ROI tool on."""

    def __init__(self, make_napari_viewer, corpus, qtbot):
        self.path = str(corpus / "mammography" / "GH133.dcm")
        self.viewer = v = make_napari_viewer(show=True)
        napari_dcm.view(self.path, viewer=v)
        self.dock = rd.roi_dock(v)
        self.layer = rd.draw_roi(v)
        self.img = next(l for l in v.layers if isinstance(l, Image))
        self.qtbot = qtbot
        qtbot.wait(300)  # the dock's layout settles (and the camera refits) before any drag

    def canvas(self, row, col):
        """Canvas pixel of data pixel coordinate (row, col) of the image."""
        y, x = self.img.data_to_world((row, col))
        return world_to_canvas(self.viewer, y, x)

    def drag(self, rc0, rc1):
        mouse_drag(self.viewer, self.canvas(*rc0), self.canvas(*rc1), steps=8)
        self.qtbot.wait(50)

    def data_px_per_screen_px(self) -> float:
        return 1.0 / (self.viewer.camera.zoom * float(self.img.scale[-1]))

    def zoom_on(self, row, col, data_px_per_screen_px=0.8):
        """Centre the camera on (row, col) with one data pixel spanning 1/``data_px_per_screen_px``."""
        self.viewer.camera.center = tuple(self.img.data_to_world((row, col)))
        self.viewer.camera.zoom = 1.0 / (data_px_per_screen_px * float(self.img.scale[-1]))
        self.qtbot.wait(100)

    def rois(self):
        return [tuple(r["box"]) for r in rd.controller(self.layer).rs.rois]

    def export(self, tmp_path, name="out.csv"):
        out = tmp_path / name
        assert self.dock.export_csv(out, overwrite=True) == str(out)
        (row,) = read_embed_csv(out).rows
        assert row.path == self.path
        return [tuple(r.box) for r in row.rois]


def edges(rc0, rc1):
    """EMBED edge box (r0, c0, r1, c1) of a drag from pixel coordinate rc0 to rc1
    (napari pixel centres are integers, so edge e is coordinate e - 0.5)."""
    (a, b), (c, d) = rc0, rc1
    return (min(a, c) + 0.5, min(b, d) + 0.5, max(a, c) + 0.5, max(b, d) + 0.5)


def assert_box(got, want, tol):
    assert np.allclose(np.asarray(got, float), np.asarray(want, float), atol=tol), (got, want, tol)


def test_two_rectangles_in_a_row_are_two_rois_with_the_released_corners(make_napari_viewer, corpus, tmp_path, qtbot):
    m = Mammo(make_napari_viewer, corpus, qtbot)
    # zoomed so that one screen pixel is under one data pixel: corners land within 1 data pixel
    m.zoom_on(1050, 1650)
    tol = 1.0
    assert m.data_px_per_screen_px() < 1
    first = ((900, 1500), (1100, 1700))
    second = ((1000, 1750), (1250, 1900))  # drawn while the first is still selected
    m.drag(*first)
    assert len(m.layer.data) == 1 and len(m.layer.selected_data) == 1
    m.drag(*second)
    assert len(m.layer.data) == 2, m.layer.data
    boxes = m.rois()
    assert len(boxes) == 2, boxes
    assert_box(boxes[0], edges(*first), tol)
    assert_box(boxes[1], edges(*second), tol)
    # the outlines on screen are the exported boxes (snapped to pixel edges), labelled 0 and 1
    for verts, box in zip(m.layer.data, boxes):
        v = np.asarray(verts)
        assert_box([*v.min(0), *v.max(0)], np.asarray(box, float) - 0.5, 1e-6)
    assert list(m.layer.features["roi"]) == [0, 1]
    assert m.export(tmp_path) == boxes
    rec = recovery.recovery_path([m.path])
    assert not Path(rec).exists()  # exported: nothing left to recover


def test_trial_drags_at_fit_zoom_give_two_rois_and_visible_outlines(make_napari_viewer, corpus, tmp_path, qtbot):
    """The new-user trial: two drags on the whole mammogram at fit zoom, then export."""
    m = Mammo(make_napari_viewer, corpus, qtbot)
    tol = m.data_px_per_screen_px() + 0.5  # within one screen pixel (~5 data pixels here)
    assert tol > 2  # the whole mammogram: a data pixel is well under a screen pixel
    first, second = ((800, 1500), (1200, 1900)), ((1800, 1600), (2300, 2100))
    m.drag(*first)
    m.drag(*second)
    boxes = m.rois()
    assert len(boxes) == 2, boxes
    assert_box(boxes[0], edges(*first), tol)
    assert_box(boxes[1], edges(*second), tol)
    # autosaved at once: both ROIs are in the recovery file
    saved = json.loads(Path(recovery.recovery_path([m.path])).read_text())
    assert [tuple(r["box"]) for r in saved["rois"]] == boxes
    # every outline is SCREEN_EDGE_PX wide on screen at this zoom (not a sub-pixel data width)
    w = np.asarray(m.layer.edge_width, float) * m.viewer.camera.zoom * float(m.img.scale[-1])
    assert np.allclose(w, SCREEN_EDGE_PX, rtol=0.2), w
    assert m.export(tmp_path) == boxes


def test_resize_and_move_with_the_mouse_follow_to_export(make_napari_viewer, corpus, tmp_path, qtbot):
    m = Mammo(make_napari_viewer, corpus, qtbot)
    m.zoom_on(1100, 1650)
    first, second = ((900, 1500), (1100, 1700)), ((1150, 1600), (1300, 1800))
    m.drag(*first)
    m.drag(*second)
    assert len(m.rois()) == 2
    b0 = m.rois()[0]
    m.layer.mode = "select"
    # select the first ROI (a click on its outline) and drag its bottom-right corner handle
    corner = (b0[2] - 0.5, b0[3] - 0.5)
    m.drag(corner, corner)  # a click: selects it
    assert set(m.layer.selected_data) == {0}
    m.drag(corner, (1060, 1740))
    boxes = m.rois()
    assert len(boxes) == 2
    assert_box(boxes[0], (b0[0], b0[1], 1060.5, 1740.5), 1.0)
    # move the second ROI by dragging it by its outline (a quarter along the top side, away from
    # the resize handles): same size, shifted by (+20, -40)
    b1 = boxes[1]
    top = (b1[0] - 0.5, b1[1] + (b1[3] - b1[1]) / 4 - 0.5)
    m.drag(top, top)
    assert set(m.layer.selected_data) == {1}
    m.drag(top, (top[0] + 20, top[1] - 40))
    boxes = m.rois()
    assert_box(boxes[1], (b1[0] + 20, b1[1] - 40, b1[2] + 20, b1[3] - 40), 1.0)
    assert boxes[1][2] - boxes[1][0] == b1[2] - b1[0] and boxes[1][3] - boxes[1][1] == b1[3] - b1[1]
    assert m.export(tmp_path) == boxes
    # the outlines on screen are the exported boxes
    for verts, box in zip(m.layer.data, boxes):
        v = np.asarray(verts)
        assert_box([*v.min(0), *v.max(0)], np.asarray(box, float) - 0.5, 1e-6)


def test_draw_three_delete_the_middle_one(make_napari_viewer, corpus, tmp_path, qtbot):
    m = Mammo(make_napari_viewer, corpus, qtbot)
    m.zoom_on(1100, 1650)
    drags = [((900, 1450), (1000, 1550)), ((1050, 1600), (1150, 1700)), ((1200, 1750), (1300, 1850))]
    for d in drags:
        m.drag(*d)
    boxes = m.rois()
    assert len(boxes) == 3, boxes
    m.layer.mode = "select"
    mid = boxes[1]
    edge_pt = (mid[0] - 0.5, (mid[1] + mid[3]) / 2 - 0.5)  # on its top outline
    m.drag(edge_pt, edge_pt)
    assert set(m.layer.selected_data) == {1}
    press(m.viewer, Qt.Key.Key_Delete)  # napari's "delete selected shapes"
    qtbot.wait(50)
    assert len(m.layer.data) == 2
    assert m.rois() == [boxes[0], boxes[2]]
    assert m.export(tmp_path) == [boxes[0], boxes[2]]
    # a fourth ROI drawn after the deletion is new, not a replacement of the last one
    m.layer.mode = "add_rectangle"
    m.drag((900, 1750), (1000, 1850))
    assert len(m.rois()) == 3 and m.rois()[:2] == [boxes[0], boxes[2]]
    assert len(m.export(tmp_path, "again.csv")) == 3
    # Ctrl+C, Ctrl+V of the first ROI (napari pastes without a data event): a new ROI too
    m.layer.mode = "select"
    m.layer.selected_data = {0}
    press(m.viewer, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    press(m.viewer, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(50)
    assert len(m.layer.data) == 4 and m.rois()[3] == boxes[0]
    assert list(m.layer.features["roi"]) == [0, 2, 3, 4]
    assert m.export(tmp_path, "pasted.csv") == m.rois()


def press(viewer, key, modifiers=Qt.KeyboardModifier.NoModifier):
    """Press and release a key on the canvas."""
    w = canvas_widget(viewer)
    w.setFocus()
    for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
        QApplication.sendEvent(w, QKeyEvent(kind, key, modifiers))


def test_multiframe_copy_moved_with_the_mouse_moves_every_copy(make_napari_viewer, corpus, tmp_path, qtbot):
    path = str(corpus / "multiframe" / "emri_small.dcm")  # Enhanced MR, 10 frames of 64 x 64
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(path, viewer=viewer)
    dock = rd.roi_dock(viewer)
    img = next(l for l in viewer.layers if isinstance(l, Image))
    viewer.dims.set_current_step(0, 2)
    layer = rd.draw_roi(viewer)
    qtbot.wait(300)

    def drag(rc0, rc1):
        y0, x0 = img.data_to_world((2, *rc0))[-2:]
        y1, x1 = img.data_to_world((2, *rc1))[-2:]
        mouse_drag(viewer, world_to_canvas(viewer, y0, x0), world_to_canvas(viewer, y1, x1), steps=8)
        qtbot.wait(50)

    assert viewer.camera.zoom * float(img.scale[-1]) > 4  # a data pixel spans several screen pixels
    drag((9.6, 12.4), (29.6, 40.4))  # near pixel edges 10, 13, 30, 41
    c = rd.controller(layer)
    (roi,) = c.rs.rois
    assert roi["box"] == (10, 13, 30, 41)
    c.set_scope("all")  # the drawn ROI is selected: a copy on every frame
    assert len(layer.data) == 10
    viewer.dims.set_current_step(0, 6)
    layer.mode = "select"
    qtbot.wait(50)
    grip = (9.5, 20.5)  # on the top side, away from the resize handles
    drag(grip, grip)
    assert len(layer.selected_data) == 1
    drag(grip, (14.5, 15.5))  # move this frame's copy by (+5, -5)
    assert c.rs.rois[0]["box"] == (15, 8, 35, 36)
    boxes = {tuple(np.asarray(v)[:, 1:].min(0)) + tuple(np.asarray(v)[:, 1:].max(0)) for v in layer.data}
    assert len(layer.data) == 10 and boxes == {(14.5, 7.5, 34.5, 35.5)}  # every copy followed
    out = tmp_path / "mf.csv"
    dock.export_csv(out)
    (row,) = read_embed_csv(out).rows
    assert [tuple(r.box) for r in row.rois] == [(15, 8, 35, 36)] and row.rois[0].frames is None
    # deleting this frame's copy deletes the ROI (every copy)
    layer.remove_selected()
    assert c.rs.rois == [] and len(layer.data) == 0
