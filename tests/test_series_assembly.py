"""Series assembly: the vectorised order and geometry equal the per-file definition
(``geometry.project`` per file, sorted by position, InstanceNumber, file name, path)
on every corpus series, whatever order the files come in."""

from __future__ import annotations

import os
import random

import numpy as np

from napari_dcm.dicom import geometry
from napari_dcm.dicom.discovery import scan_paths
from napari_dcm.dicom.series import projections, stacks_from_headers
from napari_dcm.dicom.sources.file import file_frame_refs


def _reference_single_frame_order(headers) -> list[str]:
    """How single-frame instances were stacked before assembly was vectorised (file per file)."""

    def key(h):
        proj = geometry.project(h.values.get("image_position"), h.values.get("image_orientation"))
        inst = h.values.get("instance_number")
        return (
            0 if proj is not None else 1,
            proj[0] if proj is not None else 0.0,
            inst if inst is not None else 1 << 40,
            os.path.basename(h.path),
            h.path,
        )

    return [h.path for h in sorted(headers, key=key)]


def _reference_geometry(stack):
    """scale / translate / spacing from per-frame ``geometry.project`` (the definition)."""
    f0 = stack.frames[0]
    ps = f0.pixel_spacing or (1.0, 1.0)
    proj0 = geometry.project(f0.position, f0.orientation)
    if stack.nframes == 1:
        return (ps[0], ps[1]), ((proj0[1], proj0[2]) if proj0 else (0.0, 0.0))
    projs = [geometry.project(f.position, f.orientation) for f in stack.frames]
    return projs


def _summary(stacks):
    return sorted(
        (
            tuple((f.ref.path, f.ref.index) for f in s.frames),
            tuple(s.scale),
            tuple(s.translate),
            s.slice_spacing,
            s.spacing_uniform,
            tuple(s.shape),
            str(s.dtype),
            tuple(repr(f.transform) for f in s.frames),
        )
        for s in stacks
    )


def test_shuffled_corpus_assembles_like_the_per_file_definition(corpus):
    res = scan_paths([str(corpus)])
    by_path = {h.path: h for h in res.headers}
    stacks, skipped = stacks_from_headers(list(res.headers))
    assert len(stacks) > 100
    series = [s for s in stacks if not s.multiframe and s.nframes > 1]
    assert len(series) >= 8  # the corpus' CT/MR series
    for s in series:
        paths = [f.ref.path for f in s.frames]
        assert paths == _reference_single_frame_order([by_path[p] for p in paths]), paths[0]
        # each frame's reference is what the file source makes for that file
        for f in s.frames:
            assert f.ref == file_frame_refs(by_path[f.ref.path], f.desc, 1)[0]
    for s in stacks:
        projs = [geometry.project(f.position, f.orientation) for f in s.frames]
        vec = projections([f.position for f in s.frames], [f.orientation for f in s.frames])
        for p, v in zip(projs, vec):
            assert (p is None and np.isnan(v).all()) or (p is not None and tuple(v) == p)
        if s.multiframe and all(p is not None for p in projs):
            # Enhanced frames: by position along the normal, stable on the stored order
            keyed = [(p[0], f.ref.index) for p, f in zip(projs, s.frames)]
            assert keyed == sorted(keyed) or not s.multiframe
        if s.nframes > 1 and all(p is not None for p in projs) and (not s.multiframe or len(set(projs)) > 1):
            spacing, uniform = geometry.slice_spacing(
                [p[0] for p in projs], None if s.slice_spacing is None else s.slice_spacing
            )
            assert s.scale[0] == spacing and s.spacing_uniform == uniform
            assert tuple(s.translate) == projs[0]
    # any order of the same files gives the same stacks
    for seed in (1, 2, 3):
        shuffled = list(res.headers)
        random.Random(seed).shuffle(shuffled)
        again, skipped2 = stacks_from_headers(shuffled)
        assert _summary(again) == _summary(stacks)
        assert sorted(skipped2) == sorted(skipped)


def test_shuffled_file_names_stack_by_position(tmp_path):
    from synth import write_ct_series

    folder = write_ct_series(tmp_path / "ct", n=40, rows=32, cols=32, shuffle_names=True)
    res = scan_paths([str(folder)])
    (stack,), _ = stacks_from_headers(res.headers)
    z = [f.position[2] for f in stack.frames]
    assert z == sorted(z)
    assert [f.ref.path for f in stack.frames] == _reference_single_frame_order(res.headers)
    for seed in range(3):
        hs = list(res.headers)
        random.Random(seed).shuffle(hs)
        (again,), _ = stacks_from_headers(hs)
        assert [f.ref.path for f in again.frames] == [f.ref.path for f in stack.frames]
        assert again.scale == stack.scale and again.translate == stack.translate


def test_equal_pixel_modules_share_one_descriptor_and_rescale(tmp_path):
    from synth import write_small_files

    folder = write_small_files(tmp_path / "many", 300, per_series=100)
    stacks, _ = stacks_from_headers(scan_paths([str(folder)]).headers)
    assert len(stacks) == 3
    for s in stacks:
        assert len({id(f.desc) for f in s.frames}) == 1
        assert len({id(f.transform) for f in s.frames}) == 1
        assert len({id(f.windows) for f in s.frames}) == 1
