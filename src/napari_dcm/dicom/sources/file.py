"""Frames of local files: where each stored frame's bytes live, and reading them.

References name a path and byte ranges, never an open handle; the file is
opened only while a frame is read.  Four kinds:

* :class:`NativeFrame` -- uncompressed pixel data at a fixed offset;
* :class:`EncapsulatedFrame` -- the fragment ranges of one compressed frame
  (found from the offset tables when the file is opened, or when the frame is
  read for a single-frame file);
* :class:`DeflatedFrame` -- a dataset that is one raw DEFLATE stream;
* :class:`DatasetFrame` -- files the fast header scan could not walk: pydicom
  parses the file and hands over the frame's bytes.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..limits import LIMITS, InflateLimitError, StreamInflater, encoded_budget, open_regular, open_regular_stat
from ..scan import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, NATIVE_SYNTAXES, Header
from . import EncodedFrame

if TYPE_CHECKING:
    import numpy as np

    from ..imagepixel import PixelDesc

MAX_PREAD = 1 << 30  # Linux caps one pread at ~2 GiB: larger ranges are read in pieces


def pread(path: str, ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> bytes:
    """Read and join byte ranges of ``path`` (opened only for this call)."""
    fd, st = open_regular_stat(path)
    try:
        size = st.st_size
        parts = []
        for off, n in ranges:
            if off + n > size:  # before allocating: the file cannot hold the range
                raise EOFError(f"file ends {off + n - size} bytes early inside the pixel data")
            got = 0
            while got < n:
                b = os.pread(fd, min(n - got, MAX_PREAD), off + got)
                if not b:
                    raise EOFError(f"file ends {n - got} bytes early inside the pixel data")
                parts.append(b)
                got += len(b)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def pread_into(path: str, offset: int, n: int) -> np.ndarray:
    """Read ``n`` bytes at ``offset`` into a fresh writeable uint8 buffer (not zero-filled first)."""
    import numpy as np

    fd, st = open_regular_stat(path)
    size = st.st_size
    if offset + n > size:  # before allocating: the file cannot hold the range
        os.close(fd)
        raise EOFError(f"file ends {offset + n - size} bytes early inside the pixel data")
    buf = np.empty(n, np.uint8)
    try:
        view = memoryview(buf)  # type: ignore[arg-type]  # numpy declares ndarray.__buffer__ only for Python >= 3.12
        got = 0
        while got < n:
            k = os.preadv(fd, [view[got : got + MAX_PREAD]], offset + got)
            if k <= 0:
                break
            got += k
    finally:
        os.close(fd)
    if got != n:
        raise EOFError(f"file ends {n - got} bytes early inside the pixel data")
    return buf


def parse_items(
    fd_or_path: int | str, start: int, limit: int | None = None, little: bool = True
) -> list[tuple[int, int]]:
    """Return [(payload_offset, length), ...] of the items from ``start`` to the
    sequence delimiter (the first item is the Basic Offset Table)."""
    unpack = struct.Struct("<HHL" if little else ">HHL").unpack
    own = isinstance(fd_or_path, str)
    fd = open_regular(fd_or_path) if isinstance(fd_or_path, str) else fd_or_path
    try:
        size = os.fstat(fd).st_size
        items = []
        pos = start
        while pos + 8 <= size:
            g, e, n = unpack(os.pread(fd, 8, pos))
            tag = (g << 16) | e
            if tag == 0xFFFEE0DD:
                break
            if tag != 0xFFFEE000:
                raise ValueError(f"unexpected tag ({g:04X},{e:04X}) at offset {pos} in encapsulated pixel data")
            if n == 0xFFFFFFFF:
                raise ValueError(f"undefined item length at offset {pos} in encapsulated pixel data")
            if pos + 8 + n > size:
                raise EOFError(f"fragment at offset {pos} runs {pos + 8 + n - size} bytes past the end of the file")
            items.append((pos + 8, n))
            pos += 8 + n
            if limit is not None and len(items) >= limit:
                break
        return items
    finally:
        if own:
            os.close(fd)


def _starts_frame(head: bytes) -> bool:
    """Does this fragment start a new codestream (JPEG SOI / J2K SOC / JP2)?"""
    if head[:2] == b"\xff\xd8":  # JPEG / JPEG-LS SOI
        return True
    if head[:4] == b"\xff\x4f\xff\x51":  # J2K SOC + SIZ
        return True
    return head[4:8] in (b"jP  ", b"ftyp")  # JP2 box


def encapsulated_frame_table(hdr: Header, nframes: int) -> list[tuple[tuple[int, int], ...]]:
    """Fragment ranges of every frame of an encapsulated multi-frame file.

    Uses the Extended Offset Table, else the Basic Offset Table, else one
    fragment per frame when the counts match, else codestream start markers.
    Reads only item headers (8 bytes each) and 8 bytes of fragment heads.
    """
    fd = open_regular(hdr.path)
    try:
        items = parse_items(fd, hdr.pixel_offset)
        if not items:
            raise ValueError("encapsulated pixel data has no items")
        bot_off, bot_len = items[0]
        frags = items[1:]
        if not frags:
            raise ValueError("encapsulated pixel data has no fragments")
        first_item = bot_off + bot_len  # payload start of the BOT + its length = next item tag
        eot = hdr.values.get("extended_offset_table")
        offsets = None
        if eot:
            offsets = list(struct.unpack(f"<{len(eot) // 8}Q", eot))
        elif bot_len >= 4 * nframes and nframes > 1:
            offsets = list(struct.unpack(f"<{bot_len // 4}L", os.pread(fd, bot_len, bot_off)))
        if offsets is not None and len(offsets) >= nframes:
            # offsets are relative to the first fragment's item tag
            starts = [first_item + o for o in offsets[:nframes]]
            table = []
            by_start = {off - 8: i for i, (off, _) in enumerate(frags)}
            for k, s in enumerate(starts):
                i = by_start.get(s)
                if i is None:
                    raise ValueError(f"offset table entry {k} does not point at a fragment")
                end = starts[k + 1] if k + 1 < nframes else None
                group = []
                while i < len(frags) and (end is None or frags[i][0] - 8 < end):
                    group.append(frags[i])
                    i += 1
                if not group:  # the next entry is not after this one
                    raise ValueError(f"offset table entries {k} and {k + 1} are not increasing")
                table.append(tuple(group))
            return table
        if len(frags) == nframes:
            return [(f,) for f in frags]
        if nframes == 1:
            return [tuple(frags)]
        # no usable offset table and more fragments than frames: find codestream starts
        found: list[list[tuple[int, int]]] = []
        for off, n in frags:
            head = os.pread(fd, min(8, n), off)
            if _starts_frame(head) or not found:
                found.append([(off, n)])
            else:
                found[-1].append((off, n))
        if len(found) < nframes:
            raise ValueError(f"found {len(found)} frames in the encapsulated pixel data, header says {nframes}")
        return [tuple(t) for t in found[:nframes]]
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# references


@dataclass(frozen=True, slots=True)
class NativeFrame:
    """Uncompressed frame ``index``: ``nbytes`` at ``start``.

    When frames cannot be cut apart (8-bit big-endian OW pixel data with odd
    frames), the range is the whole pixel data and ``whole`` is set.
    """

    path: str
    index: int
    transfer_syntax: str
    start: int
    nbytes: int
    bit_offset: int = 0
    whole: bool = False
    nframes: int = 1

    def read(self) -> EncodedFrame:
        buf = pread_into(self.path, self.start, self.nbytes)
        if self.whole:
            return EncodedFrame(buf, self.transfer_syntax, self.index, self.nframes)
        return EncodedFrame(buf, self.transfer_syntax, bit_offset=self.bit_offset)


_new_object = object.__new__
_native_slots = tuple(
    NativeFrame.__dict__[name].__set__
    for name in ("path", "index", "transfer_syntax", "start", "nbytes", "bit_offset", "whole", "nframes")
)


def native_frame(path: str, index: int, transfer_syntax: str, start: int, nbytes: int) -> NativeFrame:
    """``NativeFrame(path, index, transfer_syntax, start, nbytes)``, the same object, made in
    half the time: a frozen dataclass' ``__init__`` sets each of its eight fields through
    ``object.__setattr__``, this sets the slots directly (series assembly makes one per file)."""
    ref = _new_object(NativeFrame)
    s_path, s_index, s_ts, s_start, s_nbytes, s_bit, s_whole, s_nframes = _native_slots
    s_path(ref, path)
    s_index(ref, index)
    s_ts(ref, transfer_syntax)
    s_start(ref, start)
    s_nbytes(ref, nbytes)
    s_bit(ref, 0)
    s_whole(ref, False)
    s_nframes(ref, 1)
    return ref


@dataclass(frozen=True, slots=True)
class EncapsulatedFrame:
    """Compressed frame ``index``: its fragment ``ranges``; a single-frame file
    with ``ranges == ()`` joins every fragment after ``items_offset`` when read.

    ``max_nbytes`` (>= 0) refuses, before reading, a codestream larger than any
    codec makes for the declared frame (see ``limits.encoded_budget``)."""

    path: str
    index: int
    transfer_syntax: str
    ranges: tuple[tuple[int, int], ...] = ()
    items_offset: int = -1
    max_nbytes: int = -1

    def _ranges(self) -> tuple[tuple[int, int], ...] | list[tuple[int, int]]:
        if self.ranges:
            return self.ranges
        frags = parse_items(self.path, self.items_offset)[1:]
        if not frags:
            raise ValueError("encapsulated pixel data has no fragments")
        return frags

    def read(self) -> EncodedFrame:
        ranges = self._ranges()
        total = sum(n for _, n in ranges)
        if 0 <= self.max_nbytes < total:
            raise ValueError(
                f"the frame's fragments hold {total} bytes, more than any codec needs for the declared "
                f"frame ({self.max_nbytes} at most): refused before reading"
            )
        return EncodedFrame(pread(self.path, ranges), self.transfer_syntax)

    def head(self, n: int = 4096) -> bytes:
        """The first ``n`` bytes of the codestream (for SIZ/SOF parameters)."""
        if self.ranges:
            off, length = self.ranges[0]
        else:
            items = parse_items(self.path, self.items_offset, limit=2)
            if len(items) < 2:
                raise ValueError("encapsulated pixel data has no fragments")
            off, length = items[1]
        return pread(self.path, [(off, min(n, length))])


@dataclass(frozen=True, slots=True)
class DeflatedFrame:
    """Frame ``index`` of a Deflated Explicit VR Little Endian file: the dataset
    after ``dataset_offset`` is one raw DEFLATE stream, and the frame is
    ``nbytes`` at ``start`` of the inflated bytes (``bit_offset``: where a
    1-bit frame starts in its first byte).  Only the stream up to the frame's
    end is inflated, with a bound: a frame never costs more than its position."""

    path: str
    index: int
    dataset_offset: int
    start: int
    nbytes: int
    bit_offset: int = 0

    def read(self) -> EncodedFrame:
        import numpy as np

        end = self.start + self.nbytes
        fd = open_regular(self.path)
        try:
            inflater = StreamInflater(fd, self.dataset_offset, os.fstat(fd).st_size, end)
            try:
                inflater.ensure(end)
            except zlib.error as exc:
                raise ValueError(f"deflated dataset does not inflate: {exc}") from None
            except InflateLimitError as exc:  # pragma: no cover - ensure(end) never asks past its limit
                raise ValueError(str(exc)) from None
        finally:
            os.close(fd)
        got = len(inflater.data) - self.start
        if got < self.nbytes:
            raise EOFError(f"deflated dataset ends {self.nbytes - max(got, 0)} bytes early inside the pixel data")
        buf = np.frombuffer(inflater.data, np.uint8)[self.start : end].copy()
        return EncodedFrame(buf, EXPLICIT_LE, bit_offset=self.bit_offset)


@dataclass(frozen=True, slots=True)
class DatasetFrame:
    """A frame of a file only pydicom can parse (the fast walk failed on it).

    pydicom reads the whole file for every frame, so ``max_file_bytes`` (>= 0)
    refuses a file larger than that before pydicom opens it."""

    path: str
    index: int
    nframes: int
    transfer_syntax: str
    max_file_bytes: int = -1

    def read(self) -> EncodedFrame:
        import pydicom

        fd = open_regular(self.path)  # refuses a FIFO / device before pydicom opens it
        try:
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if 0 <= self.max_file_bytes < size:
            raise ValueError(f"file of {size} bytes is larger than the frame budget allows reading whole")
        # runs on dask's threads: no warnings.catch_warnings() (process-wide state, see decode)
        ds = pydicom.dcmread(self.path, force=True)
        elem = next((ds[k] for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds), None)
        if elem is None or elem.value is None:
            raise ValueError("no pixel data")
        ts = self.transfer_syntax
        if ts in NATIVE_SYNTAXES:
            return EncodedFrame(
                bytearray(elem.value), EXPLICIT_LE if ts == DEFLATED_LE else ts, self.index, self.nframes
            )
        from pydicom.encaps import get_frame

        return EncodedFrame(get_frame(elem.value, self.index, number_of_frames=self.nframes), ts)


def file_frame_refs(
    hdr: Header, desc: PixelDesc, nframes: int
) -> list[NativeFrame] | list[EncapsulatedFrame] | list[DeflatedFrame] | list[DatasetFrame]:
    """References to every stored frame of one local file."""
    path, ts = hdr.path, hdr.transfer_syntax
    if not hdr.walked:
        cap = LIMITS.frame_budget()
        return [DatasetFrame(path, i, nframes, ts or IMPLICIT_LE, cap) for i in range(nframes)]
    if hdr.deflated_offset >= 0:
        return [
            DeflatedFrame(path, r.index, hdr.deflated_offset, r.start, r.nbytes, r.bit_offset)
            for r in _native_refs(hdr, desc, nframes)
        ]
    if ts in NATIVE_SYNTAXES or hdr.pixel_length >= 0:
        return _native_refs(hdr, desc, nframes)
    cap = encoded_budget(desc.native_frame_nbytes)
    if nframes == 1:
        return [EncapsulatedFrame(path, 0, ts, items_offset=hdr.pixel_offset, max_nbytes=cap)]
    table = encapsulated_frame_table(hdr, nframes)
    return [EncapsulatedFrame(path, i, ts, ranges=r, max_nbytes=cap) for i, r in enumerate(table)]


def _native_refs(hdr: Header, desc: PixelDesc, nframes: int) -> list[NativeFrame]:
    path, ts, off = hdr.path, hdr.transfer_syntax or EXPLICIT_LE, hdr.pixel_offset
    if ts not in NATIVE_SYNTAXES:
        ts = EXPLICIT_LE  # defined-length pixel data under a compressed syntax: native bytes
    if desc.bits_allocated == 1:
        npix = desc.rows * desc.columns * desc.samples_per_pixel
        out = []
        for i in range(nframes):
            start_bit = i * npix
            b0, b1 = start_bit // 8, -(-(start_bit + npix) // 8)
            out.append(NativeFrame(path, i, ts, off + b0, b1 - b0, bit_offset=start_bit - 8 * b0))
        return out
    n = int(desc.native_frame_nbytes)
    big_endian_bytes = ts == EXPLICIT_BE and desc.bits_allocated == 8
    if big_endian_bytes and desc.pixel_vr == "OW" and n % 2:
        # 8-bit data in big-endian OW words with odd frames: pairs are swapped across frame edges
        total = hdr.pixel_length if hdr.pixel_length >= 0 else nframes * n
        return [NativeFrame(path, i, ts, off, total + total % 2, whole=True, nframes=nframes) for i in range(nframes)]
    pad = n % 2 if big_endian_bytes else 0
    return [NativeFrame(path, i, ts, off + i * n, n + pad) for i in range(nframes)]
