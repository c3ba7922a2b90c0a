"""The Image Pixel module values that describe how a frame's pixels are stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PixelDesc:
    """The Image Pixel module values shared by the frames of one layer (PS3.3 C.7.6.3)."""

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
        """Bytes of one uncompressed frame (fractional for 1-bit data)."""
        spp = self.samples_per_pixel
        if self.photometric == "YBR_FULL_422" and spp == 3:
            return self.rows * self.columns * 2 * self.bits_allocated / 8
        return self.rows * self.columns * spp * self.bits_allocated / 8

    def options(self, nframes: int = 1) -> dict[str, Any]:
        """The keyword options pydicom's pixel decoders take for these values."""
        opts: dict[str, Any] = dict(
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
