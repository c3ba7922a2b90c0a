"""The DICOM dock: tags, windows (presets, W/L mouse mode) and mammography layouts."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from napari.layers import Image

import napari_dcm
from napari_dcm._qt import dicom_dock as dd
from napari_dcm._qt import hanging as layoutmod
from napari_dcm._qt.window import current_frame
from napari_dcm.dicom import mammo
from napari_dcm.dicom import tags as tagmod

SRC = "mammography/OutOfBoundsOverlay.dcm"  # 788 x 1318, JPEG lossless


def make_mg(corpus, dst, view, lat, date="20240101", po=("A", "F"), inst=1, patient="MGTEST", **extra):
    ds = pydicom.dcmread(corpus / SRC)
    ds.ViewPosition = view if view else ""
    if not view:
        del ds.ViewPosition
    ds.ImageLaterality = lat
    ds.StudyDate = date
    ds.PatientOrientation = list(po)
    ds.InstanceNumber = inst
    ds.PatientID = patient
    ds.StudyInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[patient, date])
    ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[patient, date, view or "", lat, str(inst)])
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[str(dst)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "ViewCodeSequence" in ds:
        del ds.ViewCodeSequence  # the source's own (CC) would win over SeriesDescription
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.save_as(dst)
    return dst


@pytest.fixture
def four_view(corpus, tmp_path):
    d = tmp_path / "mg4"
    d.mkdir()
    # R images: row direction should point posterior; RMLO is written facing the wrong way
    return {
        "RCC": make_mg(corpus, d / "rcc.dcm", "CC", "R", po=("P", "L"), inst=1),
        "LCC": make_mg(corpus, d / "lcc.dcm", "CC", "L", po=("A", "R"), inst=2),
        "RMLO": make_mg(corpus, d / "rmlo.dcm", "MLO", "R", po=("A", "F"), inst=3),
        "LMLO": make_mg(corpus, d / "lmlo.dcm", "MLO", "L", po=("A", "F"), inst=4),
    }


# ---------------------------------------------------------------- the pure rules


def test_layout_rules_2x2_and_flips(four_view):
    paths = [four_view[k] for k in ("LMLO", "RCC", "RMLO", "LCC")]  # any order in
    lay = napari_dcm.mammo_layout(paths)
    assert lay.name == "2x2" and lay.grid == (2, 2)
    got = {p.path: (p.cell, p.view, p.laterality, p.flip_h, p.align) for p in lay.placements}
    assert got[str(four_view["RCC"])] == (0, "CC", "R", False, "right")
    assert got[str(four_view["LCC"])] == (1, "CC", "L", False, "left")
    assert got[str(four_view["RMLO"])] == (2, "MLO", "R", True, "right")  # faces the wrong way
    assert got[str(four_view["LMLO"])] == (3, "MLO", "L", False, "left")


def test_view_and_laterality_fallbacks(corpus, tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10242", "SRT", "cranio-caudal"
    a = make_mg(corpus, tmp_path / "a.dcm", None, "", ViewCodeSequence=Sequence([code]), Laterality="R")
    b = make_mg(corpus, tmp_path / "b.dcm", None, "L", SeriesDescription="L XCCL")
    c = make_mg(corpus, tmp_path / "c.dcm", None, "L", SeriesDescription="MAMMO L MLO")
    lay = mammo.mammo_layout([a, b, c])
    views = {p.path: (p.view, p.laterality) for p in lay.placements}
    assert views[str(a)] == ("CC", "R") and views[str(b)] == ("CC", "L") and views[str(c)] == ("MLO", "L")
    # 1x3: sorted by view, laterality, InstanceNumber
    assert lay.name == "1x3" and [p.path for p in lay.placements] == [str(a), str(b), str(c)]


def test_1x2_and_2x4(corpus, tmp_path, four_view):
    lay = mammo.mammo_layout([four_view["LCC"], four_view["RCC"]])
    assert lay.name == "1x2" and [p.laterality for p in lay.placements] == ["R", "L"]
    prior = {
        k: make_mg(corpus, tmp_path / f"p_{k}.dcm", k[1:], k[0], date="20220101", po=po)
        for k, po in (("RCC", ("P", "L")), ("LCC", ("A", "R")), ("RMLO", ("P", "F")), ("LMLO", ("A", "F")))
    }
    lay = mammo.mammo_layout(list(prior.values()) + list(four_view.values()))
    assert lay.name == "2x4"
    order = [(p.study_date, p.laterality + p.view) for p in lay.placements]
    assert order == [("20240101", v) for v in ("RCC", "LCC", "RMLO", "LMLO")] + [
        ("20220101", v) for v in ("RCC", "LCC", "RMLO", "LMLO")
    ]
    # other than two dates of four: the given order is kept
    third = make_mg(corpus, tmp_path / "x.dcm", "CC", "R", date="20200101")
    given = list(four_view.values()) + list(prior.values())[:3] + [third]
    lay = mammo.mammo_layout(given)
    assert [p.path for p in lay.placements] == [str(g) for g in given]


# ---------------------------------------------------------------- in the viewer


@pytest.mark.viewer
def test_hang_2x2_alignment_and_order(make_napari_viewer, four_view):
    viewer = make_napari_viewer(show=True)
    for k in ("LMLO", "LCC", "RMLO", "RCC"):
        viewer.open(str(four_view[k]), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    data_before = {l.name: np.asarray(l.data).copy() for l in viewer.layers}
    lay = dock.hang()
    assert lay.name == "2x2"
    grid = viewer.canvas.grid
    assert grid.enabled and tuple(grid.shape) == (2, 2) and grid.stride == 2
    images = [l for l in viewer.layers if isinstance(l, Image)]
    lats = [(l.metadata["image_laterality"], l.metadata["view_position"]) for l in images]
    assert lats == [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]
    # each image is followed by its own ROI layer (grid stride 2)
    kinds = [type(l).__name__.lower() for l in viewer.layers][:8]
    assert kinds == ["image", "shapes"] * 4
    for i in range(4):
        assert viewer.layers[2 * i + 1].metadata["napari_dcm_roi"]["image"] == viewer.layers[2 * i].name
    # chest walls meet in the middle: R right-aligned, L left-aligned (world extents)
    width = 1318 * 0.085
    for l in images:
        ext = l.extent.world[:, -1]
        left, right = ext.min() - 0.5 * 0.085, ext.max() + 0.5 * 0.085
        if l.metadata["image_laterality"] == "R":
            assert np.isclose(right, width)
        else:
            assert np.isclose(left, 0.0)
    # RMLO is flipped through its transform, never its data
    rmlo = images[2]
    assert rmlo.scale[-1] < 0 and images[0].scale[-1] > 0
    for l in viewer.layers:
        if l.name in data_before:
            assert np.array_equal(np.asarray(l.data), data_before[l.name])
    img = viewer.screenshot(canvas_only=True, flash=False)
    h, w = img.shape[:2]
    lit = img[..., :3].max(axis=-1) > 40
    quads = [lit[: h // 2, : w // 2], lit[: h // 2, w // 2 :], lit[h // 2 :, : w // 2], lit[h // 2 :, w // 2 :]]
    assert all(q.mean() > 0.02 for q in quads), [q.mean() for q in quads]
    # manual override: move RCC to cell 3 (swaps with LMLO)
    dock.hang("2x2", {images[0].name: 3})
    now = [l for l in viewer.layers if isinstance(l, Image)]
    assert now[3].name == images[0].name and now[0].name == images[3].name
    # one click back to a single view
    layoutmod.single_view(viewer)
    assert not grid.enabled
    assert all(l.scale[-1] > 0 and l.visible for l in viewer.layers)
    assert not any(layoutmod.PLACEHOLDER in l.metadata for l in viewer.layers)


@pytest.mark.viewer
def test_hang_2x4_current_over_prior(make_napari_viewer, corpus, tmp_path, four_view):
    prior = [
        make_mg(corpus, tmp_path / f"p{k}.dcm", k[1:], k[0], date="20220101", po=("P" if k[0] == "R" else "A", "F"))
        for k in ("RCC", "LCC", "RMLO", "LMLO")
    ]
    viewer = make_napari_viewer(show=False)
    napari_dcm.view(list(map(str, four_view.values())) + list(map(str, prior)), viewer=viewer)
    lay = layoutmod.apply_layout(viewer)
    assert lay.name == "2x4" and tuple(viewer.canvas.grid.shape) == (2, 4)
    images = [l for l in viewer.layers if isinstance(l, Image)]
    assert [l.metadata["study_date"] for l in images] == ["20240101"] * 4 + ["20220101"] * 4


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
    # every label carries its numbers
    assert {
        "Default 40/80",
        "Brain 40/80",
        "Subdural 75/215",
        "Stroke 40/40",
        "Lung -600/1500",
        "Mediastinum 50/350",
        "Abdomen 60/400",
        "Liver 90/150",
        "Bone 480/2500",
        "Angio 300/600",
    } <= set(labels)
    assert any(label.startswith("Full dynamic ") and " to " in label for label in labels)
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
    from qtevents import mouse_drag

    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(sample_study), plugin="napari-dcm")
    dock = dd.dicom_dock(viewer)
    dock.wl_button.setChecked(True)
    text = viewer.canvas.overlays["text"]
    assert dock.wl.active and text.visible
    lo0, hi0 = layer.contrast_limits
    qtbot.wait(50)
    mouse_drag(viewer, (200.0, 200.0), (300.0, 250.0), qtbot=qtbot)  # right (wider) and down (lower center)
    lo1, hi1 = layer.contrast_limits
    assert hi1 - lo1 > hi0 - lo0 and (lo1 + hi1) / 2 < (lo0 + hi0) / 2
    assert text.text.startswith("WC ") and " / WW " in text.text
    dock.wl_button.setChecked(False)
    assert not text.visible
