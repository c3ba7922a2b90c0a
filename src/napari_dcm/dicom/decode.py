"""Decoding one frame: stored bytes -> pixel array -> modality values.

Every frame source (files, DICOMweb, ...) hands an :class:`EncodedFrame` --
bytes plus transfer syntax -- to :func:`decode`, the one decoder.  Decoding
goes through pydicom's ``pixels`` decoders with the codec chosen in
:mod:`.codecs`, so the output equals pydicom's reference decode.  The
per-frame task :func:`load_frame` is what every dask chunk calls.
"""

from __future__ import annotations

import collections
import logging
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import codecs
from .cache import CACHE
from .imagepixel import PixelDesc
from .limits import DEFLATE_MAX_RATIO, encoded_budget, inflate
from .scan import EXPLICIT_BE, EXPLICIT_LE, NATIVE_SYNTAXES
from .sources import EncodedFrame, FrameRef
from .sources.cluster import DECODED

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from pydicom import Dataset

    from ..errors import DicomDecodeError

__all__ = [
    "PixelDesc",
    "Rescale",
    "DatasetTransform",
    "decode",
    "decode_codestream",
    "decode_level",
    "load_frame",
    "load_frame_level",
    "STATS",
]

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
        # (path, stored frame index, resolution level) -> decodes of that frame
        self.frames: collections.Counter[tuple[str, int, int]] = collections.Counter()
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.decodes = 0
            self.cache_hits = 0
            self.frames.clear()

    def record(self, ref: FrameRef, level: int = 0) -> None:
        """Count one decode of ``ref`` at resolution ``level`` (read-ahead's window is checked with these)."""
        with self.lock:
            self.frames[(ref.path, ref.index, level)] += 1


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
        n = enc.data.nbytes if isinstance(enc.data, (np.ndarray, memoryview)) else len(enc.data)
        cap = encoded_budget(desc.native_frame_nbytes)
        if n > cap:  # whatever the source: never hand a codec more than any real frame holds
            raise ValueError(f"the frame's codestream holds {n} bytes, more than any codec needs ({cap} at most)")
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
    failed: list[str] = []  # codec libraries that failed on this codestream
    errors = []
    if ts == codecs.RLE and _simple(desc) and codecs.HAVE_RLE:
        try:
            raw = codecs.rle_decode_frame(codestream, desc.rows * desc.columns, desc.bits_allocated)
            arr = np.frombuffer(raw, _simple_dtype(desc)).reshape(desc.rows, desc.columns)
            return _unused_bits(arr, desc)
        except BaseException as exc:  # pyo3's PanicException derives from BaseException
            if not codec_failure(exc):
                raise
            failed.append("pylibjpeg-rle")
            errors.append(f"pylibjpeg-rle: {_first_line(exc)}")
    if ts == codecs.DEFLATED_IMAGE_FRAME:
        return _inflate_frame(codestream, desc)
    problem = codecs.codestream_problem(
        ts, codestream, desc.rows, desc.columns, desc.samples_per_pixel, desc.bits_allocated
    )
    if problem:
        raise ValueError(problem)
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
    # no warnings.catch_warnings() here: this runs on dask's threads, and a process-wide
    # "ignore" filter set from one thread would swallow another thread's DicomDecodeWarning
    # the plugins are named, never pydicom's default order (which reaches GDCM, see codecs)
    tried = 0
    for plugin in codecs.plugin_order(ts):
        if plugin not in decoder.available_plugins:
            continue
        if codecs.library(ts, plugin) in failed:
            continue  # the same library again: it would fail again, as slowly
        tried += 1
        try:
            arr, _ = decoder.as_array(src, index=0, decoding_plugin=plugin, **desc.options(1))
            return arr
        except BaseException as exc:  # try the next codec (PanicException included)
            if not codec_failure(exc):
                raise
            failed.append(codecs.library(ts, plugin))
            errors.append(f"{plugin}: {_first_line(exc)}")
    if not tried and not errors:
        raise RuntimeError(f"no trusted decoder is available for transfer syntax {ts}")
    raise RuntimeError("no decoder could decode the frame (" + "; ".join(errors[:2]) + ")")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[-1].strip() if text else type(exc).__name__)[:160]


def codec_failure(exc: BaseException) -> bool:
    """Is ``exc`` a decoder's failure (to turn into a blank frame and a report)?

    Every Exception, and the BaseExceptions codecs raise although they are not
    about stopping the program: pyo3's ``PanicException`` (a Rust panic in
    pylibjpeg-rle, e.g. "index out of bounds") derives from BaseException so
    that ``except Exception`` does not catch it.  KeyboardInterrupt,
    SystemExit and GeneratorExit still propagate.
    """
    return not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


