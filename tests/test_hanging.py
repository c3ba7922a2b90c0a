"""Mammography hangings: named slots, missing views, off-grid images, one physical scale,
chest walls meeting in the middle (rules, and a real viewer's screenshots)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import napari_dcm
from mammo_sets import FFDM, FILM, Bases, four_view, write_view
from napari_dcm._qt import dicom_dock as dd
from napari_dcm._qt import hanging
from napari_dcm.dicom import mammo

MAGENTA = (255, 0, 255)


@pytest.fixture(scope="session")
def bases(corpus):
    return Bases(corpus, factor=4)


@pytest.fixture
def study(bases, tmp_path):
    return four_view(bases, tmp_path / "current")


# ---------------------------------------------------------------- the rules


def test_four_view_slots_cells_flips(study):
    lay = napari_dcm.mammo_layout([study[k] for k in ("LMLO", "RCC", "RMLO", "LCC")])  # any order in
    assert (lay.name, lay.grid) == ("2x2", (2, 2))
    assert [(s.cell, s.name, s.label) for s in lay.slots] == [
        (0, "RCC", "RCC"),
        (1, "LCC", "LCC"),
        (2, "RMLO", "RMLO"),
        (3, "LMLO", "LMLO"),
    ]
    got = {p.path: (p.slot, p.cell, p.flip_h, p.flip_v, p.align) for p in lay.placements}
    # the FFDM base is a right breast (rows toward posterior): the left views are mirrored
    assert got[str(study["RCC"])] == ("RCC", 0, False, False, "right")
    assert got[str(study["LCC"])] == ("LCC", 1, True, False, "left")
    assert got[str(study["RMLO"])] == ("RMLO", 2, False, False, "right")
    assert got[str(study["LMLO"])] == ("LMLO", 3, True, False, "left")
    assert lay.off_grid == []


@pytest.mark.parametrize("missing", ["RCC", "LCC", "RMLO", "LMLO"])
def test_three_view_leaves_the_missing_cell_empty(bases, tmp_path, missing):
    paths = four_view(bases, tmp_path / "s", skip=(missing,))
    lay = mammo.mammo_layout(list(paths.values()))
    assert lay.name == "2x2"
    slots = {s.name: s for s in lay.slots}
    assert slots[missing].missing and slots[missing].path is None
    for name, path in paths.items():
        assert slots[name].path == str(path)
        p = lay.placement(str(path))
        assert p.cell == ["RCC", "LCC", "RMLO", "LMLO"].index(name) and p.slot == name
        assert p.align == ("right" if name[0] == "R" else "left")


@pytest.mark.parametrize("view", ["CC", "MLO"])
def test_four_view_as_1x2_of_one_view(study, view):
    lay = napari_dcm.mammo_layout(list(study.values()), layout="1x2", view=view)
    assert (lay.name, lay.grid, lay.view) == ("1x2", (1, 2), view)
    assert [(s.name, s.path) for s in lay.slots] == [
        (f"R{view}", str(study[f"R{view}"])),
        (f"L{view}", str(study[f"L{view}"])),
    ]
    other = "MLO" if view == "CC" else "CC"
    for lat in "RL":
        p = lay.placement(str(study[f"{lat}{other}"]))
        assert p.cell is None and p.slot is None and p.reason == f"{other} is not the {view} of this 1x2"
    # a set of one view hangs as a 1x2 of it by itself
    auto = mammo.mammo_layout([study[f"R{view}"], study[f"L{view}"]])
    assert (auto.name, auto.view) == ("1x2", view)


def test_current_over_prior_2x4(bases, tmp_path, study):
    prior = four_view(bases, tmp_path / "prior", date="20220310")
    older = write_view(bases, tmp_path / "older.dcm", "CC", "R", date="20190101", inst=7)
    lay = mammo.mammo_layout(list(prior.values()) + [older] + list(study.values()))
    assert (lay.name, lay.grid) == ("2x4", (2, 4))
    assert [s.label for s in lay.slots] == [
        "RCC 2024-01-01",
        "LCC 2024-01-01",
        "RMLO 2024-01-01",
        "LMLO 2024-01-01",
        "RCC 2022-03-10",
        "LCC 2022-03-10",
        "RMLO 2022-03-10",
        "LMLO 2022-03-10",
    ]
    assert [s.path for s in lay.slots] == [str(study[k]) for k in ("RCC", "LCC", "RMLO", "LMLO")] + [
        str(prior[k]) for k in ("RCC", "LCC", "RMLO", "LMLO")
    ]
    p = lay.placement(str(older))
    assert p.cell is None and p.reason == "study date 2019-01-01 (not in this layout)"
    # a 2x2 of the same images shows the current study; the priors are off the grid
    lay = mammo.mammo_layout(list(prior.values()) + list(study.values()), layout="2x2")
    assert [s.path for s in lay.slots] == [str(study[k]) for k in ("RCC", "LCC", "RMLO", "LMLO")]
    assert {p.reason for p in lay.off_grid} == {"study date 2022-03-10 (not in this layout)"}


def test_extra_views_go_off_the_grid_and_can_be_assigned(bases, tmp_path, study):
    spot = write_view(bases, tmp_path / "spot.dcm", "CC", "R", modifier="spot", inst=8)
    xccl = write_view(bases, tmp_path / "xccl.dcm", "XCCL", "L", inst=9)
    second = write_view(bases, tmp_path / "rcc2.dcm", "CC", "R", inst=10)  # a repeat: the later one hangs
    paths = [*study.values(), spot, xccl, second]
    lay = mammo.mammo_layout(paths)
    assert lay.name == "2x2"
    assert lay.slots[0].path == str(second)
    reasons = {p.path: p.reason for p in lay.off_grid}
    assert reasons == {
        str(spot): "spot compression",
        str(xccl): "XCCL is not a slot of 2x2",
        str(study["RCC"]): "another RCC hangs in its cell (InstanceNumber 10)",
    }
    # an off-grid image assigned to a cell replaces the image there, which goes off the grid
    lay = mammo.mammo_layout(paths, assign={str(spot): 0})
    assert lay.slots[0].path == str(spot) and lay.placement(str(spot)).slot == "RCC"
    assert lay.placement(str(second)).reason == "replaced in RCC by an assignment"
    # an image on the grid assigned to another cell swaps with its occupant; None takes it off
    lay = mammo.mammo_layout(paths, assign={str(study["LMLO"]): 2, str(study["LCC"]): None})
    assert lay.slots[2].path == str(study["LMLO"]) and lay.slots[3].path == str(study["RMLO"])
    assert lay.slots[1].missing and lay.placement(str(study["LCC"])).reason == "taken off the grid"
    # 1x3: R and L of one view and the first extra of that view
    lay = mammo.mammo_layout(paths, layout="1x3", view="CC")
    assert [(s.name, s.path) for s in lay.slots] == [
        ("RCC", str(second)),
        ("LCC", str(study["LCC"])),
        ("extra", str(spot)),
    ]
    with pytest.raises(ValueError, match="cell 4"):
        mammo.mammo_layout(paths, assign={str(spot): 4})


def test_contradictory_tags_follow_the_documented_precedence(bases, tmp_path):
    a = write_view(bases, tmp_path / "a.dcm", "CC", "R", SeriesDescription="L CC")
    b = write_view(bases, tmp_path / "b.dcm", "CC", "L", view_code=False)
    ds = pydicom.dcmread(b)
    ds.ViewCodeSequence = pydicom.Sequence([_code("399368009", "medio-lateral oblique")])
    ds.Laterality = "R"
    ds.save_as(b)
    lay = mammo.mammo_layout([a, b])
    pa, pb = lay.placement(str(a)), lay.placement(str(b))
    assert (pa.laterality, pa.view) == ("R", "CC")
    assert pa.conflicts == ["laterality: ImageLaterality R, SeriesDescription L"]
    assert (pb.laterality, pb.view) == ("L", "CC")
    assert pb.conflicts == [
        "laterality: ImageLaterality L, Laterality R",
        "view: ViewPosition CC, ViewCodeSequence MLO",
    ]
    # placed, never dropped
    assert pa.cell == 0 and pb.cell == 1


def _code(value, meaning):
    from mammo_sets import code_item

    return code_item(value, meaning)


def test_view_sources_and_codes(bases, tmp_path, corpus):
    # ViewCodeSequence alone (SNOMED CT and SNOMED-RT), descriptions, and the CBIS-DDSM film
    a = write_view(bases, tmp_path / "a.dcm", None, "R")
    ds = pydicom.dcmread(a)
    ds.ViewCodeSequence = pydicom.Sequence([_code("R-10226", "medio-lateral oblique")])
    ds.save_as(a)
    b = write_view(bases, tmp_path / "b.dcm", None, None, SeriesDescription="MAMMO LMLOID")
    c = write_view(bases, tmp_path / "c.dcm", None, "L", SeriesDescription="L XCCL")
    lay = mammo.mammo_layout([a, b, c, corpus / FILM])
    got = {p.path: (p.laterality, p.view, p.modifiers) for p in lay.placements}
    assert got[str(a)] == ("R", "MLO", [])
    assert got[str(b)] == ("L", "MLO", ["implant displaced"])
    assert got[str(c)] == ("L", "XCCL", [])
    assert got[str(corpus / FILM)] == ("L", "CC", [])  # Laterality L, PatientOrientation "CC"


def test_physical_spacing_precedence(bases, tmp_path, corpus):
    ffdm = mammo.header_values(str(corpus / FFDM))
    (sy, sx), src, nominal = mammo.physical_spacing(ffdm)
    assert (sy, sx) == pytest.approx((0.09409090909091, 0.09409090909091)) and not nominal
    oob = mammo.header_values(str(corpus / "mammography" / "OutOfBoundsOverlay.dcm"))
    (sy, _), src, nominal = mammo.physical_spacing(oob)
    assert sy == pytest.approx(0.085 / 1.0433386837881) and src.endswith("EstimatedRadiographicMagnificationFactor")
    assert (
        mammo.physical_spacing({"pixel_spacing": [0.07, 0.07], "imager_pixel_spacing": [0.1, 0.1]})[1] == "PixelSpacing"
    )
    assert mammo.physical_spacing({"nominal_scanned_pixel_spacing": [0.05, 0.05]}) == (
        (0.05, 0.05),
        "NominalScannedPixelSpacing (nominal)",
        True,
    )
    assert mammo.physical_spacing(mammo.header_values(str(corpus / FILM))) == (None, "", True)


def test_breast_extent_of_a_real_mammogram(bases):
    arr, _ = bases.get(FFDM)  # a right MLO: chest wall on the right, background on the left
    right = mammo.breast_extent(arr, chest_wall_right=True)
    assert 0.4 < right < 0.8
    assert mammo.breast_extent(arr[:, ::-1], chest_wall_right=False) == pytest.approx(right)
    assert mammo.breast_extent(np.zeros((50, 40)), True) == 1.0


# ---------------------------------------------------------------- in the viewer


def cell_boxes(shape, grid, spacing):
    """(y0, y1, x0, x1) of every grid cell of a canvas screenshot, row by row."""
    h, w = shape[:2]
    rows, cols = grid
    ch, cw = (h - (rows - 1) * spacing) / rows, (w - (cols - 1) * spacing) / cols
    return [
        (
            round(r * (ch + spacing)),
            round(r * (ch + spacing) + ch),
            round(c * (cw + spacing)),
            round(c * (cw + spacing) + cw),
        )
        for r in range(rows)
        for c in range(cols)
    ]


def image_mask(shot):
    rgb = shot[..., :3].astype(int)
    return np.abs(rgb - np.array(MAGENTA)).sum(axis=-1) > 60


def check_cells(shot, lay, min_fill=0.8):
    """Each hung image: chest wall on the inner cell edge, >= min_fill of the cell's height;
    each empty cell: nothing but its label. Returns {cell: (fill, edge gap px)}."""
    import os

    if os.environ.get("NAPARI_DCM_SHOTS"):  # keep the screenshots to look at
        from PIL import Image

        n = len(os.listdir(os.environ["NAPARI_DCM_SHOTS"]))
        Image.fromarray(shot).save(os.path.join(os.environ["NAPARI_DCM_SHOTS"], f"{n:03d}_{lay.name}.png"))
    mask = image_mask(shot)
    out = {}
    for s, (y0, y1, x0, x1) in zip(lay.slots, cell_boxes(shot.shape, lay.grid, hanging.SPACING_PX)):
        cell = mask[y0:y1, x0:x1]
        ch, cw = cell.shape
        if s.missing:
            assert cell[ch // 8 :].mean() < 0.002, (s.name, cell.mean())  # below its label: empty
            continue
        p = lay.placement(s.path)
        cols = np.nonzero(cell[ch // 8 :].any(axis=0))[0]
        if p.align == "right":
            gap = cw - 1 - cols.max()
            inner = cell[:, int(cw * 0.75) :]
        else:
            gap = cols.min()
            inner = cell[:, : int(cw * 0.25)]
        rows = np.nonzero(inner.any(axis=1))[0]
        fill = (rows.max() - rows.min() + 1) / ch
        assert gap <= 2, (s.name, gap)
        assert fill >= min_fill, (s.name, fill)
        out[s.cell] = (fill, gap)
    return out


def big_viewer(make_napari_viewer):
    """A shown viewer in a window as large as the Xvfb screen (1280 x 1024)."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 960)
    return viewer


