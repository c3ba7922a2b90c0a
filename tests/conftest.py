"""Shared fixtures: the real DICOM corpus, reference decodes, generated studies."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORPUS = Path(os.environ.get("NAPARI_DCM_CORPUS", REPO.parent / "shared" / "dicom-corpus"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

sys.path.insert(0, str(HERE))


def corpus_rows() -> list[dict]:
    """MANIFEST.tsv rows (empty when the corpus is missing)."""
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with open(manifest, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def corpus_files(*categories: str, exclude: tuple = ()) -> list[str]:
    out = []
    for r in corpus_rows():
        cat = r["path"].split("/")[0]
        if categories and cat not in categories:
            continue
        if any(x in r["path"] for x in exclude):
            continue
        out.append(r["path"])
    return out or ["<corpus missing>"]


# --------------------------------------------------------------------------
# markers and per-test state

VIEWER_FIXTURES = {"make_napari_viewer", "make_napari_viewer_proxy", "qtbot"}


def pytest_collection_modifyitems(config, items):
    """Every test that uses a Qt/napari viewer fixture is a ``viewer`` test, whether or not
    it says so, so ``-m "not viewer"`` is truly headless (tests that start a GUI in a
    subprocess carry the mark themselves)."""
    for item in items:
        if VIEWER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.viewer)


@pytest.fixture(autouse=True)
def _fresh_decoder_state():
    """Each test starts with napari-dcm's decoded-frame cache, counters and the
    once-per-file decode reports forgotten (module singletons are reset here, never
    poked by tests)."""
    from napari_dcm.dicom import decode

    decode.reset()
    yield


@pytest.fixture(autouse=True)
def _readahead_stopped_after():
    """Read-ahead threads a test's viewers started end with the test (their decodes
    never land in the next test's counters)."""
    yield
    from napari_dcm.dicom import readahead

    readahead.shutdown_all(wait=30)


@pytest.fixture
def readahead_off():
    """Read-ahead disabled for one test (tests of what the open path itself decodes)."""
    from dataclasses import asdict

    from napari_dcm.dicom import readahead

    before = asdict(readahead.SETTINGS)
    readahead.configure(enabled=False)
    yield
    readahead.configure(**before)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus; missing corpus fails in CI and skips elsewhere."""
    if not (CORPUS / "MANIFEST.tsv").is_file():
        msg = f"DICOM corpus not found at {CORPUS} (expected ../shared/dicom-corpus beside the repo)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return CORPUS


@pytest.fixture(scope="session")
def manifest(corpus) -> dict:
    return {r["path"]: r for r in corpus_rows()}


def _ref_worker_init(tests_dir: str):
    sys.path.insert(0, tests_dir)


def _ref_call(path: str):
    from reference import reference_frames

    return reference_frames(path)


@pytest.fixture(scope="session")
def reference():
    """Reference decode by pydicom alone, in a process that never imports
    napari_dcm (so napari-dcm's codec plugins cannot leak into the reference)."""
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(1, mp_context=ctx, initializer=_ref_worker_init, initargs=(str(HERE),))

    def ref(path) -> np.ndarray:
        return pool.submit(_ref_call, os.fspath(path)).result(timeout=300)

    yield ref
    pool.shutdown()


@pytest.fixture(scope="session")
def sample_study() -> Path:
    from napari_dcm._sample import SAMPLE_STUDY

    return Path(SAMPLE_STUDY)


# --------------------------------------------------------------------------
# generated data

from synth import write_ct_series, write_multiframe  # noqa: E402


@pytest.fixture
def ct_series(tmp_path) -> Path:
    """A 12-slice CT series whose file names and instance numbers disagree with positions."""
    return write_ct_series(tmp_path / "ct", n=12, shuffle_names=True)


@pytest.fixture(scope="session")
def big_multiframe(tmp_path_factory) -> Path:
    """A 24-frame 1024x832 uint16 Explicit LE multi-frame file."""
    d = tmp_path_factory.mktemp("mf")
    return write_multiframe(d / "big.dcm", frames=24, rows=1024, cols=832)


@pytest.fixture
def bytes_read(monkeypatch):
    """Counts bytes read through ``open`` during a test: ``sum(bytes_read)``."""
    import builtins

    sizes: list[int] = []
    real_open = builtins.open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def read(self, *a):
            b = self.fh.read(*a)
            sizes.append(len(b))
            return b

        def __getattr__(self, k):
            return getattr(self.fh, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

    monkeypatch.setattr(builtins, "open", lambda *a, **k: Spy(real_open(*a, **k)))
    return sizes


# --------------------------------------------------------------------------
# real servers on loopback (Orthanc DIMSE, namespaced dask worker, sshd) and dciodvfy: see servers.py

from servers import dask_remote, dask_remote_session, dciodvfy, orthanc_dimse, sshd_server  # noqa: E402,F401
