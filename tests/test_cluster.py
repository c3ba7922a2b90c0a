"""Files on dask workers (issue 14): a real scheduler, a real worker in a private mount namespace.

The worker's files live at paths that do not exist for this process
(``dask_remote.remote``); every test that opens them checks, with an audit
hook, that this process never opened or listed anything there.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import napari_dcm
from napari_dcm.dicom import cluster
from napari_dcm.dicom.decode import DicomDecodeWarning
from napari_dcm.dicom.sources.cluster import DECODED, ClusterFrame
from napari_dcm.errors import ClusterError

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"

# --------------------------------------------------------------------------
# "this process never touched those paths": every open/listing is audited

_watch: list[str] = []
_touched: list[tuple[str, str]] = []
_audit_lock = threading.Lock()


def _audit(event, args):
    if not _watch or event not in ("open", "os.listdir", "os.scandir"):
        return
    path = args[0] if args else None
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    if isinstance(path, (str, os.PathLike)):
        p = os.fspath(path)
        if any(p == w or p.startswith(w.rstrip("/") + "/") for w in _watch):
            with _audit_lock:
                _touched.append((event, p))


sys.addaudithook(_audit)


@contextlib.contextmanager
def never_touched(*roots):
    """Fail if this process opens or lists anything under ``roots`` inside the block."""
    _touched.clear()
    _watch[:] = [os.fspath(r) for r in roots]
    try:
        yield
    finally:
        _watch.clear()
    assert _touched == [], f"the test process touched remote paths: {_touched[:5]}"


def test_the_audit_sees_local_reads(corpus):
    """The "never touched" check itself fails on a local read (so it can fail)."""
    path = corpus / "multiframe" / "emri_small_jpeg_2k_lossless.dcm"
    with pytest.raises(AssertionError, match="touched remote paths"), never_touched(path.parent):
        napari_dcm.read(path)[0].data[3].compute()


@pytest.fixture(autouse=True)
def _fresh_clients():
    yield
    cluster.reset()


# --------------------------------------------------------------------------
# pixels and geometry equal a local read


def _same_layer(remote, local, dask_remote):
    (rd, rk, rt), (ld, lk, lt) = remote, local
    assert rt == lt == "image"
    assert rd.shape == ld.shape and rd.dtype == ld.dtype
    for key in ("scale", "translate", "contrast_limits", "rgb", "units", "colormap", "name"):
        assert rk.get(key) == lk.get(key), key
    rmd, lmd = dict(rk["metadata"]), dict(lk["metadata"])
    # the paths are the workers' paths, naming the same files
    to_local = {str(k): str(v) for k, v in dask_remote.sources.items()}
    assert [to_local[p] for p in rmd.pop("paths")] == lmd.pop("paths")
    assert [to_local[p] for p in rmd.pop("frame_paths")] == lmd.pop("frame_paths")
    assert rmd.pop("scheduler") == dask_remote.address
    assert rmd == lmd


@pytest.mark.parametrize("name", ["mr_series", "j2k_multiframe", "rgb_cine"])
def test_remote_pixels_and_geometry_equal_local(dask_remote, name):
    remote_path = dask_remote.remote[name]
    local_path = (
        next(iter(dask_remote.sources[p] for p in dask_remote.sources if p.parent == remote_path)).parent
        if name == "mr_series"
        else dask_remote.sources[remote_path]
    )
    assert not remote_path.exists()
    with never_touched(dask_remote.remote_root):
        remote = napari_dcm.read(remote_path, scheduler=dask_remote.address)
        arrays = [np.asarray(t[0].compute()) for t in remote]  # every frame
    local = napari_dcm.read(local_path)
    assert len(remote) == len(local) == 1
    _same_layer(remote[0], local[0], dask_remote)
    assert np.array_equal(arrays[0], np.asarray(local[0][0].compute()))
    # every reference is a worker file behind the scheduler's address
    refs = {k[1]: v[1] for k, v in dict(remote[0][0].__dask_graph__()).items()}
    assert all(isinstance(r, ClusterFrame) and r.address == dask_remote.address for r in refs.values())


def test_fetched_frames_go_through_the_frame_cache(dask_remote, monkeypatch):
    from napari_dcm.dicom import decode

    (t,) = napari_dcm.read(dask_remote.remote["j2k_multiframe"], scheduler=dask_remote.address)
    fetches = []
    real = cluster.run
    monkeypatch.setattr(cluster, "run", lambda *a, **k: fetches.append(a[1].__name__) or real(*a, **k))
    decode.STATS.reset()
    first = t.data[3].compute()
    again = t.data[3].compute()
    assert np.array_equal(first, again)
    assert fetches == ["_worker_fetch"] and decode.STATS.decodes == 1 and decode.STATS.cache_hits == 1


def test_remote_decode_gives_the_same_pixels(dask_remote):
    path = dask_remote.remote["j2k_multiframe"]
    with never_touched(dask_remote.remote_root):
        (worker_side,) = napari_dcm.read(path, scheduler=dask_remote.address, remote_decode=True)
        (client_side,) = napari_dcm.read(path, scheduler=dask_remote.address)
        a, b = worker_side.data.compute(), client_side.data.compute()
        graph = dict(worker_side.data.__dask_graph__())
        ref = next(iter(graph.values()))[1]
        enc = ref.read()
    assert np.array_equal(a, b)
    assert np.array_equal(a, napari_dcm.read(dask_remote.sources[path])[0].data.compute())
    assert enc.transfer_syntax == DECODED and enc.data.shape == (64, 64)


def test_stored_bytes_cross_compressed(dask_remote):
    """A J2K frame arrives as its stored codestream: the same bytes a local read gives, not pixels."""
    path = dask_remote.remote["j2k_multiframe"]
    with never_touched(dask_remote.remote_root):
        (t,) = napari_dcm.read(path, scheduler=dask_remote.address)
        refs = [v[1] for v in dict(t.data.__dask_graph__()).values()]
        fetched = {r.index: r.read() for r in refs}
    (local,) = napari_dcm.read(dask_remote.sources[path])
    local_refs = {v[1].index: v[1] for v in dict(local.data.__dask_graph__()).values()}
    for i, enc in fetched.items():
        assert enc.transfer_syntax == J2K_LOSSLESS
        assert bytes(enc.data) == bytes(local_refs[i].read().data)
        assert len(enc.data) < 64 * 64 * 2  # compressed, not the decoded frame
    # the wrapped reference is exactly the one a local scan of the same file makes
    assert {i: r.inner.ranges for i, r in ((r.index, r) for r in refs)} == {i: r.ranges for i, r in local_refs.items()}


def test_client_object_and_graph_without_client(dask_remote):
    from distributed import Client

    with Client(dask_remote.address, set_as_default=False, timeout="10s") as c:
        (t,) = napari_dcm.read(dask_remote.remote["mr_series"], scheduler=c)
        frame = t.data[5].compute()
        blob = pickle.dumps(t.data)
        assert len(blob) < 200_000
        assert b"distributed.client" not in blob  # the graph holds an address, never a client
        # computed *on* the cluster, the graph reads the files where they are
        on_cluster = c.compute(t.data[5]).result(timeout=60)
    assert np.array_equal(frame, on_cluster)


def test_header_scan_runs_in_chunks_on_workers(dask_remote, monkeypatch):
    """Listing and scanning happen on the workers, one chunk of files per task."""
    monkeypatch.setattr(cluster, "SCAN_CHUNK", 5)
    seen = []
    with never_touched(dask_remote.remote_root):
        layers = napari_dcm.read(
            dask_remote.remote_root, scheduler=dask_remote.address, progress=lambda d, n: seen.append((d, n))
        )
    assert seen == [(5, 26), (10, 26), (15, 26), (20, 26), (25, 26), (26, 26)]
    assert sorted(t.data.shape for t in layers) == sorted([(24, 512, 512), (10, 64, 64), (30, 600, 800, 3)])


def test_dicomdir_and_skipped_files_as_for_local(dask_remote, corpus):
    """A DICOMDIR is followed on the workers; skipped files and reasons equal a local read."""
    from napari_dcm.dicom.report import ReadReport

    dicomdir = corpus / "dicomdir" / "pydicom" / "dicomdirtests" / "DICOMDIR"
    folder = corpus / "broken"
    for path in (dicomdir, folder):
        remote_report, local_report = ReadReport(), ReadReport()
        with never_touched(path.parent if path == dicomdir else path):
            remote = napari_dcm.read(path, scheduler=dask_remote.address, report=remote_report)
        local = napari_dcm.read(path, report=local_report)
        assert [(t[1]["name"], t[0].shape, t[0].dtype) for t in remote] == [
            (t[1]["name"], t[0].shape, t[0].dtype) for t in local
        ]
        assert remote_report.n_files == local_report.n_files
        # the same files skipped for the same reasons (file-size checks run on the worker, so a few
        # of them are listed at another place)
        assert sorted(remote_report.skipped) == sorted(local_report.skipped)
        assert len(local_report.skipped) >= (10 if path == folder else 0)
        assert remote_report.summary().startswith(f"napari-dcm ({dask_remote.address}): ")


def test_tags_are_read_on_the_worker(dask_remote):
    import pydicom

    from napari_dcm.dicom import tags

    remote = dask_remote.remote["j2k_multiframe"]
    with never_touched(dask_remote.remote_root):
        napari_dcm.read(remote, scheduler=dask_remote.address)
        ds = tags.read_header(str(remote))
    local = pydicom.dcmread(dask_remote.sources[remote], stop_before_pixels=True)
    assert [r.value for r in tags.dataset_rows(ds)] == [r.value for r in tags.dataset_rows(local)]
    assert "PixelData" not in ds


def test_embed_rois_matched_on_remote_paths_and_exported_here(dask_remote, tmp_path):
    from napari_dcm.layers import roi_export

    series = dask_remote.remote["mr_series"]
    files = sorted(str(p) for p in dask_remote.sources if p.parent == series)
    csv = tmp_path / "rois.csv"
    csv.write_text(
        "anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n"
        f'{files[3]},1,"[[10,20,40,60]]",[]\n'
        f'{series}/not-there.dcm,1,"[[1,2,3,4]]",[]\n'
    )
    with never_touched(dask_remote.remote_root):
        layers = napari_dcm.read(series, scheduler=dask_remote.address, annotations=csv)
    image, roi = layers
    assert roi[2] == "shapes" and len(roi[0]) == 1
    display = image[1]["metadata"]["frame_paths"].index(files[3])
    assert roi[0][0][0][0] == display  # the rectangle sits on that file's display frame
    out = tmp_path / "out.csv"
    roi_export.save_embed_csv(layers, out)
    lines = out.read_text().splitlines()
    assert lines[0] == "anon_dicom_path,num_ROI,ROI_coords,ROI_frames"
    assert f'{files[3]},1,"[[10,20,40,60]]",[]' in lines
    assert f'{series}/not-there.dcm,1,"[[1,2,3,4]]",[]' in lines  # unmatched rows are kept


def test_rois_on_remote_images_saved_as_sr_here_and_read_back(dask_remote, tmp_path):
    """Write-back: the SR of ROIs on a remote image is written here (the source header read on
    the worker) and, opened through the cluster beside its image, becomes the ROI layer again."""
    import pydicom

    from napari_dcm.layers import keys

    image = dask_remote.remote["j2k_multiframe"]
    csv = tmp_path / "rois.csv"
    csv.write_text(f'anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n{image},1,"[[5,6,30,40]]","[[2,3]]"\n')
    with never_touched(dask_remote.remote_root):
        layers = napari_dcm.read(image, scheduler=dask_remote.address, annotations=csv)
        (sr_path,) = napari_dcm.save_rois_sr(layers, tmp_path / "out")
        back = napari_dcm.read([image, sr_path], scheduler=dask_remote.address)
    sr = pydicom.dcmread(sr_path)
    src = pydicom.dcmread(dask_remote.sources[image], stop_before_pixels=True)
    assert sr.PatientID == src.PatientID and sr.StudyInstanceUID == src.StudyInstanceUID
    rois = [t for t in back if keys.ROI in t[1].get("metadata", {})]
    (roi,) = rois
    before = [t for t in layers if keys.ROI in t[1].get("metadata", {})][0]
    assert [np.asarray(v).tolist() for v in roi[0]] == [np.asarray(v).tolist() for v in before[0]]


def test_overlays_are_built_on_the_worker(dask_remote, tmp_path, corpus):
    """A GSPS beside its image and a standalone SEG: read on the worker, layers equal local ones."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(corpus / "presentation_state" / "CR000000.dcm")
    ds.PixelData = (np.arange(ds.Rows * ds.Columns, dtype=np.uint32) % 4096).astype(np.uint16).tobytes()
    ds["PixelData"].VR = "OW"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 12, 11, 0, 1
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    d = tmp_path / "cr"
    d.mkdir()
    ds.save_as(d / "cr.dcm", enforce_file_format=True)
    (d / "pr.dcm").write_bytes((corpus / "presentation_state" / "PR000000.dcm").read_bytes())
    (d / "seg.dcm").write_bytes((corpus / "seg_pm" / "liver.dcm").read_bytes())
    local = napari_dcm.read(d)
    with never_touched(d):  # the worker sees tmp_path too; this process must not read it
        remote = napari_dcm.read(d, scheduler=dask_remote.address)
    assert [(t[2], t[1]["name"]) for t in remote] == [(t[2], t[1]["name"]) for t in local]
    assert [t[2] for t in remote] == ["image", "shapes", "points", "labels"]
    assert remote[0][1]["metadata"]["windows"] == local[0][1]["metadata"]["windows"]  # the GSPS preset too
    assert any("GSPS" in w["explanation"] for w in local[0][1]["metadata"]["windows"])
    for r, lo in zip(remote[1:], local[1:]):
        if r[2] == "shapes":
            assert all(np.allclose(a, b) for a, b in zip(r[0], lo[0]))
        else:
            assert np.array_equal(np.asarray(r[0]), np.asarray(lo[0]))
        assert r[1]["metadata"] == lo[1]["metadata"]


