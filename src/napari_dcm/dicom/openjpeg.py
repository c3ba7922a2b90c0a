"""JPEG 2000 decoding at reduced resolution through OpenJPEG's C API (ctypes).

OpenJPEG can stop the inverse wavelet transform early and hand back the image
at 1/2, 1/4, ... of its size (``opj_set_decoded_resolution_factor``, the
``-r`` option of ``opj_decompress``).  That is the cheap way to show a large
JPEG 2000 frame on a screen that has fewer pixels than the frame: the code
blocks of the finest resolutions are never entropy-decoded.

Why this module binds the C library itself (about 150 lines) instead of using a
Python package:

* imagecodecs (``jpeg2k_decode``) and pylibjpeg-openjpeg (``decode``), which
  napari-dcm uses for full-resolution decodes, expose no reduction factor;
* Pillow's JPEG 2000 plugin has one (``Image.reduce``) but keeps the GIL for the
  whole decode, which would stall napari's UI thread while frames are decoded
  in the background (measured: a Python loop on the UI thread ran at 14 % of
  its speed during a Pillow decode, ~60 % during an imagecodecs one);
* glymur binds the same library but decodes files only, not byte strings.

ctypes releases the GIL for the whole C call.  The library is the system's
``libopenjp2`` (Debian: ``libopenjp2-7``), else the copy Pillow bundles.  The
structures read here (``opj_image_t``, ``opj_image_comp_t``) have kept their
layout through OpenJPEG 2.x.  Everything else goes through OpenJPEG functions
(decoder parameters are set by ``opj_set_default_decoder_parameters`` in a
buffer larger than the structure).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading
from typing import Any

import numpy as np

__all__ = ["OpenJpegError", "available", "decode", "library_path", "reduced_shape"]


class OpenJpegError(RuntimeError):
    """OpenJPEG could not decode the codestream (its messages are in the text)."""


class _Comp(ctypes.Structure):
    _fields_ = [
        ("dx", ctypes.c_uint32),
        ("dy", ctypes.c_uint32),
        ("w", ctypes.c_uint32),
        ("h", ctypes.c_uint32),
        ("x0", ctypes.c_uint32),
        ("y0", ctypes.c_uint32),
        ("prec", ctypes.c_uint32),
        ("bpp", ctypes.c_uint32),  # deprecated in 2.5 but still in the structure
        ("sgnd", ctypes.c_uint32),
        ("resno_decoded", ctypes.c_uint32),
        ("factor", ctypes.c_uint32),
        ("data", ctypes.POINTER(ctypes.c_int32)),
        ("alpha", ctypes.c_uint16),
    ]


class _Image(ctypes.Structure):
    _fields_ = [
        ("x0", ctypes.c_uint32),
        ("y0", ctypes.c_uint32),
        ("x1", ctypes.c_uint32),
        ("y1", ctypes.c_uint32),
        ("numcomps", ctypes.c_uint32),
        ("color_space", ctypes.c_int),
        ("comps", ctypes.POINTER(_Comp)),
        ("icc_profile_buf", ctypes.c_void_p),
        ("icc_profile_len", ctypes.c_uint32),
    ]


_READ = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_SKIP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_SEEK = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p)
_MSG = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
_CODEC_J2K = 0
_PARAMS_BYTES = 1 << 16  # opj_dparameters_t is ~8.5 KB in 2.5; OpenJPEG fills it

_lib: Any = None
_lib_path: str | None = None
_lib_lock = threading.Lock()
_tried = False


def _candidates() -> list[str]:
    out = []
    found = ctypes.util.find_library("openjp2")
    if found:
        out.append(found)
    out += ["libopenjp2.so.7", "libopenjp2.dylib", "openjp2.dll"]
    try:  # the copy bundled in Pillow's wheel (same OpenJPEG 2.5 API)
        import PIL

        root = os.path.dirname(os.path.dirname(PIL.__file__))
        out += sorted(glob.glob(os.path.join(root, "pillow.libs", "libopenjp2*")))
        out += sorted(glob.glob(os.path.join(os.path.dirname(PIL.__file__), ".dylibs", "libopenjp2*")))
    except ImportError:
        pass
    return out


def _load() -> Any:
    global _lib, _lib_path, _tried
    if _tried:
        return _lib
    with _lib_lock:
        if _tried:
            return _lib
        lib = None
        for cand in _candidates():
            try:
                lib = ctypes.CDLL(cand)
                lib.opj_set_decoded_resolution_factor  # noqa: B018  (present in every 2.x)
                _lib_path = cand
                break
            except (OSError, AttributeError):
                lib = None
        if lib is not None:
            vp, u32, i32 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int32
            lib.opj_version.restype = ctypes.c_char_p
            lib.opj_create_decompress.restype = vp
            lib.opj_create_decompress.argtypes = [ctypes.c_int]
            lib.opj_set_default_decoder_parameters.argtypes = [vp]
            lib.opj_setup_decoder.argtypes = [vp, vp]
            lib.opj_setup_decoder.restype = i32
            lib.opj_set_error_handler.argtypes = [vp, _MSG, vp]
            lib.opj_set_error_handler.restype = i32
            lib.opj_stream_create.restype = vp
            lib.opj_stream_create.argtypes = [ctypes.c_size_t, i32]
            lib.opj_stream_set_read_function.argtypes = [vp, _READ]
            lib.opj_stream_set_skip_function.argtypes = [vp, _SKIP]
            lib.opj_stream_set_seek_function.argtypes = [vp, _SEEK]
            lib.opj_stream_set_user_data_length.argtypes = [vp, ctypes.c_uint64]
            lib.opj_read_header.argtypes = [vp, vp, ctypes.POINTER(ctypes.POINTER(_Image))]
            lib.opj_read_header.restype = i32
            lib.opj_set_decoded_resolution_factor.argtypes = [vp, u32]
            lib.opj_set_decoded_resolution_factor.restype = i32
            lib.opj_decode.argtypes = [vp, vp, ctypes.POINTER(_Image)]
            lib.opj_decode.restype = i32
            lib.opj_end_decompress.argtypes = [vp, vp]
            lib.opj_end_decompress.restype = i32
            lib.opj_image_destroy.argtypes = [ctypes.POINTER(_Image)]
            lib.opj_stream_destroy.argtypes = [vp]
            lib.opj_destroy_codec.argtypes = [vp]
            if hasattr(lib, "opj_codec_set_threads"):
                lib.opj_codec_set_threads.argtypes = [vp, ctypes.c_int]
                lib.opj_codec_set_threads.restype = i32
        _lib = lib
        _tried = True
        return _lib


def available() -> bool:
    """Is an OpenJPEG library with reduced-resolution decoding loaded?"""
    return _load() is not None


def library_path() -> str | None:
    """Which libopenjp2 is used (None when none was found)."""
    _load()
    return _lib_path


def reduced_shape(rows: int, columns: int, level: int) -> tuple[int, int]:
    """(rows, columns) of resolution ``level`` of an image whose grid starts at (0, 0)."""
    f = 1 << level
    return -(-rows // f), -(-columns // f)


class _Source:
    """The codestream handed to OpenJPEG through its stream callbacks."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.read = _READ(self._read)
        self.skip = _SKIP(self._skip)
        self.seek = _SEEK(self._seek)

    def _read(self, buf: int, n: int, _user: int) -> int:
        left = len(self.data) - self.pos
        if left <= 0:
            return ctypes.c_size_t(-1).value
        k = min(n, left)
        ctypes.memmove(buf, self.data[self.pos : self.pos + k], k)
        self.pos += k
        return k

    def _skip(self, n: int, _user: int) -> int:
        n = max(-self.pos, min(n, len(self.data) - self.pos))
        self.pos += n
        return n

    def _seek(self, n: int, _user: int) -> int:
        if not 0 <= n <= len(self.data):
            return 0
        self.pos = n
        return 1


