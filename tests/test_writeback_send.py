"""Sending written objects: STOW-RS to a real Orthanc (read back over DICOMweb) and C-STORE to
Orthanc's DICOM port (found again with C-FIND); failures named per object, files kept."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import numpy as np
import pydicom
import pytest

import napari_dcm
from conftest import IN_CI
from napari_dcm.dicom import dicomweb as dw
from napari_dcm.layers import keys
from orthanc import PASSWORD, USER, Orthanc, available, with_fresh_uids
from synth import write_plain_image
from test_writeback import MAMMO, roi_layers, verts, with_rois

AUTH = (USER, PASSWORD)


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def web_orthanc():
    """A private, empty Orthanc with DICOMweb (authentication on) for STOW-RS."""
    if not available():
        msg = "Orthanc (apt: orthanc orthanc-dicomweb) is not installed"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    server = Orthanc()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    """ROI autosaves, the PACS cache and settings go to the test's own directory."""
    monkeypatch.setenv("NAPARI_DCM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NAPARI_DCM_CONFIG", str(tmp_path / "config"))


@pytest.fixture(autouse=True)
def fresh_sessions():
    dw.reset()
    yield
    dw.reset()


def written_objects(image: Path, out: Path, multiframe: bool = False):
    """SR, GSPS and SEG of an image (ROIs and labels drawn on it), and the layers they came from."""
    boxes = [((10, 12, 20, 17), None), ((0, 0, 5, 5), None)]
    if multiframe:
        boxes = [((10, 12, 20, 17), [1]), ((0, 0, 5, 5), None)]
    layers = with_rois(image, boxes)
    (sr,) = napari_dcm.save_rois_sr(layers, out)
    (gsps,) = napari_dcm.save_rois_gsps(layers, out)
    img = layers[0]
    lab = np.zeros(img[0].shape, np.uint8)
    lab[..., 2:9, 3:7] = 1
    seg = napari_dcm.save_seg((lab, {"name": "lesion"}, "labels"), img, out / "labels.seg.dcm")
    return layers, lab, [sr, gsps, seg]


# --------------------------------------------------------------------------- STOW-RS


def test_stow_rs_and_read_back_over_dicomweb(web_orthanc, corpus, tmp_path):
    from dicomweb_client.api import DICOMwebClient

    image = tmp_path / "mg.dcm"
    src = with_fresh_uids(corpus / MAMMO, image, patient="WBSTOW", study_key="wb-stow")
    layers, lab, objects = written_objects(image, tmp_path / "out")
    before = {p: sha(p) for p in [image, *objects]}
    results = napari_dcm.store_dicomweb([image, *objects], web_orthanc.dicomweb, auth=AUTH)
    assert [r.ok for r in results] == [True] * 4 and [r.reason for r in results] == [""] * 4
    assert [r.path for r in results] == [str(p) for p in [image, *objects]]

    # QIDO-RS: the study now has the image series and one new series per object
    server = dw.connect(web_orthanc.dicomweb, auth=AUTH)
    series = dw.search_series(server, src.StudyInstanceUID)
    assert sorted(s["modality"] for s in series) == ["MG", "PR", "SEG", "SR"]

    # WADO-RS: every object comes back as written (dicomweb-client on napari-dcm's session)
    client = DICOMwebClient(url=server.base, session=server.session)
    fetched = {}
    for p in objects:
        local = pydicom.dcmread(p)
        ds = client.retrieve_instance(local.StudyInstanceUID, local.SeriesInstanceUID, local.SOPInstanceUID)
        for kw in ("SOPClassUID", "PatientID", "StudyInstanceUID"):
            assert ds[kw].value == local[kw].value
        for kw in ("ContentSequence", "GraphicAnnotationSequence", "SegmentSequence", "PixelData"):
            if kw in local:
                assert ds[kw].value == local[kw].value, kw
        fetched[ds.Modality] = tmp_path / f"fetched_{ds.Modality}.dcm"
        ds.save_as(fetched[ds.Modality], enforce_file_format=True)

    # the fetched objects read back to the same boxes and label voxels
    back = napari_dcm.read([image, fetched["SR"], fetched["PR"], fetched["SEG"]])
    (roi,) = roi_layers(back)
    assert verts(roi) == verts(layers[1])
    (gsps,) = [t for t in back if t[2] == "shapes" and "GSPS" in t[1]["name"]]
    assert verts(gsps) == verts(layers[1])
    (lb,) = [t for t in back if t[2] == "labels"]
    assert np.array_equal(lb[0], lab)
    assert {p: sha(p) for p in [image, *objects]} == before


