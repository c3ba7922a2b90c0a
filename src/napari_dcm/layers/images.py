"""Image layers: ImageStacks -> napari image layer data (no napari import)."""

from __future__ import annotations

import os
from typing import Any

from ..dicom import voi
from ..dicom.decode import load_frame
from ..dicom.series import ImageStack
from ..dicom.volume import stack_array
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


def contrast_limits(stack: ImageStack, strict: bool = False) -> tuple[float, float]:
    """First header window (modality units) of the first shown frame, else
    1st/99th percentiles of that one frame."""
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
    return voi.percentile_limits(arr, 1.0, 99.0)


def metadata(stack: ImageStack) -> dict[str, Any]:
    frames = stack.frames
    f0 = frames[0]
    shown = frames[initial_frame(stack)]
    multiframe = stack.multiframe
    d2s = stack.display_to_stored()
    md: dict[str, Any] = {
        keys.IMAGE: 1,
        keys.PATHS: stack.paths,
        keys.FRAME_PATHS: [f.ref.path for f in frames],
        keys.DISPLAY_TO_STORED: d2s,
        keys.SOP_INSTANCE_UIDS: [f.sop_instance_uid for f in frames],
        "multiframe": multiframe,
        "spacing_uniform": stack.spacing_uniform,
        keys.WINDOWS: [
            {"center": w.center, "width": w.width, "explanation": w.explanation, "function": w.function}
            for w in (shown.windows or stack.windows)
        ],
        "photometric": f0.desc.photometric,
        "transfer_syntax": f0.desc.transfer_syntax,
        "notes": list(stack.notes),
    }
    if f0.orientation:
        md["image_orientation"] = [float(v) for v in f0.orientation]
    if hasattr(shown.transform, "slope"):  # a rescale: presentation states' modality LUTs need stored values
        md["rescale"] = [float(shown.transform.slope), float(shown.transform.intercept)]
    per_frame = [tuple((w.center, w.width, w.explanation, w.function) for w in f.windows) for f in frames]
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


def layer_tuple(stack: ImageStack, name: str, strict: bool = False) -> LayerData:
    data = stack_array(stack, strict=strict)
    kwargs = {
        "name": name,
        "scale": tuple(float(x) for x in stack.scale),
        "translate": tuple(float(x) for x in stack.translate),
        "contrast_limits": contrast_limits(stack, strict),
        "rgb": stack.rgb,
        "multiscale": False,
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
        kwargs["units"] = ("mm",) * len(stack.scale)
    return LayerData(data, kwargs, "image")


def layer_tuples(stacks: list[ImageStack], strict: bool = False) -> list[LayerData]:
    names = unique_names(stacks)
    return [layer_tuple(s, n, strict) for s, n in zip(stacks, names)]
