"""Decoding one frame: stored bytes -> pixel array -> modality values.

Every frame source (files, DICOMweb, ...) hands an :class:`EncodedFrame` --
bytes plus transfer syntax -- to :func:`decode`, the one decoder.  Decoding
goes through pydicom's ``pixels`` decoders with the codec chosen in
:mod:`.codecs`, so the output equals pydicom's reference decode.  The
per-frame task :func:`load_frame` is what every dask chunk calls.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from . import codecs
from .cache import CACHE
from .imagepixel import PixelDesc
from .scan import EXPLICIT_BE, EXPLICIT_LE, NATIVE_SYNTAXES
from .sources import EncodedFrame, FrameRef
from .sources.cluster import DECODED

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydicom import Dataset

    from ..errors import DicomDecodeError

__all__ = ["PixelDesc", "Rescale", "DatasetTransform", "decode", "decode_codestream", "load_frame", "STATS"]

log = logging.getLogger("napari_dcm")


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
    ds: Dataset
    dtype: str

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        from pydicom.pixels import (  # type: ignore[attr-defined]  # pydicom.pixels re-exports without __all__
            apply_color_lut,
            apply_modality_lut,
        )

        out = apply_color_lut(arr, self.ds) if self.kind == "palette" else apply_modality_lut(arr, self.ds)
        return out.astype(self.dtype, copy=False)


# --------------------------------------------------------------------------
# decoding


class _Stats:
    """Counters the tests and benchmarks read (decodes are real work)."""

    def __init__(self) -> None:
        self.decodes = 0
        self.cache_hits = 0
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.decodes = 0
            self.cache_hits = 0


STATS = _Stats()


def decode(enc: EncodedFrame, desc: PixelDesc) -> np.ndarray:
    """Decode one stored frame to an array shaped (rows, cols[, samples]).

    ``desc`` describes the pixels; the transfer syntax is the one the bytes
    came in (a DICOMweb server may answer in another syntax than the file's).
    """
    with STATS.lock:
        STATS.decodes += 1
    ts = enc.transfer_syntax
    if ts == DECODED:  # decoded where the file is (a cluster worker, --remote-decode)
        return np.asarray(enc.data)
    if ts != desc.transfer_syntax:
        desc = replace(desc, transfer_syntax=ts)
    if ts not in NATIVE_SYNTAXES:
        return decode_codestream(bytes(enc.data) if not isinstance(enc.data, bytes) else enc.data, desc)
    if desc.bits_allocated == 1 and enc.nframes == 1:
        npix = desc.rows * desc.columns * desc.samples_per_pixel
        bits = np.unpackbits(np.frombuffer(enc.data, np.uint8), bitorder="little")
        bits = bits[enc.bit_offset : enc.bit_offset + npix]
        if bits.size < npix:
            raise EOFError(f"1-bit frame holds {bits.size} of {npix} pixels")
        shape = (
            (desc.rows, desc.columns)
            if desc.samples_per_pixel == 1
            else (desc.rows, desc.columns, desc.samples_per_pixel)
        )
        return bits.reshape(shape)
    if enc.nframes == 1 and _simple(desc) and ts != EXPLICIT_BE:
        n = desc.rows * desc.columns * desc.bits_allocated // 8
        raw = np.frombuffer(enc.data, np.uint8)
        if raw.size < n:
            raise EOFError(f"frame holds {raw.size} of {n} bytes")
        return _unused_bits(raw[:n].view(_simple_dtype(desc)).reshape(desc.rows, desc.columns), desc)
    return _decode_native_buffer(enc.data, desc, enc.index, enc.nframes)


def decode_codestream(codestream: bytes, desc: PixelDesc) -> np.ndarray:
    """Decode one frame's encapsulated codestream in ``desc.transfer_syntax``."""
    from pydicom.pixels import get_decoder  # type: ignore[attr-defined]  # pydicom.pixels re-exports without __all__

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
    # no warnings.catch_warnings() here: this runs on dask's threads, and a process-wide
    # "ignore" filter set from one thread would swallow another thread's DicomDecodeWarning
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

    from rle.utils import decode_segment  # type: ignore[attr-defined]  # rle.utils re-exports it from rle.rle without __all__

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


def _decode_native_buffer(
    buf: bytes | bytearray | memoryview | np.ndarray, desc: PixelDesc, index: int, nframes: int
) -> np.ndarray:
    from pydicom.pixels import get_decoder  # type: ignore[attr-defined]  # pydicom.pixels re-exports without __all__

    decoder = get_decoder(desc.transfer_syntax)
    # pydicom's Buffer alias omits ndarray, which it accepts (any buffer-protocol object)
    arr, _ = decoder.as_array(buf, index=index, validate=False, **desc.options(nframes))  # type: ignore[arg-type]
    return arr


# --------------------------------------------------------------------------
# the dask task


class DicomDecodeWarning(UserWarning):
    """A frame could not be decoded and is shown blank."""


_error_handlers: list[Callable[[DicomDecodeError], object]] = []
_reported: set[str] = set()
_reported_lock = threading.Lock()


def add_error_handler(func: Callable[[DicomDecodeError], object]) -> None:
    """Call ``func(error)`` once per file whose frames fail to decode."""
    if func not in _error_handlers:
        _error_handlers.append(func)


def remove_error_handler(func: Callable[[DicomDecodeError], object]) -> None:
    if func in _error_handlers:
        _error_handlers.remove(func)


def _report(err: DicomDecodeError) -> None:
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


def load_frame(
    ref: FrameRef,
    desc: PixelDesc,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    shape: tuple[int, ...],
    dtype: str,
    strict: bool = False,
) -> np.ndarray:
    """Decode one stored frame and apply its modality transform.

    The dask task of every chunk.  Returns an array of ``shape`` (a leading
    axis of 1 is added by the caller's chunking).  A frame that fails gives a
    blank frame and one report per file, or raises ``DicomDecodeError`` when
    ``strict``.
    """
    key = (ref, transform)
    hit: np.ndarray | None = CACHE.get(key)
    if hit is not None:
        with STATS.lock:
            STATS.cache_hits += 1
        return hit
    try:
        arr = decode(ref.read(), desc)
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


def reset() -> None:
    """Forget which files were reported, the cached frames and the counters (tests; a new session)."""
    with _reported_lock:
        _reported.clear()
    CACHE.clear()
    STATS.reset()
