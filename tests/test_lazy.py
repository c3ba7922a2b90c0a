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
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
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
    assert decode.CACHE._bytes <= decode.CACHE.max_bytes
    assert len(decode.CACHE._d) <= decode.CACHE.max_items


def test_dask_threads_give_same_pixels(big_multiframe):
    data = napari_dcm.read(big_multiframe)[0][0]
    with dask.config.set(scheduler="threads"):
        got = data.compute()
    assert np.array_equal(got, pydicom.dcmread(big_multiframe).pixel_array)
