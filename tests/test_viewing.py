"""Viewing controls in a real viewer (Xvfb): cine at the file's rate (loop, once, sweep), view flips
and rotations that change no data and keep ROI export coordinates, and the review keys doing what
the help overlay says (real Qt key events on the canvas)."""

from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest
from qtpy.QtCore import QEvent, QPoint, QPointF, Qt
from qtpy.QtGui import QKeyEvent, QMouseEvent
from qtpy.QtWidgets import QApplication

from case_tree import make_case_tree, write_cine
from napari_dcm._qt import keys as keymod
from napari_dcm._qt import roi_dock as rd
from napari_dcm._qt.case_dock import cases_dock
from napari_dcm._qt.roi_dock import draw_roi, ensure_roi_layer
from napari_dcm._qt.viewer import dicom_images
from napari_dcm._qt.viewing import viewing
from napari_dcm._qt.window import wl_mode
from napari_dcm.layers import keys
from napari_dcm.layers.roi_export import export_text

KNEE = "ct_mr_series/orthanc_Knee_T1/IM-0001-0012.dcm"  # 512 x 512 MR
BLOCK = (100, 300, 130, 380)  # ymin, xmin, ymax, xmax: wider than tall, upper right


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DCM_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------- real Qt input on the canvas


def canvas_widget(viewer):
    from qtpy.QtOpenGLWidgets import QOpenGLWidget

    gls = [w for w in viewer.window.main_menu.window().findChildren(QOpenGLWidget) if w.isVisible()]
    assert gls, "no visible canvas (show=True)"
    return max(gls, key=lambda w: w.width() * w.height())


QT_KEYS = {
    "Space": Qt.Key.Key_Space,
    "[": Qt.Key.Key_BracketLeft,
    "]": Qt.Key.Key_BracketRight,
    "Home": Qt.Key.Key_Home,
    "PageDown": Qt.Key.Key_PageDown,
    "PageUp": Qt.Key.Key_PageUp,
}


def press(viewer, qtbot, key: str) -> None:
    """A key press and release on napari's canvas, from Qt's event loop (as a user's would be)."""
    from qtpy.QtCore import QTimer

    w = canvas_widget(viewer)
    w.setFocus()
    code = QT_KEYS.get(key) or getattr(Qt.Key, f"Key_{key.upper()}")
    text = {"Space": " ", "[": "[", "]": "]"}.get(key, key.lower() if len(key) == 1 else "")
    done = []

    def send():
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(w, QKeyEvent(kind, code, Qt.KeyboardModifier.NoModifier, text))
        done.append(1)

    QTimer.singleShot(0, send)
    qtbot.waitUntil(lambda: bool(done), timeout=60_000)
    qtbot.wait(10)


def mouse(viewer, kind, pos, button=Qt.MouseButton.LeftButton, buttons=Qt.MouseButton.LeftButton):
    w = canvas_widget(viewer)
    p = QPointF(float(pos[0]), float(pos[1]))
    g = QPointF(w.mapToGlobal(QPoint(int(pos[0]), int(pos[1]))))
    QApplication.sendEvent(w, QMouseEvent(kind, p, p, g, button, buttons, Qt.KeyboardModifier.NoModifier))


