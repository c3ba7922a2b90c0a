"""Read-ahead: frames around the shown one decoded in the background, within a window,
into a byte-bounded cache; never blocking, never decoding twice."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

import napari_dcm
from napari_dcm.dicom import cache, decode, readahead, volume
from napari_dcm.dicom.readahead import ReadAhead, Settings, Target, window
from napari_dcm.dicom.sources import EncodedFrame
from napari_dcm.dicom.sources.file import NativeFrame


def _decoded(path) -> dict[int, int]:
    """Stored frame index -> decodes of it (level 0) since the last reset."""
    return {k[1]: n for k, n in decode.STATS.frames.items() if k[0] == str(path) and k[2] == 0}


@pytest.fixture
def mf(tmp_path):
    from synth import write_multiframe

    return write_multiframe(tmp_path / "mf.dcm", frames=40, rows=256, cols=200)


@pytest.fixture
def small_cache():
    """The process cache shrunk for one test, restored after."""
    before = cache.CACHE.max_bytes
    yield
    cache.CACHE.resize(before)


def test_window_order():
    assert window(20, 40, 1, 3, 2) == [20, 21, 22, 23, 19, 18]
    assert window(20, 40, -1, 3, 2) == [20, 19, 18, 17, 21, 22]
    assert window(1, 40, -1, 3, 2) == [1, 0, 2, 3]
    assert window(39, 40, 1, 3, 1) == [39, 38]
    assert window(40, 40, 1, 3, 1) == []


def test_decodes_exactly_its_window_and_follows_a_jump(mf):
    data = napari_dcm.read(mf)[0][0]
    table = volume.frame_table(data)
    assert table is not None and len(table) == 40
    eng = ReadAhead(Settings(ahead=6, behind=2, threads=2))
    decode.STATS.reset()
    jobs = eng.request([Target(table, 20, 1)])
    assert [k for _, k in jobs] == [20, 21, 22, 23, 24, 25, 26, 19, 18]
    assert eng.wait_idle(60)
    assert _decoded(mf) == dict.fromkeys(range(18, 27), 1)
    # the reader jumps back: the new window, nearest first against the old direction
    jobs = eng.request([Target(table, 3, -1)])
    assert [k for _, k in jobs] == [3, 2, 1, 0, 4, 5]
    assert eng.wait_idle(60)
    assert _decoded(mf) == dict.fromkeys([*range(0, 6), *range(18, 27)], 1)  # nothing else, nothing twice
    # napari asking for a frame read ahead finds it decoded
    n = decode.STATS.decodes
    got = np.asarray(data[22])
    assert decode.STATS.decodes == n
    import pydicom

    assert np.array_equal(got, pydicom.dcmread(mf).pixel_array[22])
    eng.close()


def test_window_never_larger_than_the_cache_budget(mf, small_cache):
    data = napari_dcm.read(mf)[0][0]
    table = volume.frame_table(data)
    frame = table.frame_nbytes
    cache.CACHE.clear()
    cache.CACHE.resize(6 * frame + frame // 2)  # 6 frames fit
    eng = ReadAhead(Settings(ahead=16, behind=4, threads=2, fill=0.75))
    jobs = eng.request([Target(table, 10, 1)])
    assert len(jobs) == int(0.75 * cache.CACHE.max_bytes // frame) == 4
    assert eng.wait_idle(60)
    # scroll through everything, napari-style, with read-ahead following
    for k in range(40):
        eng.request([Target(table, k, 1)])
        np.asarray(data[k])
    assert eng.wait_idle(60)
    assert cache.CACHE.peak_nbytes <= cache.CACHE.max_bytes
    assert cache.CACHE.nbytes <= cache.CACHE.max_bytes
    eng.close()


def test_cache_budget_from_env_and_setting(monkeypatch, small_cache):
    monkeypatch.setenv("NAPARI_DCM_CACHE_MB", "96")
    assert cache.default_budget() == 96 * 2**20
    assert cache.set_cache_size(None) == 96 * 2**20 == cache.CACHE.max_bytes
    monkeypatch.delenv("NAPARI_DCM_CACHE_MB")
    assert cache.DEFAULT_MIN <= cache.default_budget() <= cache.DEFAULT_MAX
    assert napari_dcm.set_cache_size(200) == 200 * 2**20 == napari_dcm.cache_info()["max_bytes"]
    with pytest.raises(ValueError):
        cache.set_cache_size(-1)
    # a smaller budget evicts at once
    big = np.zeros(2**20, np.uint8)
    for i in range(10):
        cache.CACHE.put(("t", i), big.copy())
    cache.set_cache_size(3)
    assert len([i for i in range(10) if ("t", i) in cache.CACHE]) == 3
    assert cache.CACHE.nbytes <= 3 * 2**20


def test_one_decode_when_napari_asks_for_a_frame_being_read_ahead(tmp_path):
    from synth import write_multiframe

    p = write_multiframe(tmp_path / "j2k.dcm", frames=8, rows=1024, cols=832, syntax="j2k")
    data = napari_dcm.read(p)[0][0]
    table = volume.frame_table(data)
    eng = ReadAhead(Settings(ahead=7, behind=0, threads=2))
    decode.STATS.reset()
    eng.request([Target(table, 0, 1)])
    # napari's thread asks for every frame while read-ahead works on them
    frames = [np.asarray(data[k]) for k in range(8)]
    assert eng.wait_idle(120)
    assert _decoded(p) == dict.fromkeys(range(8), 1)
    import pydicom

    assert np.array_equal(np.stack(frames), pydicom.dcmread(p).pixel_array)
    eng.close()


def test_failing_frame_is_skipped_and_the_others_come(tmp_path):
    """A frame whose codestream is damaged (a real broken file) fails on its own."""
    from synth import write_multiframe

    p = write_multiframe(tmp_path / "broken.dcm", frames=6, rows=128, cols=128, syntax="jpegls")
    table = volume.frame_table(napari_dcm.read(p)[0][0])
    off, n = table.refs[2].ranges[0]
    raw = bytearray(p.read_bytes())
    raw[off : off + 16] = bytes(16)  # frame 2's codestream loses its start (SOI, SOF)
    p.write_bytes(bytes(raw))
    data = napari_dcm.read(p)[0][0]
    table = volume.frame_table(data)
    eng = ReadAhead(Settings(ahead=5, behind=0, threads=1))
    decode.STATS.reset()
    eng.request([Target(table, 0, 1)])
    assert eng.wait_idle(60)
    assert eng.counts["failed"] == 1 and eng.counts["decoded"] == 5
    assert all(table.key(k) in cache.CACHE for k in (0, 1, 3, 4, 5))
    assert table.key(2) not in cache.CACHE  # a failure is not cached: napari reports it when shown
    eng.close()


@dataclass(frozen=True)
class _StalledFrame:
    """A frame source whose bytes do not come until ``release`` is set (a stalled network
    fetch).  Frame sources are napari-dcm's extension point: any object with ``path``,
    ``index`` and ``read()`` is one."""

    inner: NativeFrame
    release: threading.Event

    @property
    def path(self) -> str:
        return self.inner.path

    @property
    def index(self) -> int:
        return self.inner.index

    def read(self) -> EncodedFrame:
        self.release.wait(60)
        return self.inner.read()


def test_stalled_frame_blocks_neither_the_caller_nor_the_other_frames(mf):
    data = napari_dcm.read(mf)[0][0]
    table = volume.frame_table(data)
    release = threading.Event()
    refs = list(table.refs)
    refs[11] = _StalledFrame(refs[11], release)  # the first frame ahead stalls
    stalled = volume.FrameTable(refs, table.descs, table.transforms, table.shape, table.dtype, table.strict)
    eng = ReadAhead(Settings(ahead=8, behind=0, threads=1, slow_after=0.3))
    decode.STATS.reset()
    t = time.perf_counter()
    eng.request([Target(stalled, 10, 1)])
    assert time.perf_counter() - t < 0.2  # the request never waits for a decode
    # the single thread is stuck on frame 11: a second one takes the rest
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(stalled.key(k) in cache.CACHE for k in range(12, 19)):
        time.sleep(0.05)
    assert all(stalled.key(k) in cache.CACHE for k in (10, *range(12, 19)))
    assert stalled.key(11) not in cache.CACHE
    release.set()
    assert eng.wait_idle(30)
    assert stalled.key(11) in cache.CACHE
    eng.close()


def test_disabled_readahead_plans_nothing(mf):
    table = volume.frame_table(napari_dcm.read(mf)[0][0])
    assert ReadAhead(Settings(enabled=False)).request([Target(table, 5, 1)]) == []


def test_env_settings(monkeypatch):
    monkeypatch.setenv("NAPARI_DCM_READAHEAD", "12,3")
    monkeypatch.setenv("NAPARI_DCM_READAHEAD_THREADS", "3")
    s = readahead._from_env()
    assert (s.enabled, s.ahead, s.behind, s.threads) == (True, 12, 3, 3)
    monkeypatch.setenv("NAPARI_DCM_READAHEAD", "off")
    assert not readahead._from_env().enabled


# --------------------------------------------------------------------------
# in a real viewer


def _windows(indices, n, s: Settings) -> set[int]:
    out: set[int] = set()
    for i, d in indices:
        out |= set(window(i, n, d, s.ahead, s.behind))
    return out


def test_viewer_reads_ahead_of_the_slider(make_napari_viewer, big_multiframe):
    viewer = make_napari_viewer(show=True)
    napari_dcm.view(str(big_multiframe), viewer=viewer)
    from napari_dcm._qt.readahead import follower

    f = follower(viewer)
    assert f is not None
    layer = viewer.layers[0]
    mid = (24 - 1) // 2
    assert int(viewer.dims.current_step[0]) == mid
    assert f.wait_idle(60)
    s = f.engine.settings
    seen = [(mid, 1)]
    assert set(_decoded(big_multiframe)) <= _windows(seen, 24, s)
    assert set(_decoded(big_multiframe)) >= set(range(mid, mid + 6))
    # step forward: each frame shown was decoded once, by read-ahead, before it was shown
    for k in range(mid + 1, mid + 4):
        viewer.dims.set_current_step(0, k)
        seen.append((k, 1))
        assert f.targets[0].index == k and f.targets[0].direction == 1
        assert f.wait_idle(60)
    # step back: the window turns round
    viewer.dims.set_current_step(0, mid + 2)
    seen.append((mid + 2, -1))
    assert f.targets[0].direction == -1
    assert [k for _, k in f.engine.planned[:3]] == [mid + 2, mid + 1, mid]
    assert f.wait_idle(60)
    decoded = _decoded(big_multiframe)
    assert set(decoded) <= _windows(seen, 24, s)  # never outside a window
    assert all(n == 1 for n in decoded.values())  # never twice
    # a hidden layer is not read ahead; 3D display reads nothing ahead
    layer.visible = False
    assert f.targets == []
    layer.visible = True
    viewer.dims.ndisplay = 3
    assert f.targets == []
    viewer.dims.ndisplay = 2
    assert len(f.targets) == 1


def test_viewer_reads_ahead_for_the_npe2_reader(make_napari_viewer, qtbot, big_multiframe):
    """``viewer.open(..., plugin="napari-dcm")`` (drag and drop, File > Open) gets read-ahead too."""
    viewer = make_napari_viewer(show=True)
    viewer.open(str(big_multiframe), plugin="napari-dcm")
    from napari_dcm._qt.readahead import follower

    f = follower(viewer)
    assert f is not None
    start = int(viewer.dims.current_step[0])
    assert start == (24 - 1) // 2  # the reader shows the middle frame first
    viewer.dims.set_current_step(0, 5)
    # moving back from the middle: the window at 5 runs backwards (5, 4, ... then 6, 7, ...);
    # the first window (around the middle) may be dropped before it ran, so only the
    # frames of the window at 5 are owed
    target = f.targets[0]
    assert (target.index, target.direction) == (5, -1)
    want = {k for _, k in f.engine.planned}
    s = f.engine.settings
    assert want == set(range(max(0, 5 - s.ahead), 5 + s.behind + 1))
    # Qt must run while we wait: read-ahead holds while napari slices and draws, and
    # resumes when Qt is idle (blocking in wait_idle could return while it is held)
    qtbot.waitUntil(lambda: want <= set(_decoded(big_multiframe)), timeout=60000)
    assert f.wait_idle(60)
    decoded = _decoded(big_multiframe)
    assert all(n == 1 for n in decoded.values())  # never twice


def test_held_engine_starts_nothing_until_released(mf):
    table = volume.frame_table(napari_dcm.read(mf)[0][0])
    eng = ReadAhead(Settings(ahead=4, behind=0, threads=2))
    decode.STATS.reset()
    eng.hold(True)
    eng.request([Target(table, 10, 1)])
    time.sleep(0.3)
    assert _decoded(mf) == {} and eng.idle()  # held: nothing runs, the queue waits
    eng.hold(False)
    assert eng.wait_idle(60)
    assert _decoded(mf) == dict.fromkeys(range(10, 15), 1)
    eng.close()


# --------------------------------------------------------------------------
# any frame source: DICOMweb (a real Orthanc on loopback)

from test_dicomweb import orthanc  # noqa: E402,F401  (the session's Orthanc with the corpus files)


def test_reads_ahead_from_dicomweb(orthanc):  # noqa: F811
    from napari_dcm.dicom import dicomweb as dw
    from orthanc import PASSWORD, USER

    path, study, series, _ = orthanc.files["j2k_multiframe"]
    data = napari_dcm.read_dicomweb(orthanc.dicomweb, study, series, auth=(USER, PASSWORD))[0].data
    table = volume.frame_table(data)
    assert table is not None and all(type(r).__name__ == "WebFrame" for r in table.refs)
    dw.wait_prefetch()  # napari's first frame was fetched while the layer was built
    cache.CACHE.clear()
    eng = ReadAhead(Settings(ahead=4, behind=1, threads=2))
    decode.STATS.reset()
    eng.request([Target(table, 3, 1)])
    assert eng.wait_idle(60)
    key = table.refs[0].path
    assert {k[1] for k in decode.STATS.frames if k[0] == key} == {2, 3, 4, 5, 6, 7}
    srv = dw.server_for(dw.normalize_base(orthanc.dicomweb))
    n = srv.requests
    local = napari_dcm.read(path)[0].data
    for k in range(2, 8):  # napari finds them decoded: no request, no decode
        assert np.array_equal(np.asarray(data[k]), np.asarray(local[k]))
    assert srv.requests == n
    assert all(v == 1 for v in decode.STATS.frames.values())  # nothing decoded twice
    eng.close()
