"""Bounds on what a file can make napari-dcm do: the memory budget and bounded reads.

Every size napari-dcm acts on comes from the file (Rows, Columns, NumberOfFrames,
length fields, offset tables, compressed streams), so every one is checked
against what the file can hold and against a budget *before* anything is
allocated, inflated or decoded:

* ``max_frame_bytes`` (default 256 MiB, ``NAPARI_DCM_MAX_FRAME_MB``): one
  decoded frame.  A file with larger frames is refused when it is opened
  (``DicomSizeError``).  Showing a frame needs about three times its size
  (the read buffer, the modality-LUT copy, dask's result), so the budget is
  also capped at a quarter of the process's address-space limit when one is
  set (``RLIMIT_AS``).
* ``max_frames`` (default 65,536, ``NAPARI_DCM_MAX_FRAMES``): frames of one
  layer.  Layers are lazy, but each frame costs a reference and a dask task.
* ``max_layer_bytes`` (default 2 GiB, ``NAPARI_DCM_MAX_LAYER_MB``): layers
  napari-dcm reads whole itself (segmentations, parametric maps).  Image
  layers are lazy (one frame in memory at a time, plus a 128 MiB cache), so
  their declared size is checked against the file's bytes instead.
* ``max_header_bytes`` (64 MiB): the inflated header of a deflated dataset.

Decompression is capped (:func:`inflate`): never more output than the caller
expects, and never more than DEFLATE's maximum ratio allows.  Files are opened
only when they are regular files (:func:`open_regular`): a FIFO, a device or a
directory given as a file is refused by name instead of blocking a read.

``napari_dcm.set_limits`` changes the budget for this process (dask workers
read the environment variables when they import napari-dcm).
"""

from __future__ import annotations

import os
import stat
import zlib
from dataclasses import dataclass

MiB = 1 << 20

# DEFLATE cannot expand one input byte to more than 1032 output bytes (258-byte
# matches coded in 2 bits); a stream claiming more is not deflate.
DEFLATE_MAX_RATIO = 1032


