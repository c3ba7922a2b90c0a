"""Hostile input (issue 12): one or more regression tests per finding class of
tests/fuzz/FINDINGS.md, on files built here (from the corpus or from scratch).

What could hang, exhaust memory or kill the process runs in a forked child with a
timeout and an address-space limit (the fuzz harness's ``probe``, or ``_in_child``),
so a regression fails the test instead of taking the suite down.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import shutil
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, get_frame
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
)

import napari_dcm
from fuzz import harness, mutate
from napari_dcm.dicom import codecs, decode, discovery, limits, scan
from napari_dcm.dicom.sources import EncodedFrame, file
from synth import _file_ds, uid

GiB = 1 << 30
MiB = 1 << 20
DEFLATED_IMAGE_FRAME = "1.2.840.10008.1.2.8.1"


# --------------------------------------------------------------------------
# helpers


def _vsz() -> int:
    """This process's address space now (a child's RLIMIT_AS is set above it)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _probe(path, extra: int = GiB, timeout: float = 90) -> dict:
    """``napari_dcm.read`` + first/middle/last frames in a forked child (the fuzz harness's
    probe) with ``extra`` bytes of address space above this process's."""
    out = harness.probe(str(path), timeout=timeout, mem_limit=_vsz() + extra)
    assert out["status"] == "done", (out["status"], out["stacks"], out["log"][-3000:])
    return out["result"]