def drag(viewer, qtbot, p0, p1, steps=6):
    mouse(viewer, QEvent.Type.MouseButtonPress, p0)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        mouse(
            viewer,
            QEvent.Type.MouseMove,
            (p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1])),
            Qt.MouseButton.NoButton,
        )
        qtbot.wait(5)
    mouse(viewer, QEvent.Type.MouseButtonRelease, p1, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    qtbot.wait(30)


# ---------------------------------------------------------------- cine


def test_cine_plays_at_the_files_rate(make_napari_viewer, qtbot, corpus, tmp_path, cache):
    path = write_cine(corpus, tmp_path / "cine.dcm", frame_time=50.0, cine_rate=12, recommended=15)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="napari-dcm")
    cine = viewing(viewer).cine
    viewer.dims.set_current_step(0, 0)
    seen = []
    viewer.dims.events.current_step.connect(lambda e: seen.append((time.perf_counter(), viewer.dims.current_step[0])))
    assert cine.play()
    assert (cine.rate.fps, cine.rate.source) == (20.0, "FrameTime") and cine.timer.interval() == 50
    qtbot.waitUntil(lambda: len(seen) >= 12, timeout=20_000)  # loop: through frame 9 and round to 0
    cine.pause()
    frames = [f for _, f in seen]
    assert frames[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    # never faster than the file's rate (a slow frame may stretch a step, none is shortened)
    steps = np.diff([t for t, _ in seen])
    assert np.median(steps) >= 0.045, steps
    # FPS control and sweep: back and forth
    cine.set_fps(200)
    cine.set_mode("sweep")
    viewer.dims.set_current_step(0, 7)
    seen.clear()
    cine.play()
    qtbot.waitUntil(lambda: len(seen) >= 14, timeout=20_000)
    cine.pause()
    assert [f for _, f in seen][:14] == [8, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3]
    # once: plays to the end and stops there
    cine.set_mode("once")
    viewer.dims.set_current_step(0, 6)
    seen.clear()
    cine.play()
    qtbot.waitUntil(lambda: not cine.playing, timeout=20_000)
    assert [f for _, f in seen] == [7, 8, 9]
    # file rate again: 0 fps in the panel means the file's own
    cine.set_fps(None)
    assert cine.effective_fps() == 20.0


# ---------------------------------------------------------------- flips and rotations


def block_image(corpus, dst):
    """A corpus MR slice with a bright block at BLOCK (asymmetric: wider than tall, upper right)."""
    ds = pydicom.dcmread(corpus / KNEE)
    ds.decompress()
    a = ds.pixel_array.copy()
    y0, x0, y1, x1 = BLOCK
    a[:] = np.minimum(a, 1000)
    a[y0:y1, x0:x1] = 4000
    ds.PixelData = a.tobytes()
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.save_as(dst)
    return dst


def bbox(mask):
    ys, xs = np.nonzero(mask)
    assert len(ys), "nothing found on the canvas"
    return ys.min(), xs.min(), ys.max(), xs.max()


def screen_boxes(viewer):
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
    white = (r > 245) & (g > 245) & (b > 245)
    yellow = (r > 200) & (g > 150) & (g < 235) & (b < 90)
    return bbox(white), bbox(yellow)


def test_flips_and_rotations_change_no_data_and_keep_roi_coordinates(
    make_napari_viewer, qtbot, corpus, tmp_path, cache
):
    path = block_image(corpus, tmp_path / "block.dcm")
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1000, 800)
    viewer.open(str(path), plugin="napari-dcm")
    (img,) = dicom_images(viewer)
    roi = ensure_roi_layer(viewer, img)
    roi.text.visible = False  # the ROI number label is yellow too
    y0, x0, y1, x1 = BLOCK
    roi.add_rectangles([np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float) - 0.5])
    viewer.layers.selection.active = img
    before = export_text(viewer)
    assert ',1,"[[100,300,130,380]]",' in before.splitlines()[1]
    state = [
        (
            np.asarray(l.data[0]).copy() if l is roi else None,
            tuple(l.scale),
            tuple(l.translate),
            l.affine.affine_matrix.copy(),
        )
        for l in (img, roi)
    ]
    vw = viewing(viewer)
    viewer.reset_view()
    qtbot.wait(100)
    (w0, k0) = screen_boxes(viewer)
    tall = lambda b: (b[2] - b[0]) > (b[3] - b[1])  # noqa: E731
    assert not tall(w0)
    ops = [
        ("flip_h", lambda: vw.view.flip_h(), "flipped horizontally", False),
        ("rotate", lambda: vw.view.rotate(True), "rotated 90° anticlockwise, flipped horizontally", True),
        ("flip_v", lambda: vw.view.flip_v(), "rotated 90° clockwise", True),
        ("rotate", lambda: vw.view.rotate(True), "rotated 180°", False),
        ("rotate ccw", lambda: vw.view.rotate(False), "rotated 90° clockwise", True),
        ("reset", lambda: vw.view.reset(), "as stored", False),
    ]
    for name, op, desc, transposed in ops:
        op()
        viewer.reset_view()
        qtbot.wait(100)
        assert vw.view.describe() == desc, name
        white, yellow = screen_boxes(viewer)
        # the ROI's box surrounds the bright block wherever the view puts it
        assert yellow[0] <= white[0] <= yellow[0] + 4 and yellow[2] - 4 <= white[2] <= yellow[2], (name, white, yellow)
        assert yellow[1] <= white[1] <= yellow[1] + 4 and yellow[3] - 4 <= white[3] <= yellow[3], (name, white, yellow)
        assert tall(white) == transposed, name
        # nothing about the layers changed, so the export is the same
        assert export_text(viewer) == before, name
        now = [
            (
                np.asarray(l.data[0]).copy() if l is roi else None,
                tuple(l.scale),
                tuple(l.translate),
                l.affine.affine_matrix,
            )
            for l in (img, roi)
        ]
        for a, b in zip(state, now):
            assert (a[0] is None or np.array_equal(a[0], b[0])) and a[1:3] == b[1:3] and np.array_equal(a[3], b[3])
    # the block moved as the view says: clockwise rotation puts the upper-right block on the lower right
    vw.view.rotate(True)
    viewer.reset_view()
    qtbot.wait(100)
    white, _ = screen_boxes(viewer)
    h, w = viewer.canvas.size
    assert white[0] > h / 2 and white[1] > w / 2
    # drawing in a rotated, flipped view: a box dragged around what is seen is the block in data coordinates
    vw.view.flip_h()
    viewer.reset_view()
    qtbot.wait(100)
    white, _ = screen_boxes(viewer)
    roi.data = []
    draw_roi(viewer)
    drag(viewer, qtbot, (white[1] - 0.5, white[0] - 0.5), (white[3] + 1.5, white[2] + 1.5))
    got = rd.controller(roi).rs.rois
    assert len(got) == 1
    assert all(abs(a - b) <= 1 for a, b in zip(got[0]["box"], BLOCK)), got[0]["box"]


