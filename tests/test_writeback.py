"""DICOM write-back: EMBED ROIs as TID 1500 SR and GSPS, labels as SEG (highdicom).

Every object written here passes dciodvfy with no errors, has fresh UIDs, the
referenced image's patient and study, leaves its sources byte-identical, and
reads back through ``napari_dcm.read`` to exactly the boxes (pixel edges and
frames) and label voxels it was written from.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

import napari_dcm
from napari_dcm.dicom import overlays as ov
from napari_dcm.dicom import writeback as wb
from napari_dcm.dicom.embed import EmbedRow, Roi, read_embed_csv
from napari_dcm.layers import keys
from napari_dcm.layers.roi_export import collect_rows, export_text
from napari_dcm.layers.rois import box_vertices, roi_layer_tuple
from synth import write_multiframe, write_plain_image

MAMMO = "mammography/GH133.dcm"  # FFDM (GE), R MLO, 3062 x 2394, JPEG lossless
KNEE = "ct_mr_series/orthanc_Knee_T1"  # 24-slice MR series, JPEG 2000
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hashes(paths) -> dict:
    return {str(p): sha(p) for p in paths}


def clean(dciodvfy, path):
    errors, warnings = dciodvfy(path)
    assert errors == [], f"{path}: {errors}"
    return warnings


def roi_layers(layers):
    return [t for t in layers if keys.ROI in t[1].get("metadata", {})]


def overlay_layers(layers, kind):
    return [t for t in layers if (t[1].get("metadata", {}).get(keys.OVERLAY) or {}).get("kind") == kind]


def verts(layer_tuple) -> list:
    """The rectangles of a shapes layer tuple as sorted lists (order-free, exact)."""
    return sorted(np.asarray(v, dtype=float).tolist() for v in layer_tuple[0])


def with_rois(path, boxes_frames, extra=None):
    """``read(path)`` plus an ROI layer holding ``boxes_frames`` [(box, frames or None)]."""
    img = napari_dcm.read(path)[0]
    row = EmbedRow(path=str(path), rois=[Roi(tuple(b), f) for b, f in boxes_frames], extra=dict(extra or {}))
    return [img, roi_layer_tuple(img, {str(path): row})]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Saving an SR removes the ROIs' autosave: in the test's own cache directory."""
    monkeypatch.setenv("NAPARI_DCM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def mammo(corpus) -> Path:
    return corpus / MAMMO


@pytest.fixture
def dbt(tmp_path) -> Path:
    """A DBT-like Breast Tomosynthesis object (Enhanced, per-frame positions), 9 frames."""
    (tmp_path / "src").mkdir(exist_ok=True)
    return write_multiframe(tmp_path / "src" / "dbt.dcm", frames=9, rows=96, cols=64)


@pytest.fixture
def reversed_mf(tmp_path) -> Path:
    """Six frames whose display order is the reverse of the stored order (with the frame of
    reference and pixel measures a Segmentation of a tomosynthesis object needs)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    path = write_plain_image(tmp_path / "src" / "rev.dcm", rows=32, cols=24, frames=6, reverse_positions=True)
    ds = pydicom.dcmread(path)
    ds.FrameOfReferenceUID = pydicom.uid.generate_uid(entropy_srcs=["rev-for"])
    pm = Dataset()
    pm.PixelSpacing, pm.SliceThickness = [0.5, 0.5], 1.0
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = Sequence([pm])
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------- geometry


def test_box_polyline_is_exact_and_invertible():
    rng = np.random.default_rng(0)
    boxes = [(0, 0, 1, 1), (0, 0, 3062, 2394), (5, 7, 6, 8)]
    boxes += [tuple(int(v) for v in (y, x, y + h, x + w)) for y, x, h, w in rng.integers(1, 5000, (200, 4))]
    for box in boxes:
        pl = wb.box_polyline(box)
        y0, x0, y1, x1 = box
        # (column, row) pixel edges, closed: the four corners, nothing shifted
        assert pl.tolist() == [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        assert wb.polyline_box(pl) == box
        # any starting corner, either direction, open or closed
        ring = pl[:4]
        for k in range(4):
            for r in (ring, ring[::-1]):
                rolled = np.roll(r, k, axis=0)
                assert wb.polyline_box(rolled) == box
                assert wb.polyline_box(np.vstack([rolled, rolled[:1]])) == box
    # what the reader draws from that SCOORD is exactly the ROI layer's rectangle
    g = ov.graphic_from_object(
        {"GraphicType": "POLYLINE", "GraphicData": wb.box_polyline((10, 20, 30, 35)).ravel().tolist()}
    )
    napari_vertices = [[y - 0.5, x - 0.5] for x, y in g.points]
    assert napari_vertices == box_vertices((10, 20, 30, 35)).tolist()


@pytest.mark.parametrize(
    "points",
    [
        [[0, 0], [2, 0], [2, 2]],  # a triangle
        [[0, 0], [2, 0], [2, 2], [0, 2.5]],  # not a rectangle
        [[0.5, 0], [2, 0], [2, 2], [0.5, 2]],  # not on pixel edges
        [[0, 0], [2, 2], [2, 0], [0, 2]],  # a bow-tie through the same corners
        [[0, 0], [0, 0], [0, 0], [0, 0]],  # empty
        [[-1, 0], [2, 0], [2, 2], [-1, 2]],  # outside the image
    ],
)
def test_polyline_box_refuses_other_shapes(points):
    assert wb.polyline_box(points) is None


# --------------------------------------------------------------------------- SR


def test_sr_of_corpus_mammogram_round_trip(mammo, tmp_path, dciodvfy):
    csv = tmp_path / "rois.csv"
    csv.write_text(
        "anon_dicom_path,num_ROI,ROI_coords,ROI_frames,asses,massshape,side\n"
        f'{mammo},3,"[[100,200,300,400],[1000,50,1200,260],[0,0,3062,2394]]",[],B,O,R\n'
    )
    before = sha(mammo)
    layers = napari_dcm.read(mammo, annotations=csv)
    (roi,) = roi_layers(layers)
    out = tmp_path / "out"
    (sr_path,) = napari_dcm.save_rois_sr(layers, out)
    assert sr_path == str(out / "GH133.sr.dcm")
    warnings = clean(dciodvfy, sr_path)
    assert all("Retired Person Name" in w or "DICOMDIR" in w for w in warnings), warnings  # the source's values

    sr = pydicom.dcmread(sr_path)
    src = pydicom.dcmread(mammo, stop_before_pixels=True)
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR and sr.Modality == "SR"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    for kw in PATIENT_STUDY:
        assert str(sr.get(kw, "")) == str(src.get(kw, "")), kw
    assert sr.PatientBirthDate == ""  # the source's 00000000 is no date: left empty, not copied
    assert sr.SOPInstanceUID != src.SOPInstanceUID and sr.SeriesInstanceUID != src.SeriesInstanceUID
    assert sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[
        0
    ].ReferencedSOPInstanceUID == str(src.SOPInstanceUID)

    # one Planar ROI group per box: closed POLYLINE on pixel edges, tracking id, finding, laterality, extras
    groups = [
        it for c in sr.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "126010" for it in c.ContentSequence
    ]
    assert len(groups) == 3
    for g, box in zip(groups, [(100, 200, 300, 400), (1000, 50, 1200, 260), (0, 0, 3062, 2394)]):
        items = {i.ConceptNameCodeSequence[0].CodeValue: i for i in g.ContentSequence}
        region = items["111030"]
        assert region.GraphicType == "POLYLINE"
        assert [float(v) for v in region.GraphicData] == wb.box_polyline(box).ravel().tolist()
        (img_ref,) = region.ContentSequence
        assert img_ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert "ReferencedFrameNumber" not in img_ref.ReferencedSOPSequence[0]
        assert items["112039"].TextValue.startswith("EMBED ROI ")
        assert items["121071"].ConceptCodeSequence[0].CodeValue == "49755003"
        site = items["363698007"]
        assert site.ConceptCodeSequence[0].CodeMeaning == "Breast"
        assert site.ContentSequence[0].ConceptCodeSequence[0].CodeMeaning == "Right"
        texts = sorted(i.TextValue for i in g.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "C0034375")
        assert texts == ["asses: B", "massshape: O", "side: R"]

    # read back: the same boxes as an editable ROI layer, exported as the same EMBED row
    back = napari_dcm.read([mammo, sr_path])
    assert [t for _, _, t in back] == ["image", "shapes", "shapes"]
    (back_roi,) = roi_layers(back)
    assert back_roi[1]["name"] == roi[1]["name"]
    assert verts(back_roi) == verts(roi)
    assert [np.asarray(v).tolist() for v in back_roi[0]] == [np.asarray(v).tolist() for v in roi[0]]  # same order
    assert list(back_roi[1]["features"]["roi"]) == list(roi[1]["features"]["roi"])
    assert not overlay_layers(back, "sr")[0][0]  # only the (empty) SR document layer is left
    ((row, _),) = collect_rows(back)
    ((orig, _),) = collect_rows(layers)
    assert [(r.box, r.frames) for r in row.rois] == [(r.box, r.frames) for r in orig.rois]
    assert row.path == str(mammo)
    assert back_roi[1]["metadata"][keys.ROI]["rows"][str(mammo)]["extra"] == {
        "asses": "B",
        "massshape": "O",
        "side": "R",
    }
    out_csv = tmp_path / "again.csv"
    napari_dcm.save_embed_csv(back, out_csv)
    (again,) = read_embed_csv(out_csv).rows
    assert [(r.box, r.frames) for r in again.rois] == [(r.box, r.frames) for r in orig.rois]

    # saving again gives fresh UIDs; the image file was only read
    (sr2,) = napari_dcm.save_rois_sr(layers, tmp_path / "out2")
    ds2 = pydicom.dcmread(sr2)
    assert ds2.SOPInstanceUID != sr.SOPInstanceUID and ds2.SeriesInstanceUID != sr.SeriesInstanceUID
    assert sha(mammo) == before


@pytest.mark.parametrize("which", ["dbt", "reversed_mf"])
def test_sr_of_multiframe_with_frame_scoped_rois(which, request, tmp_path, dciodvfy):
    path = request.getfixturevalue(which)
    n = pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames
    rois = [((1, 2, 10, 20), [0, 3]), ((5, 5, 6, 6), None), ((10, 10, 30, 20), [n - 1]), ((2, 3, 4, 5), [2])]
    layers = with_rois(path, rois)
    before = hashes([path])
    (sr_path,) = napari_dcm.save_rois_sr(layers, tmp_path / "out", observer="Reader^Anna")
    clean(dciodvfy, sr_path)
    sr = pydicom.dcmread(sr_path)
    frames = []
    for c in sr.ContentSequence:
        for g in c.get("ContentSequence", []) if c.ConceptNameCodeSequence[0].CodeValue == "126010" else []:
            (region,) = [i for i in g.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "111030"]
            ref = region.ContentSequence[0].ReferencedSOPSequence[0]
            frames.append(ov._frames(ref.get("ReferencedFrameNumber")))
    assert frames == [[1, 4], None, [n], [3]]  # 1-based Referenced Frame Numbers; none: every frame
    observer = [c for c in sr.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "121008"]
    assert observer and observer[0].PersonName == "Reader^Anna"

    back = napari_dcm.read([path, sr_path])
    (back_roi,) = roi_layers(back)
    (roi,) = roi_layers(layers)
    # the same rectangles on the same display frames (frame-scoped ones only where they belong)
    assert verts(back_roi) == verts(roi)
    assert len(back_roi[0]) == 2 + n + 1 + 1
    assert sorted(back_roi[1]["features"]["frames"]) == sorted(roi[1]["features"]["frames"])
    assert export_text(back) == export_text(layers)
    assert hashes([path]) == before


def test_sr_of_ct_series_one_per_file_one_series(ct_series, tmp_path, dciodvfy):
    img = napari_dcm.read(ct_series)[0]
    md = img[1]["metadata"]
    f3, f7 = md["frame_paths"][3], md["frame_paths"][7]
    rows = {f3: EmbedRow(f3, [Roi((1, 1, 9, 9))]), f7: EmbedRow(f7, [Roi((2, 3, 40, 50)), Roi((0, 0, 64, 64))])}
    layers = [img, roi_layer_tuple(img, rows)]
    paths = napari_dcm.save_rois_sr(layers, tmp_path / "out")
    assert [os.path.basename(p) for p in paths] == [Path(f).stem + ".sr.dcm" for f in md["paths"] if f in rows]
    dss = [pydicom.dcmread(p) for p in paths]
    assert len({d.SeriesInstanceUID for d in dss}) == 1  # the SRs of one study share one new series
    assert sorted(int(d.InstanceNumber) for d in dss) == [1, 2]
    for p in paths:
        clean(dciodvfy, p)
    back = napari_dcm.read([ct_series, *paths])
    (back_roi,) = roi_layers(back)
    assert verts(back_roi) == verts(layers[1])
    assert export_text(back) == export_text(layers)


def test_only_napari_dcm_srs_become_rois_and_the_newest_wins(tmp_path, reversed_mf):
    layers = with_rois(reversed_mf, [((1, 2, 10, 20), [0])])
    (old,) = napari_dcm.save_rois_sr(layers, tmp_path / "old")
    layers2 = with_rois(reversed_mf, [((3, 3, 7, 7), None)])
    (new,) = napari_dcm.save_rois_sr(layers2, tmp_path / "new")
    ds = pydicom.dcmread(old)
    ds_new = pydicom.dcmread(new)
    assert (ds_new.ContentDate, ds_new.ContentTime) > (ds.ContentDate, ds.ContentTime)
    back = napari_dcm.read([reversed_mf, old, new])
    (roi,) = roi_layers(back)
    assert verts(roi) == verts(layers2[1])  # the newer SR is the editable ROI layer
    (older,) = [t for t in overlay_layers(back, "sr") if len(t[0])]
    assert older[1]["metadata"][keys.OVERLAY]["source"] == old  # the older one stays an overlay
    assert verts(older) == verts(layers[1])
    # an SR another tool wrote (same content, other manufacturer) stays an overlay
    ds.Manufacturer = "SomeoneElse"
    other = tmp_path / "other.dcm"
    ds.save_as(other, enforce_file_format=True)
    back = napari_dcm.read([reversed_mf, other])
    assert not roi_layers(back)
    (region,) = [t for t in overlay_layers(back, "sr") if len(t[0])]
    assert verts(region) == verts(layers[1])
    # an image that already has ROIs from a CSV keeps them; the SR stays an overlay
    csv = tmp_path / "r.csv"
    csv.write_text(f'anon_dicom_path,ROI_coords\n{reversed_mf},"[[1,1,2,2]]"\n')
    back = napari_dcm.read([reversed_mf, new], annotations=csv)
    (roi,) = roi_layers(back)
    assert verts(roi) != verts(layers2[1]) and len(overlay_layers(back, "sr")) == 2


# --------------------------------------------------------------------------- GSPS


@pytest.mark.parametrize("which", ["mammo", "dbt", "reversed_mf"])
def test_gsps_round_trip(which, request, tmp_path, dciodvfy):
    path = request.getfixturevalue(which)
    multi = which != "mammo"
    rois = [((100, 200, 300, 400), None), ((0, 0, 3062, 2394), None)]
    if multi:
        rois = [((1, 2, 10, 20), [0, 3]), ((5, 5, 6, 6), None), ((10, 10, 30, 20), [4]), ((2, 3, 4, 5), [0, 3])]
    layers = with_rois(path, rois)
    before = hashes([path])
    (gsps_path,) = napari_dcm.save_rois_gsps(layers, tmp_path / "out")
    clean(dciodvfy, gsps_path)
    ps = pydicom.dcmread(gsps_path)
    src = pydicom.dcmread(path, stop_before_pixels=True)
    assert ps.SOPClassUID == GSPS_CLASS and ps.ContentLabel == "EMBED ROIS"
    for kw in ("PatientID", "StudyInstanceUID"):
        assert str(ps.get(kw)) == str(src.get(kw))
    scopes = sorted(
        tuple(ov._frames(r.get("ReferencedFrameNumber")) or ())
        for a in ps.GraphicAnnotationSequence
        for r in a.ReferencedImageSequence
    )
    # one annotation per frame scope (ROIs of the same frames share one); () = every frame
    assert scopes == ([(), (1, 4), (5,)] if multi else [()])
    if not multi:  # the presentation state shows the image with its header window
        voi = ps.SoftcopyVOILUTSequence[0]
        assert (voi.WindowCenter, voi.WindowWidth) == (src.WindowCenter, src.WindowWidth)
    back = napari_dcm.read([path, gsps_path])
    (shapes,) = [t for t in overlay_layers(back, "gsps") if t[2] == "shapes"]
    assert verts(shapes) == verts(layers[1])
    (texts,) = [t for t in overlay_layers(back, "gsps") if t[2] == "points"]
    assert sorted(set(texts[1]["features"]["text"])) == sorted({f"ROI {i}" for i in range(len(rois))})
    assert hashes([path]) == before


# --------------------------------------------------------------------------- SEG


def labels_over(img, seed=0):
    shape = img[0].shape
    lab = np.zeros(shape, np.uint16)
    n = shape[0]
    lab[1 : n - 1, 2:20, 3:15] = 1
    lab[n // 2, shape[1] // 2 :, shape[2] // 2 :] = 2
    lab[n - 1, 0:3, 0:3] = 3
    return lab


@pytest.mark.parametrize("which", ["synthetic_ct", "corpus_knee"])
def test_seg_of_series_round_trip(which, ct_series, corpus, tmp_path, dciodvfy):
    series = ct_series if which == "synthetic_ct" else corpus / KNEE
    img = napari_dcm.read(series)[0]
    files = img[1]["metadata"]["frame_paths"]
    before = hashes(files)
    lab = labels_over(img)
    feats = {"index": [0, 1, 2, 3], "name": ["background", "liver", "lesion", "marker"]}
    labels = (lab, {"name": "organs", "features": feats}, "labels")
    out = tmp_path / "organs.seg.dcm"
    assert napari_dcm.save_seg(labels, img, out) == str(out)
    clean(dciodvfy, out)
    seg = pydicom.dcmread(out)
    assert seg.SOPClassUID == SEG_CLASS and seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "lesion", "marker"]
    src = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.PatientID == src.PatientID
    assert seg.SeriesInstanceUID != src.SeriesInstanceUID
    refs = {
        f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert refs <= set(img[1]["metadata"]["sop_instance_uids"])
    back = napari_dcm.read([series, out])
    (lb,) = [t for t in back if t[2] == "labels"]
    assert lb[1]["metadata"][keys.OVERLAY_OF] == img[1]["name"]
    assert np.array_equal(lb[0], lab)  # the same voxels, the same values (labels 1..N keep theirs)
    assert lb[1]["metadata"][keys.OVERLAY]["segments"] == {1: "liver", 2: "lesion", 3: "marker"}
    # the SEG's own labels layer saves again as the same segmentation (names from its metadata)
    again = napari_dcm.save_seg(lb, img, tmp_path / "again.seg.dcm")
    clean(dciodvfy, again)
    (lb2,) = [t for t in napari_dcm.read([series, again]) if t[2] == "labels"]
    assert np.array_equal(lb2[0], lab)
    assert [s.SegmentLabel for s in pydicom.dcmread(again).SegmentSequence] == ["liver", "lesion", "marker"]
    assert hashes(files) == before


def test_seg_renumbers_sparse_labels_in_order(ct_series, tmp_path, dciodvfy):
    img = napari_dcm.read(ct_series)[0]
    lab = np.zeros(img[0].shape, np.int32)
    lab[2, 5:9, 5:9] = 7
    lab[4, 1:3, 1:30] = 3
    feats = {"index": [3, 7], "name": ["Läsion", "cyst"]}
    mass = {"category": ("49755003", "SCT", "Morphologically abnormal structure"), "type": ("4147007", "SCT", "Mass")}
    out = napari_dcm.save_seg(
        (lab, {"name": "sparse · Ü", "features": feats}, "labels"), img, tmp_path / "s.dcm", segments={7: mass}
    )
    clean(dciodvfy, out)
    back = napari_dcm.read([ct_series, out])
    (lb,) = [t for t in back if t[2] == "labels"]
    # DICOM numbers segments 1, 2, ...: label 3 -> 1, label 7 -> 2; every voxel where it was
    assert np.array_equal(lb[0], np.select([lab == 3, lab == 7], [1, 2], 0))
    assert lb[1]["metadata"][keys.OVERLAY]["segments"] == {1: "Läsion", 2: "cyst"}
    seg = pydicom.dcmread(out)
    assert [s.TrackingID for s in seg.SegmentSequence] == ["napari label 3", "napari label 7"]
    types = [s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in seg.SegmentSequence]
    assert types == ["Tissue", "Mass"]  # the default, and the one given for label 7


@pytest.mark.parametrize("which", ["dbt", "reversed_mf"])
def test_seg_of_multiframe_in_stored_order(which, request, tmp_path, dciodvfy):
    path = request.getfixturevalue(which)
    img = napari_dcm.read(path)[0]
    lab = np.zeros(img[0].shape, np.uint8)
    lab[0, 1:5, 1:5] = 1  # display frame 0 (stored frame 5 when reversed)
    lab[3, 10:20, 2:8] = 2
    out = napari_dcm.save_seg((lab, {"name": "dbt labels"}, "labels"), img, tmp_path / "mf.seg.dcm")
    clean(dciodvfy, out)
    seg = pydicom.dcmread(out)
    d2s = img[1]["metadata"]["display_to_stored"]
    frames = {
        (
            int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
            int(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber),
        )
        for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert frames == {(1, d2s[0] + 1), (2, d2s[3] + 1)}
    back = napari_dcm.read([path, out])
    (lb,) = [t for t in back if t[2] == "labels"]
    assert np.array_equal(lb[0], lab)


def test_seg_of_corpus_mammogram(mammo, tmp_path, dciodvfy):
    img = napari_dcm.read(mammo)[0]
    lab = np.zeros(img[0].shape, np.uint8)
    lab[100:300, 200:400] = 1
    out = napari_dcm.save_seg((lab, {"name": "mass"}, "labels"), img, tmp_path / "mg.seg.dcm")
    clean(dciodvfy, out)  # no patient geometry: Patient Orientation copied instead
    back = napari_dcm.read([mammo, out])
    (lb,) = [t for t in back if t[2] == "labels"]
    assert np.array_equal(lb[0], lab)


def test_seg_label_map_round_trip(ct_series, tmp_path):
    """Label Map Segmentation (2024) is newer than Debian's dciodvfy (2022): round trip only."""
    img = napari_dcm.read(ct_series)[0]
    lab = labels_over(img)
    out = napari_dcm.save_seg((lab, {"name": "lm"}, "labels"), img, tmp_path / "lm.dcm", labelmap=True)
    assert pydicom.dcmread(out, stop_before_pixels=True).SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"
    (lb,) = [t for t in napari_dcm.read([ct_series, out]) if t[2] == "labels"]
    assert np.array_equal(lb[0], lab)


# --------------------------------------------------------------------------- refusals


def test_refusals_are_clear_and_write_nothing(tmp_path, reversed_mf, ct_series):
    img = napari_dcm.read(reversed_mf)[0]
    with pytest.raises(ValueError, match="no EMBED ROIs"):
        napari_dcm.save_rois_sr([img], tmp_path / "none")
    assert not (tmp_path / "none").exists()
    layers = with_rois(reversed_mf, [((1, 2, 10, 20), [0])])
    (p,) = napari_dcm.save_rois_sr(layers, tmp_path / "out")
    first = sha(p)
    with pytest.raises(FileExistsError, match="rev.sr.dcm exists"):
        napari_dcm.save_rois_sr(layers, tmp_path / "out")
    assert sha(p) == first
    (p2,) = napari_dcm.save_rois_sr(layers, tmp_path / "out", overwrite=True)
    assert p2 == p and sha(p) != first
    assert [f for f in os.listdir(tmp_path / "out")] == ["rev.sr.dcm"]  # no temporary files left
    # a box outside its image / a frame beyond it
    bad = with_rois(reversed_mf, [((1, 2, 10, 200), None)])
    with pytest.raises(wb.WritebackError, match="outside the 32x24 image"):
        napari_dcm.save_rois_sr(bad, tmp_path / "bad")
    # labels that do not fit the image, empty labels, floats
    ct = napari_dcm.read(ct_series)[0]
    with pytest.raises(ValueError, match="does not match the image"):
        napari_dcm.save_seg((np.ones((3, 64, 64), np.uint8), {}, "labels"), ct, tmp_path / "x.dcm")
    with pytest.raises(ValueError, match="empty"):
        napari_dcm.save_seg((np.zeros(ct[0].shape, np.uint8), {}, "labels"), ct, tmp_path / "x.dcm")
    with pytest.raises(ValueError, match="integers"):
        napari_dcm.save_seg((np.ones(ct[0].shape, np.float32), {}, "labels"), ct, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
    # the annotated file is gone: named
    gone = tmp_path / "gone.dcm"
    write_plain_image(gone, rows=8, cols=8)
    layers = with_rois(gone, [((1, 1, 2, 2), None)])
    gone.unlink()
    with pytest.raises(napari_dcm.DicomReadError, match="gone.dcm"):
        napari_dcm.save_rois_sr(layers, tmp_path / "g")


def test_extra_embed_columns_kept_and_csv_export_unchanged(tmp_path, reversed_mf, dciodvfy):
    csv = tmp_path / "r.csv"
    text = (
        "anon_dicom_path,num_ROI,ROI_coords,ROI_frames,asses,desc\n"
        f'{reversed_mf},1,"[[1,2,3,4]]","[[2]]",A,"free text, with a comma · naïve"\n'
    )
    csv.write_text(text)
    (row,) = read_embed_csv(csv).rows
    assert row.extra == {"asses": "A", "desc": "free text, with a comma · naïve"}
    layers = napari_dcm.read(reversed_mf, annotations=csv)
    assert export_text(layers) == (
        f'anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n{reversed_mf},1,"[[1,2,3,4]]",[[2]]\n'
    )
    (p,) = napari_dcm.save_rois_sr(layers, tmp_path / "o")
    clean(dciodvfy, p)  # non-ASCII text: the SR is UTF-8 (ISO_IR 192)
    assert pydicom.dcmread(p).SpecificCharacterSet == "ISO_IR 192"
    (back,) = wb.sr_rois(pydicom.dcmread(p))
    assert back.extra == {"asses": "A", "desc": "free text, with a comma · naïve"}
    assert back.roi.box == (1, 2, 3, 4) and back.roi.frames == (2,)


def test_boxes_of_all_corners_and_orders_survive(tmp_path, reversed_mf):
    """Every box of a small image (all positions and sizes on a 4x3 lattice) round-trips."""
    boxes = [
        ((y0, x0, y1, x1), None)
        for y0, y1 in itertools.combinations(range(0, 33, 8), 2)
        for x0, x1 in itertools.combinations(range(0, 25, 8), 2)
    ]
    layers = with_rois(reversed_mf, boxes)
    (p,) = napari_dcm.save_rois_sr(layers, tmp_path / "o")
    (roi,) = roi_layers(napari_dcm.read([reversed_mf, p]))
    assert [np.asarray(v).tolist() for v in roi[0]] == [np.asarray(v).tolist() for v in layers[1][0]]
