"""Decoding one frame: bytes -> pixel array -> modality values.

Decoding goes through pydicom's ``pixels`` decoders with the codec chosen in
:mod:`.codecs`, so the output equals pydicom's reference decode.  The
per-frame task :func:`load_frame` is what every dask chunk calls.
"""

from __future__ import annotations

import collections
import logging
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from . import codecs
from .frames import DATASET, DEFLATED, NATIVE, FrameRef, inflate_dataset, pread_into, read_encapsulated
from .scan import EXPLICIT_BE, EXPLICIT_LE, NATIVE_SYNTAXES

WEB = "dicomweb"

log = logging.getLogger("napari_dcm")


@dataclass(frozen=True, slots=True)
class PixelDesc:
    """The Image Pixel module values shared by the frames of one layer."""

    transfer_syntax: str
    rows: int
    columns: int
    samples_per_pixel: int = 1
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    photometric: str = "MONOCHROME2"
    planar_configuration: int = 0
    pixel_keyword: str = "PixelData"
    pixel_vr: str = "OW"

    @property
    def native_frame_nbytes(self) -> float:
        spp = self.samples_per_pixel
        if self.photometric == "YBR_FULL_422" and spp == 3:
            return self.rows * self.columns * 2 * self.bits_allocated / 8
        return self.rows * self.columns * spp * self.bits_allocated / 8

    def options(self, nframes: int = 1) -> dict:
        opts = dict(
            rows=self.rows,
            columns=self.columns,
            samples_per_pixel=self.samples_per_pixel,
            bits_allocated=self.bits_allocated,
            bits_stored=self.bits_stored,
            pixel_representation=self.pixel_representation,
            photometric_interpretation=self.photometric,
            number_of_frames=nframes,
            pixel_keyword=self.pixel_keyword,
            pixel_vr=self.pixel_vr,
        )
        if self.samples_per_pixel > 1:
            opts["planar_configuration"] = self.planar_configuration
        return opts


# --------------------------------------------------------------------------
# post-decode transforms (modality LUT, palette); picklable callables


@dataclass(frozen=True, slots=True)
class Rescale:
    """Modality rescale: ``slope * stored + intercept`` into ``dtype``."""

    slope: float
    intercept: float
    dtype: str

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        dt = np.dtype(self.dtype)
        if self.slope == 1 and self.intercept == 0:
            return arr.astype(dt, copy=False)
        if dt.kind == "f":
            out = arr.astype(np.float64) * self.slope + self.intercept
            return out.astype(dt, copy=False)
        out = arr.astype(dt)
        if self.slope != 1:
            out *= dt.type(self.slope)
        if self.intercept:
            out += dt.type(self.intercept)
        return out


@dataclass(frozen=True, eq=False)
class DatasetTransform:
    """Apply a pydicom processing function with the few elements it needs.

    ``kind`` is "modality_lut" (Modality LUT Sequence) or "palette" (PALETTE
    COLOR lookup); ``ds`` is a small pydicom Dataset holding only the LUT.
    """

    kind: str
    ds: object
    dtype: str

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        from pydicom.pixels import apply_color_lut, apply_modality_lut

        if self.kind == "palette":
            out = apply_color_lut(arr, self.ds)
        else:
            out = apply_modality_lut(arr, self.ds)
        return out.astype(self.dtype, copy=False)


# --------------------------------------------------------------------------
# decoding


class _Stats:
    """Counters the tests and benchmarks read (decodes are real work)."""

    def __init__(self):
        self.decodes = 0
        self.cache_hits = 0
        self.lock = threading.Lock()

    def reset(self):
        with self.lock:
            self.decodes = 0
            self.cache_hits = 0


STATS = _Stats()


def decode_frame(ref: FrameRef, desc: PixelDesc) -> np.ndarray:
    """Decode stored frame ``ref.index`` to an array shaped (rows, cols[, samples])."""

    with STATS.lock:
        STATS.decodes += 1
    ts = desc.transfer_syntax
    if ref.mode == DATASET:
        from pydicom.pixels import pixel_array

        return pixel_array(ref.path, index=ref.index if ref.nframes > 1 else None)
    if ref.mode == NATIVE and _simple(desc) and desc.transfer_syntax != EXPLICIT_BE:
        n = desc.rows * desc.columns * desc.bits_allocated // 8
        if ref.length >= 0 and ref.nframes * n > ref.length + 1:
            return _decode_native(ref, desc)  # raises the precise truncation error
        raw = pread_into(ref.path, ref.offset + ref.index * n, n)
        return _unused_bits(np.frombuffer(raw, _simple_dtype(desc)).reshape(desc.rows, desc.columns), desc)
    if ref.mode == NATIVE or ref.mode == DEFLATED:
        return _decode_native(ref, desc)
    if ref.mode == WEB:
        from dataclasses import replace

        from . import dicomweb

        payload, ts = dicomweb.fetch_frame(ref.path, ref.index, ref.nframes)
        desc = replace(desc, transfer_syntax=ts)
        if ts in NATIVE_SYNTAXES:
            if desc.bits_allocated == 1:
                npix = desc.rows * desc.columns * desc.samples_per_pixel
                bits = np.unpackbits(np.frombuffer(payload, np.uint8), bitorder="little")[:npix]
                return bits.reshape((desc.rows, desc.columns) if desc.samples_per_pixel == 1 else (desc.rows, desc.columns, -1))
            return _decode_native_buffer(np.frombuffer(bytearray(payload), np.uint8), desc, 0, 1)
        return decode_codestream(payload, desc)
    # encapsulated
    return decode_codestream(read_encapsulated(ref), desc)