def test_overlay_planes_and_presentation_state_from_the_worker(dask_remote, corpus):
    """60xx overlay planes (the image's own, and those a GSPS activates) as for local files."""
    paths = [corpus / "presentation_state" / "overlay.dcm", corpus / "presentation_state" / "prOverlay.dcm"]
    with never_touched(*paths):
        remote = napari_dcm.read(paths, scheduler=dask_remote.address)
        remote_arrays = [np.asarray(t[0]) for t in remote]
    local = napari_dcm.read(paths)
    assert [(t[2], t[1]["name"]) for t in remote] == [(t[2], t[1]["name"]) for t in local]
    assert sum(t[2] == "labels" for t in remote) >= 6
    for r, lo, arr in zip(remote, local, remote_arrays):
        assert np.array_equal(arr, np.asarray(lo[0]))
        md = dict(r[1]["metadata"])
        md.pop("paths", None), md.pop("frame_paths", None), md.pop("scheduler", None)
        lmd = dict(lo[1]["metadata"])
        lmd.pop("paths", None), lmd.pop("frame_paths", None)
        assert md == lmd  # the presentation state's changes to the image reached this side


# --------------------------------------------------------------------------
# errors, in bounded time


def test_missing_path_names_the_scheduler_and_the_path(dask_remote):
    missing = dask_remote.remote_root / "no-such-study"
    t0 = time.monotonic()
    with pytest.raises(ClusterError) as ei:
        napari_dcm.read(missing, scheduler=dask_remote.address)
    assert time.monotonic() - t0 < 15
    assert ei.value.path == dask_remote.address
    assert str(ei.value) == f"{dask_remote.address}: {missing}: no such file or folder on the workers"


