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

import contextlib
import gc
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import geometry, voi
from .decode import DatasetTransform, Rescale
from .imagepixel import PixelDesc
from .limits import DEFLATE_MAX_RATIO, LIMITS
from .scan import DEFLATED_LE, EXPLICIT_LE, IMPLICIT_LE, NATIVE_SYNTAXES, Header
from .sources import FrameRef
from .sources.file import NativeFrame, file_frame_refs, native_frame

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

MAX_FRAME_BYTES = LIMITS.max_frame_bytes  # the default frame budget (see limits; set_limits changes it)


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
        return list(dict.fromkeys([f.ref.path for f in self.frames]))

    def display_to_stored(self) -> list[int]:
        return [f.ref.index for f in self.frames]


# --------------------------------------------------------------------------
# pydicom datasets for the files the fast scan cannot describe alone


def load_dataset(h: Header) -> Dataset:
    """The pydicom Dataset of a header: the one it carries (DICOMweb metadata), else the file's."""
    if h.dataset is not None:
        return h.dataset
    from .scan import read_dataset  # bounded: never inflates a whole deflated file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_dataset(h.path, header=h)


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
    """Refuse absurd declared sizes before anything is allocated.

    Every figure comes from the file, so each is checked against the memory
    budget (:mod:`.limits`) and against what the file's bytes can hold:
    frames x rows x columns x samples must fit in the pixel data of a native
    file, in DEFLATE's maximum ratio of a deflated one, and one frame must fit
    the frame budget.  Size refusals say "too large" (the API raises
    ``DicomSizeError`` for them).
    """
    budget = LIMITS.frame_budget()
    per_frame = desc.rows * desc.columns * max(_out_samples(desc), 1) * max(desc.bits_allocated, 8) // 8
    if desc.rows > 65000 or desc.columns > 65000 or per_frame > budget:
        raise StackError(
            f"declared frame size {desc.rows}x{desc.columns}x{desc.samples_per_pixel} "
            f"({_mib(per_frame)}) is too large to display (the frame budget is {_mib(budget)}; "
            "see NAPARI_DCM_MAX_FRAME_MB)"
        )
    if nframes < 1:
        raise StackError(f"NumberOfFrames is {nframes}")
    if nframes > LIMITS.max_frames:
        raise StackError(
            f"NumberOfFrames {nframes} is too large (a layer holds at most {LIMITS.max_frames} frames; "
            "see NAPARI_DCM_MAX_FRAMES)"
        )
    if h.file_size and nframes > h.file_size:
        raise StackError(f"NumberOfFrames {nframes} is too large: more than the file has bytes ({h.file_size})")
    if h.source is not None:
        return  # remote: no local file to check against
    if not h.walked and h.file_size > budget:
        raise StackError(
            f"file of {_mib(h.file_size)} is too large to read whole (only pydicom can parse it, and it "
            f"reads the whole file for a frame; the frame budget is {_mib(budget)})"
        )
    if h.deflated_offset >= 0:
        # DEFLATE inflates one byte to at most 1032: more declared pixels than that is not deflate
        stream = max(h.file_size - h.deflated_offset, 0)
        need = desc.native_frame_nbytes * nframes
        if h.pixel_offset + need > DEFLATE_MAX_RATIO * stream + 1024:
            raise StackError(
                f"declared size too large: a deflated dataset of {stream} bytes cannot hold {nframes} frame(s) of "
                f"{desc.rows}x{desc.columns}x{desc.samples_per_pixel} at {desc.bits_allocated} bits "
                f"({int(need)} bytes: more than DEFLATE's {DEFLATE_MAX_RATIO}:1 maximum ratio)"
            )
        if h.pixel_length >= 0 and h.pixel_length + 1 < need:
            raise StackError(
                f"pixel data holds {h.pixel_length} bytes but {nframes} frame(s) need {int(need)} "
                "(truncated file or wrong header)"
            )
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
    if not native and h.deflated_offset < 0 and h.pixel_length < 0 and nframes > 1:
        # encapsulated: every frame is at least one 8-byte item (tag + length) in the file
        have = h.file_size - h.pixel_offset
        if 8 * nframes > have:
            raise StackError(
                f"NumberOfFrames {nframes} is too large for the encapsulated pixel data "
                f"({have} bytes; every frame needs at least an 8-byte item)"
            )