def decode_codestream(codestream: bytes, desc: PixelDesc) -> np.ndarray:
    """Decode one frame's encapsulated codestream in ``desc.transfer_syntax``."""
    from pydicom.pixels import get_decoder

    ts = desc.transfer_syntax
    if ts == codecs.RLE and desc.bits_allocated == 1 and desc.samples_per_pixel == 1 and codecs.HAVE_RLE:
        # 1-bit RLE (e.g. SEG): one segment of bit-packed bytes; pydicom 3.0 cannot decode it
        return _rle_1bit(codestream, desc)
    if ts == codecs.RLE and _simple(desc) and codecs.HAVE_RLE:
        try:
            raw = codecs.rle_decode_frame(codestream, desc.rows * desc.columns, desc.bits_allocated)
            arr = np.frombuffer(raw, _simple_dtype(desc)).reshape(desc.rows, desc.columns)
            return _unused_bits(arr, desc)
        except Exception:
            pass  # pydicom's decoders below give the detailed error
    if ts == codecs.DEFLATED_IMAGE_FRAME:
        import zlib

        raw = zlib.decompress(codestream, -15)
        from dataclasses import replace

        native = replace(desc, transfer_syntax=EXPLICIT_LE)
        return _decode_native_buffer(np.frombuffer(bytearray(raw), np.uint8), native, 0, 1)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        if ts.startswith("1.2.840.10008.1.2.4."):
            # retired JPEG processes (e.g. 4.53 spectral selection): pydicom has no decoder
            return _fix_dtype(codecs.decode_retired_jpeg(codestream), desc)
        raise
    codecs.register_plugins()
    from pydicom.encaps import encapsulate

    src = encapsulate([codestream])
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for plugin in codecs.plugin_order(ts):
            if plugin and plugin not in decoder.available_plugins:
                continue
            try:
                arr, _ = decoder.as_array(src, index=0, decoding_plugin=plugin, **desc.options(1))
                return arr
            except Exception as exc:  # try the next codec
                first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
                errors.append(f"{plugin or 'pydicom'}: {first[:160]}")
    raise RuntimeError("no decoder could decode the frame (" + "; ".join(errors[:2]) + ")")


def _rle_1bit(codestream: bytes, desc: PixelDesc) -> np.ndarray:
    import struct

    from rle.utils import decode_segment

    nseg = struct.unpack_from("<L", codestream, 0)[0]
    offsets = list(struct.unpack_from("<15L", codestream, 4))
    if nseg != 1:
        raise ValueError(f"1-bit RLE frame has {nseg} segments, expected 1")
    raw = np.frombuffer(bytes(decode_segment(codestream[offsets[0] :])), np.uint8)
    npix = desc.rows * desc.columns
    bits = np.unpackbits(raw, bitorder="little")
    if bits.size < npix:
        raise ValueError(f"1-bit RLE frame decodes to {bits.size} pixels, expected {npix}")
    return bits[:npix].reshape(desc.rows, desc.columns)


def _simple(desc: PixelDesc) -> bool:
    """One sample of 8/16/32-bit integers: decoded here with numpy, exactly as pydicom does."""
    return (
        desc.samples_per_pixel == 1
        and desc.bits_allocated in (8, 16, 32)
        and desc.pixel_keyword == "PixelData"
        and 0 < desc.bits_stored <= desc.bits_allocated
    )


def _simple_dtype(desc: PixelDesc) -> np.dtype:
    return np.dtype(f"<{'i' if desc.pixel_representation else 'u'}{desc.bits_allocated // 8}")


def _unused_bits(arr: np.ndarray, desc: PixelDesc) -> np.ndarray:
    """pydicom's unused-bits correction (PS3.5 8.1.1): mask, or sign-extend from BitsStored."""
    shift = desc.bits_allocated - desc.bits_stored
    if not shift:
        return arr
    if not arr.flags.writeable:
        arr = arr.copy()
    if desc.pixel_representation:
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    else:
        np.bitwise_and(arr, arr.dtype.type((1 << desc.bits_stored) - 1), out=arr)
    return arr


def _fix_dtype(arr: np.ndarray, desc: PixelDesc) -> np.ndarray:
    if desc.samples_per_pixel == 1 and arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if desc.pixel_representation == 1 and arr.dtype.kind == "u":
        arr = arr.view(arr.dtype.str.replace("u", "i"))
    return arr


