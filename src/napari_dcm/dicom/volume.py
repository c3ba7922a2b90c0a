"""Lazy volumes: an ImageStack as a dask array, one chunk per frame.

The graph's tasks hold FrameRefs (paths and byte offsets) and small
descriptors, never open files, so the array pickles and computes on
``dask.distributed`` workers.  Nothing is read until a chunk is computed.

Every array made here has a :class:`FrameTable` (found with
:func:`frame_table`): the same per-frame work as its chunks, callable one frame
at a time, which is what read-ahead (:mod:`.readahead`) uses to decode frames
into the cache before napari asks for them.

Reduced resolution (:func:`pyramid`): a stack of large JPEG 2000 / HTJ2K
monochrome frames is offered as a multiscale list (full, 1/2, 1/4, ...) whose
reduced levels are decoded by OpenJPEG at that resolution (it skips the finest
wavelet levels, so a half-size frame costs about a quarter of a full decode).
napari shows the level that matches the screen.  Other syntaxes stay single
scale, because none has a cheaper way to a smaller picture: JPEG-LS, RLE and
deflate must decode every pixel before any could be dropped, and an
uncompressed frame is a single read that is already cheaper than any
subsampling (the screen's texture is napari's business).  JPEG baseline could
use DCT scaling (libjpeg's ``scale_denom``) but no Python binding exposes it
and large JPEG images are rare in the DBT/mammography workflows this serves.
"""

from __future__ import annotations

import collections
import hashlib
import operator
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .decode import load_frame, load_frame_level
from .series import ImageStack
from .sources.file import NativeFrame

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

    import dask.array
    from dask.typing import Key

    from .imagepixel import PixelDesc
    from .sources import FrameRef

    Transform = Callable[[np.ndarray], np.ndarray] | None

# multiscale: frames at least this large (rows or columns) get reduced levels,
# down to a smallest level of at least MULTISCALE_SMALLEST pixels on its larger side
MULTISCALE_MIN = 1024
MULTISCALE_SMALLEST = 256
MULTISCALE_ENV = "NAPARI_DCM_MULTISCALE"  # "0": never offer reduced levels


def _load_chunk(
    ref: FrameRef, desc: PixelDesc, transform: Transform, shape: tuple[int, ...], dtype: str, strict: bool
) -> np.ndarray:
    return load_frame(ref, desc, transform, shape, dtype, strict)[None]


def _load_chunk_2d(
    ref: FrameRef, desc: PixelDesc, transform: Transform, shape: tuple[int, ...], dtype: str, strict: bool
) -> np.ndarray:
    return load_frame(ref, desc, transform, shape, dtype, strict)


def _load_level_chunk_2d(
    ref: FrameRef,
    desc: PixelDesc,
    transform: Transform,
    shape: tuple[int, ...],
    dtype: str,
    strict: bool,
    level: int,
) -> np.ndarray:
    return load_frame_level(ref, desc, transform, shape, dtype, strict, level)


def _load_level_chunk(
    ref: FrameRef,
    desc: PixelDesc,
    transform: Transform,
    shape: tuple[int, ...],
    dtype: str,
    strict: bool,
    level: int,
) -> np.ndarray:
    return load_frame_level(ref, desc, transform, shape, dtype, strict, level)[None]


@dataclass(frozen=True, eq=False)
class FrameTable:
    """The frames of one lazy array: what its chunk ``k`` computes, one frame at a time."""

    refs: Sequence[FrameRef]
    descs: Sequence[PixelDesc]
    transforms: Sequence[Transform]
    shape: tuple[int, ...]  # of one frame at this level
    dtype: str
    strict: bool
    level: int = 0

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def frame_nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def key(self, k: int) -> Hashable:
        """The decoded-frame cache key of frame ``k`` (as the chunk's task uses it)."""
        if self.level:
            return (self.refs[k], self.transforms[k], self.level)
        return (self.refs[k], self.transforms[k])

    def load(self, k: int, strict: bool | None = None) -> np.ndarray:
        """Decode frame ``k`` into the cache (or take it from there) exactly as its chunk does."""
        s = self.strict if strict is None else strict
        return load_frame_level(self.refs[k], self.descs[k], self.transforms[k], self.shape, self.dtype, s, self.level)


