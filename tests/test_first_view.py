"""The first minutes in napari (issue 10): every slice reachable, a whole first view after the
docks open, an honest status bar, one decode at open, and no napari warnings from our code."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

import napari_dcm
from napari_dcm._qt import dicom_dock as dd
from napari_dcm._qt.status import Image as DicomImage
from napari_dcm.layers.images import _steps, exact_steps
from qtevents import canvas_widget, drop_files, mouse_drag, mouse_move, world_to_canvas
from synth import write_plain_image

BIN = os.path.dirname(sys.executable)
SRC = Path(napari_dcm.__file__).resolve().parent


# ---------------------------------------------------------------- one slider step per frame


def test_exact_steps_any_spacing_any_translate():
    rng = np.random.default_rng(7)
    # the knee series of the issue: 24 slices at 3.7999995 mm gave 23 steps
    n, s, t = 24, 3.7999995237258517, -104.6280575779372
    assert _steps(n, s, t) == 23  # napari's arithmetic, before
    (s2,), (t2,) = exact_steps((n,), (s,), (t,))
    assert _steps(n, s2, t2) == 24 and abs(s2 - s) < 1e-12 and abs(t2 - t) < 1e-9
    bad = 0
    for _ in range(5000):
        n = int(rng.integers(2, 4000))
        s = float(rng.uniform(1e-3, 20.0)) * (1 if rng.random() < 0.9 else -1)
        t = float(rng.uniform(-5000, 5000)) * 10.0 ** int(rng.integers(-3, 2))
        (s2,), (t2,) = exact_steps((n,), (s,), (t,))
        bad += _steps(n, s2, t2) != n or abs(s2 - s) > 2e-9 * abs(s) or abs(t2 - t) > 1e-10
    assert bad == 0


@pytest.mark.viewer
def test_slider_steps_equal_frames_for_every_corpus_stack(make_napari_viewer, corpus):
    """Every image napari_dcm.read returns from the corpus, added alone to a real viewer:
    one slider step per frame, and the last step shows the last frame."""
    viewer = make_napari_viewer(show=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # broken files in the corpus warn; not the point here
        items = [t for t in napari_dcm.read(corpus) if t[2] == "image" and "napari_dcm" in t[1]["metadata"]]
    stacks = [t for t in items if len(t[1]["scale"]) == 3]
    assert len(stacks) >= 40, len(stacks)
    wrong = []
    for data, kw, _ in stacks:
        viewer.layers.clear()
        layer = DicomImage(data, visible=False, **{k: v for k, v in kw.items() if k != "visible"})
        viewer.layers.append(layer)
        n = data.shape[0]
        if viewer.dims.nsteps[0] != n:
            wrong.append((kw["name"], n, viewer.dims.nsteps[0]))
            continue
        viewer.dims.set_current_step(0, n - 1)
        d = layer.world_to_data(viewer.dims.point)[0]
        if round(float(d)) != n - 1:
            wrong.append((kw["name"], "last step shows", d))
    assert not wrong, wrong
    names = [kw["name"] for _, kw, _ in stacks]
    assert any("T1W_aTSE" in n for n in names)  # the knee series of the issue is among them


# ---------------------------------------------------------------- a whole first view


def image_box_on_canvas(viewer, layer):
    """(x0, y0, x1, y1) of the image's pixel edges in canvas pixels."""
    ext = layer.extent.world[:, -2:]
    step = np.abs(np.asarray(layer.scale[-2:], float))
    (y0, x0), (y1, x1) = ext[0] - step / 2, ext[1] + step / 2
    a, b = world_to_canvas(viewer, y0, x0), world_to_canvas(viewer, y1, x1)
    return min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])


def assert_whole(viewer, layer, qtbot):
    h, w = viewer.canvas.size
    qtbot.waitUntil(lambda: canvas_widget(viewer).height() == viewer.canvas.size[0], timeout=20000)
    x0, y0, x1, y1 = image_box_on_canvas(viewer, layer)
    assert x0 >= -0.5 and y0 >= -0.5 and x1 <= w + 0.5 and y1 <= h + 0.5, ((x0, y0, x1, y1), (w, h))
    # and fitted, not tiny: the image fills 90 % or more of the canvas along one axis
    assert max((x1 - x0) / w, (y1 - y0) / h) > 0.9, ((x0, y0, x1, y1), (w, h))


