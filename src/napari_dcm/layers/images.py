"""Image layers: ImageStacks -> napari image layer data (no napari import)."""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dicom import voi
from ..dicom.decode import Rescale, load_frame
from ..dicom.series import ImageStack
from ..dicom.volume import pyramid, stack_array
from . import keys
from .data import LayerData

SEP = " · "


def _fmt_date(d: str | None) -> str | None:
    if d and len(d) == 8 and d.isdigit():
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    return d or None


def base_name(stack: ImageStack) -> str:
    i = stack.info
    parts = [i.get("patient_id"), i.get("modality"), _fmt_date(i.get("study_date"))]
    parts = [str(p) for p in parts if p]
    if i.get("series_description"):
        parts.append(str(i["series_description"]))
    side = _laterality_view(i)
    if side and side not in " ".join(parts).upper().replace(" ", ""):
        parts.append(side)
    if not parts:
        parts = [os.path.basename(stack.frames[0].ref.path)]
    return SEP.join(parts)


def _laterality_view(info: dict[str, Any]) -> str:
    """ "RCC", "LMLO" ... for images that say so in their header (mammography, radiography)."""
    lat = str(info.get("image_laterality") or info.get("laterality") or "").strip().upper()
    view = str(info.get("view_position") or "").strip().upper()
    if lat not in ("R", "L") or not view:
        return ""
    return f"{lat}{view}"


def unique_names(stacks: list[ImageStack]) -> list[str]:
    names = [base_name(s) for s in stacks]
    counts: dict = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    seen: dict = {}
    out = []
    for n in names:
        if counts[n] > 1:
            seen[n] = seen.get(n, 0) + 1
            out.append(f"{n} [{seen[n]}]")
        else:
            out.append(n)
    return out


def initial_frame(stack: ImageStack) -> int:
    """The frame napari shows first (it centres its sliders)."""
    return (stack.nframes - 1) // 2


def padding_range(stack: ImageStack) -> tuple[float, float] | None:
    """Modality values that are pixel padding (PS3.3 C.7.5.1.1.2), or None.

    PixelPaddingValue (and PixelPaddingRangeLimit, inclusive) are stored values,
    US or SS as PixelRepresentation says (implicit VR files give the raw unsigned
    16 bits); the modality rescale maps them to the values napari-dcm shows.
    """
    i = stack.info
    pv = i.get("pixel_padding_value")
    if pv is None or stack.rgb:
        return None
    f = stack.frames[initial_frame(stack)]
    signed = f.desc.pixel_representation == 1
    ends = []
    for v in (pv, i.get("pixel_padding_range_limit", pv)):
        v = int(v)
        if signed and f.desc.bits_allocated == 16 and v >= 1 << 15:
            v -= 1 << 16
        ends.append(v)
    t = f.transform
    if t is None:
        vals = [float(v) for v in ends]
    elif isinstance(t, Rescale):
        vals = [float(v) * t.slope + t.intercept for v in ends]
    else:  # a Modality LUT Sequence: padding is not mapped by a formula; leave it in
        return None
    return min(vals), max(vals)


def value_unit(stack: ImageStack) -> str:
    """Unit of the shown values: HU for CT, else the RescaleType when it names one ("" otherwise)."""
    modality = str(stack.info.get("modality") or "").upper()
    rt = str(stack.info.get("rescale_type") or "").strip()
    if modality == "CT" and rt.upper() in ("", "HU"):
        return "HU"
    return "" if rt.upper() in ("", "US") else rt


def contrast_limits(stack: ImageStack, strict: bool = False) -> tuple[float, float]:
    """First header window (modality units) of the first shown frame, else
    1st/99th percentiles of that one frame with pixel padding left out."""
    f = stack.frames[initial_frame(stack)]
    wins = f.windows or stack.windows
    if wins and not stack.rgb:
        lo, hi = wins[0].limits()
        return float(lo), float(hi)
    luts = stack.info.get("voi_luts")
    if luts and not stack.rgb:  # no window: the header's first VOI LUT (its input range)
        return voi.lut_limits(luts[0])
    if stack.rgb and stack.dtype.itemsize == 1:
        return 0.0, 255.0
    arr = load_frame(f.ref, f.desc, f.transform, stack.shape, stack.dtype.str, strict)
    return voi.percentile_limits(arr, 1.0, 99.0, padding=padding_range(stack))


_ref_of = operator.attrgetter("ref")
_path_of = operator.attrgetter("path")
_index_of = operator.attrgetter("index")
_uid_of = operator.attrgetter("sop_instance_uid")
_windows_of = operator.attrgetter("windows")