def shot_of(viewer):
    from qtpy.QtWidgets import QApplication

    viewer.canvas.background_color_override = "magenta"
    QApplication.processEvents()
    return viewer.screenshot(canvas_only=True, flash=False)


def units_warnings():
    from napari.utils.notifications import notification_manager

    return [n for n in notification_manager.records if "Inconsistent units" in str(n.message)]


@pytest.mark.viewer
def test_hang_2x2_in_the_viewer(make_napari_viewer, study):
    from napari.layers import Image

    viewer = big_viewer(make_napari_viewer)
    napari_dcm.view([str(study[k]) for k in ("LMLO", "LCC", "RMLO", "RCC")], viewer=viewer)
    data_before = {l.name: np.asarray(l.data).copy() for l in viewer.layers}
    n_warn = len(units_warnings())
    dock = dd.dicom_dock(viewer)
    lay = dock.layout_tab.hang()
    assert lay.name == "2x2"
    grid = viewer.canvas.grid
    assert grid.enabled and tuple(grid.shape) == (2, 2) and grid.stride == 3  # image, ROIs, label
    images = [l for l in viewer.layers if isinstance(l, Image)]
    assert [(l.metadata["image_laterality"], l.metadata["view_position"]) for l in images] == [
        ("R", "CC"),
        ("L", "CC"),
        ("R", "MLO"),
        ("L", "MLO"),
    ]
    labels = [l for l in viewer.layers if "napari_dcm_slot" in l.metadata]
    assert [l.name for l in labels] == ["RCC", "LCC", "RMLO", "LMLO"]
    assert all(l.name_overlay.visible for l in labels)
    assert [str(l.name_overlay.position) for l in labels] == ["top_left", "top_right"] * 2
    # one physical scale in mm, flips through the transform, data unchanged
    for l in images:
        assert tuple(str(u) for u in l.units) == ("pixel", "pixel")  # units untouched: scale in mm
        assert abs(l.scale[-1]) == pytest.approx(0.09409090909091 * 4)
    assert images[1].scale[-1] < 0 and images[0].scale[-1] > 0
    for l in viewer.layers:
        if l.name in data_before:
            assert np.array_equal(np.asarray(l.data), data_before[l.name])
    shot = shot_of(viewer)
    fills = check_cells(shot, lay, min_fill=0.8)
    assert len(fills) == 4
    assert viewer.layers.extent.units is not None and len(units_warnings()) == n_warn
    # the dock lists every cell, nothing off the grid
    assert dock.cells.rowCount() == 4 and dock.layout_tab.off_grid.count() == 0
    # one click back to a single view
    dock.layout_tab.single_view()
    assert not grid.enabled
    assert all(l.scale[-1] > 0 and l.visible for l in viewer.layers)
    assert not any(hanging.PLACEHOLDER in l.metadata for l in viewer.layers)