def _decode_native(ref: FrameRef, desc: PixelDesc) -> np.ndarray:
    nbytes = desc.native_frame_nbytes
    if ref.mode == DEFLATED:
        data = inflate_dataset(ref.path, ref.ranges[0])
        buf = bytearray(data[ref.offset : ref.offset + (ref.length if ref.length >= 0 else len(data))])
        return _decode_native_buffer(buf, desc, ref.index, ref.nframes)
    if ref.length >= 0 and ref.nframes * nbytes > ref.length + 1:
        raise EOFError(
            f"pixel data holds {ref.length} bytes, {ref.nframes} frame(s) of "
            f"{desc.rows}x{desc.columns}x{desc.samples_per_pixel} at {desc.bits_allocated} bits need {int(ref.nframes * nbytes)}"
        )
    if desc.bits_allocated == 1:
        npix = desc.rows * desc.columns * desc.samples_per_pixel
        start_bit = ref.index * npix
        b0, b1 = start_bit // 8, -(-(start_bit + npix) // 8)
        raw = pread_into(ref.path, ref.offset + b0, b1 - b0)
        bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
        bits = bits[start_bit - 8 * b0 : start_bit - 8 * b0 + npix]
        shape = (desc.rows, desc.columns) if desc.samples_per_pixel == 1 else (desc.rows, desc.columns, desc.samples_per_pixel)
        return bits.reshape(shape)
    if desc.transfer_syntax == EXPLICIT_BE and desc.bits_allocated == 8 and desc.pixel_vr == "OW" and int(nbytes) % 2:
        # 8-bit data in big endian OW with odd frames: swap pairs across frame edges
        n = ref.length if ref.length >= 0 else int(ref.nframes * nbytes)
        raw = pread_into(ref.path, ref.offset, n + n % 2)
        return _decode_native_buffer(raw, desc, ref.index, ref.nframes)
    n = int(nbytes)
    raw = pread_into(ref.path, ref.offset + ref.index * n, n + (n % 2 if desc.transfer_syntax == EXPLICIT_BE and desc.bits_allocated == 8 else 0))
    return _decode_native_buffer(raw, desc, 0, 1)


def _decode_native_buffer(buf: bytearray, desc: PixelDesc, index: int, nframes: int) -> np.ndarray:
    from pydicom.pixels import get_decoder

    decoder = get_decoder(desc.transfer_syntax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr, _ = decoder.as_array(buf, index=index, validate=False, **desc.options(nframes))
    return arr


# --------------------------------------------------------------------------
# the dask task


class FrameCache:
    """A small LRU bounded in bytes (and optionally in items), per process."""

    def __init__(self, max_bytes: int = 128 * 2**20, max_items: int | None = 8, size=lambda v: v.nbytes):
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._size = size
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key, value):
        n = self._size(value)
        if n > self.max_bytes:
            return
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self._bytes += n
            while self._d and (self._bytes > self.max_bytes or (self.max_items is not None and len(self._d) > self.max_items)):
                _, old = self._d.popitem(last=False)
                self._bytes -= self._size(old)

    def clear(self):
        with self._lock:
            self._d.clear()
            self._bytes = 0


CACHE = FrameCache()


class DicomDecodeWarning(UserWarning):
    """A frame could not be decoded and is shown blank."""


_error_handlers: list = []
_reported: set = set()
_reported_lock = threading.Lock()


def add_error_handler(func) -> None:
    """Call ``func(error)`` once per file whose frames fail to decode."""
    if func not in _error_handlers:
        _error_handlers.append(func)


def remove_error_handler(func) -> None:
    if func in _error_handlers:
        _error_handlers.remove(func)


def _report(err) -> None:
    with _reported_lock:
        if err.path in _reported:
            return
        _reported.add(err.path)
    log.warning("%s", err)
    warnings.warn(str(err), DicomDecodeWarning, stacklevel=3)
    for h in list(_error_handlers):
        try:
            h(err)
        except Exception:  # a broken handler must not break decoding
            log.exception("napari-dcm error handler failed")


def load_frame(ref: FrameRef, desc: PixelDesc, transform, shape: tuple, dtype: str, strict: bool = False) -> np.ndarray:
    """Decode one stored frame and apply its modality transform.

    The dask task of every chunk.  Returns an array of ``shape`` (a leading
    axis of 1 is added by the caller's chunking).  A frame that fails gives a
    blank frame and one report per file, or raises ``DicomDecodeError`` when
    ``strict``.
    """
    key = (ref.path, ref.index, ref.mode, transform)
    hit = CACHE.get(key)
    if hit is not None:
        with STATS.lock:
            STATS.cache_hits += 1
        return hit
    try:
        arr = decode_frame(ref, desc)
        if transform is not None:
            arr = transform(arr)
        arr = np.asarray(arr)
        if arr.dtype != np.dtype(dtype):
            arr = arr.astype(dtype)
        if arr.shape != tuple(shape):
            raise ValueError(f"decoded frame has shape {arr.shape}, expected {tuple(shape)}")
    except Exception as exc:
        from ..errors import DicomDecodeError

        err = DicomDecodeError(ref.path, f"{type(exc).__name__}: {exc}", frame=ref.index)
        if strict:
            raise err from exc
        _report(err)
        return np.zeros(shape, dtype)
    CACHE.put(key, arr)
    return arr
