"""Non-linear VOI LUTs (and presentation-state grayscale pipelines) on a live image.

A LUT is drawn through a napari colormap built from it over its input range
(the contrast limits): the layer's data never change, so the status bar keeps
showing the raw (modality) values.  The LUTs come from the image's metadata
(``voi_luts``: the header's VOI LUT Sequence, and the grayscale pipelines of
the presentation states that reference the image).
"""

from __future__ import annotations

from ..dicom import voi

PREFIX = "LUT:"  # the window "function" of a LUT preset: "LUT:<index into voi_luts>"


def luts(image) -> list[dict]:
    return list(image.metadata.get("voi_luts") or [])


def inverted(image) -> bool:
    md = image.metadata
    return voi.display_inverted(md.get("photometric"), md.get("presentation_lut_shape"))


def presets(image) -> list[tuple[str, float, float, str]]:
    """(label, center, width, "LUT:i") of the image's LUTs, for the Window tab."""
    out = []
    for i, lut in enumerate(luts(image)):
        lo, hi = voi.lut_limits(lut)
        out.append((str(lut["label"]), (lo + hi) / 2, hi - lo, f"{PREFIX}{i}"))
    return out


def apply_lut(image, index: int) -> tuple[float, float]:
    """Show ``image`` through its LUT ``index``; returns the contrast limits."""
    from napari.utils.colormaps import Colormap

    lut = luts(image)[index]
    # a presentation state's pipeline carries its own presentation LUT (inversion included)
    inv = inverted(image) if not lut.get("presentation") else False
    cmap = voi.lut_colormap(lut, inv)
    image.colormap = Colormap(**cmap)
    lo, hi = voi.lut_limits(lut)
    rng = list(image.contrast_limits_range)
    if lo < rng[0] or hi > rng[1]:
        image.contrast_limits_range = (min(lo, rng[0]), max(hi, rng[1]))
    image.contrast_limits = (lo, hi)
    return lo, hi


def is_lut_colormap(image) -> bool:
    return str(image.colormap.name).startswith("voi-lut-")