@pytest.mark.viewer
@pytest.mark.parametrize("missing", ["RCC", "LMLO"])
def test_three_view_cell_left_empty_on_screen(make_napari_viewer, bases, tmp_path, missing):
    paths = four_view(bases, tmp_path / "s", skip=(missing,))
    viewer = big_viewer(make_napari_viewer)
    napari_dcm.view(list(map(str, paths.values())), viewer=viewer)
    lay = hanging.apply_layout(viewer)
    assert lay.name == "2x2" and lay.slots[["RCC", "LCC", "RMLO", "LMLO"].index(missing)].missing
    labels = [l.name for l in viewer.layers if "napari_dcm_slot" in l.metadata]
    assert f"{missing} (missing)" in labels
    check_cells(shot_of(viewer), lay)


@pytest.mark.viewer
def test_hang_1x2_of_each_view_from_the_dock(make_napari_viewer, study, qtbot):
    viewer = big_viewer(make_napari_viewer)
    napari_dcm.view(list(map(str, study.values())), viewer=viewer)
    dock = dd.dicom_dock(viewer)
    tab = dock.layout_tab
    tab.layout_combo.setCurrentText("1x2")
    assert tab.view_combo.isEnabled()
    for view in ("CC", "MLO"):
        tab.view_combo.setCurrentText(view)
        tab.layout_btn.click()
        lay = tab.current_layout
        assert (lay.name, lay.view) == ("1x2", view)
        assert tuple(viewer.canvas.grid.shape) == (1, 2)
        assert [l.name for l in viewer.layers if "napari_dcm_slot" in l.metadata] == [f"R{view}", f"L{view}"]
        assert tab.off_grid.count() == 2
        # beside the dock the canvas is tall and narrow: the breasts fill the cells' width
        check_cells(shot_of(viewer), lay, min_fill=0.4)
    # with the dock closed the canvas is wide: they fill the height
    size0 = viewer.canvas.size
    viewer.window.remove_dock_widget(dock)
    qtbot.waitUntil(lambda: viewer.canvas.size != size0, timeout=20000)
    qtbot.wait(50)
    check_cells(shot_of(viewer), lay)