def _in_child(fn, extra: int = GiB, timeout: float = 90):
    """Run ``fn()`` in a forked child with ``extra`` bytes of address space; return
    ("ok", value) or ("raised", "module.Type: message")."""
    ctx = multiprocessing.get_context("fork")
    q = ctx.SimpleQueue()
    limit = _vsz() + extra

    def target():
        harness.after_fork()
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            q.put(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001 - the child reports whatever escaped
            q.put(("raised", f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"))

    p = ctx.Process(target=target)
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail(f"child still running after {timeout} s")
    assert p.exitcode == 0, f"child died: exit code {p.exitcode}"
    return q.get()


def _frames(res: dict) -> list[dict]:
    return [f for lay in res["layers"] for f in lay.get("frames", [])]


def _blank_warned(res: dict, reason: str) -> None:
    """The documented outcome of a frame that cannot be decoded: blank, one warning, the reason."""
    assert res["kind"] == "ok", res.get("error")
    assert res["decode_warnings"] == 1, res
    assert any(f["blank"] for f in _frames(res)), res
    assert any(reason in r["reason"] for r in res["reports"]), res["reports"]


def _ct(path: Path, rows=64, cols=64, frames=1, ts=ExplicitVRLittleEndian, pixels=None) -> np.ndarray:
    """A small CT (uint16, 12 bits) with distinct pixels; returns the stored array."""
    ds = _file_ds(CTImageStorage, uid("robust", path.name, rows, cols, frames), ts)
    ds.PatientID = "ROBUST"
    ds.Modality = "CT"
    ds.StudyInstanceUID = uid("robust-study")
    ds.SeriesInstanceUID = uid("robust-series", path.name)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    if frames > 1:
        ds.NumberOfFrames = frames
    arr = pixels if pixels is not None else (np.arange(frames * rows * cols) % 4000).astype(np.uint16)
    arr = arr.reshape(frames, rows, cols)
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return arr


def _meta(ts: str) -> bytes:
    """Preamble + file meta of a CT in transfer syntax ``ts`` (explicit VR LE, as Part 10 says)."""
    import io

    ds = _file_ds(CTImageStorage, uid("robust-meta"), ExplicitVRLittleEndian)
    ds.PatientID = "ROBUST"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    meta = data[: 132 + 12 + struct.unpack_from("<L", data, 140)[0]]
    return mutate.set_ts(meta, mutate.walk(meta), ts)


def _dims(rows=512, cols=512, bits=16, frames=None) -> bytes:
    el = mutate.element_bytes
    out = (
        el(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00")
        + el(0x00080060, b"CS", b"OT")
        + el(0x00280002, b"US", struct.pack("<H", 1))
        + el(0x00280004, b"CS", b"MONOCHROME2 ")
    )
    if frames is not None:
        v = str(frames).encode()
        out += el(0x00280008, b"IS", v + b" " * (len(v) % 2))
    return out + (
        el(0x00280010, b"US", struct.pack("<H", rows))
        + el(0x00280011, b"US", struct.pack("<H", cols))
        + el(0x00280100, b"US", struct.pack("<H", bits))
        + el(0x00280101, b"US", struct.pack("<H", bits))
        + el(0x00280102, b"US", struct.pack("<H", bits - 1))
        + el(0x00280103, b"US", struct.pack("<H", 0))
    )


def _long_header(tag: int, vr: bytes, length: int) -> bytes:
    return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr, 0, length)


def _hash(p) -> str:
    return harness.file_digest(str(p))


# --------------------------------------------------------------------------
# H1: DICOMDIR record offsets that loop


def _record_offsets(path: Path) -> tuple[list[tuple[int, int, int]], bool]:
    """(record item offset, position of its next-record UL value, of its lower-level UL value)
    of every record, and whether the DICOMDIR is little endian."""
    ds = pydicom.dcmread(path)
    data = path.read_bytes()
    little = not ds.file_meta.TransferSyntaxUID.endswith(".2.2")
    out = []
    for rec in ds.DirectoryRecordSequence:
        start = rec.seq_item_tell
        pos = {}
        for el, key in ((0x1400, "next"), (0x1420, "lower")):
            tag = struct.pack("<HH" if little else ">HH", 0x0004, el)
            i = data.find(tag, start, start + 200)
            if i >= 0:
                pos[key] = i + 8  # explicit (tag, "UL", 2-byte length) or implicit (tag, 4-byte length)
        out.append((start, pos.get("next", -1), pos.get("lower", -1)))
    return out, little


def _dicomdir_copy(corpus: Path, tmp_path: Path, name: str) -> Path:
    """The corpus DICOMDIR ``name`` in a tmp folder beside links to the folders it references."""
    src = corpus / "dicomdir" / "pydicom" / "dicomdirtests"
    dst = tmp_path / "dd"
    dst.mkdir()
    for p in src.iterdir():
        if p.is_dir():
            os.symlink(p, dst / p.name)
    shutil.copyfile(src / name, dst / "DICOMDIR")
    return dst / "DICOMDIR"


@pytest.mark.parametrize("kind", ["next_self", "next_2cycle", "lower_self"])
def test_dicomdir_record_loop_does_not_hang(corpus, tmp_path, kind):
    """pydicom's FileSet follows record offsets for ever when they loop (H1); napari-dcm
    reads the records as a sequence and opens what the DICOMDIR references."""
    path = _dicomdir_copy(corpus, tmp_path, "DICOMDIR")
    want = discovery.dicomdir_referenced(str(path))
    n_layers = len(napari_dcm.read(str(path)))
    recs, little = _record_offsets(path)
    data = bytearray(path.read_bytes())
    fmt = "<L" if little else ">L"
    with_next = [r for r in recs if r[1] >= 0]
    if kind == "next_self":
        start, nxt, _ = with_next[3]
        struct.pack_into(fmt, data, nxt, start)
    elif kind == "next_2cycle":
        (a, an, _), (b, bn, _) = with_next[2], with_next[3]
        struct.pack_into(fmt, data, an, b)
        struct.pack_into(fmt, data, bn, a)
    else:
        start, _, low = next(r for r in recs if r[2] >= 0)
        struct.pack_into(fmt, data, low, start)
    path.write_bytes(bytes(data))
    before = _hash(path)
    ds = pydicom.dcmread(path)
    assert "loop" in discovery._dicomdir_damage(ds, list(ds.DirectoryRecordSequence))
    assert discovery.dicomdir_referenced(str(path)) == want
    res = _probe(path, timeout=60)
    assert res["kind"] == "ok", res.get("error")
    assert len(res["layers"]) == n_layers
    assert _hash(path) == before


def test_dicomdir_files_equal_pydicom_fileset(corpus):
    """On intact DICOMDIRs the record walk finds exactly the files pydicom's FileSet finds."""
    from pydicom.fileset import FileSet

    checked = 0
    for p in sorted((corpus / "dicomdir").rglob("DICOMDIR*")):
        ds = pydicom.dcmread(p, force=True)
        try:
            fs = FileSet(ds)
        except Exception:  # pydicom refuses it (e.g. no records): napari-dcm scans the folder
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # pydicom resolves symlinks (a corpus reached through a linked ../shared); napari-dcm
            # keeps the path it was given: compare the files themselves
            ref = sorted({os.path.realpath(i.path) for i in fs if os.path.isfile(i.path)})
        ours = [os.path.realpath(f) for f in discovery.dicomdir_referenced(str(p)) if os.path.isfile(f)]
        assert ours == ref, p
        checked += 1
    assert checked >= 4


def test_dicomdir_file_ids_outside_its_folder_are_refused(corpus, tmp_path):
    path = _dicomdir_copy(corpus, tmp_path, "DICOMDIR")
    ds = pydicom.dcmread(path)
    outside = tmp_path / "SECRET"
    _ct(outside)
    rec = next(r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
    rec.ReferencedFileID = ["..", "SECRET"]
    fifo = path.parent / "PIPE"
    os.mkfifo(fifo)
    rec2 = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r][1]
    rec2.ReferencedFileID = "PIPE"
    ds.save_as(path)
    files = discovery.dicomdir_files(str(path))
    assert files and str(outside) not in files and not any(f.endswith("SECRET") for f in files)
    assert str(fifo) not in files  # not a regular file: never opened (it would block)


# --------------------------------------------------------------------------
# H2: deflated datasets


def test_deflated_header_bomb_is_refused_early(tmp_path):
    """A deflated dataset whose header holds a 1 GiB value inflates only up to the
    header budget, and pydicom (which would inflate all of it) is not tried."""
    p = tmp_path / "bomb.dcm"
    inner = _dims() + _long_header(0x00091010, b"OB", GiB)
    p.write_bytes(_meta(DeflatedExplicitVRLittleEndian) + mutate._deflate_zeros(inner, GiB))
    with pytest.raises(napari_dcm.DicomReadError) as info:
        napari_dcm.read(str(p))
    assert "inflates past 64 MiB" in info.value.reason and info.value.path == str(p)
    with pytest.raises(scan.NoFallback):
        scan.read_dataset(str(p))
    res = _probe(p, extra=512 * MiB)
    assert res["kind"] == "typed_error" and "inflates past" in res["error"]["message"]


def test_deflated_pixel_bomb_reads_one_frame_not_the_stream(tmp_path):
    """Pixel data that inflates to 3 GiB for one 512x512 frame: only the frame is
    inflated (the child has 1 GiB of address space), and the header read stops before it."""
    p = tmp_path / "pixbomb.dcm"
    inner = _dims() + _long_header(0x7FE00010, b"OW", 3 * GiB)
    p.write_bytes(_meta(DeflatedExplicitVRLittleEndian) + mutate._deflate_zeros(inner, 3 * GiB))
    res = _probe(p, extra=GiB)
    assert res["kind"] == "ok", res.get("error")
    assert res["decode_warnings"] == 0 and _frames(res)[0]["shape"] == [512, 512]
    kind, value = _in_child(lambda: scan.read_dataset(str(p)).Rows, extra=GiB)
    assert (kind, value) == ("ok", 512)


def test_deflated_declared_size_beyond_deflate_ratio(tmp_path):
    p = tmp_path / "ratio.dcm"
    n = 200
    inner = _dims(frames=n) + _long_header(0x7FE00010, b"OW", 512 * 512 * 2 * n)
    p.write_bytes(_meta(DeflatedExplicitVRLittleEndian) + zlib.compress(inner + bytes(1000), 9)[2:-4])
    with pytest.raises(napari_dcm.DicomSizeError) as info:
        napari_dcm.read(str(p))
    assert "DEFLATE" in info.value.reason


def test_honest_deflated_multiframe_equals_pydicom(tmp_path):
    """Frames of a deflated multi-frame file (each inflated only up to its end) and its
    header dataset are pydicom's."""
    p = tmp_path / "dfl.dcm"
    arr = _ct(p, rows=40, cols=48, frames=5, ts=DeflatedExplicitVRLittleEndian)
    ref = pydicom.dcmread(p)
    assert ref.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    (layer,) = napari_dcm.read(str(p))
    got = np.asarray(layer.data)
    assert np.array_equal(got, ref.pixel_array) and np.array_equal(got, arr)
    from napari_dcm.dicom import tags

    hdr = tags.read_header(str(p))
    want = pydicom.dcmread(p, stop_before_pixels=True)
    assert [(e.tag, e.value) for e in hdr] == [(e.tag, e.value) for e in want]
    assert hdr.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian


# --------------------------------------------------------------------------
# H3: Deflated Image Frame Compression


def _deflated_frame_file(path: Path, stream: bytes, rows=512, cols=512) -> None:
    frag = stream + b"\0" * (len(stream) % 2)
    px = (
        struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 0)
        + struct.pack("<HHL", 0xFFFE, 0xE000, len(frag))
        + frag
        + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    )
    path.write_bytes(_meta(DEFLATED_IMAGE_FRAME) + _dims(rows, cols) + px)


@pytest.mark.parametrize(("size", "reason"), [(GiB, "inflates past"), (3 * GiB, "refused before reading")])
def test_deflated_image_frame_bomb_gives_a_warned_blank(tmp_path, size, reason):
    """A frame inflating to 1 GiB stops at the frame's size; one of 3 GiB (a 3 MB stream) is
    not even read: no codec makes a 512 KiB frame that large."""
    p = tmp_path / "dif_bomb.dcm"
    _deflated_frame_file(p, mutate._deflate_zeros(b"", size))
    res = _probe(p, extra=GiB)
    _blank_warned(res, reason)


def test_deflated_image_frame_checks(tmp_path):
    """An honest frame decodes to its pixels; a frame too small to inflate to the
    declared size, or one that ends early, is a warned blank."""
    rows, cols = 32, 48
    px = (np.arange(rows * cols) * 7 % 65536).astype("<u2").reshape(rows, cols)
    good = tmp_path / "good.dcm"
    _deflated_frame_file(good, zlib.compress(px.tobytes(), 9)[2:-4], rows, cols)
    (layer,) = napari_dcm.read(str(good))
    assert np.array_equal(np.asarray(layer.data), px)
    short = tmp_path / "short.dcm"
    _deflated_frame_file(short, zlib.compress(px.tobytes()[:-100], 9)[2:-4], rows, cols)
    tiny = tmp_path / "tiny.dcm"
    _deflated_frame_file(tiny, b"\x03\x00", 4096, 4096)
    for path, reason in ((short, "inflates to"), (tiny, "maximum ratio")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            (layer,) = napari_dcm.read(str(path))
            assert not np.asarray(layer.data).any()
        msgs = [str(w.message) for w in caught if w.category is decode.DicomDecodeWarning]
        assert len(msgs) == 1 and reason in msgs[0] and str(path) in msgs[0], msgs


# --------------------------------------------------------------------------
# H4: absurd sizes and the memory budget


def _sparse_native(path: Path, rows: int, cols: int, frames: int | None, nbytes: int) -> None:
    head = _meta(ExplicitVRLittleEndian) + _dims(rows, cols, frames=frames) + _long_header(0x7FE00010, b"OW", nbytes)
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + nbytes)  # a hole: nothing is written


def test_two_gib_frame_is_refused_before_allocating(tmp_path):
    p = tmp_path / "huge.dcm"
    _sparse_native(p, 32768, 32768, None, 2 * GiB)
    with pytest.raises(napari_dcm.DicomSizeError) as info:
        napari_dcm.read(str(p))
    assert "too large" in info.value.reason and "frame budget" in info.value.reason and info.value.path == str(p)


def test_a_million_frames_are_refused(tmp_path):
    p = tmp_path / "many.dcm"
    _sparse_native(p, 16, 16, 1_000_000, 512 * 1_000_000)
    with pytest.raises(napari_dcm.DicomSizeError) as info:
        napari_dcm.read(str(p))
    assert "NumberOfFrames 1000000 is too large" in info.value.reason


def test_encapsulated_frames_need_items(tmp_path, corpus):
    """NumberOfFrames beyond what the encapsulated pixel data can hold (8 bytes per item)."""
    src = pydicom.dcmread(corpus / "transfer_syntax" / "MR_small_RLE.dcm")
    src.NumberOfFrames = 5000  # fewer than the file's bytes, more than its items can be
    p = tmp_path / "frames.dcm"
    src.save_as(p)
    with pytest.raises(napari_dcm.DicomSizeError) as info:
        napari_dcm.read(str(p))
    assert "NumberOfFrames 5000 is too large for the encapsulated pixel data" in info.value.reason


def test_memory_budget_is_configurable(tmp_path):
    p = tmp_path / "ct.dcm"
    _ct(p, rows=256, cols=256)
    assert napari_dcm.read(str(p))
    old = napari_dcm.set_limits(max_frame_mb=0.1)
    try:
        with pytest.raises(napari_dcm.DicomSizeError) as info:
            napari_dcm.read(str(p))
        assert "the frame budget is 0 MiB" in info.value.reason
    finally:
        napari_dcm.set_limits(**old)
    assert napari_dcm.set_limits() == old
    assert napari_dcm.read(str(p))
    # the environment variable (read when napari-dcm is imported, e.g. on dask workers)
    import subprocess
    import sys

    code = "import napari_dcm, sys\ntry:\n    napari_dcm.read(sys.argv[1])\nexcept napari_dcm.DicomSizeError:\n    print('refused')\n"
    env = dict(os.environ, NAPARI_DCM_MAX_FRAME_MB="0.1", PYTHONPATH=str(Path(napari_dcm.__file__).parents[1]))
    out = subprocess.run([sys.executable, "-c", code, str(p)], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "refused", out.stderr[-2000:]


def test_frame_budget_follows_the_address_space_limit():
    kind, (budget, limit) = _in_child(
        lambda: (limits.LIMITS.frame_budget(), resource.getrlimit(resource.RLIMIT_AS)[0]), extra=256 * MiB
    )
    assert kind == "ok" and budget == min(limits.LIMITS.max_frame_bytes, limit // 4)
    assert limits.LIMITS.frame_budget() == limits.LIMITS.max_frame_bytes  # no limit here


def test_two_gib_fragment_is_refused_before_reading(tmp_path):
    """One ~2 GiB fragment (a hole) for a 64x64 frame: refused by the frame's size bound,
    not read (the child has 1 GiB of address space)."""
    head = _meta("1.2.840.10008.1.2.4.70") + _dims(64, 64)
    items = struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0)
    n = 0x7FFFFFF0
    items += struct.pack("<HHL", 0xFFFE, 0xE000, n)
    p = tmp_path / "frag.dcm"
    with open(p, "wb") as fh:
        fh.write(head + items)
        fh.truncate(len(head) + len(items) + n + 8)
        fh.seek(len(head) + len(items) + n)
        fh.write(struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
    res = _probe(p, extra=GiB)
    _blank_warned(res, "refused before reading")


class _FailsHoldingABuffer:
    """A frame source whose read fails with MemoryError while its buffer is still referenced
    (what a failed 2 GiB decode did): the blank must not be allocated beside it."""

    path = "memory-test"
    index = 0

    def __init__(self, nbytes: int):
        self.nbytes = nbytes

    def read(self) -> EncodedFrame:
        buf = np.ones(self.nbytes, np.uint8)  # touched: really held
        raise MemoryError(f"simulated failure while holding {buf.nbytes} bytes")


def test_blank_fallback_after_the_failed_buffer_is_released():
    """Address space for one frame-sized buffer, not two: the blank frame is allocated
    only once the failed decode's buffer is gone (H4: MemoryError escaped from here)."""
    n = 600 * MiB
    desc = decode.PixelDesc("1.2.840.10008.1.2.1", rows=n // 2 // 1024, columns=1024)

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            arr = decode.load_frame(_FailsHoldingABuffer(n), desc, None, (n // 2 // 1024, 1024), "<u2")
            arr[:] = 1  # the blank is really there
        return [str(w.message) for w in caught if w.category is decode.DicomDecodeWarning]

    kind, value = _in_child(run, extra=n + 300 * MiB)
    assert kind == "ok", value
    assert len(value) == 1 and "MemoryError" in value[0]


def test_blank_that_does_not_fit_is_a_typed_error():
    desc = decode.PixelDesc("1.2.840.10008.1.2.1", rows=60000, columns=60000)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decode.load_frame(_FailsHoldingABuffer(16), desc, None, (60000, 60000), "<f8")

    kind, value = _in_child(run, extra=512 * MiB)
    assert kind == "raised" and value.startswith("napari_dcm.errors.DicomSizeError") and "does not fit" in value


def test_segmentation_read_whole_respects_the_layer_budget(corpus):
    p = str(corpus / "seg_pm" / "liver.dcm")
    assert napari_dcm.read(p)
    old = napari_dcm.set_limits(max_layer_mb=0.1)
    try:
        with pytest.raises(napari_dcm.NoDicomFoundError) as info:
            napari_dcm.read(p)
        assert "layer budget" in info.value.reason
    finally:
        napari_dcm.set_limits(**old)


# --------------------------------------------------------------------------
# foreign exceptions: pyo3's PanicException from the Rust RLE decoder


def _panicking_rle(corpus: Path, tmp_path: Path) -> Path:
    """MR_small_RLE.dcm with its low-byte segment ending in a run that crosses the frame's
    end: pylibjpeg-rle panics ("index out of bounds") instead of raising."""
    ds = pydicom.dcmread(corpus / "transfer_syntax" / "MR_small_RLE.dcm")
    frag = get_frame(ds.PixelData, 0, number_of_frames=1)
    off1 = struct.unpack_from("<L", frag, 8)[0]
    seg = b"\x81\x00" * 31 + bytes([256 - 121, 0]) + b"\x81\x00"  # 3968 + 122 + 128 > 4096 bytes
    new = frag[:off1] + seg
    ds.PixelData = encapsulate([new])
    p = tmp_path / "panic_rle.dcm"
    ds.save_as(p)
    return p


def test_rle_panic_is_a_decoder_failure(corpus, tmp_path):
    p = _panicking_rle(corpus, tmp_path)
    frag = get_frame(pydicom.dcmread(p).PixelData, 0, number_of_frames=1)
    with pytest.raises(BaseException) as info:  # the codec really panics on this frame
        codecs.rle_decode_frame(frag, 64 * 64, 16)
    assert type(info.value).__name__ == "PanicException" and not isinstance(info.value, Exception)
    res = _probe(p, timeout=60)
    assert res["kind"] == "ok", res.get("error")  # no foreign exception
    # pydicom's own RLE decoder (the last trusted plugin) decodes what is there, like pydicom does
    (layer,) = napari_dcm.read(str(p))
    ref, _ = pydicom.pixels.get_decoder("1.2.840.10008.1.2.5").as_array(
        encapsulate([frag]), index=0, decoding_plugin="pydicom", **_desc_of(p).options(1)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(np.asarray(layer.data), ref)


def _desc_of(p: Path):
    from napari_dcm.dicom.series import pixel_desc

    return pixel_desc(scan.scan_header(str(p)))


def test_panic_inside_a_frame_read_gives_a_warned_blank():
    """A real PanicException raised while a frame is read: blank + one warning, or a
    DicomDecodeError (typed, chained to the panic) when strict."""
    from rle.utils import decode_segment

    class PanicsOnRead:
        path = "panic-source"
        index = 0

        def read(self):
            decode_segment(b"")  # pylibjpeg-rle panics on an empty segment
            raise AssertionError("expected a panic")

    desc = decode.PixelDesc("1.2.840.10008.1.2.1", rows=8, columns=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arr = decode.load_frame(PanicsOnRead(), desc, None, (8, 8), "<u2")
    assert arr.shape == (8, 8) and not arr.any()
    msgs = [str(w.message) for w in caught if w.category is decode.DicomDecodeWarning]
    assert len(msgs) == 1 and "PanicException" in msgs[0]
    with pytest.raises(napari_dcm.DicomDecodeError) as info:
        decode.load_frame(PanicsOnRead(), desc, None, (8, 8), "<u2", strict=True)
    assert type(info.value.__cause__).__name__ == "PanicException"


def test_one_bit_rle_segment_offset_outside_the_frame(corpus, tmp_path):
    """A 1-bit RLE SEG frame whose segment offset points past its end (pylibjpeg-rle panics
    on the empty segment): a warned blank frame."""
    ds = pydicom.dcmread(corpus / "seg_pm" / "liver_rle.dcm")
    n = int(ds.NumberOfFrames)
    frames = [get_frame(ds.PixelData, i, number_of_frames=n) for i in range(n)]
    bad = bytearray(frames[1])
    struct.pack_into("<L", bad, 4, len(bad) + 100)
    frames[1] = bytes(bad)
    ds.PixelData = encapsulate(frames)
    p = tmp_path / "seg_bad.dcm"
    ds.save_as(p)
    from napari_dcm.dicom import segmentation

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arr = segmentation.stored_frames(str(p))
    assert arr.shape[0] == n and not arr[1].any() and arr[0].any()
    msgs = [str(w.message) for w in caught if w.category is decode.DicomDecodeWarning]
    assert len(msgs) == 1 and "outside the frame" in msgs[0]


# --------------------------------------------------------------------------
# codestreams that disagree with the header (what made GDCM abort) and the plugin list


def _edited(corpus: Path, tmp_path: Path, rel: str, **changes) -> Path:
    ds = pydicom.dcmread(corpus / rel)
    for k, v in changes.items():
        setattr(ds, k, v)
    p = tmp_path / (Path(rel).name + ".edited.dcm")
    ds.save_as(p)
    return p


@pytest.mark.parametrize(
    ("rel", "changes", "reason"),
    [
        (
            "transfer_syntax/MR_small_jp2klossless.dcm",
            {"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"},
            "J2K SIZ says 64x64x1",
        ),
        ("transfer_syntax/CT1_JLSL", {"Columns": 640}, "JPEG-LS SOF says 512x512x1"),
        ("transfer_syntax/JPEGBaseline_1s_1f_u_08_08.dcm", {"Rows": 2000}, "JPEG SOF says"),
        ("transfer_syntax/MR_small_jp2klossless.dcm", {"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}, "precision"),
    ],
)
def test_codestream_header_must_match_the_dicom_header(corpus, tmp_path, rel, changes, reason):
    """The issue's GDCM aborts came from such files (SamplesPerPixel vs. the J2K
    components; Columns vs. the JPEG-LS SOF): no codec is called on them at all."""
    p = _edited(corpus, tmp_path, rel, **changes)
    before = _hash(p)
    res = _probe(p, timeout=60)
    _blank_warned(res, reason)
    assert _hash(p) == before


def test_truncated_codestreams_fail_fast_and_never_silently(corpus, tmp_path):
    """CT1_JLSN with its second fragment emptied: CharLS took 10 s to fail and libjpeg then
    returned a garbage image without a warning (S1).  Likewise a JPEG cut in half."""
    ids = ["transfer_syntax/CT1_JLSN|fragment|859120670"]
    m = mutate.make(ids[0], tmp_path / "m", root=corpus)
    assert "emptied" in m.note
    res = _probe(m.path, timeout=60)
    _blank_warned(res, "no end marker")
    ds = pydicom.dcmread(corpus / "transfer_syntax" / "JPEGBaseline_1s_1f_u_08_08.dcm")
    cs = get_frame(ds.PixelData, 0, number_of_frames=1)
    ds.PixelData = encapsulate([cs[: len(cs) // 2]])
    p = tmp_path / "half.dcm"
    ds.save_as(p)
    _blank_warned(_probe(p, timeout=60), "truncated")


def test_only_named_plugins_decode(corpus):
    """A plugin added to pydicom's decoders (as python-gdcm's is when installed) is never
    called, even when every named plugin fails: napari-dcm names its plugins instead of
    using pydicom's order (which reaches GDCM, whose assertions abort the process)."""
    from pydicom.pixels import get_decoder

    import tripwire_plugin

    codecs.register_plugins()
    for ts in codecs.JPEG2000_SYNTAXES | codecs.JPEGLS_SYNTAXES | codecs.JPEG_SYNTAXES | {codecs.RLE}:
        order = codecs.plugin_order(ts)
        assert order and "" not in order and "gdcm" not in order
        assert set(order) <= set(codecs.TRUSTED_PLUGINS)
    cases = []  # codestreams that pass the header checks and that every named plugin fails on
    for rel, cut in (("MR_small_jp2klossless.dcm", "half"), ("CT1_JPLL", "ff")):
        p = corpus / "transfer_syntax" / rel
        cs = get_frame(pydicom.dcmread(p).PixelData, 0, number_of_frames=1)
        n = len(cs)
        bad = cs[: n // 2] + b"\xff\xd9" if cut == "half" else cs[: n // 3] + b"\xff\x00" * (n // 6) + cs[2 * n // 3 :]
        cases.append((bad, _desc_of(p)))
    rle = struct.pack("<16L", 1, 64, *[0] * 14) + b"\x05\x01"
    cases.append((rle, decode.PixelDesc(codecs.RLE, rows=8, columns=8, bits_allocated=8, bits_stored=8)))
    added = []
    try:
        for _, desc in cases:
            get_decoder(desc.transfer_syntax).add_plugin("tripwire", ("tripwire_plugin", "decode"))
            added.append(desc.transfer_syntax)
        tripwire_plugin.CALLS.clear()
        for cs, desc in cases:
            with pytest.raises(RuntimeError, match="no decoder could decode"):
                decode.decode(EncodedFrame(cs, desc.transfer_syntax), desc)
        assert tripwire_plugin.CALLS == []
    finally:
        for ts in added:
            with contextlib.suppress(Exception):
                get_decoder(ts).remove_plugin("tripwire")


# --------------------------------------------------------------------------
# non-regular files


def test_fifo_and_devices_are_refused_by_name(tmp_path):
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    res = _probe(fifo, timeout=30)
    assert res["kind"] == "typed_error" and "FIFO" in res["error"]["message"] and str(fifo) in res["error"]["message"]
    with pytest.raises(napari_dcm.DicomReadError) as info:
        napari_dcm.read("/dev/null")
    assert "a device" in info.value.reason
    # sniffing (the npe2 reader's test) must not block either: unblock it if it does
    found: list = []
    t = threading.Thread(target=lambda: found.append(discovery.looks_like_dicom(str(fifo))), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():
        with open(fifo, "wb"):
            pass
        t.join(10)
        pytest.fail("looks_like_dicom blocked on a FIFO")
    assert found == [False]
    with pytest.raises(limits.NotRegularFileError):
        file.pread(str(tmp_path), [(0, 4)])


# --------------------------------------------------------------------------
# lost warnings (W1)


def test_no_process_wide_warning_state_on_dask_threads():
    """catch_warnings()/simplefilter() swap the process-wide filter list: run from a dask
    thread they swallowed other threads' DicomDecodeWarnings (W1).  None of the modules
    whose code runs on dask threads may use them."""
    import ast

    root = Path(decode.__file__).parent
    for mod in ["decode.py", "codecs.py", "cache.py", "volume.py", "limits.py", "sources/file.py", "sources/web.py"]:
        tree = ast.parse((root / mod).read_text())
        calls = [
            n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            for n in ast.walk(tree)
            if isinstance(n, ast.Call)
        ]
        assert not {"catch_warnings", "simplefilter", "filterwarnings", "resetwarnings"} & set(calls), mod


def test_every_failing_file_warns_under_concurrency(tmp_path):
    """Eight broken multi-frame files decoded at once on dask's threads: eight warnings,
    every time."""
    import dask

    paths = []
    for i in range(8):
        p = tmp_path / f"bad{i}.dcm"
        ds = _file_ds(CTImageStorage, uid("bad", i), "1.2.840.10008.1.2.4.70")
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.NumberOfFrames = 6
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + bytes(20) + b"\xff\xd9"] * 6)
        ds.save_as(p, enforce_file_format=True)
        paths.append(str(p))
    for _ in range(5):
        decode.reset()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            arrays = [layer.data for path in paths for layer in napari_dcm.read(path)]
            dask.compute(*arrays, scheduler="threads")
        got = {str(w.message).split(":")[0] for w in caught if w.category is decode.DicomDecodeWarning}
        assert got == set(paths)


# --------------------------------------------------------------------------
# reads and walks


def test_big_reads_loop(tmp_path, monkeypatch):
    """One os.pread returns at most ~2 GiB on Linux: ranges are read in pieces (shown here
    with 4 KiB pieces)."""
    p = tmp_path / "blob"
    data = os.urandom(MiB + 123)
    p.write_bytes(data)
    monkeypatch.setattr(file, "MAX_PREAD", 4096)
    assert file.pread(str(p), [(10, MiB), (0, 5)]) == data[10 : 10 + MiB] + data[:5]
    assert file.pread_into(str(p), 7, MiB).tobytes() == data[7 : 7 + MiB]
    with pytest.raises(EOFError):
        file.pread(str(p), [(100, MiB + 100)])


def test_element_length_beyond_the_file_reads_nothing(tmp_path):
    """A wanted element claiming 4 GiB in a small file: refused without reading or allocating it."""
    p = tmp_path / "len.dcm"
    _ct(p, rows=128, cols=128)  # larger than the first 16 KiB read
    data = bytearray(p.read_bytes())
    i = data.find(b"\x10\x00\x20\x00LO")  # PatientID
    data[i + 4 : i + 8] = b"UT\x00\x00"
    data[i + 8 : i + 8] = struct.pack("<L", 0xFFFFFFF0)
    p.write_bytes(bytes(data))
    with pytest.raises(scan.ScanError, match="truncated value"):
        scan.scan_header(str(p))
    kind, value = _in_child(lambda: discovery.scan_one(str(p)), extra=256 * MiB)
    assert kind == "ok" and value[0] == str(p) and "Memory" not in value[1], value


def test_deep_sequence_nesting_is_bounded(tmp_path):
    p = tmp_path / "deep.dcm"
    _ct(p)
    data = p.read_bytes()
    i = data.find(b"\xe0\x7f\x10\x00")
    seq = struct.pack("<HH2sHL", 0x0009, 0x1010, b"SQ", 0, 0xFFFFFFFF)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    nest = (seq + item) * 200 + (struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)) * 200
    p.write_bytes(data[:i] + nest + data[i:])
    with pytest.raises(scan.ScanError, match="nested more than"):
        scan.scan_header(str(p))
    res = _probe(p, timeout=60)  # pydicom may still read it; either way no crash, no hang
    assert res["kind"] in ("ok", "typed_error"), res.get("error")


def test_a_failed_decode_is_paid_once_a_failed_read_is_retried(corpus, tmp_path):
    """Bytes that do not decode will not decode next time: the warned blank is cached.
    A frame whose file could not be read (gone, unreadable) is read again next time."""
    ds = pydicom.dcmread(corpus / "transfer_syntax" / "JPEGBaseline_1s_1f_u_08_08.dcm")
    cs = get_frame(ds.PixelData, 0, number_of_frames=1)
    ds.PixelData = encapsulate([cs[: len(cs) // 2]])
    bad = tmp_path / "half.dcm"
    ds.save_as(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (layer,) = napari_dcm.read(str(bad))
        for _ in range(3):
            assert not np.asarray(layer.data).any()
        assert decode.STATS.decodes == 1
        # the remembered failure is still an error for a strict read of the same frame
        with pytest.raises(napari_dcm.DicomDecodeError, match="truncated"):
            napari_dcm.read(str(bad), strict=True)  # the initial window decodes the frame
    assert decode.STATS.decodes == 1
    good = tmp_path / "ct.dcm"
    arr = _ct(good)
    (layer,) = napari_dcm.read(str(good))
    moved = tmp_path / "moved.dcm"
    good.rename(moved)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not np.asarray(layer.data).any()
    assert [w for w in caught if w.category is decode.DicomDecodeWarning]
    moved.rename(good)
    assert np.array_equal(np.asarray(layer.data), arr[0])


def test_offset_table_that_does_not_increase(tmp_path):
    """A Basic Offset Table whose entries repeat: refused by name (it used to make a frame
    with no fragments, read from offset -1)."""
    from synth import write_multiframe

    p = write_multiframe(tmp_path / "bot.dcm", frames=3, rows=32, cols=32, syntax="rle", enhanced=False)
    data = bytearray(p.read_bytes())
    h = scan.scan_header(str(p))
    bot = h.pixel_offset + 8  # the BOT item's value (three 4-byte offsets)
    assert struct.unpack_from("<L", data, bot - 4)[0] == 12
    struct.pack_into("<3L", data, bot, 0, 0, 0)
    p.write_bytes(bytes(data))
    with pytest.raises(napari_dcm.DicomReadError) as info:
        napari_dcm.read(str(p))
    assert "not increasing" in info.value.reason and info.value.path == str(p)