def metadata(stack: ImageStack) -> dict[str, Any]:
    frames = stack.frames
    f0 = frames[0]
    shown = frames[initial_frame(stack)]
    multiframe = stack.multiframe
    refs = list(map(_ref_of, frames))
    frame_paths = list(map(_path_of, refs))
    d2s = list(map(_index_of, refs))  # stack.display_to_stored()
    md: dict[str, Any] = {
        keys.IMAGE: 1,
        keys.PATHS: list(dict.fromkeys(frame_paths)),  # stack.paths
        keys.FRAME_PATHS: frame_paths,
        keys.DISPLAY_TO_STORED: d2s,
        keys.SOP_INSTANCE_UIDS: list(map(_uid_of, frames)),
        "multiframe": multiframe,
        "spacing_uniform": stack.spacing_uniform,
        keys.WINDOWS: [
            {"center": w.center, "width": w.width, "explanation": w.explanation, "function": w.function}
            for w in (shown.windows or stack.windows)
        ],
        "photometric": f0.desc.photometric,
        "transfer_syntax": f0.desc.transfer_syntax,
        "notes": list(stack.notes),
        keys.VALUE_UNIT: value_unit(stack),
    }
    pad = padding_range(stack)
    if pad is not None:
        md[keys.PADDING] = [pad[0], pad[1]]
    if f0.orientation:
        md["image_orientation"] = [float(v) for v in f0.orientation]
    if hasattr(shown.transform, "slope"):  # a rescale: presentation states' modality LUTs need stored values
        md["rescale"] = [float(shown.transform.slope), float(shown.transform.intercept)]
    one_list = len(set(map(id, map(_windows_of, frames)))) == 1  # frames share one windows list: all equal
    per_frame = (
        [] if one_list else [tuple((w.center, w.width, w.explanation, w.function) for w in f.windows) for f in frames]
    )
    if len(set(per_frame)) > 1:  # windows differ between frames (Enhanced objects): keep each frame's
        md[keys.FRAME_WINDOWS] = [
            [{"center": c, "width": w, "explanation": e, "function": fn} for c, w, e, fn in pf] for pf in per_frame
        ]
    if multiframe:
        s2d = [-1] * (max(d2s) + 1)
        for disp, stored in enumerate(d2s):
            s2d[stored] = disp
        md[keys.STORED_TO_DISPLAY] = s2d
        md[keys.NUMBER_OF_FRAMES] = len(s2d)
    for k, v in stack.info.items():
        md[k] = v
    return md


def _steps(n: int, s: float, t: float) -> int:
    """How many slider steps napari makes of an axis of ``n`` samples at scale ``s``,
    translate ``t``: its world extent is ``[t, (n - 1) * s + t]`` and it counts
    ``int((stop - start) / step) + 1`` steps (napari 0.9, ``Dims._nsteps_from_range``)."""
    start = 0.0 * s + t
    stop = (n - 1) * s + t
    return int((stop - start) / s) + 1


def _exact_axis(n: int, s: float, t: float) -> tuple[float, float]:
    """(scale, translate) within about 1e-12 mm of ``(s, t)`` whose extent napari divides
    back into exactly ``n - 1`` steps.

    The extent ``((n - 1) * s + t) - t`` loses low bits to the grid of the larger
    operand (its unit in the last place ``g``, a power of two) and may come out a hair
    short.  With scale and translate whole multiples of ``g`` every step is exact: the
    sum and the difference are multiples of ``g`` that fit in 53 bits, the difference
    gives ``(n - 1) * s`` back and the quotient is ``n - 1``.
    """
    cs = s
    for _ in range(8):  # usually one or two ulps of the scale do, and change less
        cs = float(np.nextafter(cs, np.inf if s > 0 else -np.inf))
        if _steps(n, cs, t) == n:
            return cs, t
    span = (n - 1) * s
    g = max(float(np.spacing(abs(t))), float(np.spacing(abs(span + t))), float(np.spacing(abs(span))))
    for _ in range(4):  # a coarser grid if the sum lands in the next binade
        cs, ct = round(s / g) * g, round(t / g) * g
        if cs != 0 and _steps(n, cs, ct) == n:
            return cs, ct
        g *= 2
    return s, t  # not found (never seen in tests): napari keeps its own count


