"""Laziness: nothing decoded until shown, picklable graphs, distributed compute."""

from __future__ import annotations

import pickle

import dask
import numpy as np
import pydicom

import napari_dcm
from napari_dcm.dicom import decode


def test_open_decodes_at_most_one_frame(big_multiframe):
    decode.CACHE.clear()
    decode.STATS.reset()
    layers = napari_dcm.read(big_multiframe)
    assert decode.STATS.decodes == 0  # window from the header: nothing decoded at all
    data = layers[0][0]
    assert data.shape == (24, 1024, 832) and data.chunksize == (1, 1024, 832)
    data[7].compute()
    assert decode.STATS.decodes == 1


def test_percentile_window_decodes_one_frame(tmp_path):
    from synth import write_multiframe

    p = write_multiframe(tmp_path / "nowin.dcm", frames=16, rows=256, cols=200, window=None)
    decode.CACHE.clear()
    decode.STATS.reset()
    data, kw, _ = napari_dcm.read(p)[0]
    assert decode.STATS.decodes == 1
    frame = data[(16 - 1) // 2].compute()  # napari shows the middle frame first: served from cache
    assert decode.STATS.decodes == 1
    lo, hi = kw["contrast_limits"]
    assert np.isclose(lo, np.percentile(frame, 1)) and np.isclose(hi, np.percentile(frame, 99))


def test_graph_pickles_without_file_handles(big_multiframe):
    data = napari_dcm.read(big_multiframe)[0][0]
    blob = pickle.dumps(data)
    assert len(blob) < 200_000
    again = pickle.loads(blob)
    ref = pydicom.dcmread(big_multiframe).pixel_array
    assert np.array_equal(again[3].compute(scheduler="sync"), ref[3])


def test_computes_on_distributed_local_cluster(big_multiframe):
    from distributed import Client, LocalCluster

    data = napari_dcm.read(big_multiframe)[0][0]
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        got = data[[0, 5, 23]].compute(scheduler=client)
        mean = float(data.mean().compute(scheduler=client))
    ref = pydicom.dcmread(big_multiframe).pixel_array
    assert np.array_equal(got, ref[[0, 5, 23]])
    assert np.isclose(mean, ref.mean())


def test_cache_is_bounded(big_multiframe):
    decode.CACHE.clear()
    data = napari_dcm.read(big_multiframe)[0][0]
    for i in range(24):
        data[i].compute()
    assert decode.CACHE.nbytes <= decode.CACHE.max_bytes
    assert len(decode.CACHE) <= decode.CACHE.max_items


def test_dask_threads_give_same_pixels(big_multiframe):
    data = napari_dcm.read(big_multiframe)[0][0]
    with dask.config.set(scheduler="threads"):
        got = data.compute()
    assert np.array_equal(got, pydicom.dcmread(big_multiframe).pixel_array)


def test_parallel_scan_equals_serial(tmp_path):
    from napari_dcm.dicom import discovery
    from synth import write_small_files

    folder = write_small_files(tmp_path / "many", 450, per_series=150)
    par = discovery.scan_paths([str(folder)])
    ser = discovery.scan_paths([str(folder)], workers=1)
    assert par.n_files == ser.n_files == 450
    key = lambda h: h.path  # noqa: E731
    a, b = sorted(par.headers, key=key), sorted(ser.headers, key=key)
    assert [h.path for h in a] == [h.path for h in b]
    assert all(x.values == y.values and x.pixel_offset == y.pixel_offset for x, y in zip(a, b))
    layers = napari_dcm.read(folder)
    assert sorted(l[0].shape for l in layers) == [(150, 16, 16)] * 3
