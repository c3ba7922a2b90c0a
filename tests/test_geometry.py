"""Slice order, spacing, scale/translate and series splitting follow the standard."""

from __future__ import annotations

import numpy as np
import pydicom

import napari_dcm
from synth import write_ct_series, write_multiframe


def test_knee_series_position_order_and_spacing(corpus):
    folder = corpus / "ct_mr_series" / "orthanc_Knee_T1"
    layers = napari_dcm.read(folder)
    assert len(layers) == 1
    data, kw, _ = layers[0]
    assert data.shape == (24, 512, 512)
    md = kw["metadata"]
    # recompute the expected order from the headers with pydicom
    dss = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir())]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    n = np.cross(iop[:3], iop[3:])
    dist = {
        str(folder / p.name): float(np.dot(n, np.array(ds.ImagePositionPatient, float)))
        for p, ds in zip(sorted(folder.iterdir()), dss)
    }
    got = [dist[p] for p in md["frame_paths"]]
    assert got == sorted(got), "slices are not in position order"
    steps = np.diff(got)
    assert np.allclose(kw["scale"][0], np.median(steps), rtol=1e-6)
    ps = [float(x) for x in dss[0].PixelSpacing]
    assert kw["scale"][1:] == tuple(ps)
    assert np.isclose(kw["translate"][0], min(got))
    assert md["spacing_uniform"]


def test_position_beats_instance_number_and_file_name(ct_series):
    data, kw, _ = napari_dcm.read(ct_series)[0]
    assert data.shape == (12, 64, 64)
    vals = data[:, 40, 40].compute()
    # slice k (z = -20 + 2.5k) holds 1000 + 10k stored, -1024 rescale
    assert list(vals) == [1000 + 10 * k - 1024 for k in range(12)]
    assert kw["scale"] == (2.5, 0.8, 0.7)
    assert kw["translate"] == (-20.0, -32.0, -32.0)
    assert data.dtype == np.int16  # 12-bit unsigned stored, intercept -1024 -> int16 holds it
    assert kw["contrast_limits"] == (40 - 0.5 - 399 / 2, 40 - 0.5 + 399 / 2)


def test_same_position_falls_back_to_instance_number(tmp_path):
    # positions missing: InstanceNumber decides, then the file name
    d = write_ct_series(tmp_path / "s", n=5, shuffle_names=True, instance_numbers=[5, 3, 1, 2, 4])
    for p in d.iterdir():
        ds = pydicom.dcmread(p)
        del ds.ImagePositionPatient
        ds.save_as(p)
    data, kw, _ = napari_dcm.read(d)[0]
    inst = [pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber for p in kw["metadata"]["frame_paths"]]
    assert inst == [1, 2, 3, 4, 5]


def test_inconsistent_series_splits(tmp_path):
    d = tmp_path / "mixed"
    write_ct_series(d, n=6, rows=64, cols=64, series="a")
    # same series UID, different size and a different orientation
    write_ct_series(d / "big", n=3, rows=32, cols=32, series="a")
    write_ct_series(d / "sag", n=4, rows=64, cols=64, series="a", orientation=(0, 1, 0, 0, 0, -1))
    layers = napari_dcm.read(d)
    shapes = sorted(l[0].shape for l in layers)
    assert shapes == [(3, 32, 32), (4, 64, 64), (6, 64, 64)]
    names = [l[1]["name"] for l in layers]
    assert len(set(names)) == 3  # unique names


def test_enhanced_mr_frames_ordered_by_per_frame_position(corpus):
    path = corpus / "multiframe" / "MOVEKNEE.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    layers = napari_dcm.read(path)
    total = sum(l[0].shape[0] for l in layers)
    assert total == int(ds.NumberOfFrames)
    for _data, kw, _ in layers:
        md = kw["metadata"]
        d2s = md["display_to_stored"]
        from reference import _fg

        pos = []
        for i in d2s:
            ori = _fg(ds, i, "PlaneOrientationSequence").ImageOrientationPatient
            n = np.cross(np.array(ori[:3], float), np.array(ori[3:], float))
            pos.append(float(np.dot(n, np.array(_fg(ds, i, "PlanePositionSequence").ImagePositionPatient, float))))
        assert pos == sorted(pos)
        # the stored-to-display map inverts display-to-stored
        s2d = md["stored_to_display"]
        assert all(s2d[s] == disp for disp, s in enumerate(d2s))


def test_enhanced_reversed_positions_are_reordered(tmp_path):
    p = write_multiframe(tmp_path / "rev.dcm", frames=6, rows=32, cols=24)
    ds = pydicom.dcmread(p)
    for k, it in enumerate(ds.PerFrameFunctionalGroupsSequence):
        it.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, float(10 - 2 * k)]
    ds.save_as(p)
    data, kw, _ = napari_dcm.read(p)[0]
    assert kw["metadata"]["display_to_stored"] == [5, 4, 3, 2, 1, 0]
    assert kw["scale"][0] == 2.0
    raw = ds.pixel_array
    assert np.array_equal(data.compute(), raw[::-1])


def test_multiframe_without_positions_keeps_stored_order(corpus):
    data, kw, _ = napari_dcm.read(corpus / "multiframe" / "GREYSCALE_CINE.dcm")[0]
    assert kw["metadata"]["display_to_stored"] == list(range(27))
    assert kw["scale"][0] == 1.0


def test_rtdose_grid_frame_offsets(corpus):
    path = corpus / "multiframe" / "rtdose.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    data, kw, _ = napari_dcm.read(path)[0]
    gfov = [float(x) for x in ds.GridFrameOffsetVector]
    assert np.isclose(kw["scale"][0], abs(gfov[1] - gfov[0]))