# array name -> its table.  Strong references to the most recent tables: a table
# is a few lists that share their items with the array's graph (refs, descs).
_TABLES: collections.OrderedDict[str, FrameTable] = collections.OrderedDict()
_TABLES_MAX = 1024
_tables_lock = threading.Lock()


def _register(name: str, table: FrameTable) -> None:
    with _tables_lock:
        _TABLES[name] = table
        _TABLES.move_to_end(name)
        while len(_TABLES) > _TABLES_MAX:
            _TABLES.popitem(last=False)


def frame_table(array: Any) -> FrameTable | None:
    """The FrameTable of a dask array made by :func:`stack_array` (None for any other array)."""
    name = getattr(array, "name", None)
    if not isinstance(name, str):
        return None
    with _tables_lock:
        return _TABLES.get(name)


def _token(stack: ImageStack, shape: tuple[int, ...], dtype: np.dtype, strict: bool, level: int) -> str:
    from dask.base import tokenize

    # what a frame is: its file, stored index and where its bytes start; its transform
    # (one entry per distinct transform object, frames share them).  Columns, not a
    # text per frame: the paths joined, the numbers as arrays.
    frames = stack.frames
    refs = list(map(_ref_of, frames))
    transforms = list(map(_transform_of, frames))
    distinct = {id(t): t for t in transforms}  # first appearance order
    tindex = {k: i for i, k in enumerate(distinct)}
    tnames = [repr(t) if t is None or hasattr(t, "slope") else f"{type(t).__name__}@{id(t)}" for t in distinct.values()]
    h = hashlib.sha1()
    if all(type(r) is NativeFrame for r in refs):
        h.update(b"NativeFrame\0")
        h.update("\0".join(map(_path_of, refs)).encode("utf-8", "surrogateescape"))
        h.update(np.fromiter(map(_index_of, refs), np.int64, len(refs)).tobytes())
        h.update(np.fromiter(map(_start_of, refs), np.int64, len(refs)).tobytes())
    else:
        parts = [
            f"{type(r).__name__}\0{r.path}\0{r.index}\0{getattr(r, 'start', '')}\0{getattr(r, 'ranges', '')}"
            for r in refs
        ]
        h.update("\n".join(parts).encode("utf-8", "surrogateescape"))
    h.update(np.fromiter(map(tindex.__getitem__, map(id, transforms)), np.int64, len(refs)).tobytes())
    h.update("\n".join(tnames).encode())
    return tokenize(h.hexdigest(), repr(frames[0].ref), frames[0].desc, shape, dtype.str, strict, level)


_ref_of = operator.attrgetter("ref")
_desc_of = operator.attrgetter("desc")
_transform_of = operator.attrgetter("transform")
_path_of = operator.attrgetter("path")
_index_of = operator.attrgetter("index")
_start_of = operator.attrgetter("start")


def stack_array(stack: ImageStack, strict: bool = False, force_3d: bool = False, level: int = 0) -> dask.array.Array:
    """A dask array (frames, rows, cols[, 3]) for ``stack``; 2D for one frame
    unless ``force_3d``.  ``level`` > 0: the frames at 1/2^level resolution
    (JPEG 2000 / HTJ2K only, see :func:`pyramid`)."""
    # imported before the collector is paused: dask's ``disable_gc`` (on ``slice_array``)
    # records at import whether collection was on, and would turn it off for good after
    import dask.array  # noqa: F401
    from dask.highlevelgraph import HighLevelGraph  # noqa: F401

    from .openjpeg import reduced_shape  # noqa: F401
    from .series import paused_gc

    with paused_gc():
        return _stack_array(stack, strict, force_3d, level)


