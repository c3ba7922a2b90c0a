"""Files on dask workers in a real viewer: the DICOM dock's tags, hanging, a worker dying mid-scroll."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from napari.layers import Image
from napari.utils.notifications import notification_manager

import napari_dcm
from napari_dcm._qt import dicom_dock as dd
from napari_dcm.dicom import cluster
from test_cluster import never_touched

pytestmark = pytest.mark.viewer


@pytest.fixture(autouse=True)
def _fresh_clients():
    yield
    cluster.reset()


def _tags(dock) -> dict[str, str]:
    tree = dock.tree
    return {tree.topLevelItem(i).text(2): tree.topLevelItem(i).text(3) for i in range(tree.topLevelItemCount())}


def test_remote_series_with_dock_tags_from_the_worker(make_napari_viewer, dask_remote):
    series = dask_remote.remote["mr_series"]
    viewer = make_napari_viewer(show=True)
    with never_touched(dask_remote.remote_root):
        napari_dcm.view(str(series), viewer=viewer, scheduler=dask_remote.address)
        (layer,) = viewer.layers
        dock = dd.dicom_dock(viewer)
        viewer.dims.set_current_step(0, 7)
        path = layer.metadata["frame_paths"][7]
        assert dock._shown == (path, 0)
        shown = _tags(dock)
        canvas = viewer.screenshot(canvas_only=True, flash=False)
    local = pydicom.dcmread(dask_remote.sources[Path(path)], stop_before_pixels=True)
    assert shown["InstanceNumber"] == str(local.InstanceNumber)
    assert shown["SOPInstanceUID"] == local.SOPInstanceUID
    assert shown["TransferSyntaxUID"] == local.file_meta.TransferSyntaxUID  # file meta, from the worker
    assert "PixelData" not in shown
    assert (canvas[..., :3].max(axis=-1) > 30).mean() > 0.05  # the frame is on screen
    (local_layer,) = napari_dcm.read(dask_remote.sources[Path(path)].parent)
    assert np.array_equal(np.asarray(layer.data[7]), np.asarray(local_layer.data[7]))


def _mammogram(corpus, dst: Path, view: str | None, lat: str, inst: int, po=("A", "F")):
    ds = pydicom.dcmread(corpus / "mammography" / "OutOfBoundsOverlay.dcm")
    if view:
        ds.ViewPosition = view
    elif "ViewPosition" in ds:
        del ds.ViewPosition
    if "ViewCodeSequence" in ds:
        del ds.ViewCodeSequence
    ds.ImageLaterality = lat
    ds.PatientOrientation = list(po)
    ds.InstanceNumber = inst
    ds.PatientID = "MGREMOTE"
    ds.StudyInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["MGREMOTE"])
    ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["MGREMOTE", str(inst)])
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[str(dst)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(dst)
    return dst


def test_hanging_remote_mammograms(make_napari_viewer, dask_remote, corpus, tmp_path):
    """Four views hang 2x2; the one without ViewPosition is placed from its header, read on the worker."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    d = tmp_path / "mg"
    d.mkdir()
    _mammogram(corpus, d / "rcc.dcm", "CC", "R", 1, po=("P", "L"))
    _mammogram(corpus, d / "lcc.dcm", "CC", "L", 2, po=("A", "R"))
    _mammogram(corpus, d / "rmlo.dcm", "MLO", "R", 3, po=("P", "F"))
    lmlo = _mammogram(corpus, d / "lmlo.dcm", None, "L", 4)
    ds = pydicom.dcmread(lmlo)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10226", "SRT", "medio-lateral oblique"
    ds.ViewCodeSequence = Sequence([code])
    ds.save_as(lmlo)
    viewer = make_napari_viewer(show=True)
    with never_touched(d):  # the worker sees tmp_path; this process must not open it
        napari_dcm.view(str(d), viewer=viewer, scheduler=dask_remote.address)
        dock = dd.dicom_dock(viewer)
        lay = dock.hang()
        canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert lay.name == "2x2"
    images = [layer for layer in viewer.layers if isinstance(layer, Image) and "napari_dcm" in layer.metadata]
    order = [(Path(layer.metadata["paths"][0]).name) for layer in images]
    assert order == ["rcc.dcm", "lcc.dcm", "rmlo.dcm", "lmlo.dcm"]
    h, w = canvas.shape[:2]
    lit = canvas[..., :3].max(axis=-1) > 40
    quads = [lit[: h // 2, : w // 2], lit[: h // 2, w // 2 :], lit[h // 2 :, : w // 2], lit[h // 2 :, w // 2 :]]
    assert all(q.mean() > 0.02 for q in quads), [q.mean() for q in quads]


def test_worker_dying_mid_scroll(make_napari_viewer, dask_remote, sample_study):
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(str(dask_remote.remote["mr_series"]), viewer=viewer, scheduler=dask_remote.address)
    (layer,) = viewer.layers
    viewer.dims.set_current_step(0, 2)
    assert np.asarray(layer.data[2]).any()
    n0 = len(notification_manager.records)
    dask_remote.kill_worker()
    try:
        t0 = time.monotonic()
        for k in range(3, 9):  # scrolling on
            viewer.dims.set_current_step(0, k)
        took = time.monotonic() - t0
        assert took < cluster.NO_WORKER_GRACE + 8, took
        assert not np.asarray(layer.data[8]).any()  # blank (not cached: fetched again, fails at once)
        msgs = [str(n.message) for n in notification_manager.records[n0:]]
        blank = [m for m in msgs if "shown blank" in m]
        assert blank == [
            f"napari-dcm: {dask_remote.address}: no workers are connected to the scheduler (a worker died or left); "
            "frames that cannot be fetched are shown blank"
        ], msgs  # one notification for the outage, naming the scheduler first, not one per file
        # the viewer stays usable: local data opens beside the remote series
        napari_dcm.view(str(sample_study), viewer=viewer)
        assert len(viewer.layers) == 2
        viewer.dims.set_current_step(0, 5)
        assert viewer.screenshot(canvas_only=True, flash=False).size
    finally:
        dask_remote.start_worker()
    viewer.layers.remove(viewer.layers[-1])
    viewer.dims.set_current_step(0, 9)
    assert np.asarray(layer.data[9]).any()  # back once the worker is


def test_cli_scheduler_and_refused_address(dask_remote, tmp_path):
    import os
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "napari-dcm")
    remote = str(dask_remote.remote["j2k_multiframe"])
    out = subprocess.run(
        [exe, "--scheduler", dask_remote.address, remote, "--exit", "--no-dock"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "shape=(10, 64, 64)" in out.stdout
    out = subprocess.run(
        [exe, "--scheduler", "tcp://192.0.2.7:8786", "/data/study", "--exit"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 1
    assert "tcp://192.0.2.7:8786: refusing to connect: the scheduler is not on the loopback interface" in out.stderr
