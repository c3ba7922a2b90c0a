"""Overlays: GSPS, Mammography CAD SR (TID 4000), SR regions, SEG, parametric maps; G and N keys."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import napari_dcm
from napari_dcm.dicom import overlays as ov
from synth import write_ct_series, write_plain_image

CYAN, RED = (0, 229, 255), (255, 59, 48)


def by_kind(layers):
    out = {}
    for d, kw, t in layers:
        k = kw.get("metadata", {}).get("napari_dcm_overlay", {}).get("kind", t)
        out.setdefault(k, []).append((d, kw, t))
    return out


@pytest.fixture
def cr_with_gsps(corpus, tmp_path):
    """PR000000 (an ellipse and a text on CR000000) with CR000000's header given pixels."""
    ds = pydicom.dcmread(corpus / "presentation_state" / "CR000000.dcm")
    ds.PixelData = (np.arange(ds.Rows * ds.Columns, dtype=np.uint32) % 4096).astype(np.uint16).tobytes()
    ds["PixelData"].VR = "OW"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 12, 11, 0, 1
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    d = tmp_path / "cr"
    d.mkdir()
    ds.save_as(d / "cr.dcm", enforce_file_format=True)
    (d / "pr.dcm").write_bytes((corpus / "presentation_state" / "PR000000.dcm").read_bytes())
    return d


def test_gsps_geometry_text_and_voi_preset(corpus, cr_with_gsps):
    layers = napari_dcm.read(cr_with_gsps)
    kinds = [t for _, _, t in layers]
    assert kinds == ["image", "shapes", "points"]  # the overlays follow their image
    pr = pydicom.dcmread(cr_with_gsps / "pr.dcm")
    go = pr.GraphicAnnotationSequence[0].GraphicObjectSequence[0]
    x0, y0, x1, y1, cx, cy = [float(v) for v in go.GraphicData[:6]]
    (shape,), kw, _ = layers[1]
    assert kw["metadata"]["napari_dcm_overlay_of"] == layers[0][1]["name"]
    assert kw["scale"] == layers[0][1]["scale"] and kw["translate"] == layers[0][1]["translate"]
    ys, xs = shape[:, 0], shape[:, 1]
    # the ellipse's major axis ends at GraphicData's first two points (pixel edges -> napari - 0.5)
    assert np.isclose(xs.min(), x0 - 0.5, atol=1e-6) and np.isclose(xs.max(), x1 - 0.5, atol=1e-6)
    assert np.isclose(ys.mean(), y0 - 0.5, atol=1.0)
    assert np.isclose(ys.min(), cy - 0.5, atol=0.5)  # minor axis end point
    pts, pkw, _ = layers[2]
    anchor = [float(v) for v in pr.GraphicAnnotationSequence[0].TextObjectSequence[0].AnchorPoint]
    assert np.allclose(pts[0], [anchor[1] - 0.5, anchor[0] - 0.5])
    assert pkw["features"]["text"][0].startswith("Mean: 2651.41")
    voi = pr.SoftcopyVOILUTSequence[0]
    wins = layers[0][1]["metadata"]["windows"]
    assert any(w["center"] == float(voi.WindowCenter) and "GSPS" in w["explanation"] for w in wins)


def test_gsps_voi_only_and_unloaded_references(corpus, tmp_path):
    d = tmp_path / "lut"
    d.mkdir()
    for f in ("prLUTs.dcm", "imageForPrLUTs.dcm", "Issue168.dcm"):
        (d / f).write_bytes((corpus / "presentation_state" / f).read_bytes())
    from napari_dcm.dicom.report import ReadReport

    rep = ReadReport()
    layers = napari_dcm.read(d, report=rep)
    # prLUTs carries a VOI LUT and no graphics: it attaches to its image and adds no layer
    assert [t for _, _, t in layers] == ["image"]
    assert [(p.split("/")[-1], m) for p, m in rep.overlay_notes] == [
        ("Issue168.dcm", "presentation state: its images are not loaded")
    ]


