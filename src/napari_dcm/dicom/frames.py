"""Frame access: where each frame's bytes live in a file.

A :class:`FrameRef` names a file and byte ranges, never an open handle, so a
dask graph made of them pickles and runs on ``dask.distributed`` workers.  The
file is opened only while a frame is read.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from .scan import DEFLATED_LE, EXPLICIT_BE, IMPLICIT_LE, EXPLICIT_LE, Header

NATIVE = "native"  # frame at a fixed offset in uncompressed pixel data
ENCAP = "encap"  # frame = the listed fragment payload ranges
ENCAP_SCAN = "encap-scan"  # single-frame file: all fragments, found when read
DEFLATED = "deflated"  # whole dataset deflated: inflate, then slice
DATASET = "dataset"  # last resort: let pydicom read the file


@dataclass(frozen=True, slots=True)
class FrameRef:
    """Where stored frame ``index`` of ``path`` lives."""

    path: str
    index: int
    mode: str
    offset: int = -1  # NATIVE/DEFLATED: start of pixel value; ENCAP_SCAN: first item
    length: int = -1  # NATIVE: length of the pixel value (bounds check)
    ranges: tuple = ()  # ENCAP: ((offset, length), ...)
    nframes: int = 1


def pread(path: str, ranges) -> bytes:
    """Read and join byte ranges of ``path`` (opened only for this call)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        for off, n in ranges:
            b = os.pread(fd, n, off)
            if len(b) != n:
                raise EOFError(f"file ends {n - len(b)} bytes early inside the pixel data")
            parts.append(b)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def pread_into(path: str, offset: int, n: int):
    """Read ``n`` bytes at ``offset`` into a fresh writeable buffer (not zero-filled first)."""
    import numpy as np

    buf = np.empty(n, np.uint8)
    fd = os.open(path, os.O_RDONLY)
    try:
        view = memoryview(buf)
        got = 0
        while got < n:
            k = os.preadv(fd, [view[got:]], offset + got)
            if k <= 0:
                break
            got += k
    finally:
        os.close(fd)
    if got != n:
        raise EOFError(f"file ends {n - got} bytes early inside the pixel data")
    return buf


def parse_items(fd_or_path, start: int, limit: int | None = None, little: bool = True):
    """Return [(payload_offset, length), ...] of the items from ``start`` to the
    sequence delimiter (the first item is the Basic Offset Table)."""
    unpack = struct.Struct("<HHL" if little else ">HHL").unpack
    own = isinstance(fd_or_path, str)
    fd = os.open(fd_or_path, os.O_RDONLY) if own else fd_or_path
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


def _starts_frame(head: bytes, ts: str) -> bool:
    """Does this fragment start a new codestream (JPEG SOI / J2K SOC / JP2)?"""
    if head[:2] == b"\xff\xd8":  # JPEG / JPEG-LS SOI
        return True
    if head[:4] == b"\xff\x4f\xff\x51":  # J2K SOC + SIZ
        return True
    if head[4:8] == b"jP  " or head[4:8] == b"ftyp":  # JP2 box
        return True
    return False


def encapsulated_frame_table(hdr: Header, nframes: int) -> list[tuple[tuple[int, int], ...]]:
    """Fragment ranges of every frame of an encapsulated multi-frame file.

    Uses the Extended Offset Table, else the Basic Offset Table, else one
    fragment per frame when the counts match, else codestream start markers.
    Reads only item headers (8 bytes each) and 8 bytes of fragment heads.
    """
    path = hdr.path
    fd = os.open(path, os.O_RDONLY)
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
                table.append(tuple(group))
            return table
        if len(frags) == nframes:
            return [(f,) for f in frags]
        if nframes == 1:
            return [tuple(frags)]
        # no usable offset table and more fragments than frames: find codestream starts
        table = []
        for off, n in frags:
            head = os.pread(fd, min(8, n), off)
            if _starts_frame(head, hdr.transfer_syntax) or not table:
                table.append([(off, n)])
            else:
                table[-1].append((off, n))
        if len(table) < nframes:
            raise ValueError(f"found {len(table)} frames in the encapsulated pixel data, header says {nframes}")
        return [tuple(t) for t in table[:nframes]]
    finally:
        os.close(fd)


def native_frame_nbytes(rows: int, cols: int, spp: int, bits_allocated: int, photometric: str) -> float:
    if photometric == "YBR_FULL_422" and spp == 3:
        return rows * cols * 2 * bits_allocated / 8
    return rows * cols * spp * bits_allocated / 8


def frame_refs(hdr: Header, nframes: int, frame_nbytes: float) -> list[FrameRef]:
    """FrameRefs for every stored frame of one file."""
    ts = hdr.transfer_syntax
    path = hdr.path
    if hdr.values.get("pixel_offset_in_inflated") or ts == DEFLATED_LE:
        ds_off = hdr.values["deflated_dataset_offset"]
        return [
            FrameRef(path, i, DEFLATED, hdr.pixel_offset, hdr.pixel_length, ranges=(ds_off,), nframes=nframes)
            for i in range(nframes)
        ]
    if ts in (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE) or hdr.pixel_length >= 0:
        return [FrameRef(path, i, NATIVE, hdr.pixel_offset, hdr.pixel_length, nframes=nframes) for i in range(nframes)]
    if nframes == 1:
        return [FrameRef(path, 0, ENCAP_SCAN, hdr.pixel_offset, nframes=1)]
    table = encapsulated_frame_table(hdr, nframes)
    return [FrameRef(path, i, ENCAP, ranges=r, nframes=nframes) for i, r in enumerate(table)]


def read_encapsulated(ref: FrameRef) -> bytes:
    if ref.mode == ENCAP:
        return pread(ref.path, ref.ranges)
    items = parse_items(ref.path, ref.offset)
    frags = items[1:]
    if not frags:
        raise ValueError("encapsulated pixel data has no fragments")
    return pread(ref.path, frags)


def inflate_dataset(path: str, dataset_offset: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(dataset_offset)
        return zlib.decompress(fh.read(), -15)


def codestream_head(ref: FrameRef, n: int = 4096) -> bytes:
    """The first ``n`` bytes of a frame's codestream (for SIZ/SOF parameters)."""
    if ref.mode == ENCAP:
        off, length = ref.ranges[0]
        return pread(ref.path, [(off, min(n, length))])
    if ref.mode == ENCAP_SCAN:
        items = parse_items(ref.path, ref.offset, limit=2)
        if len(items) < 2:
            raise ValueError("encapsulated pixel data has no fragments")
        off, length = items[1]
        return pread(ref.path, [(off, min(n, length))])
    raise ValueError("not encapsulated")