def decode(codestream: bytes, level: int = 0, threads: int = 1) -> np.ndarray:
    """Decode a JPEG 2000 codestream (J2K, HTJ2K) at resolution ``level`` (0: full,
    1: half, ...): an array (rows, cols) or (rows, cols, components) of the
    components' own precision and signedness (uint8/int8, uint16/int16, else 32-bit)."""
    lib = _load()
    if lib is None:
        raise OpenJpegError("no OpenJPEG library (libopenjp2) found")
    data = bytes(codestream)
    src = _Source(data)
    messages: list[str] = []

    def on_error(msg: bytes | None, _user: int) -> None:
        if msg:
            messages.append(msg.decode("latin-1", "replace").strip())

    error_cb = _MSG(on_error)
    codec = lib.opj_create_decompress(_CODEC_J2K)
    stream = lib.opj_stream_create(max(len(data), 1), 1)
    image = ctypes.POINTER(_Image)()
    try:
        if not codec or not stream:
            raise OpenJpegError("OpenJPEG could not create a decoder")
        lib.opj_set_error_handler(codec, error_cb, None)
        params = ctypes.create_string_buffer(_PARAMS_BYTES)
        lib.opj_set_default_decoder_parameters(params)
        if not lib.opj_setup_decoder(codec, params):
            raise OpenJpegError("OpenJPEG decoder setup failed")
        if threads > 1 and hasattr(lib, "opj_codec_set_threads"):
            lib.opj_codec_set_threads(codec, int(threads))
        lib.opj_stream_set_read_function(stream, src.read)
        lib.opj_stream_set_skip_function(stream, src.skip)
        lib.opj_stream_set_seek_function(stream, src.seek)
        lib.opj_stream_set_user_data_length(stream, len(data))
        if not lib.opj_read_header(stream, codec, ctypes.byref(image)):
            raise OpenJpegError("cannot read the JPEG 2000 header: " + "; ".join(messages[:2]))
        if level and not lib.opj_set_decoded_resolution_factor(codec, int(level)):
            raise OpenJpegError(f"cannot reduce by 2^{level}: " + "; ".join(messages[:2]))
        if not lib.opj_decode(codec, stream, image) or not lib.opj_end_decompress(codec, stream):
            raise OpenJpegError("decoding failed: " + "; ".join(messages[:2]))
        return _to_array(image.contents)
    finally:
        if image:
            lib.opj_image_destroy(image)
        if stream:
            lib.opj_stream_destroy(stream)
        if codec:
            lib.opj_destroy_codec(codec)


def _to_array(img: _Image) -> np.ndarray:
    n = int(img.numcomps)
    if n < 1:
        raise OpenJpegError("decoded image has no components")
    comps = [img.comps[i] for i in range(n)]
    c0 = comps[0]
    h, w = int(c0.h), int(c0.w)
    if any((int(c.w), int(c.h)) != (w, h) for c in comps):
        raise OpenJpegError("components of different sizes (subsampled) are not supported")
    prec = max(int(c.prec) for c in comps)
    signed = bool(c0.sgnd)
    size = 1 if prec <= 8 else 2 if prec <= 16 else 4
    dtype = np.dtype(f"{'i' if signed else 'u'}{size}")
    out = np.empty((h, w, n) if n > 1 else (h, w), dtype)
    for i, c in enumerate(comps):
        if not c.data:
            raise OpenJpegError(f"component {i} was not decoded")
        plane = np.ctypeslib.as_array(c.data, shape=(h, w))
        if n > 1:
            out[..., i] = plane
        else:
            out[...] = plane
    return out