def _inflate_frame(codestream: bytes, desc: PixelDesc) -> np.ndarray:
    """Deflated Image Frame Compression: inflate exactly one native frame, never more."""
    n = -(-int(desc.rows * desc.columns * desc.samples_per_pixel * desc.bits_allocated) // 8)
    if n > DEFLATE_MAX_RATIO * len(codestream) + 1024:
        raise ValueError(
            f"a deflated frame of {len(codestream)} bytes cannot inflate to the declared {n} bytes "
            f"(DEFLATE's maximum ratio is {DEFLATE_MAX_RATIO}:1)"
        )
    import zlib

    try:
        raw = inflate(codestream, n + 1)  # a writer may deflate the frame's even-length padding byte
    except zlib.error as exc:
        raise ValueError(f"deflated frame does not inflate: {exc}") from None
    if len(raw) < n:
        raise EOFError(f"deflated frame inflates to {len(raw)} bytes, the frame needs {n}")
    native = replace(desc, transfer_syntax=EXPLICIT_LE)
    return _decode_native_buffer(np.frombuffer(raw, np.uint8, count=n).copy(), native, 0, 1)


def _rle_1bit(codestream: bytes, desc: PixelDesc) -> np.ndarray:
    import struct

    from rle.utils import decode_segment  # type: ignore[attr-defined]  # rle.utils re-exports it from rle.rle without __all__

    if len(codestream) < 64:
        raise ValueError(f"1-bit RLE frame of {len(codestream)} bytes is shorter than its 64-byte header")
    nseg = struct.unpack_from("<L", codestream, 0)[0]
    offsets = list(struct.unpack_from("<15L", codestream, 4))
    if nseg != 1:
        raise ValueError(f"1-bit RLE frame has {nseg} segments, expected 1")
    if not 64 <= offsets[0] < len(codestream):
        raise ValueError(f"1-bit RLE segment offset {offsets[0]} is outside the frame ({len(codestream)} bytes)")
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
    return _load(
        (ref, transform), ref, shape, dtype, strict, 0, lambda ok: _decode_ref(ref, desc, transform, shape, dtype, ok)
    )


def _load(
    key: Hashable,
    ref: FrameRef,
    shape: tuple[int, ...],
    dtype: str,
    strict: bool,
    level: int,
    produce: Callable[[list[bool]], np.ndarray],
) -> np.ndarray:
    """The cached, failure-remembering frame load behind :func:`load_frame` and
    :func:`load_frame_level`; ``produce(read_ok)`` reads and decodes (appending to
    ``read_ok`` once the bytes are read)."""
    hit, claim = CACHE.claim(key)  # waits while another thread (read-ahead) decodes this frame
    if hit is not None:
        with STATS.lock:
            STATS.cache_hits += 1
        return cast(np.ndarray, hit)
    from ..errors import DicomDecodeError

    done: np.ndarray | None = None
    err: DicomDecodeError | None = None
    try:
        failed_before = _FAILED.get(key)
        if failed_before is not None:  # these bytes did not decode before: they will not now (no second slow failure)
            err = DicomDecodeError(ref.path, failed_before, frame=ref.index)
            if strict:
                raise err
        else:
            STATS.record(ref, level)
            read_ok: list[bool] = []
            try:
                done = produce(read_ok)
            except BaseException as exc:  # codecs raise BaseExceptions too (pyo3's PanicException)
                if not codec_failure(exc):
                    raise
                reason = f"{type(exc).__name__}: {exc}"
                err = DicomDecodeError(ref.path, reason, frame=ref.index)
                if strict:
                    raise err from exc
                if read_ok and not isinstance(exc, MemoryError):
                    # the bytes were read and do not decode: they will not decode next time either,
                    # so the failure is remembered (a slow failure is paid once); a failed read
                    # (I/O, network) or a lack of memory is tried again
                    _FAILED.put(key, reason)
    finally:
        CACHE.release(key, claim, done)  # cached, and threads waiting for it woken
    if done is not None:
        return done
    assert err is not None
    # outside the except block: the failed decode's buffers (held by the exception's
    # traceback until the block ends) are released before the blank frame is allocated
    return _blank(ref, shape, dtype, err)


def _blank(ref: FrameRef, shape: tuple[int, ...], dtype: str, err: DicomDecodeError) -> np.ndarray:
    """The documented blank frame of a failure (reported once per file)."""
    from ..errors import DicomSizeError

    _report(err)
    try:
        return np.zeros(shape, dtype)
    except MemoryError:
        raise DicomSizeError(
            ref.path, f"a blank {tuple(shape)} {np.dtype(dtype)} frame does not fit in memory"
        ) from None


class _Failures:
    """Frames whose stored bytes did not decode, with the reason (an LRU of keys, not pixels)."""

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = max_items
        self._d: collections.OrderedDict[Hashable, str] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> str | None:
        with self._lock:
            return self._d.get(key)

    def put(self, key: Hashable, reason: str) -> None:
        with self._lock:
            self._d[key] = reason
            while len(self._d) > self.max_items:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


_FAILED = _Failures()


def _decode_ref(
    ref: FrameRef,
    desc: PixelDesc,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    shape: tuple[int, ...],
    dtype: str,
    read_ok: list[bool],
) -> np.ndarray:
    """Read, decode and transform one frame (its buffers live in this call's frame only,
    so they are gone once a failure's traceback is)."""
    enc = ref.read()
    read_ok.append(True)
    return _finish(decode(enc, desc), transform, shape, dtype, "")


def _finish(arr: Any, transform: Any, shape: Sequence[int], dtype: Any, where: str) -> np.ndarray:
    """A decoded frame transformed (rescale, LUTs), in the layer's dtype, checked against its shape."""
    if transform is not None:
        arr = transform(arr)
    out: np.ndarray = np.asarray(arr)
    if out.dtype != np.dtype(dtype):
        out = out.astype(dtype)
    if out.shape != tuple(shape):
        raise ValueError(f"decoded frame has shape {out.shape}{where}, expected {tuple(shape)}")
    return out


# --------------------------------------------------------------------------
# reduced resolution: JPEG 2000 / HTJ2K frames at 1/2, 1/4, ... of their size


def decode_level(enc: EncodedFrame, desc: PixelDesc, level: int) -> np.ndarray:
    """Decode a JPEG 2000 / HTJ2K frame at resolution ``level`` (0: full, 1: half, ...).

    Level 0 is :func:`decode` (pydicom's pixels).  Other levels are OpenJPEG's
    reduced-resolution output (:mod:`.openjpeg`), in the integer type the full
    decode has: the values of a wavelet low band, for display only.
    """
    if level == 0:
        return decode(enc, desc)
    from . import openjpeg

    with STATS.lock:
        STATS.decodes += 1
    if enc.transfer_syntax not in codecs.JPEG2000_SYNTAXES:
        raise ValueError(f"no reduced-resolution decoding for transfer syntax {enc.transfer_syntax}")
    codestream = bytes(enc.data)
    problem = codecs.codestream_problem(  # OpenJPEG is never handed a codestream that disagrees with the header
        enc.transfer_syntax, codestream, desc.rows, desc.columns, desc.samples_per_pixel, desc.bits_allocated
    )
    if problem:
        raise ValueError(problem)
    arr = openjpeg.decode(codestream, level, codecs.THREADS)
    want = np.dtype(_decoded_dtype(desc))
    return arr if arr.dtype == want else arr.astype(want)


def load_frame_level(
    ref: FrameRef,
    desc: PixelDesc,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    shape: tuple[int, ...],
    dtype: str,
    strict: bool = False,
    level: int = 0,
) -> np.ndarray:
    """:func:`load_frame` at resolution ``level`` of a JPEG 2000 / HTJ2K frame (the
    dask task of multiscale layers' reduced levels; level 0 is ``load_frame``).

    A frame whose codestream has fewer decomposition levels than ``level`` (its
    neighbours had more) is decoded at full resolution and subsampled.
    """
    if level == 0:
        return load_frame(ref, desc, transform, shape, dtype, strict)
    return _load(
        (ref, transform, level),
        ref,
        shape,
        dtype,
        strict,
        level,
        lambda ok: _decode_level_ref(ref, desc, transform, shape, dtype, level, ok),
    )


def _decode_level_ref(
    ref: FrameRef,
    desc: PixelDesc,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    shape: tuple[int, ...],
    dtype: str,
    level: int,
    read_ok: list[bool],
) -> np.ndarray:
    """:func:`_decode_ref` at a reduced resolution ``level``."""
    from .openjpeg import OpenJpegError

    enc = ref.read()
    read_ok.append(True)
    try:
        arr = decode_level(enc, desc, level)
    except OpenJpegError as exc:
        if "greater than the maximum resolution" not in str(exc):
            raise
        full = load_frame(ref, desc, None, (desc.rows, desc.columns), _decoded_dtype(desc), True)
        f = 1 << level
        arr = np.ascontiguousarray(full[::f, ::f])
    return _finish(arr, transform, shape, dtype, f" at level {level}")


def _decoded_dtype(desc: PixelDesc) -> str:
    size = 1 if desc.bits_allocated <= 8 else 2 if desc.bits_allocated <= 16 else 4
    return f"{'i' if desc.pixel_representation else 'u'}{size}"


def reset() -> None:
    """Forget which files were reported, the cached frames and the counters (tests; a new session)."""
    with _reported_lock:
        _reported.clear()
    _FAILED.clear()
    CACHE.clear()
    STATS.reset()
