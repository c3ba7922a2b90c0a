"""Overlay layers: GSPS graphics, CAD SR marks, SR regions, SEG labels, parametric maps.

Builds napari layer-data tuples (no napari import) attached to the image
tuples they reference: same scale and translate, placed on the referenced
display frames, ``metadata["napari_dcm_overlay_of"]`` naming the image (so the
mammography grid keeps them in the image's cell).
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np

from ..dicom import overlays as ov
from ..dicom import segmentation
from . import keys
from .data import LayerData

log = logging.getLogger("napari_dcm")
OVERLAY = keys.OVERLAY
OF = keys.OVERLAY_OF
SR_KEY = keys.SR_DOCUMENT


def read_object(path: str):
    """The whole pydicom dataset of a (small, pixel-free) presentation state or report."""
    from ..dicom.scan import read_dataset  # bounded: refuses FIFOs, never inflates a whole deflated file
    from ..dicom.tags import header_source

    remote = header_source(path)  # a file on a dask worker (napari_dcm.dicom.cluster)
    if remote is not None:
        return remote(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_dataset(path, stop_before_pixels=False)


class ImageIndex:
    """SOP Instance UID -> (image tuple, display frames by 1-based frame number)."""

    def __init__(self, tuples: list):
        self.tuples = [t for t in (LayerData.of(x) for x in tuples) if t.is_image]
        self.by_uid: dict = {}
        for t in self.tuples:
            md = t.metadata
            for d, (uid, stored) in enumerate(zip(md.get("sop_instance_uids", []), md["display_to_stored"])):
                if uid:
                    self.by_uid.setdefault(uid, (t, {}))[1][stored + 1] = d

    def place(self, uid: str, frames):
        """(image tuple, display frames) of a reference, or None."""
        hit = self.by_uid.get(uid)
        if hit is None:
            return None
        t, by_frame = hit
        if frames:
            return t, sorted({by_frame[f] for f in frames if f in by_frame})
        return t, sorted(by_frame.values())


def _rgba(hex_color: str, alpha: float) -> list:
    h = hex_color.lstrip("#")
    return [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)] + [alpha]


def _verts(points, d, ndim):
    v = np.array([[y - 0.5, x - 0.5] for x, y in points], dtype=float)
    if ndim == 3:
        v = np.column_stack([np.full(len(v), float(d)), v])
    return v


def _shape_kwargs(image_kw, ndim, name, kind, source, n, **extra):
    kw = {
        "name": name,
        "ndim": ndim,
        "scale": tuple(image_kw["scale"])[-ndim:],
        "translate": tuple(image_kw["translate"])[-ndim:],
        "metadata": {OF: image_kw["name"], OVERLAY: {"kind": kind, "source": source}},
    }
    if image_kw.get("units"):
        kw["units"] = tuple(image_kw["units"])[-ndim:]
    kw.update(extra)
    return kw


def graphics_layers(
    index: ImageIndex, graphics, source: str, kind: str, title: str, color: str = "#00e5ff", visible=True
):
    """Shapes (and text points) layers for graphics, one pair per referenced image."""
    by_image: dict = {}
    unplaced = 0
    for g in graphics:
        hit = index.place(g.sop_uid, g.frames)
        if hit is None:
            unplaced += 1
            continue
        t, displays = hit
        by_image.setdefault(id(t), (t, []))[1].append((g, displays))
    out = []
    for t, items in by_image.values():
        ndim = t.spatial_ndim
        shapes, types, labels, pts, texts, faces = [], [], [], [], [], []
        rows = t.frame_shape[0]
        for g, displays in items:
            for d in displays if ndim == 3 else [0]:
                if g.kind == "text":
                    pts.append(_verts(g.points, d, ndim)[0])
                    texts.append(g.text)
                elif g.kind == "point":
                    for p in g.points:
                        r = max(2.0, rows / 150)
                        circ = ov.ellipse_outline(
                            (p[0] - r, p[1]), (p[0] + r, p[1]), (p[0], p[1] - r), (p[0], p[1] + r), n=24
                        )
                        shapes.append(_verts(circ, d, ndim))
                        types.append("polygon")
                        labels.append(g.text or g.layer)
                        faces.append(g.filled)
                else:
                    shapes.append(_verts(g.points, d, ndim))
                    types.append("path" if g.kind == "polyline" else "polygon")
                    labels.append(g.text or g.layer)
                    faces.append(g.filled and g.kind != "polyline")
        name = f"{t.name} · {title}"
        if shapes:
            fill = _rgba(color, 0.35)
            kw = _shape_kwargs(
                t.kwargs,
                ndim,
                name,
                kind,
                source,
                len(shapes),
                shape_type=types,
                edge_color=color,
                face_color=[fill if f else [0, 0, 0, 0] for f in faces],
                edge_width=max(1.0, rows / 400),
                features={"label": labels},
                visible=visible,
                opacity=1.0,
            )
            if any(labels):
                kw["text"] = {"string": "{label}", "color": color, "anchor": "upper_left", "size": 10}
            out.append(LayerData(shapes, kw, "shapes"))
        if pts:
            kw = _shape_kwargs(
                t.kwargs,
                ndim,
                f"{name} · text",
                kind,
                source,
                len(pts),
                size=max(2.0, rows / 200),
                face_color=color,
                border_width=0,
                features={"text": texts},
                text={"string": "{text}", "color": color, "anchor": "upper_left", "size": 10},
                visible=visible,
                opacity=1.0,
            )
            out.append(LayerData(np.array(pts), kw, "points"))
    return out, unplaced


# --------------------------------------------------------------------------


def gsps_layers(index: ImageIndex, path: str):
    ds = read_object(path)
    first = None
    for uid, _ in ov._refs_of(ds):
        hit = index.place(uid, None)
        if hit is not None:
            first = hit[0]
            break
    rows = cols = None
    if first is not None:
        rows, cols = first.frame_shape
    ann = ov.parse_gsps(ds, rows, cols)
    label = ann.label or os.path.basename(path)
    layers, unplaced = graphics_layers(index, ann.graphics, path, "gsps", f"GSPS {label}", "#00e5ff")
    # the presentation state's window becomes a preset of the images it references
    attached = 0
    for uid in set(ann.references) | {g.sop_uid for g in ann.graphics}:
        hit = index.place(uid, None)
        if hit is None:
            continue
        attached += 1
        md = hit[0].metadata
        for c, w, expl in ann.windows:
            entry = {"center": c, "width": w, "explanation": expl or f"GSPS {label}", "function": "LINEAR"}
            if entry not in md["windows"]:
                md["windows"].append(entry)
    planes, problems = gsps_plane_layers(index, ds, path, f"GSPS {label}")
    layers += planes
    shown, more = gsps_display_layers(index, ds, path, f"GSPS {label}")
    layers += shown
    for msg in problems + more:
        log.warning("%s: %s", path, msg)
        _PROBLEMS.append((path, msg))
    return layers, attached > 0


_PROBLEMS: list[tuple[str, str]] = []  # display problems of the objects being read (see overlay_tuples)


def cad_layers(index: ImageIndex, path: str):
    ds = read_object(path)
    findings = ov.parse_cad_sr(ds)
    req, opt = [], []
    for f in findings:
        for g in f.graphics:
            g.text = f.label()
        (req if f.required else opt).extend(f.graphics)
    name = str(ds.get("SeriesDescription", "") or "CAD")
    title = name if "CAD" in name.upper() else f"CAD {name}"
    a, _ = graphics_layers(index, req, path, "cad_sr", title, "#ff3b30")
    b, _ = graphics_layers(index, opt, path, "cad_sr_optional", f"{title} (optional)", "#ff9f0a", visible=False)
    for t in b:
        t.metadata[OVERLAY]["optional"] = True
    return a + b, bool(a or b)


def sr_layers(index: ImageIndex, path: str):
    ds = read_object(path)
    root = ov.parse_sr(ds)
    regions = [g for g, _ in ov.sr_regions(root)]
    title = root.concept or "SR"
    layers, _ = graphics_layers(index, regions, path, "sr", f"SR {title}", "#34c759")
    layers += sr3d_layers(index, root, path, title)
    return layers, root


def sr3d_layers(index: ImageIndex, root, path: str, title: str):
    """SCOORD3D regions drawn on the slices of images in their frame of reference."""
    from ..dicom import geometry

    graphics_by_image: dict = {}
    for node, _ in ov.walk(root):
        if node.scoord3d is None:
            continue
        gtype, pts, for_uid = node.scoord3d
        for t in index.tuples:
            md = t.metadata
            if for_uid and md.get("frame_of_reference_uid") != for_uid:
                continue
            ori = md.get("image_orientation")
            if not ori or t.spatial_ndim != 3:
                continue
            scale, translate = t.kwargs["scale"], t.kwargs["translate"]
            proj = [geometry.project(p, ori) for p in pts]
            if any(p is None for p in proj):
                continue
            # world (along normal, along columns, along rows) -> data (frame, row, col)
            data_pts = [
                ((p[0] - translate[0]) / scale[0], (p[1] - translate[1]) / scale[1], (p[2] - translate[2]) / scale[2])
                for p in proj
            ]
            d = int(round(np.mean([q[0] for q in data_pts])))
            if not 0 <= d < t.data.shape[0]:
                continue
            outline = [(q[2] + 0.5, q[1] + 0.5) for q in data_pts]
            kind = (
                "point"
                if gtype == "POINT"
                else "polygon"
                if gtype in ("POLYGON", "ELLIPSE", "ELLIPSOID")
                else "polyline"
            )
            graphics_by_image.setdefault(id(t), (t, []))[1].append(
                (ov.Graphic(kind, outline, False, node.concept), [d])
            )
    out = []
    for t, items in graphics_by_image.values():
        shapes = [_verts(g.points, d, 3) for g, ds_ in items for d in ds_ if g.kind != "point"]
        if shapes:
            kw = _shape_kwargs(
                t.kwargs,
                3,
                f"{t.name} · SR3D {title}",
                "sr",
                path,
                len(shapes),
                shape_type=["polygon"] * len(shapes),
                edge_color="#34c759",
                face_color="transparent",
                features={"label": [g.text for g, ds_ in items for d in ds_ if g.kind != "point"]},
            )
            out.append(LayerData(shapes, kw, "shapes"))
    return out


# --------------------------------------------------------------------------
# pixel overlays: SEG and parametric maps


def seg_layers(index: ImageIndex, path: str):
    seg = segmentation.read_segmentation(path)
    placed: dict = {}
    for fr in seg.frames:
        hit = index.place(fr.source_uid, [fr.source_frame] if fr.source_frame else None) if fr.source_uid else None
        if hit is not None:
            t, displays = hit
            placed.setdefault(id(t), (t, []))[1].append((displays, fr.mask, fr.values))
    out = []
    colors: dict = {0: "transparent"}
    colors.update({n: (*s.color, 1.0) for n, s in seg.segments.items() if s.color is not None})
    names = seg.names
    for t, items in placed.values():
        ndim = t.spatial_ndim
        shape = t.data.shape[:ndim]
        lab = np.zeros(shape, np.uint16)
        for displays, mask, values in items:
            for d in displays if ndim == 3 else [None]:
                target = lab[d] if d is not None else lab
                target[mask] = values[mask]
        kw = _shape_kwargs(t.kwargs, ndim, f"{t.name} · {seg.title}", "seg", path, 0, opacity=0.5)
        kw["metadata"][OVERLAY]["segments"] = names
        if len(colors) > 1:
            kw["colormap"] = _label_colormap(colors)
        out.append(LayerData(lab, kw, "labels"))
    if not out:  # references not loaded: the segmentation on its own
        own = seg.labels
        kw = {
            "name": f"{seg.title} ({os.path.basename(path)})",
            "opacity": 0.7,
            "metadata": {OVERLAY: {"kind": "seg", "source": path, "segments": names, "standalone": True}},
        }
        if len(colors) > 1:
            kw["colormap"] = _label_colormap(colors)
        out.append(LayerData(own if own.shape[0] > 1 else own[0], kw, "labels"))
    return out, bool(placed)


def _label_colormap(colors: dict) -> dict:
    """A label -> RGBA dict napari's Labels takes as ``colormap`` (None: any other label)."""
    out = {k: (list(v) if not isinstance(v, str) else v) for k, v in colors.items()}
    out[None] = [0.9, 0.9, 0.2, 1.0]
    return out


