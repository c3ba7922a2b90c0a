"""A new user's trial of the first five minutes, its findings as tests: broken files named in
the viewer, toasts that start with the file's name, a whole first view of a mixed open, the
full-resolution value of a multiscale layer, ``python -m napari_dcm``, a labelled frame
slider, a readable tag value column, a useful ROI status."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from napari.utils.notifications import notification_manager

import napari_dcm
from napari_dcm.dicom import decode
from napari_dcm.dicom.report import ReadReport

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def notes():
    """Notifications dispatched during the test (their full text)."""
    start = len(notification_manager.records)
    return lambda: [str(n.message) for n in notification_manager.records[start:]]


def world_box_on_canvas(viewer, layer):
    """(x0, y0, x1, y1) of a layer's world extent (pixel edges) in canvas pixels, from the
    public camera (center, zoom) and canvas size."""
    ext = layer.extent.world[:, -2:]
    step = np.abs(np.asarray(layer.scale[-2:], float))
    (y0, x0), (y1, x1) = ext[0] - step / 2, ext[1] + step / 2
    h, w = viewer.canvas.size
    cy, cx = viewer.camera.center[-2:]
    z = float(viewer.camera.zoom)
    return (x0 - cx) * z + w / 2, (y0 - cy) * z + h / 2, (x1 - cx) * z + w / 2, (y1 - cy) * z + h / 2


# ---------------------------------------------------------------- 1, 2: broken files named


@pytest.mark.viewer
def test_every_skipped_file_of_the_broken_folder_is_named_with_its_reason(make_napari_viewer, corpus, notes):
    viewer = make_napari_viewer(show=True)
    report = ReadReport()
    napari_dcm.read(corpus / "broken", report=report)
    assert len(report.skipped) >= 10
    viewer.open(str(corpus / "broken"), plugin="napari-dcm")
    text = "\n".join(notes())
    for path, reason in report.skipped:
        line = f"{os.path.basename(path)}: {reason}"
        assert line in text, (line, text[:2000])
    # the toast's first line (what a collapsed napari notification shows) says how many and
    # names the first ones, and says there are more
    (head,) = [n for n in notes() if "file(s) skipped" in n]
    first = head.splitlines()[0]
    assert f"{len(report.skipped)} file(s) skipped: " in first and f"and {len(report.skipped) - 3} more" in first


def test_a_few_skipped_files_get_one_notification_each():
    rep = ReadReport(skipped=[("/d/a.dcm", "not DICOM"), ("/d/b.dcm", "no pixel data")])
    assert rep.skipped_notices() == [
        "napari-dcm: skipped a.dcm: not DICOM  [/d/a.dcm]",
        "napari-dcm: skipped b.dcm: no pixel data  [/d/b.dcm]",
    ]
    rep.skipped += [(f"/d/{k}.dcm", f"reason {k}") for k in range(6)]
    s = rep.summary()
    assert "; and" in s and "more reason(s)" in s


@pytest.mark.viewer
def test_frame_failure_toast_starts_with_the_file_name(make_napari_viewer, corpus, notes):
    decode.reset()
    viewer = make_napari_viewer(show=True)
    viewer.open(str(corpus / "broken" / "genFile.dcm"), plugin="napari-dcm")
    (msg,) = [n for n in notes() if "blank" in n]
    assert "genFile.dcm" in msg[:40], msg
    assert str(corpus / "broken" / "genFile.dcm") in msg  # the full path is still there, after


# ---------------------------------------------------------------- 3: a mixed open, whole


@pytest.mark.viewer
def test_mixed_open_first_view_shows_every_visible_layer_whole(make_napari_viewer, corpus, qtbot, notes):
    viewer = make_napari_viewer(show=True)
    paths = [str(corpus / "mammography" / "GH133.dcm"), str(corpus / "ct_mr_series" / "orthanc_Knee_T1")]
    napari_dcm.view(paths + sorted(glob.glob(str(corpus / "broken" / "*"))), viewer=viewer)
    qtbot.wait(300)
    shown = [l for l in viewer.layers if l.visible]
    assert shown and len(shown) < len(viewer.layers)
    # the first path's image is the one shown, and the active layer (the dock follows it)
    assert "GH133.dcm" in shown[0].metadata["paths"][0] and viewer.layers.selection.active is shown[0]
    h, w = viewer.canvas.size
    for layer in shown:
        x0, y0, x1, y1 = world_box_on_canvas(viewer, layer)
        assert x0 >= -0.5 and y0 >= -0.5 and x1 <= w + 0.5 and y1 <= h + 0.5, (layer.name, (x0, y0, x1, y1), (w, h))
    x0, y0, x1, y1 = world_box_on_canvas(viewer, shown[0])
    assert max((x1 - x0) / w, (y1 - y0) / h) > 0.9  # fitted, not a stamp
    hidden = [l.name for l in viewer.layers if not l.visible]
    (note,) = [n for n in notes() if "images of unrelated studies" in n]
    assert all(name in note for name in hidden)
    # the same through napari's File > Open (the npe2 reader): the shown image is the active one
    viewer.layers.clear()
    viewer.open(str(corpus / "broken"), plugin="napari-dcm")
    qtbot.wait(300)
    shown = [l for l in viewer.layers if l.visible]
    assert len(shown) == 1 and viewer.layers.selection.active is shown[0]


@pytest.mark.viewer
def test_series_of_one_frame_of_reference_stay_shown_together(make_napari_viewer, tmp_path, qtbot):
    from synth import write_ct_series

    a = write_ct_series(tmp_path / "a", n=4, rows=32, cols=32)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(a), plugin="napari-dcm")
    assert all(l.visible for l in viewer.layers)


# ---------------------------------------------------------------- 4: multiscale value


@pytest.mark.viewer
def test_multiscale_status_shows_the_full_resolution_value(make_napari_viewer, tmp_path, qtbot):
    from synth import write_multiframe

    path = write_multiframe(tmp_path / "dbt.dcm", frames=3, rows=2048, cols=1664, syntax="j2k")
    ref = pydicom.dcmread(path).pixel_array
    viewer = make_napari_viewer(show=True)
    (layer,) = napari_dcm.view(str(path), viewer=viewer).layers
    viewer.screenshot(canvas_only=True, flash=False)
    assert layer.multiscale and layer.data_level >= 1
    d = int(viewer.dims.current_step[0])
    row, col = 999, 700
    pos = (viewer.dims.point[0], layer.translate[1] + row * layer.scale[1], layer.translate[2] + col * layer.scale[2])

    def text():
        return layer.get_status(pos, world=True, dims_displayed=list(viewer.dims.displayed))["coordinates"]

    first = text()
    assert f"row {row}, col {col}: " in first
    # napari's (level, value) never shows as "level, value"
    assert f": {layer.data_level}, " not in first.split(f"col {col}")[1]
    qtbot.waitUntil(lambda: "being decoded" not in text(), timeout=20000)
    assert text().endswith(f"row {row}, col {col}: {int(ref[d, row, col])}"), text()


# ---------------------------------------------------------------- 5: python -m napari_dcm


def test_python_m_napari_dcm_help():
    env = {**os.environ, "PYTHONPATH": str(Path(napari_dcm.__file__).resolve().parents[1])}  # the code under test
    r = subprocess.run([sys.executable, "-m", "napari_dcm", "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "--hang" in r.stdout and "chosen from the views" in " ".join(r.stdout.split())


# ---------------------------------------------------------------- 6: the frame slider's label


@pytest.mark.viewer
def test_frame_axis_label(make_napari_viewer, corpus, big_multiframe):
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(corpus / "ct_mr_series" / "orthanc_Knee_T1", viewer=viewer)
    assert viewer.dims.axis_labels[0] == "slice"
    viewer.layers.clear()
    viewer.dims.axis_labels = ("-3", "-2", "-1")
    viewer.open(str(big_multiframe), plugin="napari-dcm")
    assert viewer.dims.axis_labels[0] == "frame"
    # a label the user set is kept
    viewer.dims.axis_labels = ("z", "y", "x")
    napari_dcm.view(corpus / "ct_mr_series" / "orthanc_Knee_T1", viewer=viewer)
    assert viewer.dims.axis_labels[0] == "z"


@pytest.mark.viewer
def test_frame_axis_label_left_alone_beside_other_3d_layers(make_napari_viewer, corpus):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((5, 8, 8)), name="time series")
    napari_dcm.view(corpus / "ct_mr_series" / "orthanc_Knee_T1", viewer=viewer)
    assert viewer.dims.axis_labels[0] not in ("slice", "frame")


# ---------------------------------------------------------------- 7: tag values readable


@pytest.mark.viewer
def test_tag_value_column_gets_the_width(make_napari_viewer, corpus, qtbot):
    from napari_dcm._qt.dicom_dock import dicom_dock

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 800)
    napari_dcm.view(corpus / "ct_mr_series" / "orthanc_Knee_T1", viewer=viewer)
    dock = dicom_dock(viewer)
    tree = dock.tags_tab.tree
    qtbot.wait(300)
    vw = tree.viewport().width()
    value_w = tree.header().sectionSize(3)
    assert vw > 200 and value_w >= 0.35 * vw, (value_w, vw)


# ---------------------------------------------------------------- 8: the ROI status


@pytest.mark.viewer
def test_roi_layer_status_names_the_roi(make_napari_viewer):
    import pandas as pd

    from napari_dcm._qt.status import Shapes as DicomShapes
    from napari_dcm.layers import keys

    viewer = make_napari_viewer(show=True)
    feats = pd.DataFrame({"roi": [3], "path": ["/x/IM1.dcm"], "frames": ["all"]})
    layer = DicomShapes(
        [np.array([[0, 0], [0, 10], [10, 10], [10, 0]], float)],
        shape_type="rectangle",
        features=feats,
        metadata={keys.ROI: {"image": "img"}},
    )
    viewer.add_layer(layer)
    inside = layer.get_status((5.0, 5.0), world=True, dims_displayed=[0, 1])["coordinates"]
    assert inside.endswith("ROI 3 (IM1.dcm) frames all") and "0, " not in inside.split("]")[-1], inside
    outside = layer.get_status((50.0, 50.0), world=True, dims_displayed=[0, 1])["coordinates"]
    assert "ROI" not in outside and not outside.rstrip().endswith(":"), outside
