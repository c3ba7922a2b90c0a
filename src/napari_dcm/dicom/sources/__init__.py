"""Frame sources: where the stored bytes of one frame come from.

A frame reference is a small frozen dataclass that names where a stored frame
lives (a file path and byte ranges, a DICOMweb instance, a file on a dask
worker) and never holds an open file, socket or session, so dask graphs made
of them pickle and run anywhere.  Every reference answers ``read()`` with an
:class:`EncodedFrame`: the frame's bytes as stored and their transfer syntax.
:func:`napari_dcm.dicom.decode.decode` is the one decoder for all of them.

Sources:

* :mod:`.file` -- local files (native, encapsulated, deflated, and files only
  pydicom can parse);
* :mod:`.web` -- DICOMweb instances (frames fetched in their stored syntax).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """The stored bytes of a frame and what they are.

    ``data`` holds ``nframes`` frames in ``transfer_syntax`` and the frame to
    decode is ``index``.  Sources hand over exactly one frame (``index`` 0 of
    1) whenever they can; native pixel data that cannot be cut per frame
    (8-bit data in big-endian OW words, a deflated dataset) comes whole.
    ``bit_offset`` is where a 1-bit native frame starts inside ``data[0]``.
    """

    data: bytes | bytearray | memoryview | np.ndarray
    transfer_syntax: str
    index: int = 0
    nframes: int = 1
    bit_offset: int = 0


@runtime_checkable
class FrameRef(Protocol):
    """What every frame reference offers (see the module docstring)."""

    @property
    def path(self) -> str:
        """The file (or a credential-free URL) the frame belongs to: for messages and caches."""
        ...

    @property
    def index(self) -> int:
        """The stored frame index (0-based) inside its file or instance."""
        ...

    def read(self) -> EncodedFrame:
        """The frame's stored bytes; raises OSError/ValueError/EOFError (or a source error)."""
        ...