def pm_layers(index: ImageIndex, path: str):
    pm = segmentation.read_parametric_map(path)
    placed: dict = {}
    for i, (uid, fr) in enumerate(pm.sources):
        hit = index.place(uid, [fr] if fr else None) if uid else None
        if hit is not None:
            t, displays = hit
            placed.setdefault(id(t), (t, []))[1].append((displays, pm.values[i]))
    out = []
    for t, items in placed.values():
        ndim = t.spatial_ndim
        shape = t.data.shape[:ndim]
        vol = np.full(shape, np.nan, np.float32)
        for displays, f in items:
            if f.shape != shape[-2:]:
                continue
            for d in displays if ndim == 3 else [None]:
                if d is None:
                    vol[...] = f
                else:
                    vol[d] = f
        kw = _shape_kwargs(
            t.kwargs,
            ndim,
            f"{t.name} · {pm.title}",
            "pm",
            path,
            0,
            colormap="magma",
            opacity=0.6,
            blending="translucent",
            contrast_limits=pm.limits,
        )
        kw["metadata"][OVERLAY]["units"] = pm.units
        out.append(LayerData(vol, kw, "image"))
    if not out:
        kw = {
            "name": f"{pm.title} ({os.path.basename(path)})",
            "colormap": "magma",
            "contrast_limits": pm.limits,
            "metadata": {OVERLAY: {"kind": "pm", "source": path, "units": pm.units, "standalone": True}},
        }
        out.append(LayerData(pm.values if pm.values.shape[0] > 1 else pm.values[0], kw, "image"))
    return out, bool(placed)


