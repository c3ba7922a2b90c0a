"""Frames of DICOMweb instances: fetched in their stored transfer syntax.

The reference holds the instance's credential-free key (base URL and UIDs);
the session with its credentials lives in :mod:`napari_dcm.dicom.dicomweb`'s
per-process registry, so a graph never carries a password.  How a frame is
fetched (stored syntax, Explicit VR Little Endian, or the whole instance) is
negotiated by :func:`napari_dcm.dicom.dicomweb.fetch_frame`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import EncodedFrame

if TYPE_CHECKING:
    from ..imagepixel import PixelDesc
    from ..scan import Header


@dataclass(frozen=True, slots=True)
class WebFrame:
    """Stored frame ``index`` of the DICOMweb instance ``path`` (its frame key).

    ``stored_syntax``: the instance's transfer syntax when the server said it
    (AvailableTransferSyntaxUID), else empty; ``frame_nbytes``: the bytes of
    one native frame, to check a server's uncompressed answers; ``lossy``: the
    pixels were lossy compressed (never decoded by the server, see ``fetch_frame``).
    """

    path: str
    index: int
    nframes: int
    stored_syntax: str = ""
    frame_nbytes: float = 0.0
    lossy: bool = False

    def read(self) -> EncodedFrame:
        from .. import dicomweb

        return dicomweb.fetch_frame(
            self.path, self.index, self.nframes, self.stored_syntax, self.frame_nbytes, self.lossy
        )


@dataclass(frozen=True, slots=True)
class WebInstance:
    """Where a DICOMweb header's frames come from (``Header.source``)."""

    base: str
    study: str
    series: str
    instance: str

    @property
    def key(self) -> str:
        """The ``path`` napari-dcm uses for this instance (no credentials)."""
        return f"{self.base}/studies/{self.study}/series/{self.series}/instances/{self.instance}"

    def frame_refs(self, hdr: Header, desc: PixelDesc, nframes: int) -> list[WebFrame]:
        from ..dicomweb import is_lossy

        nbytes = desc.native_frame_nbytes
        lossy = hdr.dataset is not None and is_lossy(hdr.dataset)
        return [WebFrame(hdr.path, i, nframes, hdr.transfer_syntax, nbytes, lossy) for i in range(nframes)]
