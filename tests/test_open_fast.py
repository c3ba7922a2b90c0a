"""Opening many files fast (issue 11): the scan's shortcuts describe every file exactly
as the element-by-element walk does.

Inside a scan chunk the scan keeps the layout of walked headers (``scan._Layout``) and
describes files laid out alike by comparing bytes; scan workers answer packed
(``discovery._scan_chunk_packed``).  Every Header field, and the order of its values,
must equal what ``scan_one`` (the walk, file by file, no sharing) gives: on the whole
corpus, and on files made to look alike but differ where a shortcut could go wrong.
"""

from __future__ import annotations

import dataclasses
import gc
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_dcm.dicom import discovery, geometry, scan, series
from napari_dcm.dicom.scan import Header


def _key(h):
    if isinstance(h, Header):
        # (``packed``: the main process' note of the packed base a header was rebuilt from)
        fields = tuple(
            (f.name, getattr(h, f.name)) for f in dataclasses.fields(h) if f.name not in ("dataset", "packed")
        )
        return fields + (tuple(h.values),)  # the order of the values too
    return h


def _walked(paths):
    return [_key(discovery.scan_one(p)) for p in paths]


def _chunked(paths):
    """What the serial scan and a scan worker give for ``paths`` as one chunk."""
    serial = [_key(h) for h in discovery._scan_chunk(paths)]
    packed = pickle.loads(pickle.dumps(discovery._scan_chunk_packed(paths), protocol=pickle.HIGHEST_PROTOCOL))
    return serial, [_key(h) for h in discovery._unpack(paths, packed)]


def _assert_like_the_walk(paths):
    want = _walked(paths)
    serial, packed = _chunked(paths)
    assert serial == want
    assert packed == want


def test_corpus_headers_equal_the_walk(corpus):
    files = [str(p) for p in sorted(corpus.rglob("*")) if p.is_file() and p.name != "MANIFEST.tsv"]
    assert len(files) > 250
    want = dict(zip(files, _walked(files)))
    # files in folder order (series next to each other: layouts are used), then shuffled
    for order in (files, random.Random(7).sample(files, len(files))):
        for i in range(0, len(order), 97):
            part = order[i : i + 97]
            serial, packed = _chunked(part)
            assert serial == [want[p] for p in part]
            assert packed == [want[p] for p in part]
    # the parallel scan (worker pool, packed answers) of the whole corpus
    res = discovery.scan_paths(files)
    got = {h.path: _key(h) for h in res.headers}
    got.update({p: (p, r) for p, r in res.skipped})
    for p in files:
        if not discovery._is_dicomdir_name(p):
            assert got[p] == want[p], p


def test_a_layout_is_used_for_a_series(tmp_path):
    from synth import write_small_files

    folder = write_small_files(tmp_path / "many", 40, per_series=20)
    files = list(discovery.iter_files([str(folder)]))
    with scan.value_cache(), scan.layout_record() as rec:
        hs = [scan.scan_header(f) for f in files]
    # the first file of each series is walked, the others match its layout
    assert len(rec) >= len(files) - 4
    assert [_key(h) for h in hs] == _walked(files)
    _assert_like_the_walk(files)