def overlay_tuples(image_tuples: list, overlay_headers: list, problems: list | None = None) -> tuple[list, list]:
    """Layers for the overlay objects; returns (layers, report [(path, message)]).

    ``problems`` collects (path, message) for parts of objects that cannot be shown
    (a malformed shutter, overlay plane or LUT) while the rest is."""
    index = ImageIndex(image_tuples)
    out, report = [], []
    _PROBLEMS.clear()
    for h in overlay_headers:
        kind = ov.kind_of(h.sop_class_uid)
        try:
            if kind == "gsps":
                layers, ok = gsps_layers(index, h.path)
                if not ok:
                    report.append((h.path, "presentation state: its images are not loaded"))
            elif kind == "cad_sr":
                layers, ok = cad_layers(index, h.path)
                if not ok:
                    report.append((h.path, "CAD SR: its images are not loaded"))
                layers += _sr_document(h.path, index, "cad_sr")
            elif kind == "sr":
                layers, root = sr_layers(index, h.path)
                layers += _sr_document(h.path, index, "sr", root)
            elif kind == "seg":
                layers, ok = seg_layers(index, h.path)
                if not ok:
                    report.append((h.path, "segmentation shown on its own: its source images are not loaded"))
            elif kind == "pm":
                layers, ok = pm_layers(index, h.path)
                if not ok:
                    report.append((h.path, "parametric map shown on its own: its source images are not loaded"))
            else:
                report.append((h.path, f"{kind or 'object'} not displayed"))
                continue
        except Exception as exc:  # one odd object must not stop the rest
            log.debug("overlay failed for %s", h.path, exc_info=True)
            report.append((h.path, f"{kind}: {type(exc).__name__}: {exc}"))
            continue
        out += layers
    if problems is not None:
        problems += _PROBLEMS
    _PROBLEMS.clear()
    apply_spatial_transforms(list(image_tuples) + out)
    return out, report


