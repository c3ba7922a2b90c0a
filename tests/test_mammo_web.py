"""Mammography over DICOMweb (a real Orthanc on loopback): hanging rules and overlay planes
from the metadata (never a dcmread of a URL), the shown frame of every cell fetched in
parallel, and the CLI's ``--dicomweb URL --study UID --hang 2x2``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest

import napari_dcm
from conftest import IN_CI
from mammo_sets import Bases, four_view
from napari_dcm.dicom import dicomweb as dw
from napari_dcm.dicom import overlay_planes as op
from orthanc import PASSWORD, USER, Orthanc, available

BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def web_study(corpus, tmp_path_factory):
    if not available():
        msg = "Orthanc (apt: orthanc orthanc-dicomweb) is not installed"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("mgweb")
    paths = four_view(Bases(corpus, factor=4), d, patient="MGWEB")
    # the LMLO says its view only in ViewCodeSequence, and carries an overlay plane
    ds = pydicom.dcmread(paths["LMLO"])
    del ds.ViewPosition
    bits = np.zeros((ds.Rows, ds.Columns), np.uint8)
    bits[100:120, 50:400] = 1
    from pydicom.pixels import pack_bits

    for elem, vr, value in (
        (0x0010, "US", ds.Rows),
        (0x0011, "US", ds.Columns),
        (0x0040, "CS", "G"),
        (0x0050, "SS", [1, 1]),
        (0x0100, "US", 1),
        (0x0102, "US", 0),
        (0x3000, "OW", pack_bits(bits.reshape(-1))),
    ):
        ds.add_new((0x6000 << 16) | elem, vr, value)
    ds.save_as(paths["LMLO"])
    server = Orthanc()
    try:
        for p in paths.values():
            server.upload(p)
        server.study = str(ds.StudyInstanceUID)
        server.paths = paths
        server.bits = bits
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    dw.reset(sessions=False)
    op.reset()
    # nothing may open a DICOMweb URL as a file
    real = pydicom.dcmread

    def guarded(fp, *a, **k):
        assert "://" not in str(fp), f"dcmread of a URL: {fp}"
        return real(fp, *a, **k)

    monkeypatch.setattr(pydicom, "dcmread", guarded)
    yield


def test_layout_and_overlay_plane_from_dicomweb_metadata(web_study):
    layers = napari_dcm.read_dicomweb(web_study.dicomweb, web_study.study, auth=(USER, PASSWORD))
    images = [t for t in layers if t.layer_type == "image"]
    keys = [t.metadata["paths"][0] for t in images]
    assert all(k.startswith(web_study.dicomweb) for k in keys)
    lay = napari_dcm.mammo_layout(keys)
    assert lay.name == "2x2"
    by_slot = {s.name: s.path for s in lay.slots}
    views = {t.metadata["paths"][0]: t.metadata.get("view_position") for t in images}
    lmlo = by_slot["LMLO"]
    assert views[lmlo] is None  # hung by its ViewCodeSequence, read from the metadata
    assert all(by_slot[n] is not None for n in ("RCC", "LCC", "RMLO"))
    # the overlay plane: listed from the metadata, its Overlay Data fetched when drawn
    (plane,) = [t for t in layers if t.layer_type == "labels"]
    assert plane.name.endswith("overlay 6000") and plane.metadata["napari_dcm_overlay_of"] == next(
        t.name for t in images if t.metadata["paths"][0] == lmlo
    )
    assert np.array_equal(np.asarray(plane.data), web_study.bits)


@pytest.mark.viewer
def test_hanging_a_dicomweb_study_fetches_the_cells_in_parallel(make_napari_viewer, web_study):
    from napari_dcm._qt import hanging

    hanging.LAST_PREFETCH.clear()
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(viewer=viewer, dicomweb=web_study.dicomweb, study=web_study.study, auth=(USER, PASSWORD))
    times = list(hanging.LAST_PREFETCH)
    assert len(times) == 4
    # in parallel: fetches overlap in time (one after the other, they never would)
    assert concurrency(times) >= 2, times
    srv = dw.server_for(dw.normalize_base(web_study.dicomweb))
    requests_before = srv.requests
    lay = hanging.apply_layout(viewer, "2x2")
    assert [s.missing for s in lay.slots] == [False] * 4
    hang = hanging.current(viewer)
    assert [l.name for l in hang.labels.values()] == ["RCC", "LCC", "RMLO", "LMLO"]
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    viewer.screenshot(canvas_only=True, flash=False)
    assert srv.requests == requests_before  # the hanging fetched nothing more: the frames were there


def concurrency(intervals) -> int:
    """The most intervals running at one moment."""
    events = sorted([(t0, 1) for t0, _ in intervals] + [(t1, -1) for _, t1 in intervals])
    n = best = 0
    for _, step in events:
        n += step
        best = max(best, n)
    return best


def test_cli_dicomweb_hang(web_study, tmp_path):
    shot = tmp_path / "hang.png"
    env = dict(os.environ, NAPARI_DCM_DICOMWEB_PASSWORD=PASSWORD, NAPARI_DCM_CACHE=str(tmp_path / "c"))
    out = subprocess.run(
        [
            os.path.join(BIN, "napari-dcm"),
            "--dicomweb",
            web_study.dicomweb,
            "--study",
            web_study.study,
            "--user",
            USER,
            "--hang",
            "2x2",
            "--screenshot",
            str(shot),
            "--exit",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "fetched the shown frame of 4 image(s) in parallel" in text
    from PIL import Image

    img = np.asarray(Image.open(shot))
    assert img.shape[0] > 100 and shot.stat().st_size > 10_000
