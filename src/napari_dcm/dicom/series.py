"""Series: grouping scanned instances into image stacks (one napari layer each).

* single-frame instances of one series are stacked, ordered by position along
  the slice normal, then InstanceNumber, then file name;
* each multi-frame instance is its own stack; Enhanced objects order frames by
  their per-frame ImagePositionPatient;
* instances (or frames) whose size, colour model or orientation differ are
  split into separate stacks.

Every stack keeps a stored-to-display frame map, so indices that refer to
stored frames (ROIs, overlays) can be placed on the right display frame.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import geometry, voi
from .decode import DatasetTransform, Rescale
from .imagepixel import PixelDesc
from .scan import DEFLATED_LE, EXPLICIT_LE, NATIVE_SYNTAXES, Header
from .sources import FrameRef
from .sources.file import file_frame_refs

if TYPE_CHECKING:
    from pydicom import Dataset

    # one stored frame of an instance: (ref, position, orientation, pixel spacing, rescale, windows, thickness)
    _PerFrame = tuple[
        FrameRef,
        tuple[float, ...] | None,
        tuple[float, ...] | None,
        tuple[float, float] | None,
        tuple[float, float],
        list[voi.Window],
        float | None,
    ]

log = logging.getLogger("napari_dcm")

# SOP classes that carry no displayable image even when they have pixel data
NON_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.1.3.10": "DICOMDIR",
}

MAX_FRAME_BYTES = 2 * 2**30  # one decoded frame above this is refused


class StackError(Exception):
    """A file cannot become (part of) an image stack; carries the reason."""


@dataclass(slots=True)
class Frame:
    """One display frame of a stack."""

    ref: FrameRef
    desc: PixelDesc
    transform: Rescale | DatasetTransform | None
    position: tuple[float, ...] | None = None
    orientation: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, float] | None = None
    windows: list[voi.Window] = field(default_factory=list)
    instance_number: int | None = None
    sop_instance_uid: str = ""
    thickness: float | None = None


@dataclass
class ImageStack:
    """What becomes one napari image layer."""

    frames: list[Frame]
    shape: tuple[int, ...]  # per-frame output shape (rows, cols[, 3])
    dtype: np.dtype
    rgb: bool
    monochrome1: bool
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    windows: list[voi.Window]  # windows of the first display frame (header order)
    info: dict[str, Any]  # patient/study/series attributes
    multiframe: bool  # a multi-frame instance (vs stacked single frames)
    spacing_uniform: bool = True
    slice_spacing: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def nframes(self) -> int:
        return len(self.frames)

    @property
    def paths(self) -> list[str]:
        out, seen = [], set()
        for f in self.frames:
            if f.ref.path not in seen:
                seen.add(f.ref.path)
                out.append(f.ref.path)
        return out

    def display_to_stored(self) -> list[int]:
        return [f.ref.index for f in self.frames]


# --------------------------------------------------------------------------
# pydicom datasets for the files the fast scan cannot describe alone


def load_dataset(h: Header) -> Dataset:
    """The pydicom Dataset of a header: the one it carries (DICOMweb metadata), else the file's."""
    if h.dataset is not None:
        return h.dataset
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(h.path, stop_before_pixels=True, force=True)


