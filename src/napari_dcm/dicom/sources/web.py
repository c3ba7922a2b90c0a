"""Frames of DICOMweb instances: fetched in their stored transfer syntax.

The reference holds the instance's credential-free key (base URL and UIDs);
the session with its credentials lives in :mod:`napari_dcm.dicom.dicomweb`'s
per-process registry, so a graph never carries a password.
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
    """Stored frame ``index`` of the DICOMweb instance ``path`` (its frame key)."""

    path: str
    index: int
    nframes: int

    def read(self) -> EncodedFrame:
        from .. import dicomweb

        payload, ts = dicomweb.fetch_frame(self.path, self.index, self.nframes)
        return EncodedFrame(payload, ts)


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
        return [WebFrame(hdr.path, i, nframes) for i in range(nframes)]
