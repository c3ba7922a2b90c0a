"""DICOMweb against a real Orthanc on loopback (started by the session fixture)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import napari_dcm
from conftest import IN_CI
from napari_dcm.dicom import dicomweb as dw
from orthanc import PASSWORD, USER, Orthanc, available, with_fresh_uids

# stored syntaxes uploaded: one file each (plus a multi-frame J2K and a series)
FILES = {
    "explicit": "transfer_syntax/CT_small.dcm",
    "implicit": "transfer_syntax/MR_small_implicit.dcm",
    "jpeg_baseline": "transfer_syntax/JPEGBaseline_1s_1f_u_08_08.dcm",
    "jpeg_lossless": "transfer_syntax/CT1_JPLL",
    "jpeg_ls": "transfer_syntax/CT1_JLSL",
    "j2k": "transfer_syntax/MR1_J2KR",
    "rle": "transfer_syntax/CT1_RLE",
    "j2k_multiframe": "multiframe/emri_small_jpeg_2k_lossless.dcm",
    "rgb": "pixel_formats/SC_rgb.dcm",
    "ybr_jpeg": "multiframe/examples_ybr_color.dcm",
}


@pytest.fixture(scope="session")
def orthanc(corpus, tmp_path_factory):
    if not available():
        msg = "Orthanc (apt: orthanc orthanc-dicomweb) is not installed"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    server = Orthanc()
    d = tmp_path_factory.mktemp("web")
    uploaded = {}
    try:
        for i, (name, rel) in enumerate(FILES.items()):
            dst = d / f"{name}.dcm"
            ds = with_fresh_uids(corpus / rel, dst, patient=f"WEBPAT{i:02d}", study_key=name)
            server.upload(dst)
            uploaded[name] = (dst, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        knee = sorted((corpus / "ct_mr_series" / "orthanc_Knee_T1").iterdir())[:8]
        for j, f in enumerate(knee):
            dst = d / f"knee_{j}.dcm"
            ds = with_fresh_uids(f, dst, patient="WEBKNEE", study_key="knee", series_key="knee-series")
            server.upload(dst)
        uploaded["knee"] = (d, ds.StudyInstanceUID, ds.SeriesInstanceUID, None)
        server.files = uploaded
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def fresh_cache():
    dw.CACHE.clear()
    yield


def local_pixels(path):
    return [np.asarray(d.compute()) for d, _, _ in napari_dcm.read(path)]


@pytest.mark.parametrize("name", list(FILES))
def test_pixels_equal_local(orthanc, name):
    path, study, series, sop = orthanc.files[name]
    layers = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series, auth=(USER, PASSWORD))
    assert len(layers) == 1
    data, kw, _ = layers[0]
    local = napari_dcm.read(path)[0]
    assert data.shape == local[0].shape and data.dtype == local[0].dtype
    assert np.array_equal(np.asarray(data.compute()), np.asarray(local[0].compute()))
    assert kw["contrast_limits"] == pytest.approx(local[1]["contrast_limits"])
    assert kw["scale"] == pytest.approx(local[1]["scale"])
    assert kw["metadata"]["paths"][0].startswith(orthanc.dicomweb + "/studies/")


def test_orthanc_detected_and_generic_path_equal(orthanc):
    path, study, series, _ = orthanc.files["jpeg_ls"]
    srv = dw.connect(orthanc.dicomweb, auth=(USER, PASSWORD))
    assert srv.orthanc_root == orthanc.root
    fast = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series)[0]
    srv._orthanc = None
    srv.orthanc_ids.clear()
    dw.CACHE.clear()
    generic = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series)[0]
    assert np.array_equal(np.asarray(fast[0].compute()), np.asarray(generic[0].compute()))
    for k in ("contrast_limits", "scale", "translate", "name"):
        assert fast[1][k] == generic[1][k]
    dw.reset()


def test_series_geometry_and_laziness(orthanc):
    folder, study, series, _ = orthanc.files["knee"]
    data, kw, _ = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series, auth=(USER, PASSWORD))[0]
    srv = dw.server_for(dw.normalize_base(orthanc.dicomweb))
    opened_bytes = srv.bytes
    local_data, local_kw, _ = napari_dcm.read(sorted(folder.glob("knee_*.dcm")))[0]
    assert data.shape == local_data.shape == (8, 512, 512)
    assert kw["scale"] == pytest.approx(local_kw["scale"]) and kw["translate"] == pytest.approx(local_kw["translate"])
    # opening fetched metadata only; one frame costs one request and nothing else
    frame_requests = srv.requests
    np.asarray(data[3])
    assert srv.requests == frame_requests + 1
    assert np.array_equal(np.asarray(data[3]), np.asarray(local_data[3]))
    assert srv.requests == frame_requests + 1  # cached
    one_frame = srv.bytes - opened_bytes
    assert opened_bytes < 0.5 * 8 * one_frame  # opening moved headers only, never pixels


@pytest.mark.parametrize("orthanc_rest", [False, True], ids=["wado-rs", "orthanc-rest"])
def test_multiframe_neighbours_batched(orthanc, orthanc_rest):
    path, study, series, _ = orthanc.files["j2k_multiframe"]
    srv = dw.connect(orthanc.dicomweb, auth=(USER, PASSWORD))
    if not orthanc_rest:
        srv._orthanc = None  # any DICOMweb server: WADO-RS frames, neighbours batched
    data, kw, _ = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series)[0]
    assert bool(srv.orthanc_ids) == orthanc_rest
    local = np.asarray(napari_dcm.read(path)[0][0].compute())
    if orthanc_rest:
        # Orthanc's REST frames: one frame per request, the raw stored bytes; the middle
        # frame (napari's first) was prefetched while the layer was built
        dw.wait_prefetch()
        n0 = srv.requests
        assert np.array_equal(np.asarray(data[(data.shape[0] - 1) // 2]), local[(data.shape[0] - 1) // 2])
        assert srv.requests == n0
        assert np.array_equal(np.asarray(data[7]), local[7])
        assert srv.requests == n0 + 1
        return
    dw.reset(sessions=False)
    n0, b0 = srv.requests, srv.bytes
    np.asarray(data[0])  # the first frame comes alone
    assert srv.requests == n0 + 1
    np.asarray(data[1])
    np.asarray(data[2])
    np.asarray(data[4])
    assert srv.requests == n0 + 2  # frames 1..4 came in one request
    np.asarray(data[8])
    assert srv.requests == n0 + 3
    full = path.stat().st_size
    assert srv.bytes - b0 < full  # never the whole instance
    assert np.array_equal(np.asarray(data.compute()), local)


def test_qido_wildcards_and_series_counts(orthanc):
    srv = dw.connect(orthanc.dicomweb, auth=(USER, PASSWORD))
    found = dw.search_studies(srv, patient_name="WEBPAT0*")
    assert len(found) == 10 and all(s["patient_id"].startswith("WEBPAT0") for s in found)
    assert {s["patient_id"] for s in dw.search_studies(srv, patient_id="WEBKNE?")} == {"WEBKNEE"}
    assert dw.search_studies(srv, patient_name="NOBODY*") == []
    knee = dw.search_studies(srv, patient_id="WEBKNEE")[0]
    series = dw.search_series(srv, knee["study_uid"])
    assert len(series) == 1 and series[0]["n_instances"] == 8 and series[0]["modality"] == "MR"
    assert series[0]["n_frames"] == 8
    _, mf_study, _, _ = orthanc.files["j2k_multiframe"]
    (mf,) = dw.search_series(srv, mf_study)
    assert mf["n_instances"] == 1 and mf["n_frames"] == 10


def test_server_root_normalised():
    assert dw.normalize_base("http://host:8042") == "http://host:8042/dicom-web"
    assert dw.normalize_base("http://host:8042/") == "http://host:8042/dicom-web"
    assert dw.normalize_base("https://pacs/wado/rs/") == "https://pacs/wado/rs"
    assert dw.normalize_base("http://u:p@host:8042") == "http://host:8042/dicom-web"


def test_errors_are_clear_and_secret_free(orthanc, caplog):
    caplog.set_level(logging.DEBUG)
    _, study, series, _ = orthanc.files["explicit"]
    with pytest.raises(dw.DicomWebError) as ei:
        napari_dcm.read_dicomweb(orthanc.root, study, auth=(USER, "wrong-" + PASSWORD))
    assert ei.value.status == 401 and "authentication failed" in ei.value.reason and ei.value.path == orthanc.dicomweb
    with pytest.raises(dw.DicomWebError) as ei:
        napari_dcm.read_dicomweb(orthanc.root, "1.2.3.4.5.404", auth=(USER, PASSWORD))
    assert ei.value.status == 404 and "not found" in ei.value.reason
    with pytest.raises(dw.DicomWebError) as ei:
        napari_dcm.read_dicomweb(f"http://127.0.0.1:{orthanc.port}/system", study, auth=(USER, PASSWORD))
    assert ei.value.path == f"http://127.0.0.1:{orthanc.port}/system" and ei.value.status == 404
    port = __import__("orthanc").free_port()
    with pytest.raises(dw.DicomWebError) as ei:
        napari_dcm.read_dicomweb(f"http://127.0.0.1:{port}", study, auth=(USER, PASSWORD), timeout=(1, 2))
    assert "cannot connect" in ei.value.reason
    # credentials in the URL work, and appear nowhere
    layers = napari_dcm.read_dicomweb(f"http://{USER}:{PASSWORD}@127.0.0.1:{orthanc.port}", study, series)
    assert PASSWORD not in repr(layers[0][1]["metadata"]) and USER + ":" not in repr(layers[0][1]["metadata"])
    assert PASSWORD not in caplog.text
    # the session keeps the credentials for its requests (requests' auth); nothing else of it does
    srv = dw.server_for(orthanc.dicomweb)
    assert srv.session.auth == (USER, PASSWORD)
    others = {k: v for k, v in vars(srv).items() if k != "session"}
    assert others and PASSWORD not in repr(others) and PASSWORD not in repr(srv)


def test_bearer_token_and_env(orthanc, monkeypatch):
    _, study, series, _ = orthanc.files["explicit"]
    # Orthanc takes basic auth only: a bearer token is sent (and refused) rather than ignored
    with pytest.raises(dw.DicomWebError) as ei:
        napari_dcm.read_dicomweb(orthanc.dicomweb, study, token="abc.def.ghi")
    assert ei.value.status == 401
    monkeypatch.setenv("NAPARI_DCM_DICOMWEB_USER", USER)
    monkeypatch.setenv("NAPARI_DCM_DICOMWEB_PASSWORD", PASSWORD)
    dw.reset()
    assert len(napari_dcm.read_dicomweb(orthanc.dicomweb, study, series)) == 1


def test_launch_url():
    from napari_dcm.web import parse_launch_url

    o = parse_launch_url("napari-dcm://open?dicomweb=http%3A%2F%2Fh%3A8042&study=1.2&series=3.4")
    assert o == {"url": "http://h:8042", "study": "1.2", "series": "3.4", "instance": None}
    with pytest.raises(ValueError):
        parse_launch_url("napari-dcm://open?study=1.2")


def test_local_dask_graph_holds_no_credentials(orthanc):
    import pickle

    _, study, series, _ = orthanc.files["j2k"]
    data = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series, auth=(USER, PASSWORD))[0][0]
    blob = pickle.dumps(data)
    assert PASSWORD.encode() not in blob and b"Basic " not in blob


@pytest.mark.viewer
def test_browse_dock_search_and_open(make_napari_viewer, orthanc, qtbot):
    from napari_dcm._qt.dicomweb_dock import DicomWebDock

    viewer = make_napari_viewer(show=False)
    dock = DicomWebDock(viewer)
    dock.url.setText(orthanc.root)  # server root: normalised to /dicom-web
    dock.user.setText(USER)
    dock.password.setText(PASSWORD)
    dock.connect_server()
    assert dock.password.text() == "" and dock.url.text() == orthanc.dicomweb
    dock.fields["patient_id"].setText("WEBKNEE")
    studies = dock.search()
    assert len(studies) == 1 and dock.results.topLevelItemCount() == 1
    item = dock.results.topLevelItem(0)
    assert item.text(4) == "1 / 8"
    item.setExpanded(True)
    assert item.childCount() == 1 and "8 instance(s), 8 frame(s)" in item.child(0).text(4)
    layers = dock._open(item.child(0))
    assert len(layers) == 1 and layers[0].data.shape == (8, 512, 512)
    assert viewer.dims.current_step[0] == 3
    dock.fields["patient_id"].setText("")
    dock.fields["patient_name"].setText("WEBPAT0*")
    assert len(dock.search()) == 10


@pytest.mark.viewer
def test_view_api_and_unreachable_server_notifies(make_napari_viewer, orthanc):
    from napari.utils.notifications import notification_manager

    _, study, series, _ = orthanc.files["rgb"]
    viewer = make_napari_viewer(show=False)
    napari_dcm.view(viewer=viewer, dicomweb=orthanc.dicomweb, study=study, auth=(USER, PASSWORD))
    assert viewer.layers[0].rgb
    n0 = len(notification_manager.records)
    port = __import__("orthanc").free_port()
    napari_dcm.view(viewer=viewer, dicomweb=f"http://127.0.0.1:{port}", study=study, auth=(USER, PASSWORD))
    msgs = [str(n.message) for n in notification_manager.records[n0:]]
    assert any(f"127.0.0.1:{port}" in m and "cannot connect" in m for m in msgs)
    assert len(viewer.layers) == 1


@pytest.mark.viewer
def test_cli_dicomweb_and_launch_url(orthanc, tmp_path):
    import os
    import subprocess
    import sys
    import urllib.parse

    _, study, series, _ = orthanc.files["jpeg_ls"]
    exe = os.path.join(os.path.dirname(sys.executable), "napari-dcm")
    env = dict(os.environ, NAPARI_DCM_DICOMWEB_USER=USER, NAPARI_DCM_DICOMWEB_PASSWORD=PASSWORD)
    r = subprocess.run(
        [exe, "--dicomweb", orthanc.root, "--study", study, "--exit"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shape=(512, 512)" in r.stdout
    url = "napari-dcm://open?" + urllib.parse.urlencode(
        {"dicomweb": orthanc.dicomweb, "study": study, "series": series}
    )
    r2 = subprocess.run([exe, url, "--exit"], capture_output=True, text=True, timeout=180, env=env)
    assert r2.returncode == 0 and "shape=(512, 512)" in r2.stdout
    for out in (r.stdout, r.stderr, r2.stdout, r2.stderr):
        assert PASSWORD not in out