@pytest.mark.viewer
def test_hang_2x4_current_over_prior_on_screen(make_napari_viewer, bases, tmp_path, study):
    prior = four_view(bases, tmp_path / "prior", date="20220310")
    viewer = big_viewer(make_napari_viewer)
    napari_dcm.view(list(map(str, [*prior.values(), *study.values()])), viewer=viewer)
    lay = hanging.apply_layout(viewer)
    assert lay.name == "2x4" and tuple(viewer.canvas.grid.shape) == (2, 4)
    labels = [l.name for l in viewer.layers if "napari_dcm_slot" in l.metadata]
    assert labels == [s.label for s in lay.slots] and labels[0] == "RCC 2024-01-01" and labels[7] == "LMLO 2022-03-10"
    check_cells(shot_of(viewer), lay, min_fill=0.6)


@pytest.mark.viewer
def test_mixed_spacing_film_beside_ffdm(make_napari_viewer, bases, tmp_path):
    paths = four_view(bases, tmp_path / "s", skip=("LCC",))
    film = write_view(bases, tmp_path / "film.dcm", "CC", "L", base=FILM, spacing="none", inst=9)
    viewer = big_viewer(make_napari_viewer)
    napari_dcm.view([*map(str, paths.values()), str(film)], viewer=viewer)
    shot_of(viewer)  # pixel units beside mm before the hanging: napari warns (at draw time)
    n_warn = len(units_warnings())
    lay = hanging.apply_layout(viewer)
    hang = hanging.current(viewer)
    film_layer = hang.cells[1]
    assert lay.placement(str(film)).nominal and film_layer.name in hang.nominal
    # the film gets its neighbours' height in mm
    heights = {c: img.data.shape[-2] * abs(img.scale[-2]) for c, img in hang.cells.items()}
    assert heights[1] == pytest.approx(heights[0], rel=1e-6)
    assert hang.labels[1].name == f"LCC · {hanging.NOMINAL_LABEL}"
    check_cells(shot_of(viewer), lay)
    assert viewer.layers.extent.units is not None and len(units_warnings()) == n_warn
    # the status bar says the size is nominal
    viewer.layers.selection.active = film_layer
    viewer.status = film_layer.get_status((0.0, 0.0), world=True)
    assert viewer.status["coordinates"].endswith(hanging.NOMINAL_NOTE + "]")
    viewer.status = "x » " + hang.cells[0].name + ": 5"
    assert not viewer.status.endswith("]")