def _mib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _refs(h: Header, desc: PixelDesc, nframes: int) -> list[FrameRef]:
    """References to every stored frame of ``h``, from its source (a local file by default)."""
    try:
        if h.source is not None:
            return list(h.source.frame_refs(h, desc, nframes))
        return list(file_frame_refs(h, desc, nframes))
    except (ValueError, EOFError, OSError) as exc:
        raise StackError(f"cannot locate frames: {exc}") from exc


def _single_native_ref(h: Header, d: PixelDesc, nbytes: dict[int, int]) -> NativeFrame | None:
    """The reference of a local single-frame little-endian native file, made directly
    (what ``file_frame_refs`` gives for it, without its general path); None otherwise."""
    ts = h.transfer_syntax
    if h.source is not None or not h.walked or h.deflated_offset >= 0 or d.bits_allocated == 1:
        return None
    if ts != EXPLICIT_LE and ts != IMPLICIT_LE:
        return None
    n = nbytes.get(id(d))
    if n is None:
        n = nbytes[id(d)] = int(d.native_frame_nbytes)
    return NativeFrame(h.path, 0, ts, h.pixel_offset, n)


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
    distinct = list(dict.fromkeys(frame_rescales))
    dt = voi.rescaled_dtype(bits, signed, distinct)
    made = {p: Rescale(float(p[0]), float(p[1]), dt.str) for p in distinct}  # frames share equal rescales
    return [made[p] for p in frame_rescales], dt


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
        # for the value unit and pixel padding (journey, issue 10)
        "rescale_type",
        "pixel_padding_value",
        "pixel_padding_range_limit",
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
    with paused_gc():
        return _stacks_from_headers(headers)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: building many small objects at once
    (headers, frames, graph tasks) otherwise triggers full collections that walk
    them all again, for nothing (they are not cyclic garbage).  On the way out
    they are not walked either (see :func:`promote_young`)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            promote_young()
            gc.enable()