def test_gsps_parser_units_and_types():
    pr = Dataset()
    ga = Dataset()
    ga.GraphicLayer = "L1"
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = "1.2.3"
    ref.ReferencedFrameNumber = [2]
    ga.ReferencedImageSequence = Sequence([ref])
    objs = []
    for gtype, data, units in [
        ("POINT", [10, 20], "PIXEL"),
        ("CIRCLE", [50, 50, 60, 50], "PIXEL"),
        ("POLYLINE", [0.1, 0.1, 0.5, 0.1, 0.5, 0.5, 0.1, 0.1], "DISPLAY"),
        ("INTERPOLATED", [1, 1, 2, 3, 4, 4], "PIXEL"),
    ]:
        go = Dataset()
        go.GraphicType, go.GraphicData, go.GraphicAnnotationUnits = gtype, data, units
        go.NumberOfGraphicPoints, go.GraphicDimensions, go.GraphicFilled = len(data) // 2, 2, "N"
        objs.append(go)
    ga.GraphicObjectSequence = Sequence(objs)
    pr.GraphicAnnotationSequence = Sequence([ga])
    ann = ov.parse_gsps(pr, rows=100, cols=200)
    kinds = [g.kind for g in ann.graphics]
    assert kinds == ["point", "ellipse", "polygon", "polyline"]
    assert all(g.sop_uid == "1.2.3" and g.frames == [2] for g in ann.graphics)
    circle = np.array(ann.graphics[1].points)
    assert np.allclose(np.hypot(circle[:, 0] - 50, circle[:, 1] - 50), 10)
    assert ann.graphics[2].points[:3] == [(20.0, 10.0), (100.0, 10.0), (100.0, 50.0)]  # DISPLAY -> pixels


# --------------------------------------------------------------------------- CAD SR (TID 4000)


def _code(value, scheme, meaning):
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return Sequence([c])


def _item(rel, vt, concept, **kw):
    it = Dataset()
    it.RelationshipType, it.ValueType = rel, vt
    it.ConceptNameCodeSequence = _code(*concept)
    for k, v in kw.items():
        setattr(it, k, v)
    return it


def _image_ref(uid, sop_class="1.2.840.10008.5.1.4.1.1.1.2"):
    r = Dataset()
    r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = sop_class, uid
    return Sequence([r])