def exact_steps(shape: tuple[int, ...], scale: tuple[float, ...], translate: tuple[float, ...]) -> tuple:
    """(scale, translate) adjusted in their last bits so napari makes exactly one slider step per sample.

    napari derives an axis' step count from its world extent divided by the
    scale and truncates: with a 24-slice stack at 3.7999995 mm the quotient is
    22.9999999 and the last slice cannot be reached.  Changes of at most 1e-9 of
    the scale (usually one unit in the last place) and 1e-11 mm of the translate
    make the division exact; the geometry is unchanged for any practical purpose.
    """
    out_s, out_t = list(scale), list(translate)
    for ax, (n, s, t) in enumerate(zip(shape, scale, translate)):
        if n < 2 or s == 0 or _steps(n, s, t) == n:
            continue
        out_s[ax], out_t[ax] = _exact_axis(n, s, t)
    return tuple(out_s), tuple(out_t)


# --------------------------------------------------------------------------
# multiscale data (reduced-resolution JPEG 2000 levels, see dicom/volume.py)


class Pyramid(list):  # type: ignore[type-arg]  # a list of dask arrays, napari's multiscale input
    """The levels of a multiscale image, full resolution first (napari: ``multiscale=True``).

    ``shape``, ``ndim`` and ``dtype`` are those of the full-resolution level, as
    napari's ``MultiScaleData`` gives them, so code that reads a layer's shape
    works on both.  Index it by level (``data[0]`` is full resolution), never by
    frame: use :func:`full_resolution` to get the array of frames.
    """

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self[0].shape)

    @property
    def ndim(self) -> int:
        return int(self[0].ndim)

    @property
    def dtype(self) -> Any:
        return self[0].dtype

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(level.shape) for level in self)


def is_multiscale(data: Any) -> bool:
    """Is ``data`` multiscale (a :class:`Pyramid`, napari's ``MultiScaleData`` or a list of levels)?"""
    return isinstance(data, Sequence) and not isinstance(data, (str, bytes))


def full_resolution(data: Any) -> Any:
    """The full-resolution array of image data (level 0 of multiscale data, else ``data`` itself).

    Everything that reads pixels of a napari-dcm image (window presets, ROI
    statistics, exports) reads them through this, so it works on multiscale
    layers too and indexes frames in full-resolution pixel coordinates.
    """
    return data[0] if is_multiscale(data) else data


def layer_tuple(stack: ImageStack, name: str, strict: bool = False, multiscale: bool = False) -> LayerData:
    """The image layer of ``stack``; ``multiscale``: offer reduced levels when the
    frames allow it (large JPEG 2000, see :func:`napari_dcm.dicom.volume.pyramid`)."""
    levels = pyramid(stack, strict=strict) if multiscale else None
    data: Any = Pyramid(levels) if levels else stack_array(stack, strict=strict)
    scale = tuple(float(x) for x in stack.scale)
    translate = tuple(float(x) for x in stack.translate)
    if len(scale) == 3:  # the frame axis (in-plane axes keep PixelSpacing exactly as written)
        (s0,), (t0,) = exact_steps((stack.nframes,), scale[:1], translate[:1])
        scale, translate = (s0, *scale[1:]), (t0, *translate[1:])
    kwargs = {
        "name": name,
        "scale": scale,
        "translate": translate,
        "contrast_limits": contrast_limits(stack, strict),
        "rgb": stack.rgb,
        "multiscale": bool(levels),
        # napari-dcm's own byte-bounded frame cache holds decoded frames; napari's
        # opportunistic dask cache (25 % of RAM) would keep a second, unbounded set alive
        "cache": False,
        "metadata": metadata(stack),
    }
    if not stack.rgb:
        inverted = voi.display_inverted(stack.frames[0].desc.photometric, stack.info.get("presentation_lut_shape"))
        kwargs["colormap"] = "gray_r" if inverted else "gray"
        f = stack.frames[initial_frame(stack)]
        if not (f.windows or stack.windows) and stack.info.get("voi_luts"):
            kwargs["colormap"] = voi.lut_colormap(stack.info["voi_luts"][0], inverted)
    if stack.frames[0].pixel_spacing is not None and (
        len(stack.scale) == 2 or all(f.position is not None for f in stack.frames)
    ):
        # scale-only: the unit is said in the metadata (and the status bar), not given to
        # napari, which otherwise warns "inconsistent units" beside any image without spacing
        kwargs["metadata"][keys.WORLD_UNIT] = "mm"
    return LayerData(data, kwargs, "image")


def layer_tuples(stacks: list[ImageStack], strict: bool = False, multiscale: bool = False) -> list[LayerData]:
    names = unique_names(stacks)
    return [layer_tuple(s, n, strict, multiscale) for s, n in zip(stacks, names)]