def _series(tmp_path, n=6):
    """``n`` small files of one series laid out alike (fixed-width UIDs and numbers, as
    many devices write them): every file after the first matches the first's layout."""
    from pydicom.uid import MRImageStorage

    from synth import _file_ds

    folder = tmp_path / "s"
    folder.mkdir()
    out = []
    for k in range(n):
        sop = f"1.2.826.0.1.3680043.10.999.{k:06d}"
        ds = _file_ds(MRImageStorage, sop)
        ds.PatientID, ds.PatientName, ds.StudyDate, ds.Modality = "MANY", "Many^Files", "20220101", "MR"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.999.1"
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.2"
        ds.SeriesNumber, ds.InstanceNumber = 1, f"{k + 1:4d}"
        ds.ImagePositionPatient = [0.0, 0.0, f"{k:6.1f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 4
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.zeros((4, 4), np.uint16).tobytes()
        path = str(folder / f"i{k:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    sizes = {len(Path(p).read_bytes()) for p in out}
    assert len(sizes) == 1
    with scan.value_cache(), scan.layout_record() as rec:
        hs = [scan.scan_header(p) for p in out]
    assert len(rec) == n - 1 and not any(id(h) in rec for h in hs[:1])  # all but the first: by layout
    return out


def _replace_once(path, old: bytes, new: bytes):
    data = Path(path).read_bytes()
    assert data.count(old) == 1, (old, data.count(old))
    Path(path).write_bytes(data.replace(old, new))


def test_values_that_vary_where_the_first_files_agreed(tmp_path):
    files = _series(tmp_path)
    # same length, other value: Patient ID and Study Date of the 4th file
    _replace_once(files[3], b"MANY", b"MANZ")
    _replace_once(files[3], b"20220101", b"20230202")
    # an invalid DS of the same length: the walk refuses it, so must the layout
    _replace_once(files[4], b"1.0\\1.0", b"1.0\\x.0")
    _assert_like_the_walk(files)
    _assert_like_the_walk(files[::-1])


def test_other_lengths_and_other_elements_are_walked(tmp_path):
    files = _series(tmp_path, n=5)
    import pydicom

    ds = pydicom.dcmread(files[2])
    ds.SeriesDescription = "A LONGER DESCRIPTION"  # every later element moves
    ds.save_as(files[2], enforce_file_format=True)
    ds = pydicom.dcmread(files[3])
    ds.WindowCenter, ds.WindowWidth = 100, 200  # elements the first file has not
    ds.save_as(files[3], enforce_file_format=True)
    _assert_like_the_walk(files)


def test_a_truncated_or_damaged_file_after_its_layout(tmp_path):
    files = _series(tmp_path, n=4)
    data = Path(files[1]).read_bytes()
    Path(files[1]).write_bytes(data[:400])  # ends inside the header
    data = Path(files[2]).read_bytes()
    i = data.index(b"\x28\x00\x10\x00US\x02\x00")  # Rows: length 2 -> 4
    Path(files[2]).write_bytes(data[: i + 6] + b"\x04" + data[i + 7 :])
    data = Path(files[3]).read_bytes()
    Path(files[3]).write_bytes(data[:-100])  # pixel data shorter than declared
    _assert_like_the_walk(files)


def test_meta_search_patterns_in_the_instance_uid(tmp_path):
    """_meta_fast finds meta elements by searching bytes: a Media Storage SOP Instance UID
    that holds such bytes makes it find something else, and the layout must not skip it."""
    files = _series(tmp_path, n=4)
    data = Path(files[2]).read_bytes()
    i = data.index(b"\x02\x00\x03\x00UI")
    n = int.from_bytes(data[i + 6 : i + 8], "little")
    value = b"1.2\x02\x00\x10\x00UI\x08\x00" + b"9" * (n - 11)
    assert len(value) == n
    Path(files[2]).write_bytes(data[: i + 8] + value + data[i + 8 + n :])
    _assert_like_the_walk(files)


def test_sequences_are_matched_byte_for_byte(tmp_path):
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    files = _series(tmp_path, n=4)
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        item = Dataset()
        item.ReferencedSOPInstanceUID = "1.2.3.4" if k != 2 else "1.2.3.5"  # same length
        ds.ReferencedImageSequence = Sequence([item])
        ds.save_as(f, enforce_file_format=True)
        raw = Path(f).read_bytes()
        if k == 3:  # undefined lengths for the last one (the walk skips item by item)
            seq = raw.index(b"\x08\x00\x40\x11SQ\x00\x00")
            ln = int.from_bytes(raw[seq + 8 : seq + 12], "little")
            body = raw[seq + 12 : seq + 12 + ln]
            body = body[:4] + b"\xff\xff\xff\xff" + body[8:] + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
            raw = (
                raw[: seq + 8] + b"\xff\xff\xff\xff" + body + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" + raw[seq + 12 + ln :]
            )
            Path(f).write_bytes(raw)
    _assert_like_the_walk(files)
    # a sequence the walk cannot skip (its item delimiter damaged), after a file whose
    # sequence it could: the layout must not take it for the same
    bad = files[3][:-4] + "_bad.dcm"
    raw = Path(files[3]).read_bytes()
    assert raw.count(b"\xfe\xff\x0d\xe0\x00\x00\x00\x00") == 1
    Path(bad).write_bytes(raw.replace(b"\xfe\xff\x0d\xe0\x00\x00\x00\x00", b"\xfe\xff\x0d\xe1\x00\x00\x00\x00"))
    assert isinstance(discovery.scan_one(bad), tuple) or not discovery.scan_one(bad).walked
    _assert_like_the_walk([files[3], bad, files[0]])


def test_many_files_many_layouts(tmp_path):
    """More layouts than the scan keeps at once, interleaved: all still equal the walk."""
    import pydicom

    files = _series(tmp_path, n=24)
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.SeriesDescription = "X" * (2 * (k % 12) + 2)
        ds.save_as(f, enforce_file_format=True)
    _assert_like_the_walk(files)
    shutil.rmtree(tmp_path / "s")


def test_slice_spacing_arrays_equal_the_definition():
    rng = np.random.default_rng(11)
    cases = [np.cumsum(rng.uniform(0.5, 3.0, 50)), np.arange(10.0) * 1.25, np.array([0.0, 0.0, 0.0]), np.array([5.0])]
    cases += [np.array([0.0, 1.0, 2.0, 3.5]), np.array([0.0, 1.0, 2.0, 2.00001]), -np.arange(20.0) * 0.7]
    cases += [np.array([0.0, np.inf, 1.0])]
    for d in cases:
        for fallback in (None, 2.5):
            assert series._slice_spacing(d, fallback) == geometry.slice_spacing(d.tolist(), fallback)


def test_paused_gc_leaves_no_young_collection_behind():
    """What a pause built is moved to the oldest generation, not walked by young collections."""
    gc.collect()
    if not gc.isenabled():
        pytest.fail("the collector is off in this test process")
    with series.paused_gc():
        built = [[i] for i in range(100_000)]
    assert gc.isenabled()
    assert gc.get_count()[0] < 700  # the young count was reset
    assert all(gc.is_tracked(x) for x in built[:10])
    del built


def test_reading_then_slicing_leaves_the_collector_on(tmp_path):
    """dask's ``disable_gc`` (on ``slice_array``) records at import whether the collector
    was on: were dask.array first imported while napari-dcm pauses the collector, every
    later slice of any dask array would turn collection off for good."""
    import subprocess
    import sys

    from synth import write_small_files

    folder = write_small_files(tmp_path / "few", 3, per_series=3)
    code = (
        "import gc, sys\n"
        "assert 'dask.array' not in sys.modules\n"
        "import napari_dcm\n"
        f"(data, kw, kind), = napari_dcm.read({str(folder)!r})\n"
        "assert gc.isenabled()\n"
        "data[0:2].compute()\n"
        "print('collector on' if gc.isenabled() else 'collector OFF')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "collector on"


def test_an_application_freeze_is_left_alone():
    """promote_young must not unfreeze what the application froze itself."""
    gc.collect()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with series.paused_gc():
            built = [[i] for i in range(1000)]
        assert gc.get_freeze_count() == frozen
        del built
    finally:
        gc.unfreeze()