def settle(qtbot, ms=300):
    qtbot.wait(ms)


@pytest.mark.viewer
def test_whole_view_after_dock_view_api(make_napari_viewer, corpus, qtbot):
    viewer = make_napari_viewer(show=True)
    (layer,) = napari_dcm.view(corpus / "ct_mr_series" / "orthanc_Knee_T1", viewer=viewer).layers
    w0 = viewer.canvas.size[1]
    dd.dicom_dock(viewer)
    qtbot.waitUntil(lambda: viewer.canvas.size[1] < w0, timeout=20000)  # the dock took its share
    settle(qtbot)
    assert_whole(viewer, layer, qtbot)


@pytest.mark.viewer
def test_whole_view_after_drop_and_plugins_menu_dock(make_napari_viewer, corpus, qtbot):
    viewer = make_napari_viewer(show=True)
    # a tall 4664 x 3064 mammogram without extension (napari's own reader claims *.dcm and would ask)
    drop_files(viewer, [corpus / "mammography" / "MG1_J2KI"])
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=30000)
    layer = viewer.layers[0]
    assert isinstance(layer, DicomImage)
    w0 = viewer.canvas.size[1]
    # what Plugins > napari-dcm > DICOM (tags, windows, layouts) does
    viewer.window.add_plugin_dock_widget("napari-dcm", "DICOM (tags, windows, layouts)")
    qtbot.waitUntil(lambda: viewer.canvas.size[1] < w0, timeout=20000)
    settle(qtbot)
    assert_whole(viewer, layer, qtbot)


@pytest.mark.viewer
def test_user_zoom_is_kept_when_a_dock_opens(make_napari_viewer, corpus, qtbot):
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(corpus / "transfer_syntax" / "CT1_RLE", viewer=viewer)
    settle(qtbot)
    viewer.scene.camera.zoom *= 4  # the user zoomed in: the image is no longer whole
    zoom = viewer.scene.camera.zoom
    dd.dicom_dock(viewer)
    settle(qtbot)
    assert viewer.scene.camera.zoom == zoom


@pytest.mark.viewer
def test_whole_view_after_hanging_right_after_the_dock(make_napari_viewer, corpus, tmp_path, qtbot):
    """`napari-dcm mammo_dir --hang`: the dock opens and the images hang before the canvas shrinks."""
    src = corpus / "mammography" / "OutOfBoundsOverlay.dcm"
    paths = []
    for i, (view, lat) in enumerate([("CC", "R"), ("CC", "L"), ("MLO", "R"), ("MLO", "L")]):
        ds = pydicom.dcmread(src)
        ds.ViewPosition, ds.ImageLaterality, ds.InstanceNumber = view, lat, i + 1
        ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[view, lat])
        ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[view, lat, "sop"])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "ViewCodeSequence" in ds:
            del ds.ViewCodeSequence
        p = tmp_path / f"{lat}{view}.dcm"
        ds.save_as(p)
        paths.append(str(p))
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(paths, viewer=viewer)
    w0 = viewer.canvas.size[1]
    dock = dd.dicom_dock(viewer)
    dock.hang()
    qtbot.waitUntil(lambda: viewer.canvas.size[1] < w0, timeout=20000)
    settle(qtbot)
    assert viewer.canvas.grid.enabled
    # the hanging was fitted for the canvas the dock left (fitting again changes nothing)
    from napari_dcm._qt import hanging

    zoom_now, center_now = viewer.scene.camera.zoom, tuple(viewer.scene.camera.center)
    hanging.fit(viewer)
    assert viewer.scene.camera.zoom == pytest.approx(zoom_now)
    assert tuple(viewer.scene.camera.center) == pytest.approx(center_now)
    # and every cell shows its image's whole height (its width is the breast's: the hanging
    # fits the breast, not the background beside it, into the cell)
    vh, _ = viewer.canvas.viewbox_size(viewer.layers)
    for img in hanging.current(viewer).cells.values():
        ext = img.extent.world[:, -2]
        height = (ext[1] - ext[0] + abs(img.scale[-2])) * zoom_now
        assert height <= vh + 1, (height, vh)


