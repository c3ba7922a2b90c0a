"""Frames of files that live on dask.distributed workers.

A :class:`ClusterFrame` wraps the reference the worker-side header scan made
for the file (a :class:`~napari_dcm.dicom.sources.file.NativeFrame`,
``EncapsulatedFrame``, ``DeflatedFrame`` or ``DatasetFrame`` naming a path
that exists on the workers) together with the scheduler's address.  ``read()``
runs the wrapped reference's ``read()`` on a worker and brings back the
stored bytes as they are (compressed stays compressed); the client decodes
them with the one decoder, as for a local file.  With ``decode_desc`` set
(``--remote-decode``), the worker decodes and the decoded array comes back.

The reference holds no client: the ``distributed.Client`` of an address lives
in :mod:`napari_dcm.dicom.cluster`'s per-process registry, so a graph made of
these references pickles, and computes anywhere that can reach the scheduler
(on one of that scheduler's workers it reads the file directly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import EncodedFrame

if TYPE_CHECKING:
    from ..imagepixel import PixelDesc
    from ..scan import Header

# the transfer syntax of an EncodedFrame whose ``data`` is already a decoded array
DECODED = "napari-dcm.decoded"


@dataclass(frozen=True, slots=True)
class ClusterFrame:
    """Stored frame ``inner.index`` of ``inner.path``, a file on the workers of ``address``."""

    address: str
    inner: Any  # the file reference a worker reads (sources.file)
    decode_desc: PixelDesc | None = None  # decode on the worker (--remote-decode)
    # the first bytes of the frame's codestream, read on the worker at scan time (JPEG 2000 /
    # JPEG-LS precision); not part of the reference's identity
    head_bytes: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def path(self) -> str:
        return str(self.inner.path)

    @property
    def index(self) -> int:
        return int(self.inner.index)

    def read(self) -> EncodedFrame:
        from .. import cluster

        return cluster.fetch_frame(self)

    def head(self, n: int = 4096) -> bytes:
        """The codestream's first bytes (as ``EncapsulatedFrame.head``), from the scan."""
        if self.head_bytes is None:
            raise ValueError("no codestream head was read on the worker")
        return self.head_bytes[:n]


@dataclass(frozen=True, slots=True)
class ClusterFile:
    """Where a worker-scanned header's frames come from (``Header.source``).

    ``refs`` are the file references the worker built (offset tables read
    there); ``error`` is why it could not (the client reports it as it would
    for a local file); ``head`` the first bytes of frame 0's codestream.
    """

    address: str
    refs: tuple[Any, ...] = ()
    error: str = ""
    head: bytes | None = field(default=None, repr=False)
    remote_decode: bool = False

    def frame_refs(self, hdr: Header, desc: PixelDesc, nframes: int) -> list[ClusterFrame]:
        if self.error:
            from ..series import StackError

            raise StackError(self.error)
        if len(self.refs) != nframes:
            raise ValueError(f"the worker found {len(self.refs)} frame(s), the header says {nframes}")
        return [
            ClusterFrame(self.address, r, desc if self.remote_decode or _whole(r) else None, self.head)
            for r in self.refs
        ]


def _whole(ref: Any) -> bool:
    """Does reading this frame hand over more than the frame (every frame of native pixel
    data that cannot be cut, an inflated dataset)?  Such frames are decoded on the worker,
    so only the frame crosses the network."""
    from .file import EncapsulatedFrame

    if isinstance(ref, EncapsulatedFrame):
        return False
    return bool(getattr(ref, "whole", False)) or int(getattr(ref, "nframes", 1)) > 1