def _sr_document(path: str, index: ImageIndex, kind: str, root=None):
    """An (empty) shapes layer standing for the SR document, for the SR dock and scripts."""
    if root is None:
        root = ov.parse_sr(read_object(path))
    name = f"SR: {root.concept or os.path.basename(path)}"
    return [
        LayerData(
            [],
            {
                "name": name,
                "ndim": 2,
                "metadata": {SR_KEY: path, OVERLAY: {"kind": kind, "source": path, "document": True}},
            },
            "shapes",
        )
    ]


# --------------------------------------------------------------------------
# 60xx overlay planes: lazy labels layers on the image's pixel grid

PLANE_COLOR = [1.0, 0.25, 1.0, 1.0]  # magenta: apart from labels (yellow), GSPS (cyan), CAD (red)


def _plane_chunk(path: str, group: int, stored: int, ref, desc, shape, plane=None, lead: bool = False):
    """One display frame of an overlay plane (the dask task): uint8 0/1 on the image grid.

    ``plane``: the plane itself (a presentation state's); else read from ``path``'s
    header (cached).  A plane that cannot be drawn gives zeros and one log line."""
    from ..dicom import overlay_planes as op

    try:
        p = plane if plane is not None else op.plane_of(path, group)
        m = np.zeros(shape, np.uint8) if p is None else op.frame_mask(p, stored, shape, ref, desc)
    except Exception as exc:  # a malformed plane must never stop the image
        _report_plane(path, group, exc)
        m = np.zeros(shape, np.uint8)
    return m[None] if lead else m