def _fg_from_dataset(ds: Dataset, nframes: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Functional group values read with pydicom (fallback when the scan had none)."""
    from .scan import _FG_WANTED

    def flat(item: Dataset | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if item is None:
            return out
        for macro in item:
            if macro.VR != "SQ" or not macro.value:
                continue
            for el in macro.value[0]:
                w = _FG_WANTED.get(int(el.tag))
                if w is None or el.value in (None, ""):
                    continue
                name, kind = w
                if kind == "f":
                    out[name] = list(_floats(el.value) or [])
                elif kind == "m":
                    out[name] = [str(x) for x in (el.value if not isinstance(el.value, str) else [el.value])]
                elif kind == "s":
                    out[name] = str(el.value)
        return out

    sh = ds.get("SharedFunctionalGroupsSequence")
    pf = ds.get("PerFrameFunctionalGroupsSequence") or []
    return flat(sh[0] if sh else None), [flat(pf[i]) if i < len(pf) else {} for i in range(nframes)]


def _floats(v: Any) -> tuple[float, ...] | None:
    if v is None or v == "":
        return None
    if isinstance(v, (list, tuple)) or (hasattr(v, "__iter__") and not isinstance(v, (str, bytes))):
        try:
            return tuple(float(x) for x in v)
        except (TypeError, ValueError):
            return None
    try:
        return (float(v),)
    except (TypeError, ValueError):
        return None


def _tuple(v: Sequence[float] | None) -> tuple[float, ...] | None:
    return tuple(v) if v else None


# --------------------------------------------------------------------------


def pixel_desc(h: Header) -> PixelDesc:
    v = h.values
    rows, cols = v.get("rows"), v.get("columns")
    if not rows or not cols:
        raise StackError("no Rows/Columns")
    bits = v.get("bits_allocated")
    if h.pixel_tag == 0x7FE00008:
        bits = 32
    elif h.pixel_tag == 0x7FE00009:
        bits = 64
    if not bits:
        raise StackError("no BitsAllocated")
    if bits not in (1, 8, 16, 32, 64):
        raise StackError(f"unsupported BitsAllocated {bits}")
    pr = v.get("pixel_representation")
    if pr is None:
        if h.pixel_tag == 0x7FE00010:
            raise StackError("missing PixelRepresentation (0028,0103)")
        pr = 0
    spp = v.get("samples_per_pixel") or 1
    pi = (v.get("photometric") or ("MONOCHROME2" if spp == 1 else "RGB")).upper()
    ts = h.transfer_syntax or EXPLICIT_LE
    return PixelDesc(
        transfer_syntax=ts,
        rows=int(rows),
        columns=int(cols),
        samples_per_pixel=int(spp),
        bits_allocated=int(bits),
        bits_stored=int(v.get("bits_stored") or bits),
        pixel_representation=int(pr),
        photometric=pi,
        planar_configuration=int(v.get("planar_configuration") or 0),
        pixel_keyword={0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}.get(h.pixel_tag, "PixelData"),
        pixel_vr=v.get("pixel_vr") or ("OW" if bits > 8 else "OB"),
    )


def _out_samples(desc: PixelDesc) -> int:
    if desc.photometric == "PALETTE COLOR":
        return 3
    return desc.samples_per_pixel


def check_size(h: Header, desc: PixelDesc, nframes: int) -> None:
    """Refuse absurd declared sizes before anything is allocated."""
    per_frame = desc.rows * desc.columns * max(_out_samples(desc), 1) * max(desc.bits_allocated, 8) // 8
    if desc.rows > 65000 or desc.columns > 65000 or per_frame > MAX_FRAME_BYTES:
        raise StackError(
            f"declared frame size {desc.rows}x{desc.columns}x{desc.samples_per_pixel} "
            f"({per_frame / 2**30:.1f} GiB) is too large to display"
        )
    if nframes < 1:
        raise StackError(f"NumberOfFrames is {nframes}")
    if h.file_size and nframes > h.file_size:
        raise StackError(
            f"NumberOfFrames {nframes} is more than the file has bytes ({h.file_size}): beyond any real data"
        )
    if h.source is not None:
        return  # remote: no local file to check against
    if h.pixel_length >= 0 and h.walked and h.deflated_offset < 0:
        need = desc.native_frame_nbytes * nframes
        if h.pixel_length + 1 < need:
            raise StackError(
                f"pixel data holds {h.pixel_length} bytes but {nframes} frame(s) of "
                f"{desc.rows}x{desc.columns}x{desc.samples_per_pixel} at {desc.bits_allocated} bits need {int(need)} "
                "(truncated file or wrong header)"
            )
        if h.pixel_offset + h.pixel_length > h.file_size + 1:
            raise StackError(
                f"pixel data runs {h.pixel_offset + h.pixel_length - h.file_size} bytes past the end of the file (truncated)"
            )
    native = h.transfer_syntax in NATIVE_SYNTAXES and h.walked and h.transfer_syntax != DEFLATED_LE
    if native and h.pixel_length < 0:
        need = desc.native_frame_nbytes * nframes
        have = h.file_size - h.pixel_offset
        if have + 1 < need:
            raise StackError(
                f"pixel data holds {have} bytes but {nframes} frame(s) need {int(need)} (truncated file or wrong header)"
            )
    if nframes * per_frame > 2**44:
        raise StackError(f"{nframes} frames of {per_frame} bytes is beyond any memory")


def _refs(h: Header, desc: PixelDesc, nframes: int) -> list[FrameRef]:
    """References to every stored frame of ``h``, from its source (a local file by default)."""
    try:
        if h.source is not None:
            return list(h.source.frame_refs(h, desc, nframes))
        return list(file_frame_refs(h, desc, nframes))
    except (ValueError, EOFError, OSError) as exc:
        raise StackError(f"cannot locate frames: {exc}") from exc


def _stored_bits(h: Header, desc: PixelDesc, ref: FrameRef) -> tuple[int, bool]:
    """Bits and signedness of decoded stored values (codestream precision for J2K/JPEG-LS)."""
    from . import codecs

    bits, signed = desc.bits_stored, desc.pixel_representation == 1
    ts = desc.transfer_syntax
    head_of = getattr(ref, "head", None)
    if head_of is None:
        return bits, signed  # e.g. DICOMweb: the stored syntax is only known when a frame arrives
    if ts in codecs.JPEG2000_SYNTAXES or ts in codecs.JPEGLS_SYNTAXES:
        try:
            head = head_of()
            if ts in codecs.JPEG2000_SYNTAXES:
                p = codecs.j2k_parameters(head).get("precision")
            else:
                p = codecs.jpeg_parameters(head).get("precision")
            if p and p > bits:
                bits = min(int(p), desc.bits_allocated)
        except Exception:
            bits = desc.bits_allocated
    return bits, signed


def _modality(
    h: Header, ds: Dataset | None, desc: PixelDesc, frame_rescales: Sequence[tuple[float, float]], first_ref: FrameRef
) -> tuple[list[Rescale | DatasetTransform | None], np.dtype]:
    """Per-frame transforms and the stack's output dtype."""
    if desc.pixel_keyword != "PixelData":
        return [None] * len(frame_rescales), np.dtype("float32" if desc.bits_allocated == 32 else "float64")
    if desc.photometric == "PALETTE COLOR":
        from pydicom import Dataset

        small = Dataset()
        for el in ds if ds is not None else []:
            if el.tag.group == 0x0028 and (
                0x1100 <= el.tag.element <= 0x1223 or el.tag.element in (0x0004, 0x0101, 0x0103, 0x0100, 0x0002)
            ):
                small.add(el)
        small.PhotometricInterpretation = "PALETTE COLOR"
        _set_encoding(small, desc)
        bits = 16
        lut_desc = small.get("RedPaletteColorLookupTableDescriptor")
        if lut_desc is not None and len(lut_desc) > 2 and int(lut_desc[2]) == 8:
            bits = 8
        dt = np.dtype("uint8" if bits == 8 else "uint16")
        t = DatasetTransform("palette", small, dt.str)
        return [t] * len(frame_rescales), dt
    if desc.samples_per_pixel > 1:
        return [None] * len(frame_rescales), np.dtype(
            "uint8" if desc.bits_allocated <= 8 else f"uint{desc.bits_allocated}"
        )
    mlut = ds.get("ModalityLUTSequence") if ds is not None else None
    if mlut and _valid_lut(mlut[0]):
        from pydicom import Dataset

        item = mlut[0]
        small = Dataset()
        small.ModalityLUTSequence = cast("Dataset", ds).ModalityLUTSequence  # (mlut implies ds)
        small.PixelRepresentation = desc.pixel_representation
        small.BitsStored = desc.bits_stored
        _set_encoding(small, desc)
        lut_desc = item.LUTDescriptor
        lut_bits = int(lut_desc[2]) if len(lut_desc) > 2 else 16
        dt = np.dtype("uint8" if lut_bits <= 8 else "uint16")
        t = DatasetTransform("modality_lut", small, dt.str)
        return [t] * len(frame_rescales), dt
    bits, signed = _stored_bits(h, desc, first_ref)
    if desc.bits_allocated == 1:
        bits, signed = 1, False
    pairs = [(s, b) for s, b in frame_rescales]
    dt = voi.rescaled_dtype(bits, signed, pairs)
    return [Rescale(float(s), float(b), dt.str) for s, b in pairs], dt


def _valid_lut(item: Dataset) -> bool:
    d = item.get("LUTDescriptor")
    return d is not None and len(d) == 3 and item.get("LUTData") not in (None, b"", [])


def _set_encoding(small: Dataset, desc: PixelDesc) -> None:
    """Give a LUT-only dataset the byte order its OW LUT data was read with."""
    from pydicom.dataset import FileMetaDataset

    from .scan import EXPLICIT_BE

    meta = FileMetaDataset()
    # pydicom annotates the attribute with its read type (UID); a str is converted when set
    meta.TransferSyntaxUID = EXPLICIT_BE if desc.transfer_syntax == EXPLICIT_BE else EXPLICIT_LE  # type: ignore[assignment]
    small.file_meta = meta


def _rescale_of(values: dict[str, Any]) -> tuple[float, float]:
    s = values.get("rescale_slope")
    b = values.get("rescale_intercept")
    s = s[0] if s else 1.0
    b = b[0] if b else 0.0
    return (s if s != 0 else 1.0), b


def _windows_of(values: dict[str, Any]) -> list[voi.Window]:
    return voi.windows_from(
        values.get("window_center"),
        values.get("window_width"),
        values.get("window_explanation"),
        values.get("voi_lut_function"),
    )


def _info(h: Header) -> dict[str, Any]:
    v = h.values
    keys = [
        "patient_id",
        "patient_name",
        "study_date",
        "study_description",
        "series_description",
        "series_number",
        "modality",
        "accession_number",
        "image_laterality",
        "laterality",
        "view_position",
        "patient_orientation",
        "image_type",
        "frame_of_reference_uid",
        "study_instance_uid",
        "series_instance_uid",
        "instance_number",
        "sop_instance_uid",
        "presentation_lut_shape",
    ]
    info = {k: v.get(k) for k in keys if v.get(k) not in (None, "", [])}
    overlays = sorted(int(k[-4:], 16) for k in v if k.startswith("overlay_rows_"))
    if overlays:  # 60xx overlay plane groups (layers.overlays builds their layers)
        info["overlay_groups"] = overlays
    if h.sop_instance_uid:
        info["sop_instance_uid"] = h.sop_instance_uid
    info["sop_class_uid"] = h.sop_class_uid
    info["transfer_syntax"] = h.transfer_syntax
    return info


# --------------------------------------------------------------------------
# building stacks


def stacks_from_headers(headers: list[Header]) -> tuple[list[ImageStack], list[tuple[str, str]]]:
    """Group headers into ImageStacks; returns (stacks, skipped [(path, reason)])."""
    skipped: list[tuple[str, str]] = []
    singles: dict[tuple[Any, ...], list[tuple[Header, PixelDesc]]] = {}
    stacks: list[ImageStack] = []
    for h in headers:
        if h.sop_class_uid in NON_IMAGE_SOP_CLASSES:
            skipped.append((h.path, NON_IMAGE_SOP_CLASSES[h.sop_class_uid]))
            continue
        if not h.has_pixels:
            skipped.append((h.path, "no pixel data" + (f" (SOP class {h.sop_class_uid})" if h.sop_class_uid else "")))
            continue
        try:
            nframes = h.values.get("number_of_frames") or 1
            desc = pixel_desc(h)
            check_size(h, desc, nframes)
            if nframes > 1 or h.needs_dataset or not h.walked:
                stacks += _instance_stacks(h, desc, nframes)
            else:
                key = (
                    h.values.get("study_instance_uid"),
                    h.values.get("series_instance_uid") or h.path,
                    desc.rows,
                    desc.columns,
                    _out_samples(desc),
                    desc.photometric
                    if desc.photometric in ("MONOCHROME1", "PALETTE COLOR")
                    else ("RGB" if _out_samples(desc) == 3 else "MONO"),
                    geometry.orientation_key(h.values.get("image_orientation")),
                    desc.pixel_keyword,
                )
                singles.setdefault(key, []).append((h, desc))
        except StackError as exc:
            skipped.append((h.path, str(exc)))
        except Exception as exc:  # never let one file stop the others
            log.debug("stack build failed for %s", h.path, exc_info=True)
            skipped.append((h.path, f"{type(exc).__name__}: {exc}"))
    for members in singles.values():
        try:
            stacks.append(_series_stack(members))
        except StackError as exc:
            skipped += [(h.path, str(exc)) for h, _ in members]
    return stacks, skipped


def _series_stack(members: list[tuple[Header, PixelDesc]]) -> ImageStack:
    """Stack single-frame instances of one series."""

    def sort_key(item: tuple[Header, PixelDesc]) -> tuple[int, float, int, str, str]:
        h, _ = item
        proj = geometry.project(h.values.get("image_position"), h.values.get("image_orientation"))
        inst = h.values.get("instance_number")
        return (
            0 if proj is not None else 1,
            proj[0] if proj is not None else 0.0,
            inst if inst is not None else 1 << 40,
            os.path.basename(h.path),
            h.path,
        )

    members = sorted(members, key=sort_key)
    h0, d0 = members[0]
    refs = []
    for h, d in members:
        refs.append(_refs(h, d, 1)[0])
    rescales = [_rescale_of(h.values) for h, _ in members]
    ds0 = load_dataset(h0) if h0.needs_dataset else None
    transforms, dtype = _modality(h0, ds0, d0, rescales, refs[0])
    frames = []
    for (h, d), ref, t in zip(members, refs, transforms):
        v = h.values
        frames.append(
            Frame(
                ref=ref,
                desc=d,
                transform=t,
                position=_tuple(v.get("image_position")),
                orientation=_tuple(v.get("image_orientation")),
                pixel_spacing=geometry.in_plane_spacing(v.get("pixel_spacing"), v.get("imager_pixel_spacing")),
                windows=_windows_of(v),
                instance_number=v.get("instance_number"),
                sop_instance_uid=h.sop_instance_uid,
                thickness=(v.get("slice_thickness") or [None])[0],
            )
        )
    fallback_spacing = (h0.values.get("spacing_between_slices") or h0.values.get("slice_thickness") or [None])[0]
    st = _finish(frames, d0, dtype, _info(h0), multiframe=False, fallback_spacing=fallback_spacing)
    return _with_voi_luts(st, ds0 if ds0 is not None else h0.dataset)


def _instance_stacks(h: Header, desc: PixelDesc, nframes: int) -> list[ImageStack]:
    """Stacks of one multi-frame (or dataset-described) instance."""
    v = h.values
    ds = None
    if not h.walked or h.needs_dataset:
        ds = load_dataset(h)
    refs = _refs(h, desc, nframes)
    shared = (v.get("shared_fg") or [{}])[0]
    per_frame = v.get("per_frame_fg") or []
    if (
        ds is not None
        and not shared
        and not per_frame
        and ("PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds)
    ):
        shared, per_frame = _fg_from_dataset(ds, nframes)
    enhanced = bool(shared or per_frame)
    per: list[_PerFrame] = []
    base_pos = _tuple(v.get("image_position"))
    base_ori = _tuple(v.get("image_orientation"))
    base_ps = geometry.in_plane_spacing(v.get("pixel_spacing"), v.get("imager_pixel_spacing"))
    base_rescale = _rescale_of(v)
    base_windows = _windows_of(v)
    gfov = v.get("grid_frame_offset_vector")
    n = geometry.normal(base_ori)
    for i in range(nframes):
        pos, ori, ps, rs, wins, thick = base_pos, base_ori, base_ps, base_rescale, base_windows, None
        if enhanced:
            fg = dict(shared)
            if i < len(per_frame):
                fg.update(per_frame[i])
            pos = _tuple(fg.get("image_position")) or pos
            ori = _tuple(fg.get("image_orientation")) or ori
            ps = geometry.in_plane_spacing(fg.get("pixel_spacing"), None) or ps
            thick = (fg.get("slice_thickness") or [None])[0]
            if fg.get("rescale_slope"):
                rs = _rescale_of(fg)
            if fg.get("window_center"):
                wins = _windows_of(fg)
        elif gfov and base_pos and n is not None and i < len(gfov):
            pos = tuple(p + gfov[i] * c for p, c in zip(base_pos, n))
        per.append((refs[i], pos, ori, ps, rs, wins, thick))
    # split by orientation (Enhanced objects may hold several stacks)
    groups: dict[tuple[float, ...] | None, list[_PerFrame]] = {}
    for item in per:
        groups.setdefault(geometry.orientation_key(item[2]), []).append(item)
    out = []
    for gi, items in enumerate(groups.values()):
        if enhanced:
            # order by position along the normal, stable on stored order
            def key(it: _PerFrame) -> tuple[int, float, int]:
                proj = geometry.project(it[1], it[2])
                return (0 if proj is not None else 1, proj[0] if proj is not None else 0.0, it[0].index)

            items = sorted(items, key=key)
        transforms, dtype = _modality(h, ds, desc, [it[4] for it in items], items[0][0])
        frames = [
            Frame(
                ref=it[0],
                desc=desc,
                transform=t,
                position=it[1],
                orientation=it[2],
                pixel_spacing=it[3],
                windows=it[5],
                instance_number=v.get("instance_number"),
                sop_instance_uid=h.sop_instance_uid,
                thickness=it[6],
            )
            for it, t in zip(items, transforms)
        ]
        fallback = (v.get("spacing_between_slices") or shared.get("spacing_between_slices") or [None])[0]
        st = _finish(
            frames, desc, dtype, _info(h), multiframe=True, fallback_spacing=fallback, geometric=enhanced or bool(gfov)
        )
        st = _with_voi_luts(st, ds)
        if len(groups) > 1:
            st.notes.append(f"orientation group {gi + 1} of {len(groups)}")
        out.append(st)
    return out


def _with_voi_luts(st: ImageStack, ds: Dataset | None) -> ImageStack:
    """The header's VOI LUT Sequence as presets (``info["voi_luts"]``); a LUT that cannot
    be applied is a note, never an error (issue 9)."""
    if ds is not None and "VOILUTSequence" in ds:
        luts = voi.voi_luts(ds)
        st.info["voi_luts"] = [lut for lut in luts if "problem" not in lut]
        st.notes += [lut["problem"] for lut in luts if "problem" in lut]
    return st


def _finish(
    frames: list[Frame],
    desc: PixelDesc,
    dtype: np.dtype,
    info: dict[str, Any],
    multiframe: bool,
    fallback_spacing: float | None = None,
    geometric: bool = True,
) -> ImageStack:
    f0 = frames[0]
    samples = _out_samples(desc)
    rgb = samples in (3, 4)
    shape = (desc.rows, desc.columns, samples) if rgb else (desc.rows, desc.columns)
    ps = f0.pixel_spacing or (1.0, 1.0)
    proj0 = geometry.project(f0.position, f0.orientation)
    spacing: float | None
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    spacing, uniform = None, True
    if len(frames) > 1:
        dists = None
        if geometric or not multiframe:
            projs = [geometry.project(f.position, f.orientation) for f in frames]
            if all(p is not None for p in projs):
                dists = [p[0] for p in cast("list[tuple[float, float, float]]", projs)]  # none is None
        if dists is not None:
            spacing, uniform = geometry.slice_spacing(dists, fallback_spacing)
        else:
            spacing = fallback_spacing or 1.0
        scale = (float(spacing), ps[0], ps[1])
        translate = (proj0[0], proj0[1], proj0[2]) if proj0 else (0.0, 0.0, 0.0)
    else:
        scale = (ps[0], ps[1])
        translate = (proj0[1], proj0[2]) if proj0 else (0.0, 0.0)
    return ImageStack(
        frames=frames,
        shape=shape,
        dtype=np.dtype(dtype),
        rgb=rgb,
        monochrome1=desc.photometric == "MONOCHROME1",
        scale=scale,
        translate=translate,
        windows=list(f0.windows),
        info=info,
        multiframe=multiframe,
        spacing_uniform=uniform,
        slice_spacing=spacing,
    )
