"""Series assembly of packed headers (issue 11): headers a scan worker sent packed keep
the base they were rebuilt from (``Header.packed``), and series assembly does the
per-file work (descriptor, size check, series key, shared values) once per base where
the base's varying values allow it.  The stacks must be those of the same headers
assembled one by one."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from napari_dcm.dicom import discovery, series


def _files(tmp_path, n=15):
    """Small MR files laid out alike (same lengths everywhere): the scan describes all but
    the first by its layout, and some values vary only in later files."""
    from pydicom.uid import MRImageStorage

    from synth import _file_ds

    folder = tmp_path / "s"
    folder.mkdir()
    out = []
    for k in range(n):
        ds = _file_ds(MRImageStorage, f"1.2.826.0.1.3680043.10.998.{100000 + k}")
        ds.PatientID, ds.Modality = "PACKED", "MR"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.998.1"
        # the first six files are one series; later ones alternate between three
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.998.2.{0 if k < 6 else k % 3}"
        ds.InstanceNumber = f"{k + 1:4d}"
        ds.ImagePositionPatient = [0.0, 0.0, f"{k:6.1f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.WindowCenter, ds.WindowWidth = f"{100 if k < 9 else 200:4d}", "400"
        ds.RescaleIntercept, ds.RescaleSlope = f"{0 if k % 4 else -1:3d}", "1"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 4
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = (np.arange(16, dtype=np.uint16) + k).tobytes()
        path = str(folder / f"i{k:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    # a file of the first series whose pixel data is cut short: same header bytes (same
    # base), another file size, which check_size refuses
    data = Path(out[3]).read_bytes()
    Path(out[3]).write_bytes(data[:-10])
    return out


def _summary(stacks):
    return [
        (
            s.shape,
            s.dtype.str,
            s.scale,
            s.translate,
            s.windows,
            s.info,
            s.spacing_uniform,
            [
                (
                    f.ref,
                    f.desc,
                    f.transform,
                    f.position,
                    f.orientation,
                    f.pixel_spacing,
                    f.windows,
                    f.instance_number,
                    f.sop_instance_uid,
                    f.thickness,
                )
                for f in s.frames
            ],
        )
        for s in stacks
    ]


def test_packed_headers_assemble_like_single_ones(tmp_path):
    files = _files(tmp_path)
    packed = pickle.loads(pickle.dumps(discovery._scan_chunk_packed(files)))
    hs = discovery._unpack(files, packed)
    assert all(h.packed is not None for h in hs[1:])  # all but the first came packed
    assert len({id(h.packed) for h in hs[1:]}) > 1  # the base changed when values began to vary
    got, got_skipped = series.stacks_from_headers(hs)
    want, want_skipped = series.stacks_from_headers([dataclasses.replace(h, packed=None) for h in hs])
    assert _summary(got) == _summary(want)
    assert got_skipped == want_skipped
    assert [p for p, _ in got_skipped] == [files[3]]  # the short file, although its base was memoised
    assert len(got) == 3
    assert sorted(s.nframes for s in got) == [3, 3, 8]
    # the stacks' windows and rescales follow each file, memoised or not
    first = next(s for s in got if s.nframes == 8)
    assert [f.instance_number for f in first.frames] == [1, 2, 3, 5, 6, 7, 10, 13]
    assert [f.windows[0].center for f in first.frames] == [100.0] * 6 + [200.0, 200.0]
    assert [f.transform.intercept for f in first.frames] == [-1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0]


def test_the_scan_starts_while_listing_and_gives_what_a_serial_scan_gives(tmp_path):
    """scan_paths hands chunks to the workers as the folders are listed: every file once,
    in listing order, as the serial scan finds them; progress counts up to the total."""
    from synth import write_small_files

    folder = write_small_files(tmp_path / "many", discovery.CHUNK * 2 + 37, per_series=100)
    (folder / "not_dicom.txt").write_text("hello")
    one = sorted(str(p) for p in folder.rglob("*.dcm"))[5]
    calls = []
    par = discovery.scan_paths([str(folder), one], progress=lambda d, t: calls.append((d, t)), workers=2)
    ser = discovery.scan_paths([str(folder), one], workers=1)
    total = discovery.CHUNK * 2 + 38
    assert par.n_files == ser.n_files == total  # the file named twice counts once
    assert [dataclasses.replace(h, packed=None) for h in par.headers] == ser.headers
    assert par.skipped == ser.skipped == [(str(folder / "not_dicom.txt"), "not DICOM")]
    assert calls[-1] == (total, total) and len(calls) == 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_series_order_equals_its_definition():
    """series_order sorts by numbers alone when they have no ties, else with names and
    paths too: the order must be the definition's (position along the normal, missing
    last; InstanceNumber, missing last; file name; path) in both cases."""
    import os
    import random

    from napari_dcm.dicom.scan import Header

    rng = random.Random(3)
    for trial in range(200):
        n = rng.randint(1, 12)
        tied = trial % 2  # half the trials draw from few values (ties), half from many
        pos = [rng.choice([None, 0.0, -0.0, 1.5, 2.0]) if tied else rng.uniform(-5, 5) for _ in range(n)]
        inst = [rng.choice([None, 1, 2]) if tied else rng.randint(0, 10**6) for _ in range(n)]
        paths = [f"/d{rng.randint(0, 2)}/f{rng.randint(0, 3 if tied else 10**6)}.dcm" for _ in range(n)]
        members = [(Header(p, values={"instance_number": i}), None) for p, i in zip(paths, inst)]
        proj = np.array([[np.nan if x is None else x, 0.0, 0.0] for x in pos])

        def key(k, pos=pos, inst=inst, paths=paths):
            return (
                pos[k] is None,
                0.0 if pos[k] is None else pos[k],
                1 << 40 if inst[k] is None else inst[k],
                os.path.basename(paths[k]),
                paths[k],
            )

        want = sorted(range(n), key=key)
        assert series.series_order(members, proj).tolist() == want, (pos, inst, paths)


def test_native_frame_is_the_dataclass_made_faster():
    from napari_dcm.dicom.sources.file import NativeFrame, native_frame

    a = native_frame("/x/y.dcm", 0, "1.2.840.10008.1.2.1", 1234, 512)
    b = NativeFrame("/x/y.dcm", 0, "1.2.840.10008.1.2.1", 1234, 512)
    assert type(a) is NativeFrame and a == b and hash(a) == hash(b) and repr(a) == repr(b)
    assert pickle.loads(pickle.dumps(a)) == b
    assert dataclasses.astuple(a) == dataclasses.astuple(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.start = 0  # still frozen


def test_projections_equal_project_with_one_or_many_orientations():
    """projections converts a shared orientation once: the values stay geometry.project's."""
    import random

    from napari_dcm.dicom import geometry

    rng = random.Random(5)
    shared = [1.0, 0.0, 0.0, 0.0, 0.8, 0.6]
    for trial in range(100):
        n = rng.randint(1, 8)
        positions = [rng.choice([None, [1.0, 2.0], [rng.uniform(-9, 9) for _ in range(3)]]) for _ in range(n)]
        if trial % 3 == 0:
            orientations = [shared] * n  # one object
        elif trial % 3 == 1:
            orientations = [list(shared) for _ in range(n)]  # equal values, other objects
        else:
            orientations = [rng.choice([None, [], shared, [0.0, 1.0, 0.0, 0.0, 0.0, -1.0], [1.0]]) for _ in range(n)]
        got = series.projections(positions, orientations)
        for k in range(n):
            want = geometry.project(positions[k], orientations[k])
            if want is None:
                assert np.isnan(got[k]).all()
            else:
                assert got[k].tolist() == list(want), (positions[k], orientations[k])