def _stack_array(stack: ImageStack, strict: bool, force_3d: bool, level: int) -> dask.array.Array:
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    from .openjpeg import reduced_shape

    shape = tuple(stack.shape)
    if level:
        shape = reduced_shape(shape[0], shape[1], level) + shape[2:]
    dtype = np.dtype(stack.dtype)
    n = stack.nframes
    name = f"dicom-frames-{_token(stack, shape, dtype, strict, level)}"
    zeros = (0,) * len(shape)
    frames = stack.frames
    if n == 1 and not force_3d:
        f = frames[0]
        task = (
            (_load_level_chunk_2d, f.ref, f.desc, f.transform, shape, dtype.str, strict, level)
            if level
            else (_load_chunk_2d, f.ref, f.desc, f.transform, shape, dtype.str, strict)
        )
        dsk: dict[Key, Any] = {(name, *zeros): task}
        chunks: tuple[tuple[int, ...], ...] = tuple((s,) for s in shape)
    elif level:
        dsk = {
            (name, i, *zeros): (_load_level_chunk, f.ref, f.desc, f.transform, shape, dtype.str, strict, level)
            for i, f in enumerate(frames)
        }
        chunks = ((1,) * n,) + tuple((s,) for s in shape)
    else:
        dts = dtype.str
        dsk = {
            (name, i, *zeros): (_load_chunk, r, d, t, shape, dts, strict)
            for i, (r, d, t) in enumerate(zip(map(_ref_of, frames), map(_desc_of, frames), map(_transform_of, frames)))
        }
        chunks = ((1,) * n,) + tuple((s,) for s in shape)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    arr = da.Array(graph, name, chunks, dtype=dtype)  # type: ignore[no-untyped-call]  # dask.array.Array has no annotations
    table = FrameTable(
        refs=list(map(_ref_of, frames)),
        descs=list(map(_desc_of, frames)),
        transforms=list(map(_transform_of, frames)),
        shape=shape,
        dtype=dtype.str,
        strict=strict,
        level=level,
    )
    _register(name, table)
    return arr


# --------------------------------------------------------------------------
# reduced resolution


def multiscale_enabled() -> bool:
    """Reduced levels are offered unless ``NAPARI_DCM_MULTISCALE=0``."""
    return os.environ.get(MULTISCALE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def resolution_levels(stack: ImageStack) -> int:
    """How many reduced levels (1/2, 1/4, ...) to offer for ``stack``: 0 for single scale.

    Only for monochrome JPEG 2000 / HTJ2K frames of at least ``MULTISCALE_MIN``
    pixels on a side, read from local files (the codestream's decomposition
    levels are read from the first frame's header), and only when OpenJPEG's
    library is found.  Levels stop before the larger side falls under
    ``MULTISCALE_SMALLEST`` (napari draws the smallest level as the thumbnail).
    """
    from . import codecs, openjpeg

    if not multiscale_enabled() or stack.rgb or not stack.frames:
        return 0
    f0 = stack.frames[0]
    d = f0.desc
    if d.samples_per_pixel != 1 or d.pixel_keyword != "PixelData" or d.bits_allocated not in (8, 16):
        return 0
    if max(d.rows, d.columns) < MULTISCALE_MIN:
        return 0
    if any(f.desc.transfer_syntax not in codecs.JPEG2000_SYNTAXES for f in stack.frames):
        return 0
    head_of = getattr(f0.ref, "head", None)
    if head_of is None:
        return 0  # e.g. DICOMweb: the codestream is unknown until a frame arrives
    if getattr(f0.ref, "decode_desc", None) is not None:
        return 0  # decoded on a cluster worker (remote decode): the bytes that arrive are pixels
    if not openjpeg.available():
        return 0
    try:
        nl = codecs.j2k_decomposition_levels(head_of())
    except (OSError, ValueError, EOFError):
        return 0
    if not nl:
        return 0
    levels = 0
    while levels < nl and max(d.rows, d.columns) >> (levels + 1) >= MULTISCALE_SMALLEST:
        levels += 1
    return levels


def pyramid(stack: ImageStack, strict: bool = False) -> list[dask.array.Array] | None:
    """The multiscale levels of ``stack`` (full resolution first), or None when it
    stays single scale (see :func:`resolution_levels`)."""
    n = resolution_levels(stack)
    if not n:
        return None
    return [stack_array(stack, strict=strict, level=lv) for lv in range(n + 1)]