_reported: set = set()


def _report_plane(path: str, group: int, exc: Exception) -> None:
    key = (path, group)
    if key not in _reported:
        _reported.add(key)
        log.warning("%s: overlay %04X not drawn: %s", path, group, exc)


def plane_array(frames: list, shape: tuple[int, int], group: int, plane=None, only: set | None = None):
    """A dask array of a plane over an image's display frames: ``frames`` is
    [(path, stored frame index, frame ref, pixel desc)] per display frame (2D for one
    frame); ``only``: display frames the plane applies to (others are zeros, never read)."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    n = len(frames)
    name = f"dicom-overlay-{tokenize([(f[0], f[1]) for f in frames], shape, group, plane)}"
    if n == 1:
        path, stored, ref, desc = frames[0]
        dsk = {(name, 0, 0): (_plane_chunk, path, group, stored, ref, desc, shape, plane, False)}
        chunks: tuple = ((shape[0],), (shape[1],))
    else:
        dsk = {}
        for i, (path, stored, ref, desc) in enumerate(frames):
            if only is not None and i not in only:
                dsk[(name, i, 0, 0)] = (np.zeros, (1, *shape), np.uint8)
            else:
                dsk[(name, i, 0, 0)] = (_plane_chunk, path, group, stored, ref, desc, shape, plane, True)
        chunks = ((1,) * n, (shape[0],), (shape[1],))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks, dtype=np.uint8)


def _plane_kwargs(image: LayerData, group: int, source: str, extra_name: str = "", **meta) -> dict:
    ndim = image.spatial_ndim
    kw = _shape_kwargs(
        image.kwargs,
        ndim,
        f"{image.name} · overlay {group:04X}{extra_name}",
        "overlay_plane",
        source,
        0,
        opacity=0.9,
        colormap={0: "transparent", 1: PLANE_COLOR, None: PLANE_COLOR},
    )
    kw.pop("ndim", None)  # labels take their dimensions from the data
    kw["metadata"][OVERLAY].update({"group": group, **meta})
    return kw


def overlay_plane_tuples(stacks: list, image_tuples: list) -> tuple[list[LayerData], list[tuple[str, str]]]:
    """Labels layers for the 60xx overlay planes of the images (one per plane, after
    its image, nonzero where the bitmap is set); returns (layers, [(path, problem)])."""
    from ..dicom import overlay_planes as op

    out: list[LayerData] = []
    notes: list[tuple[str, str]] = []
    for stack, t in zip(stacks, image_tuples):
        t = LayerData.of(t)
        groups = stack.info.get("overlay_groups")
        if not groups or not t.is_image or t.rgb:
            continue
        path0 = stack.frames[0].ref.path
        try:
            planes, problems = op.planes_listed(path0)
        except Exception as exc:
            notes.append((path0, f"overlay planes not readable: {type(exc).__name__}: {exc}"))
            continue
        notes += [(path0, reason) for _, reason in problems]
        frames = [(f.ref.path, f.ref.index, f.ref, f.desc) for f in stack.frames]
        shape = (int(stack.shape[0]), int(stack.shape[1]))
        for p in planes:
            if p.embedded and stack.frames[0].desc.transfer_syntax not in _native_syntaxes():
                notes.append((path0, f"{p.name}: embedded in compressed pixel data, not drawn"))
                continue
            data = plane_array(frames, shape, p.group)
            kw = _plane_kwargs(
                t,
                p.group,
                path0,
                description=p.description or p.label,
                type=p.type,
                embedded=p.embedded,
            )
            out.append(LayerData(data, kw, "labels"))
    return out, notes


def _native_syntaxes() -> set:
    from ..dicom.scan import NATIVE_SYNTAXES

    return set(NATIVE_SYNTAXES)


def gsps_plane_layers(index: ImageIndex, ds, path: str, label: str) -> tuple[list[LayerData], list[str]]:
    """A presentation state's own overlay planes (with Overlay Data) that it activates,
    on the images (and frames) it references; returns (layers, problems)."""
    from ..dicom import overlay_planes as op

    activated = op.activated_groups(ds)
    planes, problems = op.planes_from_dataset(ds)
    notes = [reason for g, reason in problems if g in activated]
    out = []
    for p in planes:
        if p.group not in activated or p.embedded:
            continue  # not shown, or the image's own plane (drawn with the image)
        for uid, frames in ov._refs_of(ds):
            hit = index.place(uid, frames)
            if hit is None:
                continue
            t, displays = hit
            md = t.metadata
            ndim = t.spatial_ndim
            rows, cols = t.frame_shape
            n = int(t.data.shape[0]) if ndim == 3 else 1
            # a single-frame plane of a presentation state applies to every frame it references
            all_frames = [
                (md["frame_paths"][d], md["display_to_stored"][d] if p.n_frames > 1 else 0, None, None)
                for d in range(n)
            ]
            data = plane_array(all_frames, (rows, cols), p.group, plane=p, only=set(displays) if ndim == 3 else None)
            kw = _plane_kwargs(
                t,
                p.group,
                path,
                f" ({label})",
                description=p.description or p.label,
                activation_layer=p.activation_layer,
            )
            out.append(LayerData(data, kw, "labels"))
    return out, notes


# --------------------------------------------------------------------------
# presentation-state display: grayscale pipeline, shutters, spatial transformation, displayed area

SPATIAL = "napari_dcm_spatial"  # image metadata: {"rotation", "flip", "source"} from a presentation state
AREA = keys.DISPLAYED_AREA  # image metadata: the region to fit, in data (row, column) coordinates


def _value_range(t: LayerData) -> tuple[float, float]:
    dt = np.dtype(t.data.dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return float(info.min), float(min(info.max, 65535))
    lo, hi = t.kwargs.get("contrast_limits") or (0.0, 1.0)
    return float(lo), float(hi)


def gsps_display_layers(index: ImageIndex, ds, path: str, title: str) -> tuple[list[LayerData], list[str]]:
    """A presentation state's shutter layers, its grayscale pipeline (a LUT preset of each
    image) and its spatial transformation and displayed area (image metadata the reader
    and the viewer apply); returns (layers, problems)."""
    from ..dicom import overlay_planes as op
    from ..dicom import presentation as pres

    out: list[LayerData] = []
    problems: list[str] = []
    planes = {p.group: p for p in op.planes_from_dataset(ds)[0]}
    seen: set[int] = set()
    for uid, frames in ov._refs_of(ds):
        hit = index.place(uid, frames)
        if hit is None or id(hit[0]) in seen:
            continue
        t = hit[0]
        seen.add(id(t))
        md = t.metadata
        disp = pres.display_of(ds, uid)
        problems += [f"{title}: {m}" for m in disp.problems]
        rows, cols = t.frame_shape
        if disp.shutter is not None:
            bitmap = None
            if disp.shutter.bitmap_group is not None:
                plane = planes.get(disp.shutter.bitmap_group)
                if plane is None or plane.embedded:
                    problems.append(
                        f"{title}: bitmap shutter overlay {disp.shutter.bitmap_group:04X} is not in the state"
                    )
                else:
                    bitmap = op.place(plane.bits(0), plane.origin, (rows, cols))
            out.append(_shutter_layer(t, disp.shutter, bitmap, path, title))
        if disp.rotation or disp.flip:
            if SPATIAL in md:
                problems.append(f"{title}: {t.name} already turned by {md[SPATIAL]['source']}; not turned again")
            else:
                md[SPATIAL] = {"rotation": disp.rotation, "flip": disp.flip, "source": title}
        if disp.area is not None and AREA not in md:
            (r0, c0), (r1, c1) = disp.area
            md[AREA] = {
                "top_left": [r0 - 1.0, c0 - 1.0],  # 1-based pixels -> data coordinates
                "bottom_right": [r1 - 1.0, c1 - 1.0],
                "mode": disp.size_mode,
                "magnification": disp.magnification,
                "source": title,
            }
        if pres.has_grayscale(ds, uid):
            try:
                rescale = md.get("rescale")
                lut = pres.grayscale_lut(ds, uid, tuple(rescale) if rescale else None, _value_range(t), title)
                md.setdefault("voi_luts", []).append(lut)
            except Exception as exc:
                problems.append(f"{title}: grayscale pipeline: {type(exc).__name__}: {exc}")
    return out, problems


def _shutter_chunk(shutter, shape, bitmap):
    from ..dicom import presentation as pres

    return pres.shutter_mask(shutter, shape, bitmap)


def _shutter_layer(t: LayerData, shutter, bitmap, path: str, title: str) -> LayerData:
    """The shutter as a 2D labels layer over the image (every frame): 1 where hidden,
    drawn opaque in the Shutter Presentation Value (computed when first shown)."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    rows, cols = t.frame_shape
    name = f"dicom-shutter-{tokenize(shutter, (rows, cols), bitmap)}"
    graph = HighLevelGraph.from_collections(name, {(name, 0, 0): (_shutter_chunk, shutter, (rows, cols), bitmap)}, ())
    data = da.Array(graph, name, ((rows,), (cols,)), dtype=np.uint8)
    g = float(shutter.value)
    color = [g, g, g, 1.0]
    kw = _shape_kwargs(
        t.kwargs,
        2,
        f"{t.name} · {title} shutter",
        "shutter",
        path,
        0,
        opacity=1.0,
        blending="translucent",
        colormap={0: "transparent", 1: color, None: color},
    )
    kw.pop("ndim", None)
    kw["metadata"][OVERLAY].update({"shapes": list(shutter.shapes)})
    return LayerData(data, kw, "labels")