@pytest.mark.viewer
def test_cli_first_view_is_whole(tmp_path):
    """`napari-dcm IMG`: the canvas screenshot shows the whole bright image with dark margins."""
    img = write_plain_image(tmp_path / "bright.dcm", rows=600, cols=300, value=200)
    shot = tmp_path / "canvas.png"
    out = subprocess.run(
        [os.path.join(BIN, "napari-dcm"), str(img), "--screenshot", str(shot), "--canvas-only", "--exit"],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "screenshot of the canvas saved" in out.stdout
    from imageio.v3 import imread

    a = imread(shot)[..., :3].max(axis=-1)
    lit = a > 100
    ys, xs = np.nonzero(lit)
    h, w = a.shape
    # the whole image: dark canvas on every side, none of its edges cut by the canvas border
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < h - 1 and xs.max() < w - 1, (ys.min(), ys.max(), h)
    assert (ys.max() - ys.min() + 1) / h > 0.85  # fitted (tall image: height is the limit)
    ratio = (ys.max() - ys.min() + 1) / (xs.max() - xs.min() + 1)
    assert ratio == pytest.approx(2.0, rel=0.05)  # 600 x 300: nothing cropped


def test_cli_screenshot_help_says_what_it_saves():
    from napari_dcm.cli import build_parser

    helps = {a.dest: a.help for a in build_parser()._actions}
    assert "whole napari window" in helps["screenshot"] and "canvas" in helps["canvas_only"]


# ---------------------------------------------------------------- the status bar


def status_of(layer, viewer, y, x):
    pos = list(viewer.dims.point)
    pos[-2:] = [y, x]
    return layer.get_status(tuple(pos), world=True, dims_displayed=list(viewer.dims.displayed))["coordinates"]


@pytest.mark.viewer
def test_status_text_series_ct_multiframe(make_napari_viewer, corpus, big_multiframe, qtbot):
    viewer = make_napari_viewer(show=True)
    # a stacked MR series: slice index and its file, pixel row/column, world mm
    (knee,) = napari_dcm.view(corpus / "ct_mr_series" / "orthanc_Knee_T1", viewer=viewer).layers
    d = viewer.dims.current_step[0]
    y = knee.translate[1] + 100 * knee.scale[1]
    x = knee.translate[2] + 37 * knee.scale[2]
    text = status_of(knee, viewer, y, x)
    fname = os.path.basename(knee.metadata["frame_paths"][d])
    expected = f"slice {d}/23 ({fname}) · row 100, col 37: {int(np.asarray(knee.data[d, 100, 37]))}"
    assert expected in text and "] mm · " in text, text
    assert "outside the image" in status_of(knee, viewer, knee.translate[1] - 50, x)
    # a CT: values in HU
    viewer.layers.clear()
    (ct,) = napari_dcm.view(corpus / "transfer_syntax" / "CT1_RLE", viewer=viewer).layers
    v = int(np.asarray(ct.data[200, 300]))
    assert status_of(ct, viewer, ct.translate[0] + 200 * ct.scale[0], ct.translate[1] + 300 * ct.scale[1]).endswith(
        f"row 200, col 300: {v} HU"
    )
    # a multi-frame instance: display and stored frame
    viewer.layers.clear()
    (mf,) = napari_dcm.view(str(big_multiframe), viewer=viewer).layers
    viewer.dims.set_current_step(0, 5)
    stored = mf.metadata["display_to_stored"][5]
    y, x = mf.translate[1] + 3 * mf.scale[1], mf.translate[2] + 4 * mf.scale[2]
    assert f"frame 5/23 (stored {stored}) · row 3, col 4: " in status_of(mf, viewer, y, x)
    # the status bar from a real mouse move over the canvas (make_napari_viewer stops napari's
    # status thread, so the status is computed the way napari does without it)
    viewer.layers.clear()
    (ct,) = napari_dcm.view(corpus / "transfer_syntax" / "CT1_RLE", viewer=viewer).layers
    qtbot.wait(200)
    px = world_to_canvas(viewer, ct.translate[0] + 256 * ct.scale[0], ct.translate[1] + 256 * ct.scale[1])
    mouse_move(viewer, px)

    def shows_row_col():
        viewer.update_status_from_cursor()
        st = viewer.status
        text = st.get("coordinates", "") if isinstance(st, dict) else str(st)
        return "row 256, col 256" in text and text.endswith(" HU")

    try:
        qtbot.waitUntil(shows_row_col, timeout=20000)
    except Exception:
        raise AssertionError(f"status {viewer.status!r}, over canvas {viewer.mouse_over_canvas}") from None


@pytest.mark.viewer
def test_status_unit_of_a_parametric_map(make_napari_viewer, corpus):
    viewer = make_napari_viewer(show=False)
    napari_dcm.view(corpus / "seg_pm" / "parametric_map_float.dcm", viewer=viewer)
    (pm,) = [l for l in viewer.layers if l.metadata.get("napari_dcm_overlay", {}).get("kind") == "pm"]
    unit = pm.metadata["napari_dcm_overlay"]["units"]
    assert unit
    text = pm.get_status((10.0, 12.0), world=True)["coordinates"]
    assert "row 10, col 12: " in text and text.endswith(f" {unit}"), text


# ---------------------------------------------------------------- laziness kept


@pytest.mark.viewer
def test_viewer_open_decodes_only_the_middle_frame(make_napari_viewer, tmp_path, readahead_off):
    """File > Open / drag and drop: layers arrive hidden and show once napari centred the
    slider, so frame 0 (napari's first slice of a new layer) is never decoded.  Read-ahead
    is off: it decodes the frames around the shown one on purpose (tests/test_readahead.py)."""
    from napari_dcm.dicom import decode
    from synth import write_multiframe

    # a file of its own: napari's dask cache cannot hold its frames from an earlier test
    path = write_multiframe(tmp_path / "fresh.dcm", frames=9, rows=64, cols=48)
    viewer = make_napari_viewer(show=True)
    decode.reset()
    (layer,) = viewer.open(str(path), plugin="napari-dcm")
    assert layer.visible and viewer.dims.current_step[0] == 4
    assert decode.STATS.decodes == 1, decode.STATS.decodes


# ---------------------------------------------------------------- no napari warnings from our code


def _ours(w: warnings.WarningMessage) -> bool:
    f = os.path.abspath(w.filename)
    return f.startswith(str(SRC)) or f.startswith(str(Path(__file__).resolve().parent))


@pytest.mark.viewer
def test_no_deprecation_or_future_warnings_from_our_code(make_napari_viewer, corpus, tmp_path, qtbot, monkeypatch):
    """A whole journey (open, dock tabs, presets, W/L drag, slices, tags filter, ROIs, hanging, SR
    dock, status) with every warning recorded: none is a FutureWarning or DeprecationWarning raised
    from napari-dcm's code (napari's deprecations point at their caller)."""
    from napari_dcm._qt import roi_dock, sr_dock
    from napari_dcm.layers import rois

    monkeypatch.setenv("NAPARI_DCM_CACHE", str(tmp_path / "cache"))  # the ROI drawn autosaves here
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        viewer = make_napari_viewer(show=True)
        viewer.open(str(corpus / "ct_mr_series" / "orthanc_Knee_T1"), plugin="napari-dcm")
        viewer.window.add_plugin_dock_widget("napari-dcm", "DICOM (tags, windows, layouts)")
        dock = dd.dicom_dock(viewer)
        qtbot.wait(100)
        dock.tabs.setCurrentWidget(dock.window_tab)
        dock.choose_preset(0)
        dock.wl_button.setChecked(True)
        mouse_drag(viewer, (200.0, 200.0), (260.0, 230.0), qtbot=qtbot)
        dock.wl_button.setChecked(False)
        for k in (0, 5, 23):
            viewer.dims.set_current_step(0, k)
        dock.tabs.setCurrentWidget(dock.tags_tab)
        dock.filter.setText("pixel spacing")
        mouse_move(viewer, (150.0, 150.0))
        qtbot.wait(100)
        layer = roi_dock.draw_roi(viewer)
        layer.add_rectangles([np.array([[11, 10.5, 10.5], [11, 10.5, 40.5], [11, 60.5, 40.5], [11, 60.5, 10.5]])])
        viewer.scene.camera.zoom *= 2
        roi_dock.roi_dock(viewer)
        dock.hang("1x2")
        dock.hang("1x1")
        napari_dcm.view(corpus / "sr" / "sr_document.dcm", viewer=viewer)
        sr_dock.sr_dock(viewer)
        assert rois.META in layer.metadata
        qtbot.wait(100)
    ours = [w for w in rec if issubclass(w.category, (DeprecationWarning, FutureWarning)) and _ours(w)]
    assert not ours, [f"{w.category.__name__} {w.filename}:{w.lineno}: {w.message}" for w in ours]