def test_unreachable_scheduler_and_insecure_addresses():
    from servers import free_port

    dead = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="scheduler unreachable") as ei:
        napari_dcm.read("/data/study", scheduler=dead)
    assert ei.value.path == dead and time.monotonic() - t0 < 20
    for address in ("tcp://192.0.2.7:8786", "192.0.2.7:8786", "tcp://example.org:8786"):
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match="not on the loopback interface") as ei:
            napari_dcm.read("/data/study", scheduler=address)
        assert time.monotonic() - t0 < 1  # refused before any connection attempt
        assert "ssh" in str(ei.value).lower() and "--insecure" in str(ei.value)
    assert cluster.check_address("tls://192.0.2.7:8786") == "tls://192.0.2.7:8786"
    assert cluster.check_address("192.0.2.7:8786", insecure=True) == "tcp://192.0.2.7:8786"
    for ok in ("tcp://127.0.0.1:1", "tcp://localhost:1", "tcp://[::1]:1", "127.0.0.2:1"):
        assert cluster.check_address(ok).startswith("tcp://")


def test_stopped_worker_gives_blank_frames_and_documented_errors(dask_remote, caplog):
    from napari_dcm import _notify

    _notify.install_decode_notifier()  # what the viewer installs (process-wide, idempotent)
    series = dask_remote.remote["mr_series"]
    (t,) = napari_dcm.read(series, scheduler=dask_remote.address)
    first = t.data[0].compute()
    assert first.any()
    dask_remote.kill_worker()
    try:
        t0 = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            blank = t.data[7].compute()
        took = time.monotonic() - t0
        assert not blank.any() and blank.shape == (512, 512)
        assert took < cluster.NO_WORKER_GRACE + 5
        (w,) = [w for w in caught if issubclass(w.category, DicomDecodeWarning)]
        assert "ClusterError" in str(w.message) and dask_remote.address in str(w.message)
        assert "no workers are connected to the scheduler" in str(w.message)
        # the outage is known now: the next frames fail at once, notified once
        t0 = time.monotonic()
        more = t.data[8:12].compute()
        assert not more.any() and time.monotonic() - t0 < 3
        # the notifier said it once for the outage, naming the scheduler first; not once per file
        notices = [r.getMessage() for r in caplog.records if "shown blank" in r.getMessage()]
        assert notices == [
            f"napari-dcm: {dask_remote.address}: no workers are connected to the scheduler (a worker died or left); "
            "frames that cannot be fetched are shown blank"
        ]
        assert cluster.outage_notice(str(w.message)) == ""  # told already
        assert cluster.outage_notice("/x.dcm: ValueError: broken (frame 0)") is None  # not an outage
        # a new open says why it cannot
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match="no workers are connected") as ei:
            napari_dcm.read(series, scheduler=dask_remote.address)
        assert ei.value.path == dask_remote.address and time.monotonic() - t0 < 15
        # ... and so does a fresh connection
        cluster.reset()
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match=r"no workers are connected to the scheduler \(waited 2 s\)"):
            cluster.connect(dask_remote.address, timeout=2)
        assert time.monotonic() - t0 < 6
    finally:
        dask_remote.start_worker()
    # the worker is back: frames come again (blank frames were not cached)
    again = t.data[7].compute()
    assert again.any()
    local = napari_dcm.read(dask_remote.sources[Path(t.metadata["frame_paths"][7])])[0].data.compute()
    assert np.array_equal(again, local)


def test_refs_are_thread_safe_and_bounded(dask_remote):
    """Read-ahead calls ref.read() from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    (t,) = napari_dcm.read(dask_remote.remote["rgb_cine"], scheduler=dask_remote.address)
    refs = [v[1] for v in dict(t.data.__dask_graph__()).values()]
    with ThreadPoolExecutor(4) as pool:
        encs = list(pool.map(lambda r: r.read(), refs))
    (local,) = napari_dcm.read(dask_remote.sources[dask_remote.remote["rgb_cine"]])
    local_refs = sorted((v[1] for v in dict(local.data.__dask_graph__()).values()), key=lambda r: r.index)
    for r, enc in zip(refs, encs):
        assert bytes(enc.data) == bytes(local_refs[r.index].read().data)
