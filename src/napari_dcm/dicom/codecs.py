"""Codec choices for encapsulated pixel data.

napari-dcm decodes through pydicom's ``pixels`` decoders, so the processing
after the codec (sign correction, colour space, bit shifting) is pydicom's and
pixels equal pydicom's reference decode.  This module only picks the fastest
codec for each transfer syntax and adds the few that pydicom lacks:

* JPEG 2000 / HTJ2K: OpenJPEG through ``imagecodecs`` with both cores
  (``numthreads``), registered as a pydicom decoding plugin.  pydicom's own
  pylibjpeg-openjpeg plugin is single-threaded (about 2x slower here).
* JPEG-LS: CharLS through pyjpegls (pydicom's default, libjpeg, is ~4x slower).
* JPEG: libjpeg through pylibjpeg; imagecodecs' libjpeg-turbo as the fallback
  for 12-bit streams that libjpeg rejects (WG04 ``*_JPLY``) and for the
  retired JPEG spectral selection syntax 1.2.840.10008.1.2.4.53, which pydicom
  cannot decode at all.
* RLE: pylibjpeg-rle, then pydicom's own.
* Deflated Image Frame Compression (1.2.840.10008.1.2.8.1): each frame is raw
  DEFLATE of the native frame; ``zlib`` inflates it (a one-line call, no
  library does it).

The module follows pydicom's plugin contract: ``is_available(uid)``,
``DECODER_DEPENDENCIES`` and decode functions ``(src, runner) -> bytes``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any, cast

from pydicom import uid as _uid

if TYPE_CHECKING:
    import numpy as np
    from pydicom.pixels.decoders.base import DecodeRunner

JPEG2000_SYNTAXES = {
    _uid.JPEG2000Lossless,
    _uid.JPEG2000,
    _uid.HTJ2KLossless,
    _uid.HTJ2KLosslessRPCL,
    _uid.HTJ2K,
}
JPEGLS_SYNTAXES = {_uid.JPEGLSLossless, _uid.JPEGLSNearLossless}
JPEG_SYNTAXES = {_uid.JPEGBaseline8Bit, _uid.JPEGExtended12Bit, _uid.JPEGLossless, _uid.JPEGLosslessSV1}
DEFLATED_IMAGE_FRAME = "1.2.840.10008.1.2.8.1"
RLE = _uid.RLELossless

DECODER_DEPENDENCIES = {
    u: ("imagecodecs",) for u in JPEG2000_SYNTAXES | JPEGLS_SYNTAXES | {_uid.JPEGBaseline8Bit, _uid.JPEGExtended12Bit}
}

try:  # pragma: no cover - exercised implicitly
    import imagecodecs as _ic

    HAVE_IMAGECODECS = True
except ImportError:  # pragma: no cover
    _ic = cast(Any, None)  # typed as the module: only used when HAVE_IMAGECODECS
    HAVE_IMAGECODECS = False

THREADS = max(1, min(4, os.cpu_count() or 1))

try:
    from rle.utils import decode_frame as _rle_decode_frame  # type: ignore[attr-defined]  # re-exported from rle.rle without __all__

    HAVE_RLE = True
except ImportError:  # pragma: no cover
    HAVE_RLE = False


def rle_decode_frame(src: bytes, nr_pixels: int, bits_allocated: int) -> bytes:
    """One RLE frame (one sample) through pylibjpeg-rle, little-endian output."""
    return cast(bytes, _rle_decode_frame(src, nr_pixels, bits_allocated, "<"))  # rle.rle has no annotations


def is_available(uid: str) -> bool:
    if not HAVE_IMAGECODECS:
        return False
    if uid in JPEGLS_SYNTAXES:
        return bool(_ic.JPEGLS.available)
    if uid in JPEG2000_SYNTAXES:
        return bool(_ic.JPEG2K.available)
    if uid in (_uid.JPEGBaseline8Bit, _uid.JPEGExtended12Bit):
        return bool(_ic.JPEG8.available)
    return False


def decode_j2k(src: bytes, runner: DecodeRunner) -> bytes:
    """pydicom plugin: JPEG 2000 / HTJ2K through OpenJPEG with several threads."""
    from pydicom.pixels.common import PhotometricInterpretation as PI

    arr = _ic.jpeg2k_decode(src, numthreads=THREADS)
    if runner.photometric_interpretation in (PI.YBR_ICT, PI.YBR_RCT):
        runner.set_option("photometric_interpretation", PI.RGB)
    precision = runner.get_option("j2k_precision", runner.bits_stored)
    if 0 < precision <= 8:
        runner.set_option("bits_allocated", 8)
    elif 8 < precision <= 16:
        runner.set_option("bits_allocated", 16)
    elif 16 < precision <= 32:
        runner.set_option("bits_allocated", 32)
    itemsize = runner.bits_allocated // 8
    if arr.dtype.itemsize != itemsize:
        arr = arr.astype(f"{'i' if arr.dtype.kind == 'i' else 'u'}{itemsize}")
    return arr.tobytes()


def decode_jpeg8(src: bytes, runner: DecodeRunner) -> bytes:
    """pydicom plugin: JPEG through libjpeg-turbo (8 and 12 bit)."""
    arr = _ic.jpeg8_decode(src)
    if arr.dtype.itemsize == 1 and runner.bits_allocated > 8:
        runner.set_option("bits_allocated", 8)
    return arr.tobytes()


_registered = False
_lock = threading.Lock()

# pydicom plugin labels, in the order napari-dcm tries them per syntax
J2K_PLUGIN = "napari-dcm-openjpeg-mt"
JPEG8_PLUGIN = "napari-dcm-libjpeg-turbo"
JPEGLS_PLUGIN = "napari-dcm-charls-nogil"  # CharLS via imagecodecs, GIL released (read-ahead threads)


def register_plugins() -> None:
    """Add napari-dcm's plugins to pydicom's decoders (idempotent)."""
    global _registered
    if _registered:
        return
    with _lock:
        if _registered:
            return
        from pydicom.pixels import get_decoder  # type: ignore[attr-defined]  # pydicom.pixels re-exports without __all__

        if HAVE_IMAGECODECS:
            for ts in JPEG2000_SYNTAXES:
                dec = get_decoder(ts)
                if J2K_PLUGIN not in dec.available_plugins:
                    with contextlib.suppress(ValueError):
                        dec.add_plugin(J2K_PLUGIN, (__name__, "decode_j2k"))
            for ts in (_uid.JPEGBaseline8Bit, _uid.JPEGExtended12Bit):
                dec = get_decoder(ts)
                if JPEG8_PLUGIN not in dec.available_plugins:
                    with contextlib.suppress(ValueError):
                        dec.add_plugin(JPEG8_PLUGIN, (__name__, "decode_jpeg8"))
        _registered = True


# pydicom's plugins napari-dcm lets decode, by label.  Never "gdcm": on inconsistent
# input (a codestream that disagrees with the DICOM header) GDCM's C++ assertions
# abort the whole process; and never "" (pydicom's own order), which reaches GDCM
# whenever python-gdcm is installed.  Pillow is not used either: it wraps the same
# OpenJPEG and libjpeg-turbo as the plugins before it, so after they failed it only
# spent the time of one more failing decode.
TRUSTED_PLUGINS = ("pyjpegls", "pylibjpeg", "pydicom", J2K_PLUGIN, JPEG8_PLUGIN, JPEGLS_PLUGIN)


def plugin_order(ts: str) -> list[str]:
    """pydicom plugin labels to try for ``ts``, fastest first: an explicit list of
    :data:`TRUSTED_PLUGINS` (empty for a syntax napari-dcm has no plugin for)."""
    if ts in JPEG2000_SYNTAXES:
        return [J2K_PLUGIN, "pylibjpeg"] if HAVE_IMAGECODECS else ["pylibjpeg"]
    if ts in JPEGLS_SYNTAXES:
        first = [JPEGLS_PLUGIN] if in_background() else []  # GIL-free CharLS on read-ahead threads
        return first + ["pyjpegls", "pylibjpeg"]
    if ts in (_uid.JPEGBaseline8Bit, _uid.JPEGExtended12Bit):
        return ["pylibjpeg", JPEG8_PLUGIN] if HAVE_IMAGECODECS else ["pylibjpeg"]
    if ts in JPEG_SYNTAXES:
        return ["pylibjpeg"]
    if ts == RLE:
        return ["pylibjpeg", "pydicom"]
    return []


def library(ts: str, plugin: str) -> str:
    """The codec library behind a plugin for ``ts``: once a library failed on a codestream,
    another plugin wrapping the same library is not tried (it fails again, as slowly)."""
    if ts in JPEG2000_SYNTAXES and plugin in (J2K_PLUGIN, "pylibjpeg"):
        return "openjpeg"
    if ts == RLE and plugin == "pylibjpeg":
        return "pylibjpeg-rle"
    if ts in JPEGLS_SYNTAXES and plugin in (JPEGLS_PLUGIN, "pyjpegls"):
        return "charls"
    return plugin


def j2k_parameters(head: bytes) -> dict[str, Any]:
    """Codestream parameters (precision, signedness, ...) from a J2K header (pydicom's parser)."""
    from pydicom.pixels.utils import get_j2k_parameters

    return dict(get_j2k_parameters(head))


def jpeg_parameters(head: bytes) -> dict[str, Any]:
    """SOF parameters (precision, rows, columns, components) of a JPEG / JPEG-LS codestream.

    pydicom parses these in a private helper; it is wrapped here, in one place, because
    pydicom has no public equivalent (it may move between pydicom releases: the
    version is pinned to 3.0.x in pyproject).
    """
    from pydicom.pixels.utils import _get_jpg_parameters

    return dict(_get_jpg_parameters(head))


def decode_retired_jpeg(src: bytes) -> np.ndarray:
    """Decode the retired JPEG syntaxes (e.g. 4.53 spectral selection)."""
    if not HAVE_IMAGECODECS:
        raise RuntimeError("decoding retired JPEG syntaxes needs imagecodecs")
    return _ic.jpeg8_decode(src)


# --------------------------------------------------------------------------
# codestream checks before decoding: a codec is never handed a codestream that
# disagrees with the DICOM header (it could overrun the output pydicom sizes from
# the header, allocate what the codestream claims, or assert) or that is cut short
# (CharLS spends seconds on a truncated JPEG-LS stream; other decoders return
# what they guessed).


def j2k_siz(cs: bytes) -> dict[str, int]:
    """Image size, components and precision from a J2K codestream's SIZ segment
    (ISO/IEC 15444-1 A.5.1); a JP2 file's codestream box is searched for it.  {} if absent."""
    import struct

    i = 0 if cs[:4] == b"\xff\x4f\xff\x51" else cs.find(b"\xff\x4f\xff\x51", 0, 1 << 16)
    if i < 0 or len(cs) < i + 2 + 41:
        return {}
    x, y, xo, yo = struct.unpack_from(">4L", cs, i + 8)
    ncomp = struct.unpack_from(">H", cs, i + 40)[0]
    if x <= xo or y <= yo or len(cs) < i + 42 + 3 * ncomp or ncomp == 0:
        return {"components": ncomp, "width": max(x - xo, 0), "height": max(y - yo, 0), "precision": 0}
    ssiz = cs[i + 42]
    return {"width": x - xo, "height": y - yo, "components": ncomp, "precision": (ssiz & 0x7F) + 1}


def codestream_problem(ts: str, cs: bytes, rows: int, columns: int, samples: int, bits_allocated: int) -> str | None:
    """Why ``cs`` must not be decoded as a ``rows`` x ``columns`` x ``samples`` frame, or None.

    Checks the codestream's own header (J2K SIZ; JPEG / JPEG-LS SOF) against the
    DICOM header, that the codestream ends with its end marker (EOI / EOC,
    0xFFD9, which cannot occur inside coded data; trailing padding is allowed)
    and that it holds coded data at all (a start of scan / tile marker).
    """
    if ts in JPEG2000_SYNTAXES:
        p = j2k_siz(cs)
        kind = "J2K SIZ"
    elif ts in JPEGLS_SYNTAXES or ts in JPEG_SYNTAXES:
        p = jpeg_parameters(cs)  # reads only the markers before the SOF
        kind = "JPEG-LS SOF" if ts in JPEGLS_SYNTAXES else "JPEG SOF"
    else:
        return None
    if not p:
        return f"the codestream has no {kind} header (not a {kind.split()[0]} codestream)"
    height = p.get("height") or rows  # JPEG: 0 when a DNL marker gives the rows later
    if (height, p.get("width"), p.get("components")) != (rows, columns, samples):
        return (
            f"the codestream's {kind} says {height}x{p.get('width')}x{p.get('components')}, "
            f"the DICOM header {rows}x{columns}x{samples}"
        )
    precision = int(p.get("precision") or 0)
    if precision > max(bits_allocated, 8):
        return f"the codestream's {kind} precision ({precision} bits) exceeds BitsAllocated ({bits_allocated})"
    if b"\xff\xd9" not in cs[-64:]:
        return "the codestream has no end marker (EOI/EOC): it is truncated"
    start = b"\xff\x90" if ts in JPEG2000_SYNTAXES else b"\xff\xda"
    if start not in cs:  # some decoders return a blank image for a codestream without any coded data
        return "the codestream has no coded data (no " + ("SOT" if ts in JPEG2000_SYNTAXES else "SOS") + " marker)"
    return None


# reduced resolution (JPEG 2000 / HTJ2K): see dicom/openjpeg.py


def j2k_decomposition_levels(head: bytes) -> int | None:
    """Wavelet decomposition levels of a J2K codestream's main header (COD), or None.

    None also when the image grid does not start at (0, 0) (SIZ offsets), where
    reduced sizes would not be ceil(size / 2^level).
    """
    import struct

    if head[:4] != b"\xff\x4f\xff\x51":  # SOC, SIZ
        return None
    pos = 2
    levels = None
    while pos + 4 <= len(head):
        marker, length = struct.unpack_from(">HH", head, pos)
        if marker == 0xFF51 and pos + 4 + 20 <= len(head):  # SIZ: Rsiz, Xsiz, Ysiz, XOsiz, YOsiz
            xo, yo = struct.unpack_from(">LL", head, pos + 4 + 10)
            if xo or yo:
                return None
        elif marker == 0xFF52 and pos + 9 < len(head):  # COD: Scod, SGcod (4 bytes), SPcod: levels first
            levels = head[pos + 9]
        elif marker in (0xFF90, 0xFF93):  # SOT / SOD: the main header is over
            break
        if length < 2:
            return None
        pos += 2 + length
    return levels


# --------------------------------------------------------------------------
# decoders for background threads (read-ahead)
#
# pyjpegls keeps the GIL for a whole JPEG-LS decode (~80 ms for a 2048x1664 frame),
# so a read-ahead thread using it would freeze napari's UI thread frame after frame.
# imagecodecs wraps the same CharLS library and releases the GIL: read-ahead threads
# use it first (same codec, same pixels); napari's own thread keeps pyjpegls, which
# is ~20 % faster for the one frame it waits for.

_tls = threading.local()


def set_background(flag: bool) -> None:
    """Mark the calling thread as a background decoder (read-ahead): decoders that release the GIL first."""
    _tls.background = bool(flag)


def in_background() -> bool:
    return bool(getattr(_tls, "background", False))


def decode_jpegls(src: bytes, runner: DecodeRunner) -> bytes:
    """pydicom plugin: JPEG-LS through CharLS in imagecodecs (GIL released)."""
    arr = _ic.jpegls_decode(src)
    if arr.ndim == 3 and arr.shape[-1] > 1:
        runner.set_option("planar_configuration", 0)  # imagecodecs hands back colour-by-pixel
    runner.set_option("bits_allocated", 8 * arr.dtype.itemsize)
    return arr.tobytes()


def register_background_plugins() -> None:
    """Add the background decoders to pydicom's (idempotent)."""
    register_plugins()
    if not HAVE_IMAGECODECS or not getattr(_ic, "JPEGLS", None) or not _ic.JPEGLS.available:
        return
    from pydicom.pixels import get_decoder  # type: ignore[attr-defined]  # pydicom.pixels re-exports without __all__

    with _lock:
        for ts in JPEGLS_SYNTAXES:
            dec = get_decoder(ts)
            if JPEGLS_PLUGIN not in dec.available_plugins:
                with contextlib.suppress(ValueError):
                    dec.add_plugin(JPEGLS_PLUGIN, (__name__, "decode_jpegls"))
