"""Write-back in a real napari viewer: ROIs drawn on a corpus mammogram saved as an SR from the
ROI dock, reopened as the same boxes on the same pixel edges (checked on a screenshot); a labels
layer saved as a SEG from the dock."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest

import napari_dcm
from napari_dcm._qt import roi_dock as roi_widget
from napari_dcm._qt import writeback_panel
from napari_dcm.dicom import writeback as wb
from napari_dcm.layers import keys, recovery
from test_embed_viewer import drag, world_to_canvas
from test_writeback import MAMMO

pytestmark = pytest.mark.viewer


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DCM_CACHE", str(tmp_path / "cache"))


ZOOM = 8.0  # screen pixels per data pixel when checking a corner


def corner_lines(viewer, layer, corner, inward, qtbot):
    """At a box corner (EMBED edges, row/column) seen at ZOOM: the screen position of that pixel
    edge and the centres of the outline's vertical and horizontal sides crossing rows/columns
    just inside the box (``inward`` = (+1|-1, +1|-1) towards the box)."""
    img = viewer.layers[0]
    img.visible = False  # black canvas: only the outline is drawn
    layer.opacity = 1.0
    layer.text.visible = False
    at = img.data_to_world((corner[0] - 0.5, corner[1] - 0.5))  # pixel edge -> napari coordinate
    viewer.camera.center = tuple(at)
    viewer.camera.zoom = ZOOM / float(img.scale[-1])
    qtbot.wait(100)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    yellow = (shot[..., 0] > 150) & (shot[..., 1] > 100) & (shot[..., 2] < 80)
    px, py = world_to_canvas(viewer, *at)

    def centres(mask_1d):
        idx = np.nonzero(mask_1d)[0]
        runs = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
        return [float(r.mean()) for r in runs if len(r)]

    row = int(py + inward[0] * 6 * ZOOM)
    col = int(px + inward[1] * 6 * ZOOM)
    return (px, py), centres(yellow[row]), centres(yellow[:, col])


def test_draw_save_sr_from_dock_and_reopen_on_the_same_pixel_edges(
    make_napari_viewer, corpus, tmp_path, qtbot, dciodvfy
):
    mammo = corpus / MAMMO
    viewer = make_napari_viewer(show=True)
    viewer.open(str(mammo), plugin="napari-dcm")
    dock = roi_widget.roi_dock(viewer)
    assert dock.writeback.sr_btn.text() == "Save ROIs as DICOM SR…"
    assert dock.writeback.seg_btn.text() == "Save labels as DICOM SEG…"
    layer = roi_widget.draw_roi(viewer)
    qtbot.wait(100)
    viewer.reset_view()
    qtbot.wait(50)
    img = viewer.layers[0]
    # napari data coordinates (row, column) of the drag, in world coordinates (PixelSpacing scale)
    drag(viewer, tuple(img.data_to_world((812.3, 1003.7))), tuple(img.data_to_world((1490.2, 1701.4))), qtbot)
    c = roi_widget.controller(layer)
    assert len(c.rs.rois) == 1
    box = c.rs.rois[0]["box"]
    y0, x0, y1, x1 = box
    assert abs(y0 - 813) <= 3 and abs(x1 - 1702) <= 3  # snapped to pixel edges near the drag

    rec = recovery.recovery_path(c.meta["paths"])
    assert c.dirty and os.path.exists(rec)
    (path,) = dock.writeback.save_sr(tmp_path / "out")
    assert not c.dirty and not os.path.exists(rec)  # saved: nothing to ask about or recover
    assert dock.writeback.status.text().startswith("Saved 1 SR file(s)")
    assert writeback_panel.written(viewer) == [path]
    assert dciodvfy(path)[0] == []
    sr = pydicom.dcmread(path)
    graphic = [
        i
        for c_ in sr.ContentSequence
        if c_.ConceptNameCodeSequence[0].CodeValue == "126010"
        for g in c_.ContentSequence
        for i in g.ContentSequence
        if i.ConceptNameCodeSequence[0].CodeValue == "111030"
    ]
    assert [float(v) for v in graphic[0].GraphicData] == wb.box_polyline(box).ravel().tolist()

    # a second viewer opens image + SR: the same box, editable, where it was drawn
    v2 = make_napari_viewer(show=True)
    napari_dcm.view([str(mammo), path], viewer=v2)  # one read: the SR finds its image
    (roi2,) = [l for l in v2.layers if keys.ROI in l.metadata]
    c2 = roi_widget.controller(roi2)
    assert c2 is not None and [r["box"] for r in c2.rs.rois] == [box]
    assert np.array_equal(np.asarray(roi2.data[0]), np.asarray(layer.data[0]))
    for corner, inward in (((y0, x0), (1, 1)), ((y1, x1), (-1, -1))):
        (px, py), xs, ys = corner_lines(v2, roi2, corner, inward, qtbot)
        # one vertical and one horizontal side, centred on the pixel edge (a half-pixel error is 4 px)
        assert [round(x - px, 1) for x in xs] == [pytest.approx(0, abs=1.0)], (corner, xs, px)
        assert [round(y - py, 1) for y in ys] == [pytest.approx(0, abs=1.0)], (corner, ys, py)


def test_save_labels_as_seg_from_dock(make_napari_viewer, ct_series, tmp_path, dciodvfy, monkeypatch):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(ct_series), plugin="napari-dcm")
    img = viewer.layers[0]
    dock = roi_widget.roi_dock(viewer)
    assert dock.writeback.save_seg(tmp_path / "none.dcm") is None
    assert "labels layer" in dock.writeback.status.text()
    lab = np.zeros(img.data.shape, np.uint8)
    lab[3:7, 10:30, 12:40] = 1
    lab[9, 40:50, 40:60] = 2
    labels = viewer.add_labels(lab, name="organs", features={"index": [0, 1, 2], "name": ["", "liver", "cyst"]})
    labels.scale, labels.translate = img.scale, img.translate
    path = dock.writeback.save_seg(tmp_path / "organs.seg.dcm")
    assert path == str(tmp_path / "organs.seg.dcm")
    assert "Saved 1 SEG file(s)" in dock.writeback.status.text()
    assert dciodvfy(path)[0] == []
    seg = pydicom.dcmread(path)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "cyst"]
    assert seg.SeriesDescription == "organs"
    # the labels' colours became the segments' recommended colours
    lab_color = [int(v) for v in seg.SegmentSequence[0].RecommendedDisplayCIELabValue]
    assert lab_color != [0, 0, 0]
    # saving again asks before replacing
    asked = []
    monkeypatch.setattr(writeback_panel, "confirm", lambda parent, title, text: asked.append(text) or False)
    assert dock.writeback.save_seg(path) is None
    assert asked and "exists" in asked[0]
    back = napari_dcm.read([ct_series, path])
    (lb,) = [t for t in back if t[2] == "labels"]
    assert np.array_equal(lb[0], lab)