def promote_young() -> None:
    """Move every object of the young generations to the oldest one, without walking them.

    After a pause of the collector (:func:`paused_gc`) the young generation holds
    everything built meanwhile (100,000 headers or frames are ~300,000 objects):
    the next young collection would walk them all, and the next middle one again,
    although they are live (returned) or freed by reference counting (the headers,
    once assembled).  ``gc.freeze()`` + ``gc.unfreeze()`` moves them to the oldest
    generation instead and resets the young count: they are walked only by the
    full collections that happen anyway.  The cost: cyclic garbage that other code
    left in the young generations at that moment waits for the next full collection.
    Nothing is done when the application froze objects itself (``gc.freeze`` before
    forking, say): unfreezing would undo that.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def _stacks_from_headers(headers: list[Header]) -> tuple[list[ImageStack], list[tuple[str, str]]]:
    skipped: list[tuple[str, str]] = []
    singles: dict[tuple[Any, ...], list[tuple[Header, PixelDesc]]] = {}
    stacks: list[ImageStack] = []
    descs: dict[tuple[Any, ...], PixelDesc] = {}  # files with equal pixel modules share one descriptor
    # Per-file work is one dictionary look-up where files repeat each other (a series'
    # files share their values: discovery's scan chunks hand out one object per
    # distinct value), keyed by identity (the headers keep the objects alive):
    okeys: dict[int, tuple[float, ...] | None] = {}  # orientation value -> orientation_key
    dkeys: dict[int, tuple[Any, ...]] = {}  # descriptor -> its part of the series key
    sized: dict[tuple[Any, ...], tuple[PixelDesc, str | None]] = {}  # -> (descriptor, check_size's refusal)
    # headers rebuilt from one packed base (Header.packed) whose varying values are none
    # of those read below: equal file size and SOP class give the same descriptor and
    # series (one look-up per file).  (id of the base, size, SOP class) -> (desc, members)
    by_base: dict[tuple[int, int, str], tuple[PixelDesc, list[tuple[Header, PixelDesc]]]] = {}
    safe_base: dict[int, bool] = {}
    for h in headers:
        pb = h.packed
        if pb is not None:
            hit = by_base.get((id(pb), h.file_size, h.sop_class_uid))
            if hit is not None:
                hit[1].append((h, hit[0]))
                continue
        if h.sop_class_uid in NON_IMAGE_SOP_CLASSES:
            skipped.append((h.path, NON_IMAGE_SOP_CLASSES[h.sop_class_uid]))
            continue
        if not h.has_pixels:
            skipped.append((h.path, "no pixel data" + (f" (SOP class {h.sop_class_uid})" if h.sop_class_uid else "")))
            continue
        try:
            v = h.values
            nframes = v.get("number_of_frames") or 1
            # everything pixel_desc and check_size read: one look-up for both
            skey = (
                h.transfer_syntax,
                h.pixel_tag,
                *map(v.get, _DESC_FIELDS),
                nframes,
                h.file_size,
                h.pixel_offset,
                h.pixel_length,
                h.walked,
                h.deflated_offset,
                h.source is None,
            )
            got = sized.get(skey)
            if got is None:
                desc = _shared_desc(h, descs)
                try:
                    check_size(h, desc, nframes)
                    got = sized[skey] = (desc, None)
                except StackError as exc:
                    got = sized[skey] = (desc, str(exc))
            desc, refusal = got
            if refusal is not None:
                raise StackError(refusal)
            if nframes > 1 or h.needs_dataset or not h.walked:
                stacks += _instance_stacks(h, desc, nframes)
            else:
                ori = v.get("image_orientation")
                okey = okeys.get(id(ori), _MISSING)
                if okey is _MISSING:
                    okey = okeys[id(ori)] = geometry.orientation_key(ori)
                dkey = dkeys.get(id(desc))
                if dkey is None:
                    samples = _out_samples(desc)
                    dkey = dkeys[id(desc)] = (
                        desc.rows,
                        desc.columns,
                        samples,
                        desc.photometric
                        if desc.photometric in ("MONOCHROME1", "PALETTE COLOR")
                        else ("RGB" if samples == 3 else "MONO"),
                        desc.pixel_keyword,
                    )
                key = (v.get("study_instance_uid"), v.get("series_instance_uid") or h.path, dkey, okey)
                members = singles.get(key)
                if members is None:
                    members = singles[key] = [(h, desc)]
                else:
                    members.append((h, desc))
                if pb is not None:
                    safe = safe_base.get(id(pb))
                    if safe is None:
                        safe = safe_base[id(pb)] = _base_groups_alike(pb)
                    if safe:
                        by_base[(id(pb), h.file_size, h.sop_class_uid)] = (desc, members)
        except StackError as exc:
            skipped.append((h.path, str(exc)))
        except Exception as exc:  # never let one file stop the others
            log.debug("stack build failed for %s", h.path, exc_info=True)
            skipped.append((h.path, f"{type(exc).__name__}: {exc}"))
    for members in singles.values():
        try:
            if len(members) > LIMITS.max_frames:
                raise StackError(
                    f"a series of {len(members)} images is too large for one layer (at most {LIMITS.max_frames} "
                    "frames; see NAPARI_DCM_MAX_FRAMES)"
                )
            stacks.append(_series_stack(members))
        except StackError as exc:
            skipped += [(h.path, str(exc)) for h, _ in members]
    return stacks, skipped


def _base_groups_alike(pb: tuple[Any, ...]) -> bool:
    """Do the headers of packed base ``pb`` (``Header.packed``) with equal file size and
    SOP class get one descriptor, ``check_size`` answer and series key?  Yes when none of
    their varying values is read for those and the base has a Series Instance UID (the
    key falls back to the path without one)."""
    _, _, _, _, base, varying, _ = pb
    return not (_GROUP_FIELDS & set(varying)) and bool(base.get("series_instance_uid"))


_DESC_FIELDS = (
    "rows",
    "columns",
    "bits_allocated",
    "pixel_representation",
    "samples_per_pixel",
    "photometric",
    "bits_stored",
    "planar_configuration",
    "pixel_vr",
)


# every value _stacks_from_headers reads to describe, check and group a single-frame file
_GROUP_FIELDS = frozenset(
    (*_DESC_FIELDS, "number_of_frames", "image_orientation", "study_instance_uid", "series_instance_uid")
)


def _shared_desc(h: Header, descs: dict[tuple[Any, ...], PixelDesc]) -> PixelDesc:
    """``pixel_desc(h)``, one object for all headers with equal pixel module values."""
    key = (h.transfer_syntax, h.pixel_tag, *map(h.values.get, _DESC_FIELDS))
    d = descs.get(key)
    if d is None:
        d = descs[key] = pixel_desc(h)  # raises StackError for invalid values (not cached)
    return d


def projections(
    positions: Sequence[Sequence[float] | None], orientations: Sequence[Sequence[float] | None]
) -> np.ndarray:
    """:func:`geometry.project` of many (position, orientation) pairs at once: an
    (n, 3) array, rows of NaN where ``project`` gives None.

    The arithmetic is ``project``'s, operation for operation (cross product, norm,
    division, then left-to-right dot products), so the values are equal to it.
    """
    n = len(positions)
    pos = np.full((n, 3), np.nan)
    ori = np.full((n, 6), np.nan)
    o0 = orientations[0] if n else None
    # one orientation for all (a series' files share one value object): converted once
    one = isinstance(o0, (list, tuple)) and len(o0) == 6 and orientations.count(o0) == n
    if one:
        valid = [i for i, p in enumerate(positions) if p is not None and len(p) == 3]
    else:
        valid = [
            i
            for i, (p, o) in enumerate(zip(positions, orientations))
            if p is not None and len(p) == 3 and o and len(o) == 6
        ]
    if valid:
        if len(valid) == n:
            pos[:] = positions
            ori[:] = o0 if one else orientations
        else:
            pos[valid] = [positions[i] for i in valid]
            ori[valid] = [orientations[i] for i in valid]
    r0, r1, r2, c0, c1, c2 = (ori[:, j] for j in range(6))
    n0 = r1 * c2 - r2 * c1
    n1 = r2 * c0 - r0 * c2
    n2 = r0 * c1 - r1 * c0
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
        bad = ~(norm > 0)
        n0, n1, n2 = n0 / norm, n1 / norm, n2 / norm
    p0, p1, p2 = pos[:, 0], pos[:, 1], pos[:, 2]
    out = np.empty((n, 3))
    out[:, 0] = p0 * n0 + p1 * n1 + p2 * n2
    out[:, 1] = p0 * c0 + p1 * c1 + p2 * c2
    out[:, 2] = p0 * r0 + p1 * r1 + p2 * r2
    out[bad] = np.nan
    return out


def _basenames(paths: list[str]) -> list[str]:
    """``os.path.basename`` of every path (a string operation where the path syntax allows)."""
    if os.sep == "/" and os.altsep is None:  # posix: basename is the part after the last "/"
        return [p.rpartition("/")[2] for p in paths]
    return [os.path.basename(p) for p in paths]


def series_order(members: Sequence[tuple[Header, PixelDesc]], proj: np.ndarray) -> np.ndarray:
    """Stacking order of single-frame instances: position along the normal (those
    without come last), then InstanceNumber (missing last), then file name, then path."""
    has = ~np.isnan(proj[:, 0])
    inst = [h.values.get("instance_number") for h, _ in members]
    paths = [h.path for h, _ in members]
    try:
        inst_arr = np.array([1 << 40 if i is None else i for i in inst], dtype=np.int64)
        pos, missing = np.where(has, proj[:, 0], 0.0), ~has
        order = np.lexsort((inst_arr, pos, missing))
        # file names and paths only break ties of the numbers (a stable sort: without
        # ties the order is the same with or without them, and text keys cost most)
        m, p, i = missing[order], pos[order], inst_arr[order]
        if not ((m[1:] == m[:-1]) & (p[1:] == p[:-1]) & (i[1:] == i[:-1])).any():
            return order
        names = np.array(_basenames(paths), dtype=str)
        return np.lexsort((np.array(paths, dtype=str), names, inst_arr, pos, missing))
    except (OverflowError, TypeError, ValueError):  # values numpy cannot order like Python: sort as Python does

        def key(i: int) -> tuple[int, float, Any, str, str]:
            return (
                0 if has[i] else 1,
                float(proj[i, 0]) if has[i] else 0.0,
                inst[i] if inst[i] is not None else 1 << 40,
                os.path.basename(paths[i]),
                paths[i],
            )

        return np.array(sorted(range(len(members)), key=key), dtype=np.int64)


# values a series' files usually share (one object per scan chunk, see discovery._scan_chunk)
_SHARED_VALUES = (
    "pixel_spacing",
    "imager_pixel_spacing",
    "window_center",
    "window_width",
    "window_explanation",
    "voi_lut_function",
    "image_orientation",
    "slice_thickness",
    "rescale_slope",
    "rescale_intercept",
)

_SHARED_SET = frozenset(_SHARED_VALUES)


def _series_stack(members: list[tuple[Header, PixelDesc]]) -> ImageStack:
    """Stack single-frame instances of one series.

    Per-series work is done with arrays (positions, order), and per-file values
    that repeat (spacings, windows, orientations, thicknesses, rescales) are
    converted once per distinct set of value objects (one look-up per file) and
    shared: a 1,000-file series costs a few milliseconds.
    """
    vals = [h.values for h, _ in members]
    proj = projections([v.get("image_position") for v in vals], [v.get("image_orientation") for v in vals])
    order = series_order(members, proj)
    members = [members[i] for i in order]
    proj = proj[order]
    vals = [vals[i] for i in order]
    h0, d0 = members[0]
    nbytes: dict[int, int] = {}
    refs: list[FrameRef] = []
    for h, d in members:  # (_single_native_ref, inline)
        ts = h.transfer_syntax
        if (
            ts in (EXPLICIT_LE, IMPLICIT_LE)
            and h.source is None
            and h.walked
            and h.deflated_offset < 0
            and d.bits_allocated != 1
        ):
            n = nbytes.get(id(d))
            if n is None:
                n = nbytes[id(d)] = int(d.native_frame_nbytes)
            refs.append(native_frame(h.path, 0, ts, h.pixel_offset, n))
        else:
            refs.append(_refs(h, d, 1)[0])
    # keyed by the identity of the shared value objects (the headers keep them alive)
    shared: dict[tuple[int, ...], tuple[Any, ...]] = {}
    # headers of one packed base whose varying values are none of _SHARED_VALUES share them
    by_base: dict[int, tuple[Any, ...]] = {}
    per_file = []
    for (h, _), v in zip(members, vals):
        pb = h.packed
        if pb is not None:
            got = by_base.get(id(pb))
            if got is not None:
                per_file.append(got)
                continue
        sig = tuple(map(id, map(v.get, _SHARED_VALUES)))
        got = shared.get(sig)
        if got is None:
            ps, ips, wc, ww, we, vf, ori, th = map(v.get, _SHARED_VALUES[:8])
            got = shared[sig] = (
                geometry.in_plane_spacing(ps, ips),
                _windows_of(v),
                _tuple(ori),
                (th or [None])[0],
                _rescale_of(v),
            )
        if pb is not None and not _SHARED_SET.intersection(pb[5]):
            by_base[id(pb)] = got
        per_file.append(got)
    ds0 = load_dataset(h0) if h0.needs_dataset else None
    transforms, dtype = _modality(h0, ds0, d0, [g[4] for g in per_file], refs[0])
    frames = [
        Frame(
            ref,
            d,
            t,
            tuple(pos) if (pos := v.get("image_position")) else None,
            g[2],
            g[0],
            g[1],
            v.get("instance_number"),
            h.sop_instance_uid,
            g[3],
        )
        for (h, d), ref, t, v, g in zip(members, refs, transforms, vals, per_file)
    ]
    fallback_spacing = (h0.values.get("spacing_between_slices") or h0.values.get("slice_thickness") or [None])[0]
    st = _finish(frames, d0, dtype, _info(h0), multiframe=False, fallback_spacing=fallback_spacing, projs=proj)
    return _with_voi_luts(st, ds0 if ds0 is not None else h0.dataset)


_MISSING: Any = object()


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


def _slice_spacing(dists: np.ndarray, fallback: float | None) -> tuple[float, bool]:
    """``geometry.slice_spacing`` of an array of distances, with the same arithmetic
    done by numpy (differences, absolute values, the median step, the 1 % test)."""
    steps = np.diff(dists)
    if len(dists) < 2 or not np.isfinite(steps).all():  # (sorting NaN differs: leave it to Python)
        return geometry.slice_spacing(dists.tolist(), fallback)
    a = np.abs(steps)
    med = float(np.sort(a)[len(a) // 2])
    if med <= 1e-6:
        return (fallback or 1.0), False
    return med, bool((np.abs(a - med) <= max(0.01 * med, 0.01)).all())


def _finish(
    frames: list[Frame],
    desc: PixelDesc,
    dtype: np.dtype,
    info: dict[str, Any],
    multiframe: bool,
    fallback_spacing: float | None = None,
    geometric: bool = True,
    projs: np.ndarray | None = None,
) -> ImageStack:
    """The stack of ``frames`` (in display order); ``projs``: their projections
    (:func:`projections`) when the caller has them."""
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
            if projs is None:
                projs = projections([f.position for f in frames], [f.orientation for f in frames])
            if not np.isnan(projs[:, 0]).any():
                dists = projs[:, 0]
        if dists is not None:
            spacing, uniform = _slice_spacing(dists, fallback_spacing)
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