# ---------------------------------------------------------------- keys


def test_key_table_names_the_napari_bindings_it_replaces(make_napari_viewer):
    """Every review key that napari binds (on the viewer or a layer class) says so in the table."""
    from napari.components import ViewerModel
    from napari.layers import Image, Labels, Points, Shapes
    from napari.utils.key_bindings import coerce_keybinding

    def bound(cls):
        out = {}
        for c in cls.__mro__:
            for k in getattr(c, "class_keymap", {}):
                out.setdefault(str(k), c.__name__)
        return out

    classes = {"viewer": ViewerModel, "Image": Image, "Shapes": Shapes, "Labels": Labels, "Points": Points}
    maps = {name: bound(cls) for name, cls in classes.items()}
    for key, _action, replaced in keymod.REVIEW_KEYS:
        k = str(coerce_keybinding(key))
        napari_has = [name for name, m in maps.items() if k in m]
        if not napari_has:
            assert replaced == "none", (key, replaced)
        for name in napari_has:
            assert name in replaced, f"{key}: napari's {name} binds it; the table says {replaced!r}"
    # Left/Right stay napari's own
    assert "Left" in maps["viewer"] and "Left" not in [k for k, _, _ in keymod.REVIEW_KEYS]


def test_keys_do_what_the_help_says(make_napari_viewer, qtbot, corpus, tmp_path, cache):
    tree = make_case_tree(corpus, tmp_path / "root")
    viewer = make_napari_viewer(show=True)
    dock = cases_dock(viewer)
    idx = dock.load(tree["root"], background=False, open_first=False)
    dock.layout_combo.setCurrentText("none")
    dock.open_case(4)  # the cine: 10 frames
    vw = viewing(viewer)
    img = dicom_images(viewer)[0]
    roi = [l for l in viewer.layers if keys.ROI in l.metadata][0]
    help_text = keymod.help_text()
    for key, action, _ in keymod.REVIEW_KEYS:
        assert f"{key}" in help_text and action in help_text

    def with_active(layer):
        viewer.layers.selection.active = layer

    # tools, with the image active and with its ROI layer active (napari's Shapes keys lose there)
    for active in (img, roi):
        with_active(active)
        press(viewer, qtbot, "W")
        assert vw.tool == "wl" and wl_mode(viewer).active
        press(viewer, qtbot, "W")
        assert vw.tool == "pan" and not wl_mode(viewer).active
        with_active(active)
        press(viewer, qtbot, "Z")
        assert vw.tool == "zoom" and vw._drag in viewer.mouse_drag_callbacks
        press(viewer, qtbot, "S")
        assert vw.tool == "scroll" and not img.mouse_pan
        press(viewer, qtbot, "P")
        assert vw.tool == "pan" and vw._drag not in viewer.mouse_drag_callbacks and img.mouse_pan
        assert str(roi.mode) == "pan_zoom"  # P did not start a polygon
    press(viewer, qtbot, "R")
    assert vw.tool == "roi" and viewer.layers.selection.active is roi and str(roi.mode) == "add_rectangle"
    press(viewer, qtbot, "R")
    assert str(roi.mode) == "select"
    press(viewer, qtbot, "P")
    # frames
    with_active(img)
    viewer.dims.set_current_step(0, 4)
    press(viewer, qtbot, "]")
    assert viewer.dims.current_step[0] == 5
    press(viewer, qtbot, "[")
    press(viewer, qtbot, "[")
    assert viewer.dims.current_step[0] == 3
    with_active(roi)
    press(viewer, qtbot, "]")
    assert viewer.dims.current_step[0] == 4
    # Space: play / pause
    press(viewer, qtbot, "Space")
    assert vw.cine.playing
    qtbot.waitUntil(lambda: viewer.dims.current_step[0] != 4, timeout=20000)
    press(viewer, qtbot, "Space")
    assert not vw.cine.playing
    # Home (and double-click): fit, no flip/rotation, header window
    vw.view.rotate()
    viewer.scene.camera.zoom *= 4
    img.contrast_limits = (0, 1)
    press(viewer, qtbot, "Home")
    fitted = viewer.scene.camera.zoom
    assert vw.view.is_identity and img.contrast_limits != [0, 1]
    viewer.reset_view()
    assert viewer.scene.camera.zoom == pytest.approx(fitted)
    vw.view.flip_v()
    viewer.scene.camera.zoom *= 3
    with_active(img)
    center = [s / 2 for s in viewer.canvas.size[::-1]]
    mouse(viewer, QEvent.Type.MouseButtonPress, center)
    mouse(viewer, QEvent.Type.MouseButtonRelease, center, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    mouse(viewer, QEvent.Type.MouseButtonDblClick, center)
    mouse(viewer, QEvent.Type.MouseButtonRelease, center, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    qtbot.wait(20)
    assert vw.view.is_identity and viewer.scene.camera.zoom == pytest.approx(fitted)
    # cases: PageDown / PageUp, M
    press(viewer, qtbot, "PageDown")
    assert dock.current is idx[4]
    press(viewer, qtbot, "PageUp")
    assert dock.current is idx[3]
    press(viewer, qtbot, "M")
    assert idx[3].reviewed
    press(viewer, qtbot, "M")
    assert not idx[3].reviewed
    # H: the help overlay
    press(viewer, qtbot, "H")
    ov = viewer.canvas.overlays["napari_dcm_help"]
    assert ov.visible and ov.text == help_text
    press(viewer, qtbot, "H")
    assert not ov.visible
