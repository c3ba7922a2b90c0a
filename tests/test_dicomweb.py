"""DICOMweb against a real Orthanc on loopback (started by the session fixture)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import napari_dcm
from conftest import IN_CI, corpus_rows
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


def syntax_files() -> dict[str, str]:
    """One corpus file per stored transfer syntax found in transfer_syntax/ and multiframe/
    (the smallest), plus the smallest multi-frame file of each syntax that has one."""
    rows = [r for r in corpus_rows() if r["path"].split("/")[0] in ("transfer_syntax", "multiframe")]
    out: dict[str, str] = {}
    for multi in (False, True):
        best: dict[str, dict] = {}
        for r in rows:
            if (int(r["frames"] or 1) > 1) != multi:
                continue
            ts = r["transfer_syntax"].rsplit("[", 1)[-1].rstrip("]")
            if ts not in best or int(r["size_bytes"]) < int(best[ts]["size_bytes"]):
                best[ts] = r
        for ts, r in sorted(best.items()):
            out[f"{ts}{'-mf' if multi else ''}"] = r["path"]
    return out or {"<corpus missing>": "<corpus missing>"}


SYNTAX_FILES = syntax_files()


def fresh_copy(src, dst, patient: str, study_key: str, series_key: str | None = None, **changes):
    """``with_fresh_uids`` that also writes syntaxes pydicom does not know (1.2.840.10008.1.2.8.1);
    ``changes``: other elements to set (keyword=value)."""
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(src, force=True)
    ds.PatientID, ds.PatientName = patient, f"{patient}^Test"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", study_key])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", series_key or f"{src}-{study_key}"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["sop", str(src), study_key, str(dst)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for k, v in changes.items():
        setattr(ds, k, v)
    if ds.file_meta.TransferSyntaxUID.is_transfer_syntax:
        ds.save_as(dst)
    else:  # keep the pixel data bytes as they are; the data set itself is explicit little endian
        ds.save_as(dst, implicit_vr=False, little_endian=True, force_encoding=True)
    return ds


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
        # every stored syntax of the corpus (test_every_stored_syntax_equals_local)
        server.syntax_files = {}
        for i, (name, rel) in enumerate(SYNTAX_FILES.items()):
            dst = d / f"syntax_{i}.dcm"
            ds = fresh_copy(corpus / rel, dst, patient=f"WEBTS{i:02d}", study_key=f"syntax-{name}")
            answer = server.upload(dst)
            assert answer.get("Status") == "Success", (rel, answer)
            server.syntax_files[name] = (dst, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        # series of three instances of one stored syntax (what worked is remembered)
        server.series3, server.syntax_files_dir = {}, d
        for name, rel in (
            ("big_endian", "transfer_syntax/MR_small_bigendian.dcm"),
            ("htj2k", "transfer_syntax/HTJ2K_08_RGB.dcm"),
        ):
            for j in range(3):
                dst = d / f"{name}3_{j}.dcm"
                changes = {"InstanceNumber": j + 1}
                if name == "big_endian":
                    changes["ImagePositionPatient"] = [-100.0, -100.0, 10.0 * j]
                    changes["ImageOrientationPatient"] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
                ds = fresh_copy(
                    corpus / rel,
                    dst,
                    patient="WEBSERIES3",
                    study_key=f"three-{name}",
                    series_key=f"three-{name}",
                    **changes,
                )
                server.upload(dst)
            server.series3[name] = (ds.StudyInstanceUID, ds.SeriesInstanceUID)
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


ROUTES = ["wado-rs", "orthanc-rest"]


def open_over(orthanc, route, study, series):
    """read_dicomweb over the generic WADO-RS routes (any server) or Orthanc's REST fast path."""
    dw.reset()
    srv = dw.connect(orthanc.dicomweb, auth=(USER, PASSWORD))
    if route == "wado-rs":
        srv._orthanc = None
    layers = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series)
    assert bool(srv.orthanc_ids) == (route == "orthanc-rest")
    return srv, layers


def local_frames(path):
    """The stored frames of a local file through napari-dcm's file source and the one decoder."""
    from napari_dcm.dicom.decode import decode
    from napari_dcm.dicom.discovery import scan_one
    from napari_dcm.dicom.series import stacks_from_headers

    (stack,), _ = stacks_from_headers([scan_one(str(path))])
    return [decode(f.ref.read(), f.desc) for f in stack.frames]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", list(SYNTAX_FILES))
def test_every_stored_syntax_equals_local(orthanc, name, route):
    """Every stored syntax of the corpus, over both routes: pixels equal local reads,
    whatever the server can return as is (stored syntax, explicit LE, whole instance)."""
    path, study, series, sop = orthanc.syntax_files[name]
    srv, layers = open_over(orthanc, route, study, series)
    local = napari_dcm.read(path)
    if local[0][2] == "labels":  # a SEG: compare its stored frames (the web opens them as an image)
        data = layers[0][0]
        want = np.stack(local_frames(path))
        assert np.array_equal(np.asarray(data.compute()).reshape(want.shape), want)
    else:
        assert len(layers) == len(local) == 1
        data, kw, _ = layers[0]
        assert data.shape == local[0][0].shape and data.dtype == local[0][0].dtype
        assert np.array_equal(np.asarray(data.compute()), np.asarray(local[0][0].compute()))
        assert kw["contrast_limits"] == pytest.approx(local[0][1]["contrast_limits"])
    dw.wait_prefetch()
    print(name, route, "->", srv.routes or "as stored", f"{srv.requests} requests")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name,first", [("big_endian", 2), ("htj2k", 3)])
def test_what_worked_is_remembered(orthanc, name, first, route):
    """Big endian: the stored syntax fails (HTTP 500), explicit LE works. HTJ2K (unknown to
    Orthanc 1.10): HTTP 500, then raw bytes passed off as explicit LE (unusable), then the
    whole instance. Either way only the first instance of the series pays for the search."""
    study, series = orthanc.series3[name]
    srv, layers = open_over(orthanc, route, study, series)
    data, local_files = layers[0][0], sorted(orthanc.syntax_files_dir.glob(f"{name}3_*.dcm"))
    assert data.shape[0] == 3
    local = np.asarray(napari_dcm.read(local_files)[0][0].compute())
    counts = []
    for i in range(3):
        n0 = srv.requests
        assert np.array_equal(np.asarray(data[i]), local[i])
        counts.append(srv.requests - n0)
    assert counts == [first, 1, 1]
    expected = dw.AS_EXPLICIT_LE if name == "big_endian" else dw.INSTANCE
    assert f"series:{series}" in srv.routes or route == "orthanc-rest"
    assert set(srv.routes.values()) == {expected}


def test_remembered_per_stored_syntax_across_series(orthanc):
    """Orthanc's REST API names the stored syntax: a second big-endian series goes straight
    to explicit LE."""
    _, study1, series1, _ = orthanc.syntax_files["1.2.840.10008.1.2.2"]
    srv, layers = open_over(orthanc, "orthanc-rest", study1, series1)
    np.asarray(layers[0][0][0])
    assert srv.routes == {"1.2.840.10008.1.2.2": dw.AS_EXPLICIT_LE}
    study, series = orthanc.series3["big_endian"]
    data = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series)[0][0]
    n0 = srv.requests
    np.asarray(data[0])
    assert srv.requests == n0 + 1


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
    assert ei.value.reason.startswith("does not look like a DICOMweb server"), ei.value.reason
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
