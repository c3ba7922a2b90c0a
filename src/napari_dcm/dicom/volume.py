"""Lazy volumes: an ImageStack as a dask array, one chunk per frame.

The graph's tasks hold FrameRefs (paths and byte offsets) and small
descriptors, never open files, so the array pickles and computes on
``dask.distributed`` workers.  Nothing is read until a chunk is computed.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from .decode import load_frame
from .series import ImageStack

if TYPE_CHECKING:
    from collections.abc import Callable

    import dask.array
    from dask.typing import Key

    from .imagepixel import PixelDesc
    from .sources import FrameRef

    Transform = Callable[[np.ndarray], np.ndarray] | None


def _load_chunk(
    ref: FrameRef, desc: PixelDesc, transform: Transform, shape: tuple[int, ...], dtype: str, strict: bool
) -> np.ndarray:
    return load_frame(ref, desc, transform, shape, dtype, strict)[None]


def _load_chunk_2d(
    ref: FrameRef, desc: PixelDesc, transform: Transform, shape: tuple[int, ...], dtype: str, strict: bool
) -> np.ndarray:
    return load_frame(ref, desc, transform, shape, dtype, strict)


def stack_array(stack: ImageStack, strict: bool = False, force_3d: bool = False) -> dask.array.Array:
    """A dask array (frames, rows, cols[, 3]) for ``stack``; 2D for one frame
    unless ``force_3d``."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    shape = tuple(stack.shape)
    dtype = np.dtype(stack.dtype)
    n = stack.nframes
    h = hashlib.sha1()
    for f in stack.frames:
        r = f.ref
        t = f.transform
        h.update(f"{r!r}\0{id(t) if t is not None and not hasattr(t, 'slope') else t}\n".encode())
    token = tokenize(h.hexdigest(), stack.frames[0].desc, shape, dtype.str, strict)
    name = f"dicom-frames-{token}"
    zeros = (0,) * len(shape)
    if n == 1 and not force_3d:
        f = stack.frames[0]
        dsk: dict[Key, Any] = {(name, *zeros): (_load_chunk_2d, f.ref, f.desc, f.transform, shape, dtype.str, strict)}
        chunks: tuple[tuple[int, ...], ...] = tuple((s,) for s in shape)
    else:
        dsk = {
            (name, i, *zeros): (_load_chunk, f.ref, f.desc, f.transform, shape, dtype.str, strict)
            for i, f in enumerate(stack.frames)
        }
        chunks = ((1,) * n,) + tuple((s,) for s in shape)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks, dtype=dtype)  # type: ignore[no-untyped-call]  # dask.array.Array has no annotations