def write_cad_sr(path, image_uid, findings):
    """A Mammography CAD SR following TID 4000: image library + single image findings."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ov.MAMMO_CAD_SR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.dataset.FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = ov.MAMMO_CAD_SR, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesDescription = "SR", "CAD"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = _code("111036", "DCM", "Mammography CAD Report")
    ds.ContinuityOfContent = "SEPARATE"
    lib_img = _item(
        "CONTAINS", "IMAGE", ("111027", "DCM", "Image Library Entry"), ReferencedSOPSequence=_image_ref(image_uid)
    )
    lib_img.ContentSequence = Sequence(
        [
            _item(
                "HAS ACQ CONTEXT",
                "CODE",
                ("111027", "DCM", "Image Laterality"),
                ConceptCodeSequence=_code("G-A100", "SRT", "Right"),
            ),
            _item(
                "HAS ACQ CONTEXT",
                "CODE",
                ("111031", "DCM", "Image View"),
                ConceptCodeSequence=_code("R-10242", "SRT", "cranio-caudal"),
            ),
        ]
    )
    library = _item("CONTAINS", "CONTAINER", ("111028", "DCM", "Image Library"), ContinuityOfContent="SEPARATE")
    library.ContentSequence = Sequence([lib_img])
    summary = _item(
        "CONTAINS",
        "CODE",
        ("111017", "DCM", "CAD Processing and Findings Summary"),
        ConceptCodeSequence=_code("111242", "DCM", "All algorithms succeeded; with findings"),
    )
    items = []
    for name, gtype, data, certainty, required in findings:
        f = _item(
            "CONTAINS",
            "CODE",
            ("111059", "DCM", "Single Image Finding"),
            ConceptCodeSequence=_code("F-01796", "SRT", name),
        )
        intent = (
            ("111150", "DCM", "Presentation Required: Rendering device is expected to present")
            if required
            else ("111151", "DCM", "Presentation Optional: Rendering device may present")
        )
        geom = _item(
            "HAS PROPERTIES",
            "SCOORD",
            ("111041", "DCM", "Outline") if gtype != "POINT" else ("111010", "DCM", "Center"),
            GraphicType=gtype,
            GraphicData=data,
        )
        geom.ContentSequence = Sequence(
            [
                _item(
                    "SELECTED FROM",
                    "IMAGE",
                    ("111040", "DCM", "Original Source"),
                    ReferencedSOPSequence=_image_ref(image_uid),
                )
            ]
        )
        cert = _item("HAS PROPERTIES", "NUM", ("111012", "DCM", "Certainty of Finding"))
        mv = Dataset()
        mv.NumericValue = certainty
        mv.MeasurementUnitsCodeSequence = _code("%", "UCUM", "percent")
        cert.MeasuredValueSequence = Sequence([mv])
        f.ContentSequence = Sequence(
            [
                _item(
                    "HAS CONCEPT MOD", "CODE", ("111056", "DCM", "Rendering Intent"), ConceptCodeSequence=_code(*intent)
                ),
                cert,
                geom,
            ]
        )
        items.append(f)
    summary.ContentSequence = Sequence(items)
    ds.ContentSequence = Sequence([library, summary])
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def mg_with_cad(tmp_path):
    d = tmp_path / "cad"
    img = write_plain_image(d / "mg.dcm", rows=60, cols=80, patient="CAD")
    uid = str(pydicom.dcmread(img).SOPInstanceUID)
    write_cad_sr(
        d / "cad.dcm",
        uid,
        [
            ("Mass", "POLYLINE", [10, 10, 40, 10, 40, 30, 10, 30, 10, 10], 85, True),
            ("Calcification Cluster", "POINT", [60, 45], 40, False),
        ],
    )
    return d


def test_cad_sr_parse_and_layers(mg_with_cad):
    findings = ov.parse_cad_sr(pydicom.dcmread(mg_with_cad / "cad.dcm"))
    assert [(f.finding, f.required, f.certainty, f.laterality, f.view) for f in findings] == [
        ("Mass", True, 85.0, "R", "CC"),
        ("Calcification Cluster", False, 40.0, "R", "CC"),
    ]
    assert findings[0].label() == "Mass · 85% · RCC"
    layers = napari_dcm.read(mg_with_cad)
    assert any("napari_dcm_sr" in kw["metadata"] for _, kw, _ in layers)  # the report itself, for the SR dock
    k = by_kind([l for l in layers if "napari_dcm_sr" not in l[1]["metadata"]])
    (req,) = k["cad_sr"]
    (opt,) = k["cad_sr_optional"]
    assert np.allclose(
        req[0][0], [[9.5, 9.5], [9.5, 39.5], [29.5, 39.5], [29.5, 9.5]]
    )  # SCOORD (x,y) -> napari (y-0.5, x-0.5)
    assert req[1].get("visible", True) and opt[1]["visible"] is False  # optional marks behind a toggle
    assert list(req[1]["features"]["label"]) == ["Mass · 85% · RCC"]


# --------------------------------------------------------------------------- SEG and PM


def test_seg_standalone_and_1bit_rle(corpus):
    a = napari_dcm.read(corpus / "seg_pm" / "liver_rle.dcm")
    b = napari_dcm.read(corpus / "seg_pm" / "liver.dcm")
    assert a[0][2] == b[0][2] == "labels"
    assert np.array_equal(a[0][0], b[0][0]) and a[0][0].sum() > 0  # pydicom cannot decode the RLE one
    assert "Liver" in " ".join(b[0][1]["metadata"]["napari_dcm_overlay"]["segments"].values())
    lm = napari_dcm.read(corpus / "seg_pm" / "seg_image_sm_control_labelmap_palette_color.dcm")
    assert lm[0][0].ndim == 3 and lm[0][0].max() > 1  # label values, not palette colours
    fr = napari_dcm.read(corpus / "seg_pm" / "seg_image_ct_binary_fractional.dcm")
    assert fr[0][2] == "labels"


def test_seg_attached_to_source_frames(tmp_path):
    import highdicom as hd

    series = write_ct_series(tmp_path / "ct", n=6, rows=32, cols=32)
    sources = [pydicom.dcmread(p) for p in sorted(series.iterdir())]
    sources.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    mask = np.zeros((len(sources), 32, 32), bool)
    mask[2, 5:15, 6:20] = True  # on the third slice by position
    desc = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure"),
        segmented_property_type=hd.sr.CodedConcept("52988006", "SCT", "Lesion"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[desc],
        series_instance_uid=generate_uid(),
        series_number=9,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="napari-dcm tests",
        manufacturer_model_name="synth",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(series / "seg.dcm")
    layers = napari_dcm.read(series)
    assert [t for _, _, t in layers] == ["image", "labels"]
    lab, kw, _ = layers[1]
    img_md = layers[0][1]["metadata"]
    assert kw["metadata"]["napari_dcm_overlay_of"] == layers[0][1]["name"]
    assert lab.shape == layers[0][0].shape
    d = img_md["sop_instance_uids"].index(str(sources[2].SOPInstanceUID))
    assert lab[d].sum() == mask[2].sum() and lab.sum() == mask.sum()
    assert np.array_equal(lab[d] > 0, mask[2])


def test_parametric_map_over_source_and_standalone(corpus, tmp_path):
    img = write_plain_image(tmp_path / "pm" / "src.dcm", rows=128, cols=128, patient="PM")
    src_uid = str(pydicom.dcmread(img).SOPInstanceUID)
    pm = pydicom.dcmread(corpus / "seg_pm" / "parametric_map_float.dcm")
    src = Dataset()
    src.ReferencedSOPClassUID, src.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", src_uid
    der = (
        pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
        if pm.PerFrameFunctionalGroupsSequence[0].get("DerivationImageSequence")
        else Dataset()
    )
    der.SourceImageSequence = Sequence([src])
    pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence = Sequence([der])
    pm.save_as(tmp_path / "pm" / "pm.dcm")
    layers = napari_dcm.read(tmp_path / "pm")
    assert [t for _, _, t in layers] == ["image", "image"]
    vol, kw, _ = layers[1]
    assert kw["metadata"]["napari_dcm_overlay_of"] == layers[0][1]["name"] and kw["colormap"] == "magma"
    ref = pydicom.dcmread(corpus / "seg_pm" / "parametric_map_float.dcm").pixel_array
    assert np.allclose(vol, ref)  # RWV slope 1 intercept 0
    alone = napari_dcm.read(corpus / "seg_pm" / "parametric_map_float.dcm")
    assert alone[0][1]["metadata"]["napari_dcm_overlay"]["standalone"]


# --------------------------------------------------------------------------- SR


def test_sr_tree_and_regions(corpus, tmp_path):
    root = ov.parse_sr(pydicom.dcmread(corpus / "sr" / "sr_document.dcm"))
    nodes = [n for n, _ in ov.walk(root)]
    assert root.concept == "Imaging Measurement Report"
    assert any(n.value_type == "NUM" and n.units for n in nodes)
    assert any(n.value_type == "CODE" and n.value_code for n in nodes)
    for f in (
        "test-SR.dcm",
        "reportsi.dcm",
        "report_dfl",
        "MarekLatin2.dcm",
        "IM0",
        "sr.dcm",
        "sr_document_with_multiple_groups.dcm",
    ):
        layers = napari_dcm.read(corpus / "sr" / f)
        assert any("napari_dcm_sr" in kw["metadata"] for _, kw, _ in layers), f
    # a Comprehensive SR with a SCOORD on a loaded slice is drawn on that slice
    series = write_ct_series(tmp_path / "ct", n=4, rows=32, cols=32)
    dss = sorted((pydicom.dcmread(p) for p in series.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    write_sr_with_region(series / "sr.dcm", str(dss[1].SOPInstanceUID))
    layers = napari_dcm.read(series)
    sr = [l for l in layers if l[1]["metadata"].get("napari_dcm_overlay", {}).get("kind") == "sr" and len(l[0])]
    (shape,) = sr[0][0]
    assert np.allclose(shape[:, 0], 1) and np.allclose(shape[:, 1:].min(axis=0), [3.5, 4.5])


def write_sr_with_region(path, image_uid):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.dataset.FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = _code("126000", "DCM", "Imaging Measurement Report")
    ds.ContinuityOfContent = "SEPARATE"
    region = _item(
        "CONTAINS",
        "SCOORD",
        ("111030", "DCM", "Image Region"),
        GraphicType="POLYLINE",
        GraphicData=[5, 4, 15, 4, 15, 12, 5, 12, 5, 4],
    )
    region.ContentSequence = Sequence(
        [
            _item(
                "SELECTED FROM",
                "IMAGE",
                ("121112", "DCM", "Source"),
                ReferencedSOPSequence=_image_ref(image_uid, "1.2.840.10008.5.1.4.1.1.2"),
            )
        ]
    )
    ds.ContentSequence = Sequence([region, _item("CONTAINS", "TEXT", ("121071", "DCM", "Finding"), TextValue="nodule")])
    ds.save_as(path, enforce_file_format=True)


# --------------------------------------------------------------------------- in a real viewer


def _near_color(img, rgb, tol=40):
    return np.abs(img[..., :3].astype(int) - np.array(rgb)).max(axis=-1) < tol


@pytest.mark.viewer
def test_gsps_and_cad_on_screen(make_napari_viewer, cr_with_gsps, mg_with_cad, qtbot):
    from test_embed_viewer import world_to_canvas

    viewer = make_napari_viewer(show=True)
    viewer.open(str(cr_with_gsps), plugin="napari-dcm")
    img_layer = viewer.layers[0]
    img_layer.contrast_limits = (0, 1e9)  # a dark image: the overlay colours stand out
    viewer.reset_view()
    qtbot.wait(50)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    cyan = _near_color(shot, CYAN)
    assert cyan.sum() > 50
    pr = pydicom.dcmread(cr_with_gsps / "pr.dcm")
    x0, y0, x1 = [float(v) for v in pr.GraphicAnnotationSequence[0].GraphicObjectSequence[0].GraphicData[:3]]
    sy, sx = img_layer.scale[-2:]
    ty, tx = img_layer.translate[-2:]
    left = world_to_canvas(viewer, (y0 - 0.5) * sy + ty, (x0 - 0.5) * sx + tx)
    right = world_to_canvas(viewer, (y0 - 0.5) * sy + ty, (x1 - 0.5) * sx + tx)
    ys, xs = np.nonzero(cyan)
    near_ellipse = (xs > left[0] - 6) & (xs < right[0] + 6)
    assert near_ellipse.mean() > 0.5  # the ellipse lands where GraphicData says
    viewer.layers.clear()
    viewer.open(str(mg_with_cad), plugin="napari-dcm")
    viewer.layers[0].contrast_limits = (0, 1e6)
    viewer.reset_view()
    qtbot.wait(50)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    red = _near_color(shot, RED)
    ys, xs = np.nonzero(red)
    tl, br = world_to_canvas(viewer, 9.5, 9.5), world_to_canvas(viewer, 29.5, 39.5)
    assert red.sum() > 30
    assert xs.min() >= tl[0] - 8 and xs.max() <= br[0] + 40 and ys.min() >= tl[1] - 20  # box (text label to its right)


@pytest.mark.viewer
def test_g_toggles_and_n_jumps(make_napari_viewer, tmp_path):
    from napari_dcm._qt import sr_dock as srd

    series = write_ct_series(tmp_path / "ct", n=5, rows=32, cols=32)
    dss = sorted((pydicom.dcmread(p) for p in series.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    write_sr_with_region(series / "sr.dcm", str(dss[3].SOPInstanceUID))
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(str(series), viewer=viewer)
    region = [l for l in viewer.layers if l.metadata.get("napari_dcm_overlay", {}).get("kind") == "sr" and len(l.data)]
    assert region and region[0].visible
    assert srd.toggle_overlays(viewer) is False and not region[0].visible
    assert srd.toggle_overlays(viewer) is True and region[0].visible
    viewer.layers.selection.active = viewer.layers[0]
    viewer.dims.set_current_step(0, 0)
    name, frame = srd.next_overlay(viewer)
    assert frame == 3 and viewer.dims.current_step[0] == 3 and name == viewer.layers[0].name
    # the SR dock shows the report (no layer stands for it) and jumps to the referenced image
    dock = srd.sr_dock(viewer)
    assert dock.choice.count() == 1
    assert not any("napari_dcm_sr" in l.metadata for l in viewer.layers)
    assert dock.text().startswith("Imaging Measurement Report")
    viewer.dims.set_current_step(0, 0)
    (region_node,) = [n for n in dock.links if n.concept == "Image Region"]
    assert dock.jump(region_node) and viewer.dims.current_step[0] == 3


def test_filled_graphics_and_scoord3d(tmp_path):
    # a filled GSPS polygon is filled; an unfilled one is not
    pr = Dataset()
    ga = Dataset()
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = "9.9"
    ga.ReferencedImageSequence = Sequence([ref])
    gos = []
    for filled in ("Y", "N"):
        go = Dataset()
        go.GraphicType, go.GraphicAnnotationUnits, go.GraphicFilled = "POLYLINE", "PIXEL", filled
        go.GraphicData = [1, 1, 5, 1, 5, 5, 1, 1]
        gos.append(go)
    ga.GraphicObjectSequence = Sequence(gos)
    pr.GraphicAnnotationSequence = Sequence([ga])
    ann = ov.parse_gsps(pr)
    assert [g.filled for g in ann.graphics] == [True, False]
    # SCOORD3D (patient coordinates) lands on the slice at that position
    series = write_ct_series(tmp_path / "ct", n=5, rows=32, cols=32, spacing=2.5)
    dss = sorted((pydicom.dcmread(p) for p in series.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.34"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.dataset.FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "SR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = _code("126000", "DCM", "Imaging Measurement Report")
    z = float(dss[2].ImagePositionPatient[2])
    x0, y0 = -32.0 + 0.7 * 4, -32.0 + 0.8 * 6  # columns 4..10, rows 6..12 (PixelSpacing 0.8 x 0.7)
    pts = [x0, y0, z, x0 + 0.7 * 6, y0, z, x0 + 0.7 * 6, y0 + 0.8 * 6, z, x0, y0, z]
    region = _item(
        "CONTAINS",
        "SCOORD3D",
        ("111030", "DCM", "Image Region"),
        GraphicType="POLYGON",
        GraphicData=pts,
        ReferencedFrameOfReferenceUID=dss[0].FrameOfReferenceUID,
    )
    ds.ContentSequence = Sequence([region])
    ds.save_as(series / "sr3d.dcm", enforce_file_format=True)
    layers = napari_dcm.read(series)
    sr3d = [l for l in layers if "SR3D" in l[1]["name"]]
    (shape,) = sr3d[0][0]
    assert np.allclose(shape[:, 0], 2)  # the third slice by position
    # patient positions are pixel centres (ImagePositionPatient is the first pixel's centre)
    assert np.allclose(shape[:, 1:].min(axis=0), [6, 4], atol=1e-5)