def spatial_affine(t: LayerData, ndim: int) -> np.ndarray | None:
    """The presentation state's rotation / flip of image ``t`` as a napari affine on the
    world coordinates of a layer with ``ndim`` dimensions drawn on the image's grid."""
    from ..dicom import presentation as pres

    sp = t.metadata.get(SPATIAL)
    if not sp:
        return None
    rows, cols = t.frame_shape
    m = pres.spatial_matrix(int(sp["rotation"]), bool(sp["flip"]), rows, cols)
    scale = np.asarray(t.kwargs.get("scale", (1.0,) * t.spatial_ndim), dtype=float)[-2:]
    translate = np.asarray(t.kwargs.get("translate", (0.0,) * t.spatial_ndim), dtype=float)[-2:]
    d = np.diag(scale)
    lin = d @ m[:2, :2] @ np.linalg.inv(d)
    shift = d @ m[:2, 2] + translate - lin @ translate
    out = np.eye(ndim + 1)
    out[-3:-1, -3:-1] = lin
    out[-3:-1, -1] = shift
    return out


def apply_spatial_transforms(tuples: list) -> None:
    """Give every image turned by a presentation state, and each layer drawn on it, the
    state's rotation / flip as their affine."""
    items = [LayerData.of(t) for t in tuples]
    for t in items:
        if not t.is_image or SPATIAL not in t.metadata:
            continue
        for layer in items:
            if layer is t or layer.metadata.get(OF) == t.name:
                a = spatial_affine(t, _layer_ndim(layer))
                if a is not None:
                    layer.kwargs["affine"] = a


def _layer_ndim(layer: LayerData) -> int:
    if layer.layer_type == "image":
        return layer.spatial_ndim
    if layer.layer_type == "labels":
        return int(np.ndim(layer.data))
    return int(layer.kwargs.get("ndim") or 2)


def after_images(images: list, extra: list) -> list:
    """Each overlay layer right after its image (then its siblings); standalone ones at the end."""
    out: list = []
    for t in images:
        out.append(t)
        out += [e for e in extra if LayerData.of(e).metadata.get(OF) == LayerData.of(t).name]
    out += [e for e in extra if OF not in LayerData.of(e).metadata]
    return out
