"""The case navigator in a real viewer (Xvfb) on a case tree made from corpus files: open, edit,
next, back; one export of every case; memory while visiting 20 cases; cases that fail; what is
kept from case to case (tool, window preset, zoom policy); edits restored in a new session."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import numpy as np
import pytest

import napari_dcm
from case_tree import make_case_tree, make_many_mg
from napari_dcm._qt import roi_dock as rd
from napari_dcm._qt import state
from napari_dcm._qt.case_dock import cases_dock, parse_filter_text
from napari_dcm._qt.dicom_dock import dicom_dock
from napari_dcm._qt.viewer import dicom_images, roi_layer_for
from napari_dcm._qt.viewing import viewing
from napari_dcm.dicom.cache import CACHE
from napari_dcm.layers import keys

CSV_HEADER = "anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("NAPARI_DCM_CACHE", str(d))
    return d


@pytest.fixture
def tree(corpus, tmp_path, cache):
    return make_case_tree(corpus, tmp_path / "root")


def box_vertices(y0, x0, y1, x1):
    return np.array([[y0 - 0.5, x0 - 0.5], [y0 - 0.5, x1 - 0.5], [y1 - 0.5, x1 - 0.5], [y1 - 0.5, x0 - 0.5]])


def image_named(viewer, view: str):
    """The image layer of a mammography view ("RCC", ...)."""
    for img in dicom_images(viewer):
        md = img.metadata
        if f"{md.get('image_laterality')}{md.get('view_position')}" == view:
            return img
    raise KeyError(view)


def boxes(viewer, view: str):
    layer = roi_layer_for(viewer, image_named(viewer, view))
    return rd.controller(layer).rs.rois


def settle(qtbot, ms=50):
    qtbot.wait(ms)


def in_loop(qtbot, fn, *args, **kwargs):
    """Run ``fn`` from Qt's event loop, as a key press or a click runs it in napari (widgets
    napari deletes with deleteLater, and the layers they hold, go once control returns to the loop)."""
    from qtpy.QtCore import QTimer

    out = []
    QTimer.singleShot(0, lambda: out.append(fn(*args, **kwargs)))
    qtbot.waitUntil(lambda: bool(out), timeout=120_000)
    qtbot.wait(20)
    return out[0]


def test_open_edit_next_back_keeps_the_edit(make_napari_viewer, qtbot, tree):
    viewer = make_napari_viewer(show=True)
    dd = dicom_dock(viewer)
    dock = cases_dock(viewer)
    idx = dock.load(tree["root"], background=False)
    assert len(idx) == 6 and dock.current is idx[0]
    settle(qtbot)
    # case 1 is a mammography 4-view set: hung 2x2, every image with its ROI layer, nothing else
    assert viewer.canvas.grid.enabled and tuple(viewer.canvas.grid.shape) == (2, 2)
    imgs = dicom_images(viewer)
    assert sorted(img.metadata[keys.PATHS][0] for img in imgs) == idx[0].files
    assert dd.layout_tab.current_layout.name == "2x2"
    viewing(viewer).view.rotate()  # a hanging is not rotated (its cells are placed by chest wall)
    assert viewing(viewer).view.is_identity and tuple(viewer.dims.order) == (0, 1)
    # edit: a box drawn on RCC
    roi = roi_layer_for(viewer, image_named(viewer, "RCC"))
    roi.add_rectangles([box_vertices(100, 200, 150, 300)])
    assert [r["box"] for r in boxes(viewer, "RCC")] == [(100, 200, 150, 300)]
    case1_layers = [weakref.ref(layer) for layer in viewer.layers]
    del imgs, roi
    # next case: case 2's images only
    assert in_loop(qtbot, dock.next_case) is idx[1]
    settle(qtbot)
    assert sorted(img.metadata[keys.PATHS][0] for img in dicom_images(viewer)) == idx[1].files
    assert all(boxes(viewer, v) == [] for v in ("RCC", "LCC", "RMLO", "LMLO"))
    assert dock.model.text(idx[0], 2) == "unexported" and dock.model.text(idx[0], 7) == "1"
    gc.collect()
    assert [r for r in case1_layers if r() is not None] == []
    # back: the edit is there, and the case still has unexported edits
    assert in_loop(qtbot, dock.previous_case) is idx[0]
    settle(qtbot)
    assert [r["box"] for r in boxes(viewer, "RCC")] == [(100, 200, 150, 300)]
    assert all(boxes(viewer, v) == [] for v in ("LCC", "RMLO", "LMLO"))
    assert any(c.dirty for c in rd.controllers(viewer))
    # an edit on the reopened case is kept too
    roi = roi_layer_for(viewer, image_named(viewer, "LMLO"))
    roi.add_rectangles([box_vertices(10, 10, 20, 30)])
    in_loop(qtbot, dock.next_case)
    in_loop(qtbot, dock.previous_case)
    assert [r["box"] for r in boxes(viewer, "LMLO")] == [(10, 10, 20, 30)]
    assert [r["box"] for r in boxes(viewer, "RCC")] == [(100, 200, 150, 300)]
    # mark reviewed (key M does this), hide reviewed: case 1 leaves the list, the next is case 2
    dock.toggle_reviewed()
    assert idx[0].reviewed and dock.model.text(idx[0], 1) == "✓"
    dock.hide_reviewed.setChecked(True)
    assert idx[0] not in dock.visible_cases
    assert in_loop(qtbot, dock.next_case) is idx[1]


def test_one_export_of_every_case(make_napari_viewer, qtbot, tree, tmp_path):
    root = tree["root"]
    rows = [
        'P002/S20240301/lcc.dcm,1,"[[10,20,30,40]]",[]',  # edited in the viewer
        'P001/S20240101/rmlo.dcm,2,"[[1,2,3,4],[5,6,7,8]]",[]',  # untouched
        'P009/S1/gone.dcm,1,"[[1,1,2,2]]",[]',  # missing file: kept as it is
        'P003/CINE/cine.dcm,1,"[[3,3,9,9]]","[[2,4]]"',  # untouched, in a case never opened
        'P001/S20240101/lcc.dcm,1,"[[50,60,70,80]]",[]',  # untouched in a visited case
    ]
    csv = tmp_path / "rois.csv"
    csv.write_text(CSV_HEADER + "".join(r + "\n" for r in rows))
    viewer = make_napari_viewer(show=True)
    dock = cases_dock(viewer)
    dock.layout_combo.setCurrentText("none")  # (hanging is tested above)
    idx = dock.load(csv, root=root, background=False)
    assert [c.patient_id for c in idx] == ["P002", "P001", "", "P003"]
    assert dock.current is idx[0]
    # the imported box is shown on P002's LCC; move it
    (roi,) = boxes(viewer, "LCC")
    assert roi["box"] == (10, 20, 30, 40)
    layer = roi_layer_for(viewer, image_named(viewer, "LCC"))
    layer.data = [box_vertices(12, 22, 32, 42)]
    assert [r["box"] for r in boxes(viewer, "LCC")] == [(12, 22, 32, 42)]
    # next case (P001): its imported boxes; a new box on RCC (a file without a row)
    assert in_loop(qtbot, dock.next_case) is idx[1]
    assert [r["box"] for r in boxes(viewer, "RMLO")] == [(1, 2, 3, 4), (5, 6, 7, 8)]
    rcc_roi = roi_layer_for(viewer, image_named(viewer, "RCC"))
    rcc_roi.add_rectangles([box_vertices(100, 200, 300, 400)])
    rd.controller(rcc_roi).set_scope("all", [0])  # an all-frames ROI: ROI_frames []
    del rcc_roi
    # the missing-file case fails to open and the navigator moves on to P003
    assert in_loop(qtbot, dock.next_case) is idx[3]
    assert "missing" in idx[2].open_error or "no readable" in idx[2].open_error
    out = dock.export_all(tmp_path / "all.csv")
    expected = CSV_HEADER + "".join(
        r + "\n"
        for r in [
            'P002/S20240301/lcc.dcm,1,"[[12,22,32,42]]",[]',
            rows[1],
            rows[2],
            rows[3],
            rows[4],
            'P001/S20240101/rcc.dcm,1,"[[100,200,300,400]]",[]',
        ]
    )
    assert Path(out).read_bytes().decode() == expected
    assert not any(idx.dirty(c) for c in idx) and dock.model.text(idx[0], 2) == ""
    # the source CSV is never overwritten
    assert dock.export_all(csv, overwrite=False) is None
    assert csv.read_text() == CSV_HEADER + "".join(r + "\n" for r in rows)


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


RSS_BOUND_MIB = 100


def test_visiting_20_cases_keeps_nothing_of_earlier_cases(make_napari_viewer, qtbot, corpus, tmp_path, cache):
    """Memory bound: from case 2 (imports, GL and caches warm) to case 20, RSS grows by less than
    RSS_BOUND_MIB.  Each case shows two 788 x 1318 mammograms (4 MiB of uint16 pixels, 8 MiB
    more as float32 textures), so keeping the 18 cases in between would add about 200 MiB; and
    no layer, decoded frame or dask-cached chunk of an earlier case is left.  (One view per case:
    test_open_edit_next_back_keeps_the_edit checks that a hung 4-view case goes entirely.)"""
    make_many_mg(corpus, tmp_path / "many", 20, views=("RCC", "LCC"))
    viewer = make_napari_viewer(show=True)
    dock = cases_dock(viewer)
    dock.layout_combo.setCurrentText("none")
    idx = dock.load(tmp_path / "many", background=False)
    assert len(idx) == 20
    from napari.utils import resize_dask_cache

    refs: list = []
    rss = []
    dask_cached = []  # bytes in napari's dask cache with each case shown
    for i in range(20):
        if i:
            assert in_loop(qtbot, dock.next_case) is idx[i]
        settle(qtbot, 80)
        imgs = dicom_images(viewer)
        assert len(imgs) == 2 and all(img.loaded for img in imgs)
        for img in imgs:  # the shown frames were decoded (napari drew them)
            np.asarray(img.data)
        refs.append([weakref.ref(layer) for layer in viewer.layers])
        del imgs, img
        gc.collect()
        rss.append(rss_mib())
        dask_cached.append(resize_dask_cache().cache.total_bytes)
    growth = max(rss[1:]) - rss[1]
    print(f"RSS per case (MiB): {[round(r) for r in rss]}; growth from case 2: {growth:.0f} MiB")
    assert growth < RSS_BOUND_MIB, rss
    gc.collect()
    alive = [r() for case in refs[:-1] for r in case if r() is not None]
    assert alive == []
    current = set(idx[19].files)
    assert all(key[0].path in current for key in list(CACHE._d)), "decoded frames of an earlier case kept"
    # napari's dask cache holds what the shown case computed, never the cases before it
    assert max(dask_cached[1:]) <= 2 * max(dask_cached[1], 1), dask_cached


def test_a_case_that_fails_shows_its_error_and_the_navigator_moves_on(make_napari_viewer, qtbot, tree):
    viewer = make_napari_viewer(show=True)
    dock = cases_dock(viewer)
    idx = dock.load(tree["root"], background=False, open_first=False)
    assert in_loop(qtbot, dock.open_case, 5) is idx[4]  # the knee
    # case 6 (a truncated file) cannot open: its error is in the list and the knee stays on screen
    assert in_loop(qtbot, dock.next_case) is None
    assert "pixel data runs" in idx[5].open_error and "truncated.dcm" in dock.model.tooltip(idx[5], 8)
    assert dock.model.text(idx[5], 8) == "cannot open"
    assert dock.current is idx[4] and len(dicom_images(viewer)) == 1
    # going backwards from it, the navigator moves on to case 5
    assert in_loop(qtbot, dock.open_case, 6, direction=-1) is idx[4]


def test_tool_window_preset_and_zoom_policy_are_kept(make_napari_viewer, qtbot, tree):
    viewer = make_napari_viewer(show=True)
    dd = dicom_dock(viewer)
    dock = cases_dock(viewer)
    idx = dock.load(tree["root"], background=False, open_first=False)
    dock.layout_combo.setCurrentText("none")
    dock.zoom_combo.setCurrentText("keep")
    in_loop(qtbot, dock.open_case, 4)  # the cine (one MR image, 10 frames)
    vw = viewing(viewer)
    vw.set_tool("zoom")
    img = dicom_images(viewer)[0]
    viewer.layers.selection.active = img
    dd.refresh_presets()
    dd.choose_preset("Full dynamic")
    dd.preset.setCurrentText("Full dynamic")
    viewer.scene.camera.zoom = 3.25
    assert in_loop(qtbot, dock.open_case, 5) is idx[4]  # the knee
    knee = dicom_images(viewer)[0]
    assert vw.tool == "zoom" and vw._drag in viewer.mouse_drag_callbacks
    assert all(layer.mouse_pan is False for layer in viewer.layers)
    assert viewer.scene.camera.zoom == pytest.approx(3.25)
    frame = np.asarray(knee.data[viewer.dims.current_step[0]])
    assert knee.contrast_limits == pytest.approx([float(frame.min()), float(frame.max())])
    # fit: the next case is fitted again
    dock.zoom_combo.setCurrentText("fit")
    in_loop(qtbot, dock.open_case, 4)
    assert viewer.scene.camera.zoom != pytest.approx(3.25)
    # flips and rotations start afresh with each case
    vw.view.rotate()
    in_loop(qtbot, dock.open_case, 5)
    assert vw.view.is_identity and tuple(viewer.dims.order) == (0, 1, 2)


def test_filter_field_text(make_napari_viewer, qtbot, tree):
    viewer = make_napari_viewer(show=True)
    dock = cases_dock(viewer)
    dock.load(tree["root"], background=False, open_first=False)
    dock.set_filter('modality=MG patient_id="P001"')
    assert [c.number for c in dock.visible_cases] == [1, 2]
    dock.set_filter("genou")
    assert [c.number for c in dock.visible_cases] == [5]
    dock.set_filter("laterality=R")
    assert "unknown filter field" in dock.status.text() and [c.number for c in dock.visible_cases] == [5]
    assert parse_filter_text("modality=CT  brain") == ([("modality", "CT")], ["brain"])


def test_edits_come_back_in_a_new_session(make_napari_viewer, qtbot, tree, monkeypatch):
    monkeypatch.setattr(rd, "confirm", lambda *a: True)  # "close with unexported edits?" yes
    v1 = make_napari_viewer(show=True)
    dock = cases_dock(v1)
    dock.layout_combo.setCurrentText("none")  # (hanging is tested above)
    dock.load(tree["root"], background=False)
    roi_layer_for(v1, image_named(v1, "LCC")).add_rectangles([box_vertices(5, 5, 25, 45)])
    in_loop(qtbot, dock.next_case)  # recorded in the index
    roi_layer_for(v1, image_named(v1, "RMLO")).add_rectangles([box_vertices(7, 7, 17, 17)])
    # the session ends without leaving case 2 (its edit is only in the autosave) and without export
    v1.close()
    v2 = make_napari_viewer(show=True)
    dock2 = cases_dock(v2)
    dock2.layout_combo.setCurrentText("none")
    idx = dock2.load(tree["root"], background=False, open_first=False)
    assert idx.dirty(idx[0]) and any("not exported" in n for n in idx.notes)
    in_loop(qtbot, dock2.open_case, 1)
    assert [r["box"] for r in boxes(v2, "LCC")] == [(5, 5, 25, 45)]
    in_loop(qtbot, dock2.open_case, 2)  # restored from the autosave, without asking
    assert [r["box"] for r in boxes(v2, "RMLO")] == [(7, 7, 17, 17)]
    assert not [w for w in state.of(v2).docks.values() if getattr(w, "restore_btn", None) is not None]


@pytest.mark.viewer
def test_cli_cases(tree, tmp_path, cache):
    import subprocess
    import sys

    from imageio.v3 import imread

    exe = os.path.join(os.path.dirname(sys.executable), "napari-dcm")
    shot = tmp_path / "shot.png"
    r = subprocess.run(
        [
            exe,
            "--cases",
            str(tree["root"]),
            "--filter",
            "modality=MG",
            "--hang",
            "2x2",
            "--screenshot",
            str(shot),
            "--exit",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "napari-dcm: case 1 of 6: P001 · 2022-01-01 · MG · MAMMO SCREENING" in r.stdout
    img = imread(shot)
    assert img.shape[0] > 300 and (img[..., :3].max(axis=-1) > 30).mean() > 0.05
    bad = subprocess.run([exe, "--cases", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no such file" in bad.stderr
    # the API without a viewer: a list of paths works too
    assert len(napari_dcm.cases([tree["P001_current"]["RCC"], tree["cine"]])) == 2
