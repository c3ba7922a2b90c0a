"""Fast DICOM header scanning.

``scan_header(path)`` walks a file's data elements up to the pixel data and
returns a :class:`Header` with the attributes napari-dcm needs for series
grouping, geometry and windowing, and with the byte offset of the pixel data
value.  It reads no pixel data.

Why not ``pydicom.dcmread(stop_before_pixels=True)``?  pydicom builds a full
``Dataset``: about 1 ms per small file on these machines.  Opening folders of
10,000 files needs ten times that rate, and frame access needs the byte offset
of the pixel data, which pydicom does not expose.  This module only *walks*
elements (tag, VR, length) and converts the few values it keeps; anything it
does not understand falls back to pydicom (see ``discovery``), and the test
suite checks every kept value against pydicom on the whole corpus.

This module deliberately imports nothing heavy (no numpy, no pydicom) so
worker processes start fast.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .limits import LIMITS, InflateLimitError, StreamInflater, open_regular, open_regular_stat

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pydicom import Dataset

    # what the value converters return (``Header.values`` entries)
    Value = str | int | list[float] | list[str] | bytes | None

# Transfer syntaxes
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
NATIVE_SYNTAXES = {IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE}

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_VALID_VR = {
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
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"PN",
    b"SH",
    b"SL",
    b"SQ",
    b"SS",
    b"ST",
    b"SV",
    b"TM",
    b"UC",
    b"UI",
    b"UL",
    b"UN",
    b"UR",
    b"US",
    b"UT",
    b"UV",
}

# tag -> (attribute name, kind).  kind: s=string, m=multi-string, i=int (IS),
# f=float list (DS), u=unsigned short, l=unsigned long, raw=bytes
_WANTED = {
    0x00080005: ("charset", "m"),
    0x00080008: ("image_type", "m"),
    0x00080016: ("sop_class_uid", "s"),
    0x00080018: ("sop_instance_uid", "s"),
    0x00080020: ("study_date", "s"),
    0x00080021: ("series_date", "s"),
    0x00080050: ("accession_number", "s"),
    0x00080060: ("modality", "s"),
    0x00081030: ("study_description", "s"),
    0x0008103E: ("series_description", "s"),
    0x00100010: ("patient_name", "s"),
    0x00100020: ("patient_id", "s"),
    0x00180050: ("slice_thickness", "f"),
    0x00180088: ("spacing_between_slices", "f"),
    0x00181164: ("imager_pixel_spacing", "f"),
    0x00185101: ("view_position", "s"),
    0x0020000D: ("study_instance_uid", "s"),
    0x0020000E: ("series_instance_uid", "s"),
    0x00200011: ("series_number", "i"),
    0x00200013: ("instance_number", "i"),
    0x00200020: ("patient_orientation", "m"),
    0x00200032: ("image_position", "f"),
    0x00200037: ("image_orientation", "f"),
    0x00200052: ("frame_of_reference_uid", "s"),
    0x00200060: ("laterality", "s"),
    0x00200062: ("image_laterality", "s"),
    0x00280002: ("samples_per_pixel", "u"),
    0x00280004: ("photometric", "s"),
    0x00280006: ("planar_configuration", "u"),
    0x00280008: ("number_of_frames", "i"),
    0x00280010: ("rows", "u"),
    0x00280011: ("columns", "u"),
    0x00280030: ("pixel_spacing", "f"),
    0x00280100: ("bits_allocated", "u"),
    0x00280101: ("bits_stored", "u"),
    0x00280103: ("pixel_representation", "u"),
    0x00280120: ("pixel_padding_value", "u"),  # US or SS: signed by PixelRepresentation (layers.images)
    0x00280121: ("pixel_padding_range_limit", "u"),
    0x00281050: ("window_center", "f"),
    0x00281051: ("window_width", "f"),
    0x00281052: ("rescale_intercept", "f"),
    0x00281053: ("rescale_slope", "f"),
    0x00281054: ("rescale_type", "s"),
    0x00281055: ("window_explanation", "m"),
    0x00281056: ("voi_lut_function", "s"),
    0x3004000C: ("grid_frame_offset_vector", "f"),
    0x7FE00001: ("extended_offset_table", "raw"),
    0x7FE00002: ("extended_offset_table_lengths", "raw"),
}

# Overlay Rows of the 16 overlay plane groups (an image with overlay planes gets overlay
# layers) and Presentation LUT Shape (INVERSE shows inverted); added for issue 9.
_WANTED.update({(g << 16) | 0x0010: (f"overlay_rows_{g:04x}", "u") for g in range(0x6000, 0x6020, 2)})
_WANTED[0x20500020] = ("presentation_lut_shape", "s")

# Values kept from the functional group macros of Enhanced objects
# (Shared / Per-frame Functional Groups Sequence -> macro sequence -> item)
_FG_WANTED = {
    0x00200032: ("image_position", "f"),
    0x00200037: ("image_orientation", "f"),
    0x00280030: ("pixel_spacing", "f"),
    0x00180050: ("slice_thickness", "f"),
    0x00180088: ("spacing_between_slices", "f"),
    0x00281052: ("rescale_intercept", "f"),
    0x00281053: ("rescale_slope", "f"),
    0x00281050: ("window_center", "f"),
    0x00281051: ("window_width", "f"),
    0x00281055: ("window_explanation", "m"),
    0x00281056: ("voi_lut_function", "s"),
    0x00209056: ("stack_id", "s"),
    0x00209057: ("in_stack_position", "u"),
    0x00209128: ("temporal_position_index", "u"),
    0x00209157: ("dimension_index_values", "raw"),
}
_FG_SEQUENCES = {0x52009229: "shared_fg", 0x52009230: "per_frame_fg"}

# Elements whose presence means the file needs a full pydicom header parse to
# be described completely (functional groups, LUT sequences, palettes, ...).
_NEEDS_DATASET = {
    0x00283000,  # ModalityLUTSequence
    0x00283010,  # VOILUTSequence
    0x00281201,
    0x00281202,
    0x00281203,  # palette LUT data
    0x00281221,
    0x00281222,
    0x00281223,  # segmented palette LUT data
}

_PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}

UNDEFINED = 0xFFFFFFFF
_STRUCTS = {
    little: (
        struct.Struct(e + "HH2sH").unpack_from,
        struct.Struct(e + "HHL").unpack_from,
        struct.Struct(e + "L").unpack_from,
    )
    for little, e in ((True, "<"), (False, ">"))
}
_FIRST_READ = 16384


# Converted values shared between the headers of one scan chunk (see ``value_cache``):
# (tag, VR, little endian, raw bytes) -> value.  None: no sharing (a lone scan_header).
_value_cache: dict[tuple[int, bytes | None, bool, bytes], Any] | None = None
_CACHE_MAX = 4096  # distinct values kept per chunk (hostile files cannot grow it further)
_MISS: Any = object()
# header layouts seen in this chunk (see ``_Layout``), most recently used first
_layouts: list[_Layout] | None = None
_MAX_LAYOUTS = 8
# headers described by a layout, when recorded (see ``layout_record``): id(header) ->
# (layout, indices of its varying values kept in ``values``, those values)
_described: dict[int, tuple[_Layout, tuple[int, ...], tuple[Any, ...]]] | None = None
_described_bare = False  # (see layout_record)
# values that differ from instance to instance: converted every time, never cached
_PER_INSTANCE = frozenset({0x00080018, 0x00200013, 0x00200032})


@contextlib.contextmanager
def value_cache() -> Iterator[None]:
    """Inside ``with value_cache():`` equal header values of different files are one object
    (converted once): a series' UIDs, names, orientation, spacing and pixel module repeat in
    every file, and the pickled answer of a scan worker then holds each of them once.
    Header values are never mutated (they describe files), so sharing them is safe."""
    global _value_cache, _layouts
    old, old_layouts = _value_cache, _layouts
    _value_cache, _layouts = {}, []
    try:
        yield
    finally:
        _value_cache, _layouts = old, old_layouts


@contextlib.contextmanager
def layout_record(bare: bool = False) -> Iterator[dict[int, tuple[_Layout, tuple[int, ...], tuple[Any, ...]]]]:
    """Inside, every header a layout describes is noted (by id) with its layout and
    varying values: a scan worker then sends such a header as those values alone
    (see ``discovery._scan_chunk_packed``).  ``bare``: such headers' ``values`` are
    left empty (the record holds what rebuilds them; filling them costs a worker
    about 2 us per file for nothing)."""
    global _described, _described_bare
    old = _described, _described_bare
    rec: dict[int, tuple[_Layout, tuple[int, ...], tuple[Any, ...]]] = {}
    _described, _described_bare = rec, bare
    try:
        yield rec
    finally:
        _described, _described_bare = old


class ScanError(Exception):
    """The header could not be walked (the caller decides what that means)."""


class NotDicom(ScanError):
    """Neither a DICM preamble nor a DICOM data element at the start of the file."""


class NoFallback(ScanError):
    """The header cannot be walked, and handing the file to pydicom would not be bounded
    either (a deflated dataset: pydicom inflates all of it, whatever its size)."""


# sequences nested deeper than this are refused (real objects nest a handful of levels)
MAX_DEPTH = 64


@dataclass(slots=True)
class Header:
    """What napari-dcm knows about one file (or remote instance) after the header scan.

    ``values`` holds the attributes of ``_WANTED`` by name.  Where the header
    came from and how its frames are read is typed, never a string flag:

    * ``walked``: the fast walk described the file (False: only pydicom could
      parse it, and frames are read through pydicom);
    * ``deflated_offset``: >= 0 for a Deflated Explicit VR LE file: the raw
      DEFLATE stream starts there, and ``pixel_offset``/``pixel_length`` are
      positions in the inflated dataset;
    * ``source``: None for a local file; a remote location (e.g. a DICOMweb
      instance, see :mod:`napari_dcm.dicom.sources.web`) otherwise;
    * ``dataset``: the pydicom Dataset when one was already parsed for this
      header (DICOMweb metadata), so nothing reads ``path`` again.
    """

    path: str
    transfer_syntax: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    has_meta: bool = True
    has_preamble: bool = True
    # pixel data location: offset of the element *value* in the file
    pixel_tag: int = 0
    pixel_offset: int = -1
    pixel_length: int = -1  # -1: undefined length (encapsulated)
    file_size: int = 0
    needs_dataset: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    walked: bool = True
    deflated_offset: int = -1
    source: Any = None
    dataset: Dataset | None = None
    # main process only, never pickled: the packed base a scan worker's answer was
    # rebuilt from (discovery._unpack).  Headers with the same ``packed`` have equal
    # values but for those it names as varying (``packed[5]``), equal pixel location
    # and transfer syntax: series assembly memoises per-file work on it.
    packed: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        v = self.values.get(name)
        return default if v is None else v

    def __reduce__(self) -> tuple[Any, ...]:
        # compact pickling: headers travel from scan workers in bulk
        return (
            _make_header,
            (
                self.path,
                self.transfer_syntax,
                self.sop_class_uid,
                self.sop_instance_uid,
                self.has_meta,
                self.has_preamble,
                self.pixel_tag,
                self.pixel_offset,
                self.pixel_length,
                self.file_size,
                self.needs_dataset,
                self.values,
                self.walked,
                self.deflated_offset,
                self.source,
                self.dataset,
            ),
        )

    @property
    def has_pixels(self) -> bool:
        return self.pixel_offset >= 0

    @property
    def is_dicomdir(self) -> bool:
        return self.sop_class_uid == "1.2.840.10008.1.3.10"


def _make_header(*args: Any) -> Header:
    return Header(*args)


class _Buf:
    """A growing read buffer over a file opened only for the scan."""

    __slots__ = ("fh", "data", "eof", "size")

    def __init__(self, fh: int | None, first: bytes, size: int) -> None:
        self.fh = fh
        self.data = first
        self.size = size
        self.eof = len(first) >= size

    def need(self, end: int) -> bool:
        """Make sure data[:end] is loaded; return False if the file is shorter."""
        if end <= len(self.data):
            return True
        if self.eof or end > self.size:
            return False  # the file cannot hold it: read nothing more
        want = min(max(end - len(self.data), len(self.data)), self.size - len(self.data))  # at least double
        # fh is None only for an in-memory buffer, which starts at eof
        more = os.pread(cast(int, self.fh), want, len(self.data))
        if not more:
            self.eof = True
            return False
        self.data += more
        if len(self.data) >= self.size:
            self.eof = True
        return end <= len(self.data)


def _text(raw: bytes) -> str:
    try:
        s = raw.decode()  # ASCII (the common case) and UTF-8 (ISO_IR 192)
    except UnicodeDecodeError:
        s = raw.decode("latin-1")
    return s.strip(" \x00")


def _convert(kind: str, raw: bytes, vr: bytes, little: bool) -> Value:
    # fast paths first (well-formed values), the careful parse on any doubt
    if kind == "s":
        try:
            return raw.decode().strip(" \x00") or None
        except UnicodeDecodeError:
            return _text(raw) or None
    if kind == "f":
        try:
            return [float(x) for x in raw.split(b"\\")] or None
        except ValueError:
            pass
    elif kind == "i":
        try:
            return int(raw)
        except ValueError:
            pass
    elif kind == "u" and len(raw) == 2 and vr != b"SS":
        return int.from_bytes(raw, "little" if little else "big")
    return _convert_slow(kind, raw, vr, little)


def _convert_slow(kind: str, raw: bytes, vr: bytes, little: bool) -> Value:
    if kind == "s":
        return _text(raw) or None
    if kind == "m":
        t = _text(raw)
        return [p.strip(" \x00") for p in t.split("\\")] if t else None
    if kind == "raw":
        return bytes(raw)
    if kind == "i":
        s = _text(raw).split("\\")[0].strip()
        if not s:
            return None
        try:
            return int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                raise ScanError(f"invalid IS value {s!r}") from None
            if f != int(f):
                raise ScanError(f"invalid IS value {s!r}") from None
            return int(f)
    if kind == "f":
        out = []
        for p in _text(raw).split("\\"):
            p = p.strip()
            if not p:
                continue
            try:
                out.append(float(p))
            except ValueError:
                raise ScanError(f"invalid DS value {p!r}") from None
        return out or None
    if kind == "u":
        if len(raw) < 2:
            return None
        fmt = "<H" if little else ">H"
        if vr == b"SS":
            fmt = fmt.lower()
        if vr in (b"UL", b"SL") and len(raw) >= 4:
            fmt = ("<" if little else ">") + ("L" if vr == b"UL" else "l")
        return cast(int, struct.unpack_from(fmt, raw)[0])
    return raw


def sniff(path: str, head: bytes | None = None) -> str | None:
    """Return how a file looks: 'dicom' (preamble), 'raw-le', 'raw-be', or None.

    Only reads the first 132 bytes.  'raw-*' are files without preamble that
    start with a plausible group 0002/0008 data element (ACR-NEMA style or
    preamble-less Part 10).
    """
    if head is None:
        try:
            fd = open_regular(path)  # a FIFO or a device is not DICOM (and must not block)
            try:
                head = os.pread(fd, 132, 0)
            finally:
                os.close(fd)
        except OSError:
            return None
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if len(head) < 8:
        return None
    g_le, e_le = struct.unpack_from("<HH", head)
    g_be = struct.unpack_from(">H", head)[0]
    vr = head[4:6]
    if g_le in (0x0002, 0x0008) and e_le < 0x2000:
        if vr in _VALID_VR:
            return "raw-le"
        length = struct.unpack_from("<L", head, 4)[0]
        if length < 0x10000:
            return "raw-le"
        return None
    if g_be == 0x0008 and vr in _VALID_VR:
        return "raw-be"
    return None


class _InflatedBuf(_Buf):
    """The header of a deflated dataset, inflated only as far as the walk reads it
    (it stops at the pixel data) and never past ``LIMITS.max_header_bytes``."""

    __slots__ = ("inflater",)

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.inflater = StreamInflater(fd, offset, size, LIMITS.max_header_bytes)
        super().__init__(None, b"", 1 << 62)
        self.eof = False

    def need(self, end: int) -> bool:
        if end <= len(self.data):
            return True
        if self.eof:
            return False
        try:
            # at least double (each growth copies the inflated bytes once), within the limit
            self.inflater.ensure(min(max(end, 2 * len(self.data), 1 << 16), max(end, LIMITS.max_header_bytes)))
            ok = len(self.inflater.data) >= end
            self.data = bytes(self.inflater.data)
        except InflateLimitError:
            raise NoFallback(
                f"deflated dataset: the header inflates past {LIMITS.max_header_bytes >> 20} MiB "
                "before its pixel data (decompression bomb?)"
            ) from None
        except zlib.error as exc:
            raise NoFallback(f"deflated dataset does not inflate: {exc}") from None
        if self.inflater.eof:
            self.eof = True
            self.size = len(self.data)
        return ok


def scan_header(path: str) -> Header:
    """Walk a file's header; raise ScanError (or OSError) if it cannot be walked.

    Only regular files are opened (a FIFO or a device raises
    ``limits.NotRegularFileError``, an OSError, instead of blocking).
    """
    fd, st = open_regular_stat(path)
    try:
        size = st.st_size
        first = os.read(fd, _FIRST_READ)
        return _scan(path, fd, None, first, size)
    finally:
        os.close(fd)


def _meta_fast(data: bytes, values: dict[str, Any]) -> int:
    """Read the file meta through its group length; -1 when it is not the usual shape."""
    if data[132:140] != b"\x02\x00\x00\x00UL\x04\x00" or len(data) < 144:
        return -1
    end: int = 144 + struct.unpack_from("<L", data, 140)[0]
    if end > len(data):
        return -1
    for elem, key in ((b"\x10", "_ts"), (b"\x02", "_msc"), (b"\x03", "_msi")):
        i = data.find(b"\x02\x00" + elem + b"\x00UI", 144, end)
        if i >= 0:
            n = struct.unpack_from("<H", data, i + 6)[0]
            raw = data[i + 8 : i + 8 + n]
            cache = _value_cache
            if cache is None or elem == b"\x03":
                values[key] = raw.decode("latin-1").strip(" \x00")
            else:
                ck = (2, None, True, raw)  # (0002,xxxx) are never value tags of _WANTED: no clash
                v = cache.get(ck)
                if v is None:
                    v = raw.decode("latin-1").strip(" \x00")
                    if len(cache) < _CACHE_MAX:
                        cache[ck] = v
                values[key] = v
    if data[end : end + 2] == b"\x02\x00":  # group length was wrong: walk instead
        return -1
    return end


def _scan(path: str, fh: int, buf: _Buf | None, first: bytes, size: int) -> Header:
    """The header of the file open as ``fh`` whose first bytes are ``first``; ``buf``:
    a read buffer over it (made here when None, unless a layout describes the file)."""
    hdr = Header(path=path, file_size=size)
    kind = "dicom" if first[128:132] == b"DICM" else sniff(path, first[:132])
    if kind is None:
        raise NotDicom("not a DICOM file (no DICM preamble and no DICOM data elements)")
    values = hdr.values
    meta_fast = False
    if kind == "dicom":
        layouts = _layouts
        if layouts:
            for i, lay in enumerate(layouts):
                if lay.meta_fits(first):
                    if i:
                        layouts.insert(0, layouts.pop(i))
                    mv = lay.meta_values
                    msi = "" if lay.msi is None else first[lay.msi].decode("latin-1").strip(" \x00")
                    return lay.header(hdr, first, (mv["_ts"], mv.get("_msc", ""), msi))
        if buf is None:
            buf = _Buf(fh, first, size)
        pos = _meta_fast(first, values)
        if layouts is not None and pos >= 0:
            for i, lay in enumerate(layouts):
                if lay.start == pos and lay.fits(first, values.get("_ts")):
                    if i:
                        layouts.insert(0, layouts.pop(i))
                    return lay.header(hdr, first)
        meta_fast = pos >= 0
        if pos < 0:
            values.pop("_ts", None), values.pop("_msc", None), values.pop("_msi", None)
            pos = _walk(buf, 132, True, True, values, hdr, meta_only=True)
        ts = values.pop("_ts", "")
        hdr.transfer_syntax = ts
        msc = values.pop("_msc", "")
        msi = values.pop("_msi", "")
        if not ts:
            # file meta without TransferSyntaxUID: guess from the first element
            ts = _guess_syntax(buf.data, pos)
            hdr.transfer_syntax = ts
            values["guessed_transfer_syntax"] = True
    else:
        if buf is None:
            buf = _Buf(fh, first, size)
        hdr.has_preamble = False
        pos = 0
        if buf.data[0:2] == b"\x02\x00":
            pos = _walk(buf, pos, True, True, values, hdr, meta_only=True)
            ts = values.pop("_ts", "") or _guess_syntax(buf.data, pos)
            msc = values.pop("_msc", "")
            msi = values.pop("_msi", "")
        else:
            hdr.has_meta = False
            msc = msi = ""
            ts = EXPLICIT_BE if kind == "raw-be" else _guess_syntax(buf.data, 0)
            values["guessed_transfer_syntax"] = True
        hdr.transfer_syntax = ts

    little = ts != EXPLICIT_BE
    explicit = ts != IMPLICIT_LE
    if ts == DEFLATED_LE:
        # The dataset after the file meta is one raw DEFLATE stream: inflated as the
        # walk goes, so only the header is inflated (bounded), never the pixel data.
        dbuf = _InflatedBuf(fh, pos, size)
        try:
            _walk(dbuf, 0, True, True, values, hdr, meta_only=False)
        except NoFallback:
            raise
        except ScanError as exc:
            raise NoFallback(f"deflated dataset: {exc}") from None
        hdr.deflated_offset = pos
    else:
        start = pos
        _walk(buf, pos, explicit, little, values, hdr, meta_only=False)
        if _layouts is not None and meta_fast and "guessed_transfer_syntax" not in values:
            _learn_layout(hdr, first, start, ts, explicit, little, msc)
    hdr.sop_class_uid = values.pop("sop_class_uid", None) or msc
    hdr.sop_instance_uid = values.pop("sop_instance_uid", None) or msi
    return hdr


class _Layout:
    """Where every element of a walked header sits, to describe files laid out alike.

    Files of one series written by one device usually have the same elements with
    the same lengths at the same offsets: only some values differ.  A file whose
    element headers (tag, VR, length; the pixel data element's too) are byte for
    byte those of a walked file, at the same offsets, is walked identically: the
    walk goes element by element, each header alone deciding where the next one
    starts.  Such a file is described by comparing its bytes with the walked
    file's: the element headers and the values seen equal so far in one
    ``itemgetter`` call (a few slices: adjacent ranges are merged), then the values
    seen to vary are cut out and converted (with the walk's cache) where they
    differ.  Values that turn out to vary join the varying set (at most once each).
    Only plain headers are laid out (sequences only as bytes to match exactly; no
    item tags at top level, no functional groups, no undefined-length values
    other than sequences; all of it inside the first read): anything else is walked.
    """

    __slots__ = (
        "start",
        "ts",
        "end",
        "little",
        "tmpl",
        "heads",
        "spans",
        "raws",
        "names",
        "convs",
        "conv_values",
        "varying",
        "fixed_of",
        "fixed",
        "var",
        "var_of",
        "heads_of",
        "heads_tmpl",
        "pixel",
        "needs_dataset",
        "packable",
        "kept",
        "meta_values",
        "msi",
        "meta_spans",
        "meta_window",
        "mfixed_of",
        "mfixed",
        "uid_at",
    )
    start: int  # where the dataset (after the file meta) starts
    ts: str
    end: int  # the pixel data value's offset: everything before it is laid out
    little: bool
    tmpl: bytes  # the walked file's bytes up to ``end``
    heads: tuple[slice, ...]  # element headers (and sequences skipped whole)
    spans: tuple[slice, ...]  # values: the wanted ones (``names`` order), then the others
    raws: tuple[bytes, ...]  # the walked file's wanted values
    names: tuple[str, ...]
    convs: tuple[tuple[int, str, bytes | None], ...]  # (tag, kind, VR) of the wanted values
    conv_values: tuple[Any, ...]  # the walked file's converted values
    varying: set[int]  # indices into ``spans`` seen to differ between files
    fixed_of: Callable[[bytes], tuple[bytes, ...]]
    fixed: tuple[bytes, ...]
    var: tuple[int, ...]  # varying wanted values
    var_of: Callable[[bytes], Any]
    heads_of: Callable[[bytes], tuple[bytes, ...]]
    heads_tmpl: tuple[bytes, ...]
    pixel: tuple[int, int, int, str]  # pixel tag, offset, length, VR
    needs_dataset: bool
    packable: bool
    kept: tuple[int, ...]
    meta_values: dict[str, str]
    msi: slice | None  # the Media Storage SOP Instance UID's value
    meta_spans: tuple[slice, ...]
    meta_window: tuple[int, int]
    mfixed_of: Callable[[bytes], tuple[bytes, ...]]
    mfixed: tuple[bytes, ...]
    uid_at: tuple[int, int]  # indices of sop_class_uid / sop_instance_uid in ``names`` (-1: absent)

    def _regroup(self) -> None:
        """The itemgetters of the fixed ranges (element headers and values not seen to vary)
        and of the varying wanted values."""
        import operator

        def getter(spans: list[slice]) -> Callable[[bytes], tuple[bytes, ...]]:
            spans.sort(key=lambda sl: sl.start)
            merged: list[list[int]] = []
            for sl in spans:
                if merged and merged[-1][1] == sl.start:
                    merged[-1][1] = sl.stop
                else:
                    merged.append([sl.start, sl.stop])
            return operator.itemgetter(*[slice(a, b) for a, b in merged], slice(0, 0))

        fixed = list(self.heads) + [sp for i, sp in enumerate(self.spans) if i not in self.varying]
        self.fixed_of = getter(list(fixed))
        self.fixed = self.fixed_of(self.tmpl)
        if self.meta_spans:
            self.mfixed_of = getter(fixed + list(self.meta_spans))
            self.mfixed = self.mfixed_of(self.tmpl)
        nwanted = len(self.names)
        self.var = tuple(i for i in sorted(self.varying) if i < nwanted)
        self.var_of = operator.itemgetter(*[self.spans[i] for i in self.var], slice(0, 0))
        # the varying values that stay in ``values`` (the SOP UIDs become attributes)
        self.kept = tuple(i for i in self.var if self.names[i] not in ("sop_class_uid", "sop_instance_uid"))

    def packed_base(self, kept: tuple[int, ...]) -> tuple[Any, ...]:
        """What headers this layout describes share, for ``discovery._scan_chunk_packed``:
        (transfer syntax, pixel tag, offset, length, needs_dataset, the values of a file
        whose ``kept`` values are yet to be set, the names of those)."""
        values = dict(zip(self.names, self.conv_values))
        values["pixel_vr"] = self.pixel[3]
        values.pop("sop_class_uid", None)
        values.pop("sop_instance_uid", None)
        return (*self.pixel[:3], self.needs_dataset, values, tuple(self.names[i] for i in kept), self.ts)

    def meta_fits(self, first: bytes) -> bool:
        """Does ``first`` hold this layout's file meta too (only its Media Storage SOP
        Instance UID may differ) and its dataset elements?  ``_meta_fast`` then finds
        what it found in the walked file: its patterns were not found overlapping that
        UID in the walked file, and are not in this one (``meta_window``)."""
        if not self.meta_spans or len(first) < self.end or self.mfixed_of(first) != self.mfixed:
            return False
        lo, hi = self.meta_window
        if hi > lo:
            window = first[lo:hi]
            if b"\x02\x00" in window:
                for p in _META_PATTERNS:  # (a loop, not any(genexpr): this runs for every file)
                    if p in window:
                        return False
        return True

    def fits(self, first: bytes, ts: str | None) -> bool:
        if ts != self.ts or len(first) < self.end:
            return False
        if self.fixed_of(first) == self.fixed:
            return True
        if self.heads_of(first) != self.heads_tmpl:
            return False
        # laid out alike, but values seen equal so far differ: they vary from now on
        tmpl = self.tmpl
        changed = {i for i, sp in enumerate(self.spans) if i not in self.varying and first[sp] != tmpl[sp]}
        self.varying |= changed
        self._regroup()
        return True

    def header(self, hdr: Header, first: bytes, meta: tuple[str, str, str] | None = None) -> Header:
        """``hdr`` described by this layout; ``meta``: (transfer syntax, Media Storage SOP
        Class UID, its Instance UID) when not in ``hdr.values`` (as ``_ts``, ``_msc``, ``_msi``)."""
        values = hdr.values
        if meta is None:
            ts = values.pop("_ts")
            msc = values.pop("_msc", "")
            msi = values.pop("_msi", "")
        else:
            ts, msc, msi = meta
        vals: tuple[Any, ...] | list[Any] = self.conv_values
        if self.var:
            vals = list(vals)
            cache = _value_cache
            little = self.little
            raws = self.raws
            for i, raw in zip(self.var, self.var_of(first)):
                if raw != raws[i]:
                    tag, kind, vr = self.convs[i]
                    if cache is None or tag in _PER_INSTANCE:
                        vals[i] = _convert(kind, raw, vr or b"", little)
                    else:
                        ck = (tag, vr, little, raw)
                        v = cache.get(ck, _MISS)
                        if v is _MISS:
                            v = _convert(kind, raw, vr or b"", little)
                            if len(cache) < _CACHE_MAX:
                                cache[ck] = v
                        vals[i] = v
        if _described is not None and self.packable:
            _described[id(hdr)] = (self, self.kept, tuple([vals[i] for i in self.kept]))
        if _described_bare and self.packable:
            # recorded bare: the worker sends this header packed (discovery._scan_chunk_packed:
            # the layout's base values + the kept varying ones), so its values dict is
            # never read and is not filled (its pixel location and UIDs are)
            hdr.pixel_tag, hdr.pixel_offset, hdr.pixel_length = self.pixel[:3]
            if self.needs_dataset:
                hdr.needs_dataset = True
            hdr.transfer_syntax = ts
            isc, isi = self.uid_at
            hdr.sop_class_uid = (vals[isc] if isc >= 0 else None) or msc
            hdr.sop_instance_uid = (vals[isi] if isi >= 0 else None) or msi
            return hdr
        values.update(zip(self.names, vals))
        hdr.pixel_tag, hdr.pixel_offset, hdr.pixel_length, values["pixel_vr"] = self.pixel
        if self.needs_dataset:
            hdr.needs_dataset = True
        hdr.transfer_syntax = ts
        hdr.sop_class_uid = values.pop("sop_class_uid", None) or msc
        hdr.sop_instance_uid = values.pop("sop_instance_uid", None) or msi
        return hdr


_META_PATTERNS = tuple(b"\x02\x00" + e + b"\x00UI" for e in (b"\x10", b"\x02", b"\x03"))  # as _meta_fast finds them


def _learn_layout(hdr: Header, first: bytes, pos: int, ts: str, explicit: bool, little: bool, msc: str) -> None:
    """Keep the layout of a header just walked from ``first`` (see ``_Layout``), when it is plain."""
    import operator

    layouts = _layouts
    if layouts is None or not hdr.has_pixels or hdr.pixel_offset > len(first) or hdr.deflated_offset >= 0:
        return
    if "shared_fg" in hdr.values or "per_frame_fg" in hdr.values:
        return
    head_explicit, head_implicit, unpack_u32 = _STRUCTS[little]
    heads: list[slice] = []
    wanted: list[slice] = []
    others: list[slice] = []
    convs: list[tuple[int, str, bytes | None]] = []
    names: list[str] = []
    needs = False
    end = hdr.pixel_offset
    while True:
        if pos + 8 > end:
            return
        if explicit:
            group, elem, vr, length = head_explicit(first, pos)
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    return
                length = unpack_u32(first, pos + 8)[0]
                vpos = pos + 12
            elif vr in _VALID_VR:
                vpos = pos + 8
            else:
                return
        else:
            group, elem, length = head_implicit(first, pos)
            vr = None
            vpos = pos + 8
        tag = (group << 16) | elem
        if group == 0x7FE0 and tag in _PIXEL_TAGS:
            if vpos != end or tag != hdr.pixel_tag:
                return
            heads.append(slice(pos, vpos))
            break
        if group == 0xFFFE or tag in _FG_SEQUENCES:
            return
        if length == UNDEFINED:
            # a sequence the walk skips item by item: the same bytes are skipped alike
            try:
                after = _skip_undefined_sequence(_Buf(None, first[:end], end), vpos, explicit and vr != b"UN", little)
            except ScanError:
                return
            heads.append(slice(pos, after))
            needs = needs or tag in _NEEDS_DATASET
            pos = after
            continue
        if vpos + length > end:
            return
        heads.append(slice(pos, vpos))
        w = _WANTED.get(tag)
        if w is not None:
            wanted.append(slice(vpos, vpos + length))
            convs.append((tag, w[1], vr))
            names.append(w[0])
        else:
            needs = needs or tag in _NEEDS_DATASET
            if length:
                others.append(slice(vpos, vpos + length))
        pos = vpos + length
    if not names or needs != hdr.needs_dataset:
        return
    v = hdr.values
    if any(name not in v for name in names):
        return  # (the walk stores every wanted value it meets)
    lay = _Layout()
    lay.start = heads[0].start
    lay.ts, lay.end, lay.little = ts, end, little
    lay.tmpl = first[:end]
    lay.heads = tuple(heads)
    lay.heads_of = operator.itemgetter(*heads, slice(0, 0))
    lay.heads_tmpl = lay.heads_of(first)
    lay.spans = tuple(wanted + others)
    lay.raws = tuple(first[sp] for sp in wanted)
    lay.names, lay.convs, lay.needs_dataset = tuple(names), tuple(convs), needs
    lay.packable = len(set(names)) == len(names)  # (a repeated tag: its last value counts)
    lay.uid_at = (
        names.index("sop_class_uid") if "sop_class_uid" in names else -1,
        names.index("sop_instance_uid") if "sop_instance_uid" in names else -1,
    )
    # the walked values in layout order (the cached objects: equal values stay one object)
    lay.conv_values = tuple(v[name] for name in names)
    lay.pixel = (hdr.pixel_tag, hdr.pixel_offset, hdr.pixel_length, v.get("pixel_vr", ""))
    # values that differ from file to file in any series vary from the start
    lay.varying = {i for i, (tag, _, _) in enumerate(convs) if tag in _PER_INSTANCE}
    # the file meta (read by _meta_fast from ``first``): the same bytes but for the
    # Media Storage SOP Instance UID, which differs from file to file
    lay.meta_spans, lay.msi, lay.meta_window = (), None, (0, 0)
    lay.meta_values = {"_ts": ts}
    if msc:
        lay.meta_values["_msc"] = msc
    i = first.find(_META_PATTERNS[2], 144, lay.start)
    if i < 0:
        lay.meta_spans = (slice(132, lay.start),)
    else:
        n = struct.unpack_from("<H", first, i + 6)[0]
        r0, r1 = i + 8, i + 8 + n
        if 132 < r0 <= r1 <= lay.start:
            lay.msi = slice(r0, r1)
            lay.meta_spans = (slice(132, r0), slice(r1, lay.start))
            lay.meta_window = (max(144, r0 - 5), min(lay.start, r1 + 5))
            window = first[lay.meta_window[0] : lay.meta_window[1]]
            if any(p in window for p in _META_PATTERNS):
                lay.meta_spans = ()  # _meta_fast's search meets that UID: leave the meta to it
    lay._regroup()
    layouts.insert(0, lay)
    del layouts[_MAX_LAYOUTS:]


def _guess_syntax(data: bytes, pos: int) -> str:
    if len(data) >= pos + 6 and data[pos + 4 : pos + 6] in _VALID_VR:
        return EXPLICIT_LE
    return IMPLICIT_LE


def _walk(
    buf: _Buf, pos: int, explicit: bool, little: bool, values: dict[str, Any], hdr: Header, meta_only: bool
) -> int:
    """Walk top-level elements from ``pos``; fill ``values``; return the end position."""
    if meta_only:
        return _walk_meta(buf, pos, values)
    head_explicit, head_implicit, unpack_u32 = _STRUCTS[little]
    wanted = _WANTED
    needs = _NEEDS_DATASET
    long_vrs = _LONG_VRS
    valid_vr = _VALID_VR
    cache = _value_cache
    data = buf.data
    ndata = len(data)
    while True:
        if pos + 12 > ndata:
            if not buf.need(pos + 12) and not buf.need(pos + 8):
                return pos  # clean end of file (or truncated between elements)
            data = buf.data
            ndata = len(data)
        if explicit:
            group, elem, vr, length = head_explicit(data, pos)
            if vr in long_vrs:
                length = unpack_u32(data, pos + 8)[0]
                vpos = pos + 12
            elif vr in valid_vr:
                vpos = pos + 8
            elif group == 0xFFFE:
                length = unpack_u32(data, pos + 4)[0]
                vpos = pos + 8
            elif group == 0x7FE0 or vr == b"\x00\x00":
                # some writers switch to implicit VR in the dataset
                length = unpack_u32(data, pos + 4)[0]
                vpos = pos + 8
                vr = b"OB"
            else:
                raise ScanError(f"invalid VR {vr!r} for tag ({group:04X},{elem:04X}) at offset {pos}")
        else:
            group, elem, length = head_implicit(data, pos)
            vr = None
            vpos = pos + 8
        tag = (group << 16) | elem
        if group == 0x7FE0 and tag in _PIXEL_TAGS:
            hdr.pixel_tag = tag
            hdr.pixel_offset = vpos
            hdr.pixel_length = -1 if length == UNDEFINED else length
            values["pixel_vr"] = vr.decode("ascii", "replace") if vr else ""
            return vpos
        if group == 0xFFFE:
            # stray item/sequence delimiter at top level: skip it
            pos += 8
            continue
        if group == 0x5200 and tag in _FG_SEQUENCES:
            items, pos = _functional_groups(buf, vpos, length, explicit and vr != b"UN", little)
            values[_FG_SEQUENCES[tag]] = items
            data = buf.data
            ndata = len(data)
            continue
        if length == UNDEFINED:
            if tag in needs:
                hdr.needs_dataset = True
            # undefined-length sequence (or UN with undefined length, implicit inside)
            pos = _skip_undefined_sequence(buf, vpos, explicit and vr != b"UN", little)
            data = buf.data
            ndata = len(data)
            continue
        end = vpos + length
        w = wanted.get(tag)
        if w is not None:
            if end > ndata:
                if not buf.need(end):
                    raise ScanError(f"truncated value of ({group:04X},{elem:04X})")
                data = buf.data
                ndata = len(data)
            name, kind = w
            raw = data[vpos:end]
            if cache is None or tag in _PER_INSTANCE:
                values[name] = _convert(kind, raw, vr or b"", little)
            else:
                ck = (tag, vr, little, raw)
                v = cache.get(ck, _MISS)
                if v is _MISS:
                    v = _convert(kind, raw, vr or b"", little)
                    if len(cache) < _CACHE_MAX:
                        cache[ck] = v
                values[name] = v
        elif tag in needs:
            hdr.needs_dataset = True
        pos = end
        if end > buf.size:
            raise ScanError(f"element ({group:04X},{elem:04X}) runs past the end of the file")


def _walk_meta(buf: _Buf, pos: int, values: dict[str, Any]) -> int:
    """Walk the file meta group (always explicit VR little endian)."""
    while True:
        if not buf.need(pos + 8):
            return pos
        data = buf.data
        group, elem, vr, length = struct.unpack_from("<HH2sH", data, pos)
        if group != 0x0002:
            return pos
        if vr in _LONG_VRS:
            if not buf.need(pos + 12):
                raise ScanError("truncated file meta")
            length = struct.unpack_from("<L", buf.data, pos + 8)[0]
            vpos = pos + 12
        else:
            vpos = pos + 8
        if length == UNDEFINED:
            raise ScanError("undefined length in file meta")
        if not buf.need(vpos + length):
            raise ScanError("truncated file meta")
        data = buf.data
        if elem == 0x0010:
            values["_ts"] = _text(data[vpos : vpos + length])
        elif elem == 0x0002:
            values["_msc"] = _text(data[vpos : vpos + length])
        elif elem == 0x0003:
            values["_msi"] = _text(data[vpos : vpos + length])
        pos = vpos + length


def _element_at(buf: _Buf, pos: int, explicit: bool, little: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, vr, length, value position) of the element at ``pos``."""
    head_explicit, head_implicit, unpack_u32 = _STRUCTS[little]
    if not buf.need(pos + 12) and not buf.need(pos + 8):
        raise ScanError("file ends inside a sequence")
    data = buf.data
    if explicit:
        group, elem, vr, length = head_explicit(data, pos)
        if group == 0xFFFE:
            return (group << 16) | elem, None, unpack_u32(data, pos + 4)[0], pos + 8
        if vr in _LONG_VRS:
            return (group << 16) | elem, vr, unpack_u32(data, pos + 8)[0], pos + 12
        if vr in _VALID_VR:
            return (group << 16) | elem, vr, length, pos + 8
        raise ScanError(f"invalid VR {vr!r} inside a sequence at offset {pos}")
    group, elem, length = head_implicit(data, pos)
    return (group << 16) | elem, None, length, pos + 8


def _walk_items(
    buf: _Buf, pos: int, length: int, explicit: bool, little: bool, visit: Callable[[int, int], int]
) -> int:
    """Call ``visit(value_pos, item_length) -> position after the item`` for every
    item of a sequence; return the position after the sequence."""
    end = None if length == UNDEFINED else pos + length
    while end is None or pos < end:
        tag, _, ilen, vpos = _element_at(buf, pos, explicit, little)
        if tag == 0xFFFEE0DD:
            return vpos
        if tag != 0xFFFEE000:
            raise ScanError(f"unexpected tag {tag:08X} in a sequence at offset {pos}")
        pos = visit(vpos, ilen)
    return end


def _item_values(buf: _Buf, pos: int, ilen: int, explicit: bool, little: bool, out: dict[str, Any], depth: int) -> int:
    """Collect _FG_WANTED values of an item (descending ``depth`` sequence levels);
    return the position after the item (walked once, whatever its length encoding)."""
    end = None if ilen == UNDEFINED else pos + ilen
    while end is None or pos < end:
        tag, vr, length, vpos = _element_at(buf, pos, explicit, little)
        if tag == 0xFFFEE00D:
            return vpos
        is_seq = vr == b"SQ" or length == UNDEFINED or (vr is None and depth > 0)
        if is_seq and depth > 0:
            inner = explicit and vr != b"UN"

            # a def, not a lambda, so that mypy can type the default argument
            def visit(p: int, n: int, inner: bool = inner) -> int:
                return _item_values(buf, p, n, inner, little, out, depth - 1)

            pos = _walk_items(buf, vpos, length, inner, little, visit)
            continue
        if length == UNDEFINED:
            pos = _skip_undefined_sequence(buf, vpos, explicit and vr != b"UN", little)
            continue
        w = _FG_WANTED.get(tag)
        if w is not None:
            if not buf.need(vpos + length):
                raise ScanError("file ends inside a functional group")
            out[w[0]] = _convert(w[1], buf.data[vpos : vpos + length], vr or b"", little)
        pos = vpos + length
        if pos > buf.size:
            raise ScanError("functional group runs past the end of the file")
    return end


def _functional_groups(
    buf: _Buf, pos: int, length: int, explicit: bool, little: bool
) -> tuple[list[dict[str, Any]], int]:
    """Parse a Shared/Per-frame Functional Groups Sequence into flat dicts, one per item."""
    out: list[dict[str, Any]] = []

    def visit(p: int, n: int) -> int:
        d: dict[str, Any] = {}
        out.append(d)
        return _item_values(buf, p, n, explicit, little, d, depth=1)

    return out, _walk_items(buf, pos, length, explicit, little, visit)


def _skip_undefined_sequence(buf: _Buf, pos: int, explicit: bool, little: bool, depth: int = 0) -> int:
    """Skip items until the sequence delimiter; return the position after it."""
    if depth > MAX_DEPTH:
        raise ScanError(f"sequences nested more than {MAX_DEPTH} deep at offset {pos}")
    unpack_tag = struct.Struct("<HH" if little else ">HH").unpack_from
    unpack_u32 = struct.Struct("<L" if little else ">L").unpack_from
    while True:
        if not buf.need(pos + 8):
            raise ScanError("file ends inside a sequence")
        data = buf.data
        group, elem = unpack_tag(data, pos)
        length = unpack_u32(data, pos + 4)[0]
        tag = (group << 16) | elem
        if tag == 0xFFFEE0DD:
            return pos + 8
        if tag != 0xFFFEE000:
            raise ScanError(f"unexpected tag ({group:04X},{elem:04X}) in a sequence at offset {pos}")
        if length == UNDEFINED:
            pos = _skip_undefined_item(buf, pos + 8, explicit, little, depth)
        else:
            pos = pos + 8 + length
            if pos > buf.size:
                raise ScanError("sequence item runs past the end of the file")


def _skip_undefined_item(buf: _Buf, pos: int, explicit: bool, little: bool, depth: int = 0) -> int:
    unpack_tag = struct.Struct("<HH" if little else ">HH").unpack_from
    unpack_u16 = struct.Struct("<H" if little else ">H").unpack_from
    unpack_u32 = struct.Struct("<L" if little else ">L").unpack_from
    while True:
        if not buf.need(pos + 8):
            raise ScanError("file ends inside a sequence item")
        data = buf.data
        group, elem = unpack_tag(data, pos)
        tag = (group << 16) | elem
        if tag == 0xFFFEE00D:
            return pos + 8
        if explicit:
            vr = data[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                if not buf.need(pos + 12):
                    raise ScanError("file ends inside a sequence item")
                data = buf.data
                length = unpack_u32(data, pos + 8)[0]
                vpos = pos + 12
            elif vr in _VALID_VR:
                length = unpack_u16(data, pos + 6)[0]
                vpos = pos + 8
            else:
                raise ScanError(f"invalid VR {vr!r} inside a sequence at offset {pos}")
        else:
            vr = None
            length = unpack_u32(data, pos + 4)[0]
            vpos = pos + 8
        if length == UNDEFINED:
            pos = _skip_undefined_sequence(buf, vpos, explicit and vr != b"UN", little, depth + 1)
        else:
            pos = vpos + length
            if pos > buf.size:
                raise ScanError("sequence element runs past the end of the file")


# --------------------------------------------------------------------------
# pydicom datasets, bounded


def read_dataset(path: str, stop_before_pixels: bool = True, header: Header | None = None) -> Dataset:
    """pydicom's Dataset of a local file, read without unbounded work.

    For everything that needs pydicom's full parse of a header (LUT sequences,
    the tag browser, DICOMDIR records, SEG/SR objects).  Only regular files are
    opened.  A deflated dataset is never handed to pydicom whole (it would
    inflate all of it, whatever its size): its header is inflated here, up to
    the pixel data and at most ``LIMITS.max_header_bytes``, and parsed from
    memory.  ``header`` is the file's scan result when the caller has it.
    Raises OSError, ScanError or pydicom's errors.
    """
    import pydicom

    from .limits import check_regular

    check_regular(path)
    h = header if header is not None and header.path == path and header.source is None else None
    if h is None:
        try:
            h = scan_header(path)
        except NoFallback:
            raise
        except ScanError:
            h = None  # pydicom may still parse it (it is not deflated: that would be NoFallback)
    if h is None:
        refuse_deflated(path)
    if h is None or h.deflated_offset < 0:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
    return _inflated_dataset(h, stop_before_pixels)


def refuse_deflated(path: str) -> None:
    """Raise NoFallback when pydicom would find a deflated dataset in ``path`` (and inflate all of it)."""
    from pydicom.filereader import read_file_meta_info

    try:
        meta_ts = str(read_file_meta_info(path).get("TransferSyntaxUID", ""))
    except Exception:  # no usable file meta: pydicom guesses the syntax (never deflated)
        return
    if meta_ts == DEFLATED_LE:
        raise NoFallback("deflated dataset whose header cannot be walked")


def _inflated_dataset(h: Header, stop_before_pixels: bool) -> Dataset:
    import io

    from pydicom.filereader import read_dataset as _read_dataset
    from pydicom.filereader import read_file_meta_info

    if h.has_pixels and not stop_before_pixels:
        raise NoFallback("deflated dataset: pixel data is read frame by frame, never as a whole dataset")
    fd = open_regular(h.path)
    try:
        size = os.fstat(fd).st_size
        inflater = StreamInflater(fd, h.deflated_offset, size, LIMITS.max_header_bytes)
        end = h.pixel_offset if h.has_pixels else LIMITS.max_header_bytes
        try:
            inflater.ensure(end)
        except (InflateLimitError, zlib.error) as exc:
            raise NoFallback(f"deflated dataset: {exc}") from None
        data = bytes(inflater.data[:end])
    finally:
        os.close(fd)

    def at_pixels(tag: Any, vr: Any, length: int) -> bool:
        return int(tag) in _PIXEL_TAGS

    ds = _read_dataset(io.BytesIO(data), False, True, stop_when=at_pixels)
    ds.file_meta = read_file_meta_info(h.path)
    ds.filename = h.path
    return ds
