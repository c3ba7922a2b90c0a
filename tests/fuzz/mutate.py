"""Deterministic, DICOM-aware mutator over the shared corpus.

Every mutant is named by ``(source, operator, seed)`` and is regenerated
byte-for-byte from those three values (``Mutant.id`` is
``"<source>|<operator>|<seed>"``).  Mutants are written under a directory the
caller gives (a temp dir); the corpus is only ever opened for reading.

The mutator walks each source's data elements itself (tag, VR, length field
and value offsets, nested sequences and items, encapsulated fragments), because
the mutations need byte offsets that pydicom does not expose.  pydicom is used
only for its data dictionary (the VR of implicit-VR elements).

Command line (prints the mutant's path)::

    python -m tests.fuzz.mutate "multiframe/emri_small_RLE.dcm|fragment|123" /tmp/out
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import random
import shutil
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNDEFINED = 0xFFFFFFFF

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_IMAGE_FRAME = "1.2.840.10008.1.2.8.1"
# syntaxes a swap may put into the file meta
SWAP_SYNTAXES = [
    IMPLICIT_LE,
    EXPLICIT_LE,
    DEFLATED_LE,
    EXPLICIT_BE,
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.53",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.5",
    DEFLATED_IMAGE_FRAME,
    "1.2.840.10008.1.2.4.100",
    "1.2.3.4.5.6",
    "",
]

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
VALID_VRS = sorted(
    LONG_VRS
    | {
        b"AE",
        b"AS",
        b"AT",
        b"CS",
        b"DA",
        b"DS",
        b"DT",
        b"FL",
        b"FD",
        b"IS",
        b"LO",
        b"LT",
        b"PN",
        b"SH",
        b"SL",
        b"SS",
        b"ST",
        b"TM",
        b"UI",
        b"UL",
        b"US",
    }
)

# Image Pixel module targets of the "dimension" operator
ROWS, COLUMNS, FRAMES = 0x00280010, 0x00280011, 0x00280008
BITS_ALLOC, BITS_STORED, HIGH_BIT = 0x00280100, 0x00280101, 0x00280102
SPP, PIXREP, PLANAR, PHOTO = 0x00280002, 0x00280103, 0x00280006, 0x00280004
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
TS_TAG = 0x00020010
EOT_TAG, EOT_LENGTHS_TAG = 0x7FE00001, 0x7FE00002
# DICOMDIR record offsets
NEXT_REC, LOWER_REC = 0x00041400, 0x00041420
ROOT_FIRST, ROOT_LAST = 0x00041200, 0x00041202
REF_FILE_ID = 0x00041500


# --------------------------------------------------------------------------
# corpus


def corpus_root() -> Path:
    env = os.environ.get("NAPARI_DCM_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "dicom-corpus"


def manifest_rows(root: Path | None = None) -> list[dict]:
    root = root or corpus_root()
    with open(root / "MANIFEST.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


# --------------------------------------------------------------------------
# the element walker


@dataclass
class Elem:
    tag: int
    vr: bytes | None  # None: implicit VR, or an item / delimiter
    off: int  # offset of the tag
    len_off: int  # offset of the length field
    len_size: int  # 2 or 4
    voff: int  # offset of the value
    length: int  # as stored (UNDEFINED for undefined length)
    end: int  # offset after the element (after the delimiter for undefined length)
    depth: int
    parent: int  # index of the enclosing item/sequence element (-1: top level)
    little: bool
    kind: str = "elem"  # elem, seq, item, item_delim, seq_delim, frag
    meta: bool = False


@dataclass
class Info:
    """What the walker found in one file."""

    size: int
    meta_start: int = -1  # offset of the first meta element (-1: no meta)
    meta_end: int = -1  # offset of the first dataset element
    ts: str = ""
    explicit: bool = True
    little: bool = True
    deflated: bool = False
    elems: list = field(default_factory=list)
    pixel: int = -1  # index of the top-level pixel data element
    frags: list = field(default_factory=list)  # indices of encapsulated items (the BOT first)
    pixel_delim: int = -1  # offset of the encapsulated sequence delimiter (-1: none)
    complete: bool = True  # walked to the end without error
    values: dict = field(default_factory=dict)  # a few top-level values

    def top(self, tag: int) -> int:
        for i, e in enumerate(self.elems):
            if e.depth == 0 and e.tag == tag and e.kind in ("elem", "seq"):
                return i
        return -1

    @property
    def header_end(self) -> int:
        return self.elems[self.pixel].off if self.pixel >= 0 else self.size

    @property
    def encapsulated(self) -> bool:
        return self.pixel >= 0 and self.elems[self.pixel].length == UNDEFINED


_DICT_VR: dict = {}


def _dict_vr(tag: int) -> str:
    v = _DICT_VR.get(tag)
    if v is None:
        try:
            from pydicom.datadict import dictionary_VR

            v = dictionary_VR(tag)
        except Exception:
            v = "UN"
        _DICT_VR[tag] = v
    return v


class _Stop(Exception):
    pass


MAX_ELEMS = 200_000


def walk(data: bytes) -> Info:
    """Walk ``data`` (a whole file); never raises, sets ``complete=False`` on trouble."""
    info = Info(size=len(data))
    pos = 0
    if len(data) >= 132 and data[128:132] == b"DICM":
        pos = 132
    if data[pos : pos + 2] == b"\x02\x00":
        info.meta_start = pos
        try:
            pos = _walk_meta(data, pos, info)
        except _Stop:
            info.complete = False
            info.meta_end = pos
            return info
    info.meta_end = pos
    ts = info.ts
    if info.meta_start < 0:
        ts = EXPLICIT_LE if data[4:6] in VALID_VRS else IMPLICIT_LE
        info.ts = ts
    if ts == DEFLATED_LE:
        info.deflated = True
        return info
    info.little = ts != EXPLICIT_BE
    info.explicit = ts != IMPLICIT_LE
    try:
        _walk_items_list(data, pos, len(data), info, 0, -1, info.explicit, info.little, top=True)
    except _Stop:
        info.complete = False
    for name, tag in (("rows", ROWS), ("columns", COLUMNS), ("bits", BITS_ALLOC), ("spp", SPP)):
        i = info.top(tag)
        if i >= 0:
            e = info.elems[i]
            if e.length == 2 and e.voff + 2 <= len(data):
                info.values[name] = struct.unpack_from("<H" if e.little else ">H", data, e.voff)[0]
    i = info.top(FRAMES)
    if i >= 0:
        e = info.elems[i]
        with contextlib.suppress(ValueError):
            info.values["frames"] = int(data[e.voff : e.voff + e.length].strip(b" \x00") or b"1")
    return info


def _walk_meta(data: bytes, pos: int, info: Info) -> int:
    while pos + 8 <= len(data):
        g, el, vr = struct.unpack_from("<HH2s", data, pos)
        if g != 0x0002:
            return pos
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                raise _Stop
            n = struct.unpack_from("<L", data, pos + 8)[0]
            e = Elem(0x00020000 | el, vr, pos, pos + 8, 4, pos + 12, n, pos + 12 + n, 0, -1, True, meta=True)
        else:
            n = struct.unpack_from("<H", data, pos + 6)[0]
            e = Elem(0x00020000 | el, vr, pos, pos + 6, 2, pos + 8, n, pos + 8 + n, 0, -1, True, meta=True)
        if n == UNDEFINED or e.end > len(data):
            raise _Stop
        info.elems.append(e)
        if e.tag == TS_TAG:
            info.ts = data[e.voff : e.end].decode("latin-1").strip(" \x00")
        pos = e.end
    return pos


def _head(data, pos, explicit, little):
    """(tag, vr, length, len_off, len_size, value offset) of the element at ``pos``."""
    if pos + 8 > len(data):
        raise _Stop
    e = "<" if little else ">"
    g, el = struct.unpack_from(e + "HH", data, pos)
    tag = (g << 16) | el
    if g == 0xFFFE:
        return tag, None, struct.unpack_from(e + "L", data, pos + 4)[0], pos + 4, 4, pos + 8
    if explicit:
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                raise _Stop
            return tag, vr, struct.unpack_from(e + "L", data, pos + 8)[0], pos + 8, 4, pos + 12
        if vr in VALID_VRS:
            return tag, vr, struct.unpack_from(e + "H", data, pos + 6)[0], pos + 6, 2, pos + 8
        raise _Stop
    return tag, None, struct.unpack_from(e + "L", data, pos + 4)[0], pos + 4, 4, pos + 8


def _walk_items_list(data, pos, end, info, depth, parent, explicit, little, top=False):
    """Walk elements from ``pos`` up to ``end`` (or an item delimiter); return the position after."""
    while pos < end:
        if len(info.elems) > MAX_ELEMS:
            raise _Stop
        if pos + 8 > len(data):
            if top and pos == len(data):
                return pos
            raise _Stop
        tag, vr, n, loff, lsize, voff = _head(data, pos, explicit, little)
        if tag == 0xFFFEE00D:  # item delimiter
            info.elems.append(Elem(tag, None, pos, loff, 4, voff, n, voff, depth, parent, little, "item_delim"))
            return voff
        if tag == 0xFFFEE0DD and top:  # stray sequence delimiter
            pos = voff
            continue
        idx = len(info.elems)
        e = Elem(tag, vr, pos, loff, lsize, voff, n, -1, depth, parent, little)
        info.elems.append(e)
        if depth == 0 and tag in PIXEL_TAGS:
            info.pixel = idx
            if n == UNDEFINED:
                e.kind = "frag"
                e.end = _walk_fragments(data, voff, info, little, idx)
            else:
                e.end = voff + n
            return e.end  # nothing after the pixel data is walked
        if tag in PIXEL_TAGS and n == UNDEFINED:  # encapsulated icon inside a sequence
            e.kind = "frag"
            e.end = _walk_fragments(data, voff, info, little, idx, record=False)
            pos = e.end
            continue
        is_seq = vr == b"SQ" or (n == UNDEFINED) or (vr is None and _dict_vr(tag) == "SQ")
        if is_seq and tag not in PIXEL_TAGS:
            e.kind = "seq"
            inner_explicit = explicit and vr != b"UN"
            e.end = _walk_sequence(data, voff, n, info, depth + 1, idx, inner_explicit, little)
        else:
            if n == UNDEFINED:
                raise _Stop
            e.end = voff + n
        if e.end > len(data):
            raise _Stop
        pos = e.end
    return pos


def _walk_sequence(data, pos, n, info, depth, parent, explicit, little):
    end = len(data) if n == UNDEFINED else pos + n
    while pos < end:
        tag, _, ilen, loff, _, voff = _head(data, pos, explicit, little)
        if tag == 0xFFFEE0DD:
            info.elems.append(Elem(tag, None, pos, loff, 4, voff, ilen, voff, depth, parent, little, "seq_delim"))
            return voff
        if tag != 0xFFFEE000:
            raise _Stop
        idx = len(info.elems)
        item = Elem(tag, None, pos, loff, 4, voff, ilen, -1, depth, parent, little, "item")
        info.elems.append(item)
        iend = len(data) if ilen == UNDEFINED else voff + ilen
        after = _walk_items_list(data, voff, iend, info, depth + 1, idx, explicit, little)
        item.end = after if ilen == UNDEFINED else iend
        pos = item.end
    if n == UNDEFINED:
        raise _Stop  # no delimiter before the end of the file
    return end


def _walk_fragments(data, pos, info, little, parent, record=True) -> int:
    e = "<" if little else ">"
    while pos + 8 <= len(data):
        g, el, n = struct.unpack_from(e + "HHL", data, pos)
        tag = (g << 16) | el
        if tag == 0xFFFEE0DD:
            if record:
                info.pixel_delim = pos
            return pos + 8
        if tag != 0xFFFEE000 or n == UNDEFINED or pos + 8 + n > len(data):
            raise _Stop
        if record:
            info.frags.append(len(info.elems))
            info.elems.append(Elem(tag, None, pos, pos + 4, 4, pos + 8, n, pos + 8 + n, 1, parent, little, "item"))
        pos += 8 + n
    raise _Stop


# --------------------------------------------------------------------------
# editing helpers (lengths of enclosing items and sequences follow every change)


def _pack_len(e: Elem, n: int) -> bytes:
    return struct.pack(("<" if e.little else ">") + ("L" if e.len_size == 4 else "H"), n)


def splice(data: bytes, info: Info, idx: int, start: int, stop: int, new: bytes) -> bytes:
    """Replace data[start:stop] inside element ``idx`` (or at its place) with
    ``new``; fix the defined lengths of its ancestors and the meta group length."""
    delta = len(new) - (stop - start)
    out = bytearray(data[:start] + new + data[stop:])
    if delta:
        p = info.elems[idx].parent if idx >= 0 else -1
        while p >= 0:
            a = info.elems[p]
            if a.length != UNDEFINED and a.kind in ("seq", "item"):
                out[a.len_off : a.len_off + a.len_size] = _pack_len(a, a.length + delta)
            p = a.parent
        if idx >= 0 and info.elems[idx].meta:
            gl = info.top(0x00020000)
            if gl >= 0:
                g = info.elems[gl]
                old = struct.unpack_from("<L", data, g.voff)[0]
                out[g.voff : g.voff + 4] = struct.pack("<L", old + delta)
    return bytes(out)


def set_value(data: bytes, info: Info, idx: int, value: bytes, pad: bytes = b" ") -> bytes:
    """Give element ``idx`` a new value (even-padded), updating its length field."""
    e = info.elems[idx]
    if len(value) % 2:
        value += pad
    if e.len_size == 2 and len(value) > 0xFFFF:
        value = value[:0xFFFE]
    head = data[e.off : e.len_off] + _pack_len(e, len(value)) + data[e.len_off + e.len_size : e.voff]
    return splice(data, info, idx, e.off, e.end, head + value)


def set_us(data: bytes, info: Info, idx: int, v: int) -> bytes:
    e = info.elems[idx]
    fmt = ("<" if e.little else ">") + "H"
    if e.length == 2:
        return data[: e.voff] + struct.pack(fmt, v & 0xFFFF) + data[e.voff + 2 :]
    return set_value(data, info, idx, struct.pack(fmt, v & 0xFFFF))


def set_ts(data: bytes, info: Info, ts: str) -> bytes:
    i = info.top(TS_TAG)
    if i < 0:
        raise NotApplicable("no TransferSyntaxUID")
    return set_value(data, info, i, ts.encode(), pad=b"\x00")


def element_bytes(tag: int, vr: bytes, value: bytes, little: bool = True, explicit: bool = True) -> bytes:
    e = "<" if little else ">"
    if len(value) % 2:
        value += b"\x00"
    if not explicit:
        return struct.pack(e + "HHL", tag >> 16, tag & 0xFFFF, len(value)) + value
    if vr in LONG_VRS:
        return struct.pack(e + "HH2sHL", tag >> 16, tag & 0xFFFF, vr, 0, len(value)) + value
    return struct.pack(e + "HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


class NotApplicable(Exception):
    """The operator cannot act on this source (the campaign picks another)."""


# --------------------------------------------------------------------------
# mutants


@dataclass
class Mutant:
    id: str
    source: str
    op: str
    seed: int
    path: str = ""  # what the harness reads (a file, or a DICOMDIR)
    root: str = ""  # the mutant's own directory (every file in it is checked for changes)
    note: str = ""  # what was done, for humans
    impossible_frames: list = field(default_factory=list)  # stored frames whose bytes were destroyed
    sparse: bool = False


def mutant_rng(source: str, op: str, seed: int) -> random.Random:
    h = hashlib.sha256(f"{source}|{op}|{seed}".encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def parse_id(mid: str) -> tuple[str, str, int]:
    source, op, seed = mid.rsplit("|", 2)
    return source, op, int(seed)


def make(mid: str, outdir: str | os.PathLike, root: Path | None = None) -> Mutant:
    """Write mutant ``mid`` ("source|op|seed") into a fresh folder under ``outdir``."""
    source, op, seed = parse_id(mid)
    root = root or corpus_root()
    rng = mutant_rng(source, op, seed)
    slug = hashlib.sha1(mid.encode()).hexdigest()[:12]
    mdir = Path(outdir) / f"m-{slug}"
    if mdir.exists():
        shutil.rmtree(mdir)
    mdir.mkdir(parents=True)
    m = Mutant(mid, source, op, seed, root=str(mdir))
    src = root / source
    fn = OPERATORS[op]
    # an operator draws its variant from ``rng``; a variant that does not fit the
    # source raises NotApplicable and the next draw (same rng, so still
    # deterministic) is tried
    for _attempt in range(24):
        try:
            fn(m, src, mdir, rng)
            return m
        except NotApplicable:
            shutil.rmtree(mdir, ignore_errors=True)
            mdir.mkdir(parents=True)
    shutil.rmtree(mdir, ignore_errors=True)
    raise NotApplicable(f"{op} does not apply to {source}")


def _write(m: Mutant, mdir: Path, src: Path, data: bytes, name: str | None = None) -> None:
    p = mdir / (name or src.name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    m.path = str(p)


def _load(src: Path) -> tuple[bytes, Info]:
    data = src.read_bytes()
    return data, walk(data)


def _frame_ranges(info: Info) -> list[tuple[int, int]]:
    """Byte ranges of the stored frames (native: computed; encapsulated: one range per
    frame when it is unambiguous).  Empty when unknown."""
    if info.pixel < 0:
        return []
    px = info.elems[info.pixel]
    n = info.values.get("frames") or 1
    if not info.encapsulated:
        r, c, b, s = (info.values.get(k) for k in ("rows", "columns", "bits", "spp"))
        if not (r and c and b) or b < 8:
            return []
        size = r * c * (s or 1) * b // 8
        return [(px.voff + k * size, px.voff + (k + 1) * size) for k in range(n)]
    frags = [info.elems[i] for i in info.frags[1:]]
    if not frags:
        return []
    if n == 1:
        return [(frags[0].voff, frags[-1].end)]
    if len(frags) == n:
        return [(f.voff, f.end) for f in frags]
    return []


# --- operators ------------------------------------------------------------


def op_header_flip(m, src, mdir, rng):
    data, info = _load(src)
    lo = max(info.meta_start, 0)
    hi = info.header_end
    if hi - lo < 16:
        raise NotApplicable("no header")
    out = bytearray(data)
    elems = [e for e in info.elems if e.off < hi and e.kind != "frag"]
    picks = []
    for _ in range(rng.randint(1, 6)):
        if elems and rng.random() < 0.7:
            e = rng.choice(elems)
            where = rng.choice(["tag", "vr", "length", "value"])
            if where == "tag":
                pos = e.off + rng.randrange(4)
            elif where == "vr" and e.vr:
                pos = e.off + 4 + rng.randrange(2)
            elif where == "length":
                pos = e.len_off + rng.randrange(e.len_size)
            else:
                pos = e.voff + (rng.randrange(max(1, min(e.length, 64))) if e.length not in (0, UNDEFINED) else 0)
        else:
            pos = rng.randrange(lo, hi)
        if pos >= len(out):
            continue
        bit = rng.choice([1 << rng.randrange(8), 0xFF, rng.randrange(1, 256)])
        out[pos] ^= bit
        picks.append(f"{pos}^{bit:02x}")
    m.note = "header bytes flipped at " + ",".join(picks)
    _write(m, mdir, src, bytes(out))


def op_pixel_flip(m, src, mdir, rng):
    data, info = _load(src)
    if info.pixel < 0:
        raise NotApplicable("no pixel data")
    out = bytearray(data)
    if info.encapsulated and len(info.frags) > 1:
        frags = [info.elems[i] for i in info.frags[1:] if info.elems[i].length > 0]
        if not frags:
            raise NotApplicable("empty fragments")
        picks = []
        for _ in range(rng.randint(1, 12)):
            f = rng.choice(frags)
            # codestream heads (markers, segment lengths) are the sensitive part
            span = min(f.length, rng.choice([16, 64, 512, f.length]))
            pos = f.voff + rng.randrange(span)
            out[pos] ^= rng.choice([1 << rng.randrange(8), 0xFF])
            picks.append(str(pos))
        m.note = "fragment bytes flipped at " + ",".join(picks)
    else:
        px = info.elems[info.pixel]
        end = min(px.end, len(data)) if px.length != UNDEFINED else len(data)
        if end - px.voff < 1:
            raise NotApplicable("empty pixel data")
        n = rng.randint(1, 64)
        for _ in range(n):
            pos = rng.randrange(px.voff, end)
            out[pos] ^= rng.choice([1 << rng.randrange(8), 0xFF])
        m.note = f"{n} pixel bytes flipped"
    _write(m, mdir, src, bytes(out))


def op_truncate(m, src, mdir, rng):
    data, info = _load(src)
    n = len(data)
    choices = ["anywhere", "header", "element_edge", "pixels", "last_bytes"]
    kind = rng.choice(choices)
    if kind == "anywhere":
        cut = rng.randrange(0, n)
    elif kind == "header":
        cut = rng.randrange(0, max(1, info.header_end))
    elif kind == "element_edge" and info.elems:
        e = rng.choice(info.elems)
        cut = rng.choice([e.off, e.voff, e.off + 2, e.voff - 1, e.end - 1 if e.end > 0 else e.voff, e.end])
    elif kind == "pixels" and info.pixel >= 0:
        px = info.elems[info.pixel]
        if info.encapsulated and info.frags:
            f = info.elems[rng.choice(info.frags)]
            cut = rng.choice([f.off + 4, f.voff, f.voff + f.length // 2, f.end - 1, f.end])
        else:
            cut = rng.randrange(px.voff, max(px.voff + 1, min(n, px.end if px.end > 0 else n)))
    else:
        cut = n - rng.randint(1, min(64, n))
    cut = max(0, min(cut, n - 1))
    m.impossible_frames = [k for k, (a, b) in enumerate(_frame_ranges(info)) if b > cut]
    m.note = f"truncated to {cut} of {n} bytes ({kind})"
    _write(m, mdir, src, data[:cut])


_LENGTH_VALUES = ["zero", "odd", "plus2", "minus2", "undefined", "huge", "past_eof", "max_short"]


def op_bad_length(m, src, mdir, rng):
    data, info = _load(src)
    elems = [i for i, e in enumerate(info.elems) if e.kind in ("elem", "seq", "item", "frag")]
    if not elems:
        raise NotApplicable("no elements")
    idx = rng.choice(elems)
    if rng.random() < 0.25 and info.pixel >= 0:
        idx = info.pixel
    e = info.elems[idx]
    kind = rng.choice(_LENGTH_VALUES)
    cur = e.length if e.length != UNDEFINED else 0
    maxv = 0xFFFF if e.len_size == 2 else 0xFFFFFFFF
    v = {
        "zero": 0,
        "odd": cur | 1,
        "plus2": cur + 2,
        "minus2": max(0, cur - 2),
        "undefined": UNDEFINED,
        "huge": 0x7FFFFFF0,
        "past_eof": len(data) - e.voff + rng.randint(1, 4096),
        "max_short": 0xFFFF,
    }[kind]
    v = min(v, maxv)
    out = data[: e.len_off] + _pack_len(e, v) + data[e.len_off + e.len_size :]
    m.note = f"length of ({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) at {e.off}: {e.length} -> {v} ({kind})"
    _write(m, mdir, src, out)


def op_change_vr(m, src, mdir, rng):
    data, info = _load(src)
    if info.deflated:
        raise NotApplicable("deflated")
    explicit = [i for i, e in enumerate(info.elems) if e.vr is not None and e.off < info.header_end + 12]
    if not explicit:
        raise NotApplicable("no explicit VR elements")
    idx = rng.choice(explicit)
    if info.pixel >= 0 and info.elems[info.pixel].vr and rng.random() < 0.25:
        idx = info.pixel
    e = info.elems[idx]
    r = rng.random()
    if r < 0.5:  # same layout class: the value is misread, the walk goes on
        same = [v for v in VALID_VRS if (v in LONG_VRS) == (e.vr in LONG_VRS) and v != e.vr]
        new = rng.choice(same)
    elif r < 0.8:  # other layout: length read from the wrong bytes
        other = [v for v in VALID_VRS if (v in LONG_VRS) != (e.vr in LONG_VRS)]
        new = rng.choice(other)
    else:
        new = rng.choice([b"ZZ", b"\x00\x00", b"  ", b"un", b"\xff\xff"])
    out = data[: e.off + 4] + new + data[e.off + 6 :]
    m.note = f"VR of ({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) at {e.off}: {e.vr!r} -> {new!r}"
    _write(m, mdir, src, out)


def _dimension_value(rng, tag, info) -> bytes | int:
    rows, cols = info.values.get("rows") or 0, info.values.get("columns") or 0
    frames = info.values.get("frames") or 1
    bits = info.values.get("bits") or 16
    if tag == FRAMES:
        return rng.choice(
            [
                b"0",
                b"1",
                b"65535",
                str(frames + 1).encode(),
                str(frames * 2).encode(),
                str(max(1, frames - 1)).encode(),
                b"-1",
                b"2147483647",
                b"99999999999",
                b"abc",
                b"1.5",
                b"",
                b"1e9",
                b"3\\4",
            ]
        )
    if tag == PHOTO:
        return rng.choice(
            [
                b"RGB",
                b"MONOCHROME1",
                b"MONOCHROME2",
                b"PALETTE COLOR",
                b"YBR_FULL_422",
                b"YBR_FULL",
                b"YBR_RCT",
                b"YBR_ICT",
                b"XYZ",
                b"",
            ]
        )
    common = [0, 1, 65535]
    per = {
        ROWS: [rows * 2, rows // 2, rows + 1, cols, 65000, 46341, 32768],
        COLUMNS: [cols * 2, cols // 2, cols + 1, rows, 65000, 46341, 32768],
        BITS_ALLOC: [8, 16, 32, 64, 12, 1, bits * 2, 24],
        BITS_STORED: [bits + 1, 33, 7, bits, 17],
        HIGH_BIT: [bits, 40, 6],
        SPP: [3, 4, 2],
        PIXREP: [1, 2],
        PLANAR: [1, 2],
    }[tag]
    return rng.choice(common + per)


def op_dimension(m, src, mdir, rng):
    data, info = _load(src)
    targets = [
        t
        for t in (ROWS, COLUMNS, BITS_ALLOC, BITS_STORED, HIGH_BIT, SPP, FRAMES, PIXREP, PLANAR, PHOTO)
        if info.top(t) >= 0
    ]
    if not targets or info.pixel < 0:
        raise NotApplicable("no Image Pixel elements")
    notes = []
    out = data
    # one to three changes (mismatch between several fields is what breaks size arithmetic)
    for tag in rng.sample(targets, k=min(len(targets), rng.choice([1, 1, 2, 3]))):
        info2 = walk(out)
        i = info2.top(tag)
        if i < 0:
            continue
        v = _dimension_value(rng, tag, info)
        if tag == ROWS and rng.random() < 0.2 and info2.top(COLUMNS) >= 0:  # swap rows and columns
            c = info2.elems[info2.top(COLUMNS)]
            v = struct.unpack_from("<H" if c.little else ">H", out, c.voff)[0]
        if isinstance(v, bytes):
            out = set_value(out, info2, i, v)
            notes.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X})={v.decode(errors='replace')!r}")
        else:
            if info2.elems[i].vr not in (None, b"US", b"SS", b"UN", b"OB", b"OW"):
                continue
            out = set_us(out, info2, i, v)
            notes.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X})={v}")
    if out == data:
        raise NotApplicable("nothing changed")
    m.note = "dimensions: " + ", ".join(notes)
    _write(m, mdir, src, out)


_ESSENTIAL = [
    ROWS,
    COLUMNS,
    BITS_ALLOC,
    BITS_STORED,
    SPP,
    PIXREP,
    PHOTO,
    FRAMES,
    TS_TAG,
    0x00020000,
    0x00080016,
    0x0020000E,
    0x00280030,
    0x00200032,
    0x00200037,
    0x00281052,
    0x00281053,
    0x52009229,
    0x52009230,
    0x00281201,
    0x00281101,
    0x7FE00010,
    0x00283000,
]


def op_delete_element(m, src, mdir, rng):
    data, info = _load(src)
    present = [t for t in _ESSENTIAL if info.top(t) >= 0]
    if not present:
        raise NotApplicable("nothing to delete")
    tag = rng.choice(present)
    i = info.top(tag)
    e = info.elems[i]
    out = splice(data, info, i, e.off, e.end if e.end > 0 else len(data), b"")
    m.note = f"deleted ({tag >> 16:04X},{tag & 0xFFFF:04X})"
    _write(m, mdir, src, out)


def op_fragment(m, src, mdir, rng):
    data, info = _load(src)
    if not info.encapsulated or len(info.frags) < 2:
        raise NotApplicable("not encapsulated")
    px = info.elems[info.pixel]
    bot = info.elems[info.frags[0]]
    frags = [info.elems[i] for i in info.frags[1:]]
    e = "<" if info.little else ">"
    nframes = info.values.get("frames") or 1
    kind = rng.choice(
        [
            "frag_length",
            "frag_tag",
            "no_delimiter",
            "drop_fragment",
            "dup_fragment",
            "bot_garbage",
            "bot_odd_length",
            "bot_descending",
            "bot_mid_fragment",
            "bot_huge",
            "eot_insert",
            "eot_mismatch",
            "empty_fragment",
            "fragment_swap",
        ]
    )
    out = data
    if kind == "frag_length":
        f = rng.choice(frags)
        v = rng.choice([0, 1, f.length + 1, f.length - 1 if f.length else 3, 0x7FFFFFF0, UNDEFINED, len(data)])
        out = data[: f.len_off] + struct.pack(e + "L", v) + data[f.len_off + 4 :]
        note = f"fragment at {f.off} length {f.length} -> {v}"
    elif kind == "frag_tag":
        f = rng.choice([bot] + frags)
        new = rng.choice([b"\xfe\xff\xdd\xe0", b"\xfe\xff\x0d\xe0", b"\x00\x00\x00\x00", b"\xe0\x7f\x10\x00"])
        out = data[: f.off] + new + data[f.off + 4 :]
        note = f"item tag at {f.off} -> {new.hex()}"
    elif kind == "no_delimiter":
        if info.pixel_delim < 0:
            raise NotApplicable("no delimiter")
        out = data[: info.pixel_delim] + data[info.pixel_delim + 8 :]
        note = "sequence delimiter of the pixel data removed"
    elif kind == "drop_fragment":
        f = rng.choice(frags)
        out = data[: f.off] + data[f.end :]
        note = f"fragment at {f.off} removed"
    elif kind == "dup_fragment":
        f = rng.choice(frags)
        out = data[: f.end] + data[f.off : f.end] + data[f.end :]
        note = f"fragment at {f.off} duplicated"
    elif kind == "fragment_swap" and len(frags) >= 2:
        a, b = sorted(rng.sample(range(len(frags)), 2))
        fa, fb = frags[a], frags[b]
        out = data[: fa.off] + data[fb.off : fb.end] + data[fa.end : fb.off] + data[fa.off : fa.end] + data[fb.end :]
        note = f"fragments {a} and {b} swapped"
    elif kind == "empty_fragment":
        f = rng.choice(frags)
        out = data[: f.off] + struct.pack(e + "HHL", 0xFFFE, 0xE000, 0) + data[f.end :]
        note = f"fragment at {f.off} emptied"
    elif kind.startswith("bot_"):
        nent = max(nframes, 2)
        rel = [f.off - frags[0].off for f in frags]
        if kind == "bot_garbage":
            table = [rng.randrange(0, 1 << 32) for _ in range(nent)]
        elif kind == "bot_descending":
            table = sorted((rel + rel)[:nent], reverse=True)
        elif kind == "bot_mid_fragment":
            table = [r + rng.randint(1, 7) for r in (rel + rel)[:nent]]
        elif kind == "bot_huge":
            table = [0] + [0x7FFFFFF0] * (nent - 1)
        else:
            table = list(range(nent))
        body = struct.pack(f"{e}{len(table)}L", *[t & 0xFFFFFFFF for t in table])
        if kind == "bot_odd_length":
            body = body[:-1] + b"\x00\x00\x00"[: rng.randint(0, 3)]
        new_bot = struct.pack(e + "HHL", 0xFFFE, 0xE000, len(body)) + body
        out = data[: bot.off] + new_bot + data[bot.end :]
        note = f"basic offset table -> {kind} {table[:6]}"
    elif kind in ("eot_insert", "eot_mismatch"):
        rel = [f.off - frags[0].off for f in frags]
        if kind == "eot_insert":
            offs = [rng.choice([0, rng.randrange(1 << 40), rel[-1] + 1, 1 << 63]) for _ in range(nframes)]
        else:
            offs = (rel + rel)[: max(1, nframes - 1)]  # one entry short
        eot = element_bytes(EOT_TAG, b"OV", struct.pack(f"{e}{len(offs)}Q", *offs), info.little, info.explicit)
        lens = element_bytes(
            EOT_LENGTHS_TAG,
            b"OV",
            struct.pack(f"{e}{len(offs)}Q", *[rng.randrange(1 << 34) for _ in offs]),
            info.little,
            info.explicit,
        )
        out = data[: px.off] + eot + lens + data[px.off :]
        note = f"extended offset table inserted ({kind}) {offs[:4]}"
    else:
        raise NotApplicable(kind)
    m.note = note
    _write(m, mdir, src, out)


def op_unterminated_sequence(m, src, mdir, rng):
    data, info = _load(src)
    delims = [i for i, e in enumerate(info.elems) if e.kind in ("seq_delim", "item_delim")]
    seqs = [i for i, e in enumerate(info.elems) if e.kind == "seq" and e.length != UNDEFINED]
    items = [
        i
        for i, e in enumerate(info.elems)
        if e.kind == "item" and e.length != UNDEFINED and e.depth > 0 and i not in info.frags
    ]
    choices = []
    if delims:
        choices.append("drop_delimiter")
    if seqs:
        choices.append("undefine_sequence")
    if items:
        choices.append("undefine_item")
    if seqs or delims:
        choices.append("cut_after_open")
    if not choices:
        raise NotApplicable("no sequences")
    kind = rng.choice(choices)
    if kind == "drop_delimiter":
        d = info.elems[rng.choice(delims)]
        out = data[: d.off] + data[d.off + 8 :]
        note = f"delimiter {d.kind} at {d.off} removed"
    elif kind == "undefine_sequence":
        s = info.elems[rng.choice(seqs)]
        out = data[: s.len_off] + _pack_len(s, UNDEFINED) + data[s.len_off + s.len_size :]
        note = f"sequence ({s.tag >> 16:04X},{s.tag & 0xFFFF:04X}) at {s.off} given undefined length, no delimiter"
    elif kind == "undefine_item":
        it = info.elems[rng.choice(items)]
        out = data[: it.len_off] + _pack_len(it, UNDEFINED) + data[it.len_off + 4 :]
        note = f"item at {it.off} given undefined length, no delimiter"
    else:
        opened = [info.elems[i] for i in seqs] + [
            info.elems[info.elems[i].parent] for i in delims if info.elems[i].parent >= 0
        ]
        s = rng.choice(opened)
        cut = s.voff + rng.randrange(0, max(1, min(64, (s.end - s.voff) if s.end > s.voff else 1)))
        out = data[:cut]
        note = f"file cut at {cut} inside the sequence at {s.off}"
    m.note = note
    _write(m, mdir, src, out)


def op_swap_ts(m, src, mdir, rng):
    data, info = _load(src)
    if info.top(TS_TAG) < 0:
        raise NotApplicable("no TransferSyntaxUID")
    ts = rng.choice([t for t in SWAP_SYNTAXES if t != info.ts])
    out = set_ts(data, info, ts)
    m.note = f"TransferSyntaxUID {info.ts} -> {ts or '(empty)'}"
    _write(m, mdir, src, out)


# --- DICOMDIR ---------------------------------------------------------------


def _dicomdir_records(info: Info, data: bytes):
    """[(record item Elem, {tag: elem index})] of the Directory Record Sequence."""
    seq = info.top(0x00041220)
    if seq < 0:
        return []
    recs = []
    for i, e in enumerate(info.elems):
        if e.kind == "item" and e.parent == seq:
            recs.append((e, {}))
            cur = recs[-1][1]
        elif recs and e.depth == 2 and e.kind == "elem" and info.elems[e.parent].parent == seq:
            cur[e.tag] = i
    return recs


def _dicomdir_tree(src: Path, mdir: Path) -> Path:
    """Copy the DICOMDIR and the files beside it (they are small) into ``mdir``."""
    base = src.parent
    dst = mdir / "fs"
    for dirpath, _dirs, files in os.walk(base):
        rel = Path(dirpath).relative_to(base)
        if any(part.startswith("TINY") for part in rel.parts) and not str(src.parent).endswith("TINY_ALPHA"):
            continue  # the TINY_ALPHA file-set is its own tree
        for f in files:
            (dst / rel).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(dirpath) / f, dst / rel / f)
    return dst


def op_dicomdir(m, src, mdir, rng):
    data, info = _load(src)
    recs = _dicomdir_records(info, data)
    if not recs:
        raise NotApplicable("not a DICOMDIR")
    dst = _dicomdir_tree(src, mdir)
    target = dst / src.name
    # offsets in a DICOMDIR are from the first byte of the file (the preamble)
    kind = rng.choice(
        [
            "next_self",
            "next_cycle2",
            "lower_self",
            "lower_to_parent",
            "next_past_eof",
            "next_mid_element",
            "root_garbage",
            "missing_files",
            "missing_all",
            "ref_outside",
            "ref_directory",
            "next_self",
        ]
    )
    out = data
    e4 = "<" if info.little else ">"

    def set_ul(buf, idx, v):
        el = info.elems[idx]
        return buf[: el.voff] + struct.pack(e4 + "L", v & 0xFFFFFFFF) + buf[el.voff + 4 :]

    with_next = [(r, t) for r, t in recs if NEXT_REC in t]
    with_lower = [(r, t) for r, t in recs if LOWER_REC in t and info.elems[t[LOWER_REC]].length == 4]
    if kind == "next_self" and with_next:
        r, t = rng.choice(with_next)
        out = set_ul(out, t[NEXT_REC], r.off)
        note = f"record at {r.off}: next-record offset -> itself"
    elif kind == "next_cycle2" and len(with_next) >= 2:
        (ra, ta), (rb, tb) = rng.sample(with_next, 2)
        out = set_ul(set_ul(out, ta[NEXT_REC], rb.off), tb[NEXT_REC], ra.off)
        note = f"records at {ra.off} and {rb.off} point at each other (next)"
    elif kind == "lower_self" and with_lower:
        r, t = rng.choice(with_lower)
        out = set_ul(out, t[LOWER_REC], r.off)
        note = f"record at {r.off}: lower-level offset -> itself"
    elif kind == "lower_to_parent" and with_lower:
        r, t = rng.choice(with_lower)
        child_off = struct.unpack_from(e4 + "L", data, info.elems[t[LOWER_REC]].voff)[0]
        kids = [(rr, tt) for rr, tt in recs if rr.off == child_off and LOWER_REC in tt]
        if kids:
            out = set_ul(out, kids[0][1][LOWER_REC], r.off)
            note = f"record at {child_off}: lower-level offset -> its parent at {r.off}"
        else:
            out = set_ul(out, t[LOWER_REC], recs[0][0].off)
            note = f"record at {r.off}: lower-level offset -> first record"
    elif kind == "next_past_eof" and with_next:
        r, t = rng.choice(with_next)
        out = set_ul(out, t[NEXT_REC], len(data) + rng.randint(8, 1 << 20))
        note = f"record at {r.off}: next-record offset past the end"
    elif kind == "next_mid_element" and with_next:
        r, t = rng.choice(with_next)
        out = set_ul(out, t[NEXT_REC], r.off + rng.randint(1, 40))
        note = f"record at {r.off}: next-record offset into the middle of a record"
    elif kind == "root_garbage" and info.top(ROOT_FIRST) >= 0:
        out = set_ul(out, info.top(ROOT_FIRST), rng.choice([0, 1, 132, len(data) * 2, recs[-1][0].off + 3]))
        note = "root first-record offset -> garbage"
    elif kind in ("missing_files", "missing_all"):
        files = [p for p in dst.rglob("*") if p.is_file() and not p.name.upper().startswith("DICOMDIR")]
        if not files:
            raise NotApplicable("no referenced files")
        gone = files if kind == "missing_all" else rng.sample(files, max(1, len(files) // rng.choice([2, 3, 10])))
        for p in gone:
            p.unlink()
        note = f"{len(gone)} of {len(files)} referenced files deleted"
    elif kind in ("ref_outside", "ref_directory"):
        refs = [t[REF_FILE_ID] for _, t in recs if REF_FILE_ID in t]
        if not refs:
            raise NotApplicable("no ReferencedFileID")
        i = rng.choice(refs)
        val = b"..\\..\\..\\..\\..\\..\\etc\\passwd" if kind == "ref_outside" else b"."
        info_ = info
        out = set_value(out, info_, i, val)
        note = f"a ReferencedFileID -> {val.decode()!r}"
    else:
        raise NotApplicable(kind)
    target.write_bytes(out)
    m.path = str(target)
    m.note = note


# --- big and sparse ---------------------------------------------------------


def _sparse(path: Path, head: bytes, total: int) -> None:
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(max(total, len(head)))  # a hole: no bytes written, no disk used


def op_sparse_huge(m, src, mdir, rng):
    """A file whose header claims huge dimensions, its pixel data a hole (truncate())."""
    data, info = _load(src)
    if info.pixel < 0 or info.deflated or info.top(ROWS) < 0 or info.top(COLUMNS) < 0:
        raise NotApplicable("no image")
    variants = [
        "frame_2gib",
        "frame_4gib",
        "frame_just_under_2gib",
        "many_frames",
        "claims_past_eof",
        "fragment_2gib",
        "frames_times_size_overflow",
    ]
    if not info.encapsulated:
        variants.remove("fragment_2gib")
    kind = rng.choice(variants)
    out = data[: info.elems[info.pixel].off]
    hinfo = walk(out)  # the header alone (walk stops at its end)

    def setdim(buf, tag, v):
        inf = walk(buf)
        i = inf.top(tag)
        if i < 0:
            return buf
        if isinstance(v, bytes):
            return set_value(buf, inf, i, v)
        return set_us(buf, inf, i, v)

    def set_frames(buf, n):
        inf = walk(buf)
        if inf.top(FRAMES) >= 0:
            return setdim(buf, FRAMES, str(n).encode())
        # insert NumberOfFrames before the first (0028,xxxx) element
        i = inf.top(SPP) if inf.top(SPP) >= 0 else inf.top(ROWS)
        el = inf.elems[i]
        new = element_bytes(
            FRAMES, b"IS", str(n).encode() + (b" " if len(str(n)) % 2 else b""), inf.little, inf.explicit
        )
        return buf[: el.off] + new + buf[el.off :]

    e = "<" if info.little else ">"
    px = info.elems[info.pixel]
    bits = info.values.get("bits") or 16
    spp = info.values.get("spp") or 1
    frames = 1
    px_bytes = max(1, spp * bits // 8)
    if kind == "frame_2gib":  # exactly 2 GiB where the sizes allow it (the MAX_FRAME_BYTES edge)
        rows = min(65535, int((2**31 // px_bytes) ** 0.5))
        cols = min(65535, 2**31 // px_bytes // rows)
        out = setdim(setdim(out, ROWS, rows), COLUMNS, cols)
        nbytes = rows * cols * spp * bits // 8
    elif kind == "frame_4gib":
        rows = cols = 65535
        out = setdim(setdim(out, ROWS, rows), COLUMNS, cols)
        nbytes = min(0xFFFFFFFE, rows * cols * spp * bits // 8)
    elif kind == "frame_just_under_2gib":
        rows = cols = min(65535, int((2**31 // px_bytes) ** 0.5) - 1)
        out = setdim(setdim(out, ROWS, rows), COLUMNS, cols)
        nbytes = rows * cols * spp * bits // 8
        nbytes += nbytes % 2
    elif kind == "many_frames":
        rows, cols = info.values.get("rows"), info.values.get("columns")
        frames = rng.choice([100_000, 1_000_000, 40_000])
        out = set_frames(out, frames)
        nbytes = min(0xFFFFFFFE, rows * cols * spp * bits // 8 * frames)
    elif kind == "frames_times_size_overflow":
        out = setdim(setdim(out, ROWS, 16384), COLUMNS, 16384)
        frames = 2**31 - 1
        out = set_frames(out, frames)
        nbytes = 0xFFFFFFFE
    else:  # claims_past_eof / fragment_2gib
        rows, cols = info.values.get("rows"), info.values.get("columns")
        nbytes = 0x7FFFFFF0
    hinfo = walk(out)
    little = hinfo.little
    explicit = hinfo.explicit
    if kind == "fragment_2gib":
        # keep the header, then BOT (empty) + one fragment of ~2 GiB that is a hole
        px_head = data[px.off : px.voff]
        items = struct.pack(e + "HHL", 0xFFFE, 0xE000, 0) + struct.pack(e + "HHL", 0xFFFE, 0xE000, nbytes)
        head = out + px_head + items
        total = len(head) + nbytes + 8
        _sparse(mdir / src.name, head, total)
        with open(mdir / src.name, "r+b") as fh:  # delimiter after the hole
            fh.seek(total - 8)
            fh.write(struct.pack(e + "HHL", 0xFFFE, 0xE0DD, 0))
        m.path = str(mdir / src.name)
        m.note = f"one fragment of {nbytes} bytes (a hole)"
        m.sparse = True
        return
    if info.encapsulated:  # make it native so the huge frame is "there"
        out = set_ts(out, walk(out), EXPLICIT_LE)
        little, explicit = True, True
    elem = element_bytes(0x7FE00010, b"OW", b"", little, explicit)
    elem = elem[:-4] + struct.pack(("<" if little else ">") + "L", nbytes)
    head = out + elem
    total = len(head) + (nbytes if kind != "claims_past_eof" else 0)
    _sparse(mdir / src.name, head, total)
    m.path = str(mdir / src.name)
    m.sparse = True
    m.note = f"{kind}: pixel data of {nbytes} bytes, file size {total} (a hole)"


def _deflate_zeros(prefix: bytes, nbytes: int) -> bytes:
    """A raw DEFLATE stream of ``prefix`` + ``nbytes`` zeros, built in milliseconds:
    after a full flush the compressor's output for identical input is identical."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)]
    chunk = 1 << 20
    z = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    out.append(z * (nbytes // chunk))
    rest = nbytes % chunk
    out.append(c.compress(bytes(rest)) + c.flush(zlib.Z_FINISH))
    return b"".join(out)


def op_deflate_bomb(m, src, mdir, rng):
    """Deflated Explicit VR LE dataset (or a Deflated Image Frame) that inflates to GiBs."""
    data, info = _load(src)
    if info.meta_end < 0 or info.top(TS_TAG) < 0:
        raise NotApplicable("no file meta")
    kind = rng.choice(["dataset_3gib", "dataset_1_5gib", "dataset_trailing", "frame_3gib", "frame_1gib"])
    meta = data[: info.meta_end]
    minfo = walk(meta)
    size = {
        "dataset_3gib": 3 << 30,
        "dataset_1_5gib": 3 << 29,
        "dataset_trailing": 1 << 30,
        "frame_3gib": 3 << 30,
        "frame_1gib": 1 << 30,
    }[kind]
    dims = (
        element_bytes(SPP, b"US", struct.pack("<H", 1))
        + element_bytes(PHOTO, b"CS", b"MONOCHROME2")
        + element_bytes(ROWS, b"US", struct.pack("<H", 512))
        + element_bytes(COLUMNS, b"US", struct.pack("<H", 512))
        + element_bytes(BITS_ALLOC, b"US", struct.pack("<H", 16))
        + element_bytes(BITS_STORED, b"US", struct.pack("<H", 16))
        + element_bytes(HIGH_BIT, b"US", struct.pack("<H", 15))
        + element_bytes(PIXREP, b"US", struct.pack("<H", 0))
    )
    sop = element_bytes(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00") + element_bytes(0x00080060, b"CS", b"OT")
    if kind.startswith("dataset"):
        head = set_ts(meta, minfo, DEFLATED_LE)
        if kind == "dataset_trailing":  # a valid small dataset followed by a huge private OB value
            inner = sop + dims + element_bytes(0x00091010, b"OB", b"")[:-4] + struct.pack("<L", size)
        else:  # the pixel data itself is the bomb
            inner = sop + dims + element_bytes(0x7FE00010, b"OW", b"")[:-4] + struct.pack("<L", size)
        body = _deflate_zeros(inner, size)
    else:
        head = set_ts(meta, minfo, DEFLATED_IMAGE_FRAME)
        stream = _deflate_zeros(b"", size)
        frag = struct.pack("<HHL", 0xFFFE, 0xE000, len(stream) + len(stream) % 2) + stream + b"\x00" * (len(stream) % 2)
        px = struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, UNDEFINED) + struct.pack("<HHL", 0xFFFE, 0xE000, 0) + frag
        body = sop + dims + px + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    m.note = f"{kind}: inflates to {size} bytes from {len(body)}"
    _write(m, mdir, src, head + body)


def op_series_member(m, src, mdir, rng):
    """Copy the folder holding ``src`` (a series), mutate ``src`` in it with another
    operator, and read the folder (mismatched members of one series)."""
    folder = src.parent
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if len(files) < 3 or sum(p.stat().st_size for p in files) > 8 << 20:
        raise NotApplicable("not a small series folder")
    dst = mdir / "series"
    dst.mkdir()
    for p in files:
        shutil.copyfile(p, dst / p.name)
    sub = rng.choice(["dimension", "dimension", "truncate", "header_flip", "delete_element", "swap_ts", "change_vr"])
    inner = Mutant(m.id, m.source, sub, m.seed)
    tmp = mdir / "tmp"
    tmp.mkdir()
    OPERATORS[sub](inner, src, tmp, rng)
    shutil.move(inner.path, dst / src.name)
    shutil.rmtree(tmp)
    m.path = str(dst)
    m.note = f"series folder, {src.name}: {sub}: {inner.note}"
    m.impossible_frames = []  # frame numbers refer to the series, not the file


OPERATORS = {
    "header_flip": op_header_flip,
    "pixel_flip": op_pixel_flip,
    "truncate": op_truncate,
    "bad_length": op_bad_length,
    "change_vr": op_change_vr,
    "dimension": op_dimension,
    "delete_element": op_delete_element,
    "fragment": op_fragment,
    "unterminated_sequence": op_unterminated_sequence,
    "swap_ts": op_swap_ts,
    "dicomdir": op_dicomdir,
    "sparse_huge": op_sparse_huge,
    "deflate_bomb": op_deflate_bomb,
    "series_member": op_series_member,
}
# relative frequency of each operator in a campaign
WEIGHTS = {
    "header_flip": 12,
    "pixel_flip": 10,
    "truncate": 12,
    "bad_length": 10,
    "change_vr": 8,
    "dimension": 14,
    "delete_element": 5,
    "fragment": 12,
    "unterminated_sequence": 6,
    "swap_ts": 8,
    "dicomdir": 5,
    "sparse_huge": 3,
    "deflate_bomb": 2,
    "series_member": 3,
}


# --------------------------------------------------------------------------
# campaigns


def _applicable(op: str, row: dict, info: Info | None, folder_sizes: dict) -> bool:
    path = row["path"]
    name = path.rsplit("/", 1)[-1].upper()
    if op == "dicomdir":
        return (
            name.startswith("DICOMDIR")
            and info is not None
            and info.top(0x00041220) >= 0
            and any(e.kind == "item" and e.depth == 1 for e in info.elems)
        )
    if info is None or name.startswith("DICOMDIR"):
        return False
    if op == "fragment":
        return info.encapsulated and len(info.frags) >= 2
    if op in ("pixel_flip", "sparse_huge"):
        return info.pixel >= 0 and not info.deflated
    if op == "dimension":
        return info.pixel >= 0 and info.top(ROWS) >= 0
    if op == "unterminated_sequence":
        return any(e.kind in ("seq", "seq_delim", "item_delim") for e in info.elems)
    if op in ("swap_ts", "deflate_bomb"):
        return info.top(TS_TAG) >= 0
    if op == "series_member":
        return path.startswith(
            ("ct_mr_series/", "dicomdir/pydicom/dicomdirtests/9", "dicomdir/pydicom/dicomdirtests/7")
        ) and (folder_sizes.get(path.rsplit("/", 1)[0], 0) >= 3)
    return True


def sources(root: Path | None = None, max_size: int | None = None) -> list[tuple[dict, Info | None]]:
    """Manifest rows that exist, with their walk (None when not walkable as DICOM)."""
    root = root or corpus_root()
    out = []
    for row in manifest_rows(root):
        p = root / row["path"]
        if not p.is_file():
            continue
        size = p.stat().st_size
        if max_size is not None and size > max_size:
            continue
        with open(p, "rb") as fh:
            head = fh.read(min(size, 4 << 20))
        info = walk(head) if size <= 4 << 20 else _walk_big(p)
        if not info.elems and info.meta_start < 0:
            info = None
        out.append((row, info))
    return out


def _walk_big(p: Path) -> Info:
    info = walk(p.read_bytes())
    return info


def campaign(
    n: int, seed: int, root: Path | None = None, max_size: int | None = None, ops: list[str] | None = None
) -> list[str]:
    """``n`` mutant ids for ``seed``: operators drawn by weight, sources among those the
    operator applies to (stratified so every operator and every source come up)."""
    rng = random.Random(seed)
    srcs = sources(root, max_size)
    ops = ops or list(OPERATORS)
    folder_sizes: dict = {}
    for r, _ in srcs:
        d = r["path"].rsplit("/", 1)[0]
        folder_sizes[d] = folder_sizes.get(d, 0) + 1
    pools = {op: [r["path"] for r, info in srcs if _applicable(op, r, info, folder_sizes)] for op in ops}
    pools = {op: p for op, p in pools.items() if p}
    for p in pools.values():
        rng.shuffle(p)
    cursor = {op: 0 for op in pools}
    names = sorted(pools)
    weights = [WEIGHTS.get(op, 5) for op in names]
    ids = []
    for _ in range(n):
        op = rng.choices(names, weights)[0]
        pool = pools[op]
        src = pool[cursor[op] % len(pool)]
        cursor[op] += 1
        ids.append(f"{src}|{op}|{rng.randrange(1 << 31)}")
    return ids


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__)
        return 2
    m = make(argv[0], argv[1])
    print(m.path)
    print(m.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