@dataclass
class Limits:
    """The budget (bytes, counts); see the module docstring."""

    max_frame_bytes: int = 256 * MiB
    max_frames: int = 65536
    max_layer_bytes: int = 2048 * MiB
    max_header_bytes: int = 64 * MiB

    def frame_budget(self) -> int:
        """``max_frame_bytes``, capped at a quarter of the address-space limit."""
        budget = self.max_frame_bytes
        try:
            import resource

            soft = resource.getrlimit(resource.RLIMIT_AS)[0]
            if soft != resource.RLIM_INFINITY and soft > 0:
                budget = min(budget, soft // 4)
        except (ImportError, OSError, ValueError):  # pragma: no cover - no resource module (Windows)
            pass
        return budget


def _env_int(name: str, scale: int, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        v = float(raw)
    except ValueError:
        return default
    return int(v * scale) if v > 0 else default


def _from_env() -> Limits:
    d = Limits()
    return Limits(
        max_frame_bytes=_env_int("NAPARI_DCM_MAX_FRAME_MB", MiB, d.max_frame_bytes),
        max_frames=_env_int("NAPARI_DCM_MAX_FRAMES", 1, d.max_frames),
        max_layer_bytes=_env_int("NAPARI_DCM_MAX_LAYER_MB", MiB, d.max_layer_bytes),
        max_header_bytes=d.max_header_bytes,
    )


LIMITS = _from_env()


def set_limits(
    max_frame_mb: float | None = None,
    max_frames: int | None = None,
    max_layer_mb: float | None = None,
) -> dict[str, float]:
    """Change the budget of this process (``None`` keeps a value).

    Returns the previous values, so ``set_limits(**old)`` puts them back.
    """
    old = {
        "max_frame_mb": LIMITS.max_frame_bytes / MiB,
        "max_frames": LIMITS.max_frames,
        "max_layer_mb": LIMITS.max_layer_bytes / MiB,
    }
    for name, value in (("max_frame_mb", max_frame_mb), ("max_frames", max_frames), ("max_layer_mb", max_layer_mb)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive, not {value!r}")
    if max_frame_mb is not None:
        LIMITS.max_frame_bytes = int(max_frame_mb * MiB)
    if max_frames is not None:
        LIMITS.max_frames = int(max_frames)
    if max_layer_mb is not None:
        LIMITS.max_layer_bytes = int(max_layer_mb * MiB)
    return old


# --------------------------------------------------------------------------
# files


class NotRegularFileError(OSError):
    """A path that is not a regular file (FIFO, device, socket, directory) was given as a file."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: str) -> None:
    """Raise :class:`NotRegularFileError` unless ``path`` is a regular file (symlinks followed)."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(f"{path} is {_kind(mode)}, not a regular file")


def open_regular(path: str) -> int:
    """``os.open(path, O_RDONLY)`` that never blocks: a FIFO or a device is refused."""
    return open_regular_stat(path)[0]


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)  # (once: opened per file)


def open_regular_stat(path: str) -> tuple[int, os.stat_result]:
    """:func:`open_regular` and the file's ``fstat``.

    ``O_NONBLOCK`` makes opening a FIFO return at once; the descriptor is then
    checked with ``fstat`` (on a regular file ``O_NONBLOCK`` changes nothing).
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(f"{path} is {_kind(st.st_mode)}, not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


# --------------------------------------------------------------------------
# bounded inflation


class InflateLimitError(ValueError):
    """A deflate stream inflates past the size its header allows."""


def inflate(data: bytes | bytearray | memoryview, limit: int, exact: int | None = None) -> bytes:
    """Inflate raw DEFLATE ``data``, producing at most ``limit`` bytes.

    Raises :class:`InflateLimitError` when the stream has more output than
    ``limit`` (or, with ``exact``, output of another length than ``exact``),
    ``zlib.error`` for a broken stream.  Never allocates more than ``limit + 1``
    bytes of output, whatever the stream says.
    """
    d = zlib.decompressobj(-15)
    # max_length: zlib stops producing output there (the rest of the input stays unconsumed)
    out = d.decompress(data, limit + 1)
    if len(out) > limit:
        raise InflateLimitError(f"deflated data inflates past {limit} bytes")
    if exact is not None and len(out) != exact:
        raise InflateLimitError(f"deflated data inflates to {len(out)} bytes, expected {exact}")
    return out


class StreamInflater:
    """Inflate a raw DEFLATE stream of a file on demand, never past ``limit`` bytes.

    ``ensure(n)`` makes ``data`` hold at least ``n`` inflated bytes (or all of
    the stream when it is shorter) reading the file in 1 MiB pieces; asking for
    more than ``limit`` raises :class:`InflateLimitError`.
    """

    CHUNK = 1 << 20

    def __init__(self, fd: int, offset: int, end: int, limit: int) -> None:
        self.fd = fd
        self.pos = offset
        self.end = end
        self.limit = limit
        self.data = bytearray()
        self.eof = False
        self._d = zlib.decompressobj(-15)
        self._tail = b""

    def ensure(self, n: int) -> bool:
        """True when ``data`` holds ``n`` bytes; False when the stream ends first."""
        if n > self.limit:
            raise InflateLimitError(f"deflated data inflates past {self.limit} bytes")
        while len(self.data) < n and not self.eof:
            if not self._tail:
                if self.pos >= self.end:
                    self.data += self._d.flush()
                    self.eof = True
                    break
                self._tail = os.pread(self.fd, min(self.CHUNK, self.end - self.pos), self.pos)
                if not self._tail:
                    self.eof = True
                    break
                self.pos += len(self._tail)
            want = max(n - len(self.data), 1 << 16)
            self.data += self._d.decompress(self._tail, want)
            self._tail = self._d.unconsumed_tail
            if self._d.eof:
                self.eof = True
        return len(self.data) >= n


def encoded_budget(native_nbytes: float) -> int:
    """The most bytes one compressed frame may hold, for a declared native frame size.

    No codec DICOM uses makes a frame much larger than its native size (RLE at
    most 1/128 larger, lossless JPEG and JPEG 2000 a few percent, DEFLATE 0.1 %),
    so twice the native size plus 1 MiB for markers and metadata (JPEG APPn
    segments, JP2 boxes) never refuses a real frame, and bounds the read of a
    fragment that claims gigabytes for a small frame.
    """
    return int(2 * native_nbytes) + MiB