@pytest.mark.viewer
def test_assign_an_off_grid_spot_view_from_the_dock(make_napari_viewer, bases, tmp_path, study, qtbot):
    spot = write_view(bases, tmp_path / "spot.dcm", "CC", "R", modifier="spot", inst=8)
    viewer = big_viewer(make_napari_viewer)
    napari_dcm.view([*map(str, study.values()), str(spot)], viewer=viewer)
    dock = dd.dicom_dock(viewer)
    tab = dock.layout_tab
    lay = tab.hang()
    assert lay.name == "2x2" and tab.off_grid.count() == 1
    item = tab.off_grid.item(0)
    assert item.text().endswith("spot compression")
    spot_name = item.data(hanging_role())
    # drop the off-grid image on the RCC row of the cell table
    from qtpy.QtCore import QMimeData, QPointF, Qt
    from qtpy.QtGui import QDropEvent

    tab.off_grid.setCurrentItem(item)
    rect = tab.cells.visualItemRect(tab.cells.item(0, 1))

    class Drop(QDropEvent):  # what Qt delivers when the item is dropped there
        def source(self):
            return tab.off_grid

    ev = Drop(
        QPointF(rect.center()),
        Qt.DropAction.MoveAction,
        QMimeData(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    tab.cells.dropEvent(ev)
    lay = tab.current_layout
    hang = hanging.current(viewer)
    assert hang.cells[0].name == spot_name and lay.slots[0].path == str(spot)
    assert hang.labels[0].name == "RCC: RCC spot compression 2024-01-01"
    assert tab.off_grid.count() == 1 and "replaced in RCC" in tab.off_grid.item(0).text()
    # the cell's menu puts the RCC back
    combo = tab.cells.cellWidget(0, 2)
    rcc_name = next(l.name for l in hang.images if l.metadata["paths"][0] == str(study["RCC"]))
    combo.setCurrentIndex(combo.findData(rcc_name))
    assert hanging.current(viewer).cells[0].name == rcc_name
    check_cells(shot_of(viewer), tab.current_layout)


def hanging_role():
    from napari_dcm._qt.layout_tab import NAME_ROLE

    return NAME_ROLE


@pytest.mark.viewer
def test_camera_refits_when_the_dock_opens(make_napari_viewer, study, qtbot):
    viewer = big_viewer(make_napari_viewer)
    napari_dcm.view(list(map(str, study.values())), viewer=viewer)
    lay = hanging.apply_layout(viewer)
    qtbot.wait(50)
    rcc = hanging.current(viewer).cells[0]
    size0, tx0 = viewer.canvas.size, rcc.translate[-1]
    check_cells(shot_of(viewer), lay)
    dd.dicom_dock(viewer)
    qtbot.waitUntil(lambda: viewer.canvas.size != size0, timeout=20000)
    qtbot.wait(50)
    assert rcc.translate[-1] != tx0  # the cells got narrower: the right breasts moved
    check_cells(shot_of(viewer), lay)
    # napari's home button (reset view) fits the hanging, not the layers' extent
    viewer.scene.camera.zoom = 0.1
    viewer.reset_view()
    check_cells(shot_of(viewer), lay)


@pytest.mark.viewer
def test_contradictory_tags_flagged_in_the_dock(make_napari_viewer, bases, tmp_path, study):
    study["RCC"] = write_view(bases, tmp_path / "odd.dcm", "CC", "R", po=("P", "L"), SeriesDescription="L CC")
    viewer = big_viewer(make_napari_viewer)
    napari_dcm.view(list(map(str, study.values())), viewer=viewer)
    tab = dd.dicom_dock(viewer).layout_tab
    lay = tab.hang()
    assert lay.slots[0].path == str(study["RCC"])  # placed by ImageLaterality, never dropped
    notes = tab.cells.item(0, 3).text()
    assert "⚠ laterality: ImageLaterality R, SeriesDescription L" in notes
    assert all("⚠" not in tab.cells.item(i, 3).text() for i in (1, 2, 3))