def test_stow_rs_failures_named_per_object_and_files_kept(web_orthanc, tmp_path, dciodvfy):
    image = write_plain_image(tmp_path / "img" / "a.dcm", rows=24, cols=24, patient="WBSTOWFAIL")
    _, _, objects = written_objects(image, tmp_path / "out")
    for p in objects:  # SR, GSPS and SEG of a single-frame secondary capture image
        assert dciodvfy(p)[0] == [], p
    before = {p: sha(p) for p in objects}
    server = dw.connect(web_orthanc.dicomweb, auth=AUTH)
    study = str(pydicom.dcmread(image, stop_before_pixels=True).StudyInstanceUID)

    # wrong password: every object named with the reason, nothing stored
    with pytest.raises(napari_dcm.DicomStoreError) as err:
        napari_dcm.store_dicomweb(objects, web_orthanc.dicomweb, auth=(USER, "pw-Xq7-not-it"))
    e = err.value
    assert e.destination == web_orthanc.dicomweb and len(e.failed) == 3
    assert all("authentication failed (HTTP 401)" in r.reason for r in e.results)
    for p in objects:
        assert os.path.basename(p) in str(e)
    assert "pw-Xq7-not-it" not in str(e) and PASSWORD not in str(e)
    server = dw.connect(web_orthanc.dicomweb, auth=AUTH)
    assert dw.search_studies(server, patient_id="WBSTOWFAIL") == []

    # one unreadable file and one the server refuses among good ones: those two named, the rest stored
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    nostudy = tmp_path / "nostudy.dcm"
    ds = pydicom.dcmread(objects[0])
    del ds.StudyInstanceUID
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(nostudy, enforce_file_format=True)
    with pytest.raises(napari_dcm.DicomStoreError) as err:
        napari_dcm.store_dicomweb([junk, objects[0], nostudy, objects[1]], web_orthanc.dicomweb, auth=AUTH)
    e = err.value
    assert [r.ok for r in e.results] == [False, True, False, True]
    assert e.results[0].reason.startswith("cannot read")
    assert e.results[2].reason == "refused by the server (HTTP 400)"
    assert "junk.dcm: cannot read" in str(e) and "nostudy.dcm: refused by the server (HTTP 400)" in str(e)
    stored = {s["modality"] for s in dw.search_series(server, study)}
    assert stored == {"SR", "PR"}

    # nobody listening: named, quickly
    with pytest.raises(napari_dcm.DicomStoreError, match="connection refused"):
        napari_dcm.store_dicomweb(objects, f"http://127.0.0.1:{free_port()}/dicom-web", auth=AUTH)
    assert {p: sha(p) for p in objects} == before


# --------------------------------------------------------------------------- C-STORE


def c_find(server, level: str, **keys_) -> list:
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    ae = AE(ae_title="WB-FIND")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    q = Dataset()
    q.QueryRetrieveLevel = level
    for k, v in keys_.items():
        setattr(q, k, v)
    assoc = ae.associate(server.host, server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    out = []
    try:
        for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
            if status and status.Status in (0xFF00, 0xFF01) and ident is not None:
                out.append(ident)
    finally:
        assoc.release()
        ae.shutdown()
    return out


def test_c_store_to_orthanc_and_c_find(orthanc_dimse, tmp_path, dciodvfy):
    image = write_plain_image(tmp_path / "img" / "dbt.dcm", rows=24, cols=20, frames=4, patient="WBDIMSE")
    ds = pydicom.dcmread(image)
    ds.FrameOfReferenceUID = pydicom.uid.generate_uid(entropy_srcs=["wb-dimse-for"])
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    pm = Dataset()
    pm.PixelSpacing, pm.SliceThickness = [0.1, 0.1], 1.0
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = Sequence([pm])
    ds.save_as(image, enforce_file_format=True)
    layers, _, objects = written_objects(image, tmp_path / "out", multiframe=True)
    for p in objects:
        assert dciodvfy(p)[0] == [], p
    before = {p: sha(p) for p in objects}
    study = str(ds.StudyInstanceUID)
    try:
        results = napari_dcm.store_dimse(
            [image, *objects], orthanc_dimse.host, orthanc_dimse.dicom_port, called_ae=orthanc_dimse.aet
        )
        assert [(r.ok, r.status) for r in results] == [(True, 0)] * 4
        found = c_find(orthanc_dimse, "SERIES", StudyInstanceUID=study, SeriesInstanceUID="", Modality="")
        by_modality = {str(f.Modality): str(f.SeriesInstanceUID) for f in found}
        assert sorted(by_modality) == ["MG", "PR", "SEG", "SR"]
        for p in objects:
            obj = pydicom.dcmread(p, stop_before_pixels=True)
            (hit,) = c_find(
                orthanc_dimse,
                "IMAGE",
                StudyInstanceUID=study,
                SeriesInstanceUID=str(obj.SeriesInstanceUID),
                SOPInstanceUID="",
                SOPClassUID="",
            )
            assert hit.SOPInstanceUID == obj.SOPInstanceUID and hit.SOPClassUID == obj.SOPClassUID
            assert by_modality[str(obj.Modality)] == str(obj.SeriesInstanceUID)
        # nobody listening: named per object, files kept
        with pytest.raises(napari_dcm.DicomStoreError, match="cannot connect: connection refused") as err:
            napari_dcm.store_dimse(objects, "127.0.0.1", free_port(), called_ae="NOBODY")
        assert len(err.value.failed) == 3 and err.value.destination.startswith("NOBODY@127.0.0.1:")
        assert {p: sha(p) for p in objects} == before
    finally:
        r = orthanc_dimse.http.post(f"{orthanc_dimse.root}/tools/lookup", data=study, timeout=30)
        for hit in r.json():
            if hit.get("Type") == "Study":
                orthanc_dimse.http.delete(f"{orthanc_dimse.root}/studies/{hit['ID']}", timeout=30)


def test_roi_layer_from_sr_survives_orthanc(web_orthanc, tmp_path):
    """An SR fetched back from the server still opens as the editable ROI layer it was saved from."""
    image = write_plain_image(tmp_path / "img" / "b.dcm", rows=16, cols=16, patient="WBROUND")
    layers = with_rois(image, [((1, 2, 3, 4), None), ((0, 0, 16, 16), None)])
    (sr,) = napari_dcm.save_rois_sr(layers, tmp_path / "o")
    napari_dcm.store_dicomweb([sr], web_orthanc.dicomweb, auth=AUTH)
    local = pydicom.dcmread(sr)
    server = dw.connect(web_orthanc.dicomweb, auth=AUTH)
    r = server.get(
        f"studies/{local.StudyInstanceUID}/series/{local.SeriesInstanceUID}/instances/{local.SOPInstanceUID}",
        'multipart/related; type="application/dicom"',
    )
    ((_, payload),) = dw.parse_multipart(r.content, r.headers["Content-Type"])
    fetched = tmp_path / "fetched.dcm"
    fetched.write_bytes(payload)
    (roi,) = roi_layers(napari_dcm.read([image, fetched]))
    assert verts(roi) == verts(layers[1])
    assert roi[1]["metadata"][keys.ROI]["source_sr"] == [str(fetched)]


# --------------------------------------------------------------------------- the send panel in a real viewer


@pytest.mark.viewer
def test_send_panel_stow_and_c_store_from_the_dicomweb_dock(
    make_napari_viewer, web_orthanc, orthanc_dimse, tmp_path, qtbot
):
    from napari_dcm._qt import roi_dock as roi_widget
    from napari_dcm._qt.dicomweb_dock import dicomweb_dock

    image = write_plain_image(tmp_path / "img" / "c.dcm", rows=30, cols=20, patient="WBPANEL")
    csv = tmp_path / "r.csv"
    csv.write_text(f'anon_dicom_path,ROI_coords\n{image},"[[2,3,12,9],[0,0,30,20]]"\n')
    viewer = make_napari_viewer(show=True)
    viewer.open(str(image), plugin="napari-dcm")
    rois = roi_widget.roi_dock(viewer)
    rois.import_csv(csv)
    web = dicomweb_dock(viewer, dw.connect(web_orthanc.dicomweb, auth=AUTH))
    panel = web.send
    assert panel.count.text() == "Nothing saved yet"
    assert panel.send_dicomweb() is None and "save ROIs or labels" in panel.status.text()
    (sr,) = rois.writeback.save_sr(tmp_path / "out")
    assert panel.count.text() == "1 object(s) saved in this session"  # the save told the send panel
    before = sha(sr)

    # STOW-RS to the browser's server (dialog-free method), then by the button in the background
    (res,) = panel.send_dicomweb()
    assert res.ok and panel.status.text() == f"Stored 1 object(s) on {web_orthanc.dicomweb}."
    (gsps,) = rois.writeback.save_gsps(tmp_path / "out")
    panel.stow_btn.click()
    qtbot.waitUntil(lambda: panel.status.text().startswith("Stored 2"), timeout=30000)
    srv = dw.connect(web_orthanc.dicomweb, auth=AUTH)
    study = str(pydicom.dcmread(image, stop_before_pixels=True).StudyInstanceUID)
    assert sorted(s["modality"] for s in dw.search_series(srv, study)) == ["PR", "SR"]

    # C-STORE by the PACS panel's button: to Orthanc's DICOM port, then to a node nobody listens on
    from napari_dcm._qt.pacs_dock import pacs_dock
    from napari_dcm.dicom import dimse

    pacs = pacs_dock(viewer, dimse.Node(orthanc_dimse.aet, orthanc_dimse.host, orthanc_dimse.dicom_port))
    node_panel = pacs.send
    assert node_panel.count.text() == "2 object(s) saved in this session"
    assert node_panel.cstore_btn.text() == "Send to this node (C-STORE)"
    try:
        node_panel.cstore_btn.click()
        qtbot.waitUntil(lambda: node_panel.status.text().startswith("Stored 2"), timeout=30000)
        assert orthanc_dimse.aet in node_panel.status.text()
        found = c_find(orthanc_dimse, "SERIES", StudyInstanceUID=study, Modality="")
        assert sorted(str(f.Modality) for f in found) == ["PR", "SR"]
        pacs.port.setValue(free_port())
        node_panel.cstore_btn.click()
        qtbot.waitUntil(lambda: "not stored" in node_panel.status.text(), timeout=30000)
        assert "connection refused" in node_panel.status.text() and "c.sr.dcm" in node_panel.status.text()
        assert [r.ok for r in node_panel.last_results] == [False, False]
        assert sha(sr) == before and os.path.exists(gsps)  # nothing lost locally
    finally:
        r = orthanc_dimse.http.post(f"{orthanc_dimse.root}/tools/lookup", data=study, timeout=30)
        for hit in r.json():
            if hit.get("Type") == "Study":
                orthanc_dimse.http.delete(f"{orthanc_dimse.root}/studies/{hit['ID']}", timeout=30)


def test_sr_of_an_image_opened_over_dicomweb(web_orthanc, corpus, tmp_path, dciodvfy):
    """ROIs drawn on an image opened from a DICOMweb server: its header comes from the server."""
    from napari_dcm.dicom.embed import EmbedRow, Roi
    from napari_dcm.layers.rois import roi_layer_tuple

    image = tmp_path / "mg.dcm"
    src = with_fresh_uids(corpus / MAMMO, image, patient="WBWEBSRC", study_key="wb-web-src")
    napari_dcm.store_dicomweb([image], web_orthanc.dicomweb, auth=AUTH)
    (img,) = napari_dcm.read_dicomweb(web_orthanc.dicomweb, src.StudyInstanceUID, auth=AUTH)
    (key,) = img[1]["metadata"]["paths"]
    assert key.startswith(web_orthanc.dicomweb)
    layers = [img, roi_layer_tuple(img, {key: EmbedRow(key, [Roi((100, 200, 300, 400))])})]
    (sr,) = napari_dcm.save_rois_sr(layers, tmp_path / "out")
    assert os.path.basename(sr) == f"{src.SOPInstanceUID}.sr.dcm"
    assert dciodvfy(sr)[0] == []
    ds = pydicom.dcmread(sr)
    for kw in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "AccessionNumber"):
        assert str(ds.get(kw)) == str(src.get(kw)), kw
    (roi,) = roi_layers(napari_dcm.read([image, sr]))  # the local copy has the same SOP Instance UID
    assert verts(roi) == verts(layers[1])
