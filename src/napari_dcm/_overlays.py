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

from .dicom import overlays as ov

log = logging.getLogger("napari_dcm")
OVERLAY = "napari_dcm_overlay"
OF = "napari_dcm_overlay_of"
SR_KEY = "napari_dcm_sr"


def _read(path: str):
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


class ImageIndex:
    """SOP Instance UID -> (image tuple, display frames by 1-based frame number)."""

    def __init__(self, tuples: list):
        self.tuples = [t for t in tuples if t[2] == "image"]
        self.by_uid: dict = {}
        for t in self.tuples:
            md = t[1]["metadata"]
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


def _spatial_ndim(t) -> int:
    data, kw, _ = t
    return data.ndim - int(kw.get("rgb", False))


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


def graphics_layers(index: ImageIndex, graphics, source: str, kind: str, title: str, color: str = "#00e5ff", visible=True):
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
        ndim = _spatial_ndim(t)
        shapes, types, labels, pts, texts, faces = [], [], [], [], [], []
        rows = t[0].shape[-2 - int(t[1].get("rgb", False))]
        for g, displays in items:
            for d in displays if ndim == 3 else [0]:
                if g.kind == "text":
                    pts.append(_verts(g.points, d, ndim)[0])
                    texts.append(g.text)
                elif g.kind == "point":
                    for p in g.points:
                        r = max(2.0, rows / 150)
                        circ = ov.ellipse_outline((p[0] - r, p[1]), (p[0] + r, p[1]), (p[0], p[1] - r), (p[0], p[1] + r), n=24)
                        shapes.append(_verts(circ, d, ndim))
                        types.append("polygon")
                        labels.append(g.text or g.layer)
                        faces.append(g.filled)
                else:
                    shapes.append(_verts(g.points, d, ndim))
                    types.append("path" if g.kind == "polyline" else "polygon")
                    labels.append(g.text or g.layer)
                    faces.append(g.filled and g.kind != "polyline")
        name = f"{t[1]['name']} · {title}"
        if shapes:
            fill = _rgba(color, 0.35)
            kw = _shape_kwargs(
                t[1], ndim, name, kind, source, len(shapes),
                shape_type=types, edge_color=color, face_color=[fill if f else [0, 0, 0, 0] for f in faces],
                edge_width=max(1.0, rows / 400),
                features={"label": labels}, visible=visible, opacity=1.0,
            )
            if any(labels):
                kw["text"] = {"string": "{label}", "color": color, "anchor": "upper_left", "size": 10}
            out.append((shapes, kw, "shapes"))
        if pts:
            kw = _shape_kwargs(
                t[1], ndim, f"{name} · text", kind, source, len(pts),
                size=max(2.0, rows / 200), face_color=color, border_width=0, features={"text": texts},
                text={"string": "{text}", "color": color, "anchor": "upper_left", "size": 10}, visible=visible, opacity=1.0,
            )
            out.append((np.array(pts), kw, "points"))
    return out, unplaced


# --------------------------------------------------------------------------


def gsps_layers(index: ImageIndex, path: str):
    ds = _read(path)
    first = None
    for uid, _ in ov._refs_of(ds):
        hit = index.place(uid, None)
        if hit is not None:
            first = hit[0]
            break
    rows = cols = None
    if first is not None:
        shp = first[0].shape
        rgb = int(first[1].get("rgb", False))
        rows, cols = shp[-2 - rgb], shp[-1 - rgb]
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
        md = hit[0][1]["metadata"]
        for c, w, expl in ann.windows:
            entry = {"center": c, "width": w, "explanation": expl or f"GSPS {label}", "function": "LINEAR"}
            if entry not in md["windows"]:
                md["windows"].append(entry)
    return layers, attached > 0


def cad_layers(index: ImageIndex, path: str):
    ds = _read(path)
    findings = ov.parse_cad_sr(ds)
    req, opt = [], []
    for f in findings:
        for g in f.graphics:
            g.text = f.label()
        (req if f.required else opt).extend(f.graphics)
    name = str(ds.get("SeriesDescription", "") or "CAD")
    title = name if "CAD" in name.upper() else f"CAD {name}"
    a, u1 = graphics_layers(index, req, path, "cad_sr", title, "#ff3b30")
    b, u2 = graphics_layers(index, opt, path, "cad_sr_optional", f"{title} (optional)", "#ff9f0a", visible=False)
    for t in b:
        t[1]["metadata"][OVERLAY]["optional"] = True
    return a + b, bool(a or b)


def sr_layers(index: ImageIndex, path: str):
    ds = _read(path)
    root = ov.parse_sr(ds)
    regions = [g for g, _ in ov.sr_regions(root)]
    title = root.concept or "SR"
    layers, _ = graphics_layers(index, regions, path, "sr", f"SR {title}", "#34c759")
    layers += sr3d_layers(index, root, path, title)
    return layers, root


def sr3d_layers(index: ImageIndex, root, path: str, title: str):
    """SCOORD3D regions drawn on the slices of images in their frame of reference."""
    from .dicom import geometry

    graphics_by_image: dict = {}
    for node, _ in ov.walk(root):
        if node.scoord3d is None:
            continue
        gtype, pts, for_uid = node.scoord3d
        for t in index.tuples:
            md = t[1]["metadata"]
            if for_uid and md.get("frame_of_reference_uid") != for_uid:
                continue
            ori = md.get("image_orientation")
            if not ori or _spatial_ndim(t) != 3:
                continue
            scale, translate = t[1]["scale"], t[1]["translate"]
            proj = [geometry.project(p, ori) for p in pts]
            if any(p is None for p in proj):
                continue
            # world (along normal, along columns, along rows) -> data (frame, row, col)
            data_pts = [((p[0] - translate[0]) / scale[0], (p[1] - translate[1]) / scale[1], (p[2] - translate[2]) / scale[2]) for p in proj]
            d = int(round(np.mean([q[0] for q in data_pts])))
            if not 0 <= d < t[0].shape[0]:
                continue
            outline = [(q[2] + 0.5, q[1] + 0.5) for q in data_pts]
            kind = "point" if gtype == "POINT" else "polygon" if gtype in ("POLYGON", "ELLIPSE", "ELLIPSOID") else "polyline"
            graphics_by_image.setdefault(id(t), (t, []))[1].append((ov.Graphic(kind, outline, False, node.concept), [d]))
    out = []
    for t, items in graphics_by_image.values():
        shapes = [_verts(g.points, d, 3) for g, ds_ in items for d in ds_ if g.kind != "point"]
        if shapes:
            kw = _shape_kwargs(t[1], 3, f"{t[1]['name']} · SR3D {title}", "sr", path, len(shapes),
                               shape_type=["polygon"] * len(shapes), edge_color="#34c759", face_color="transparent",
                               features={"label": [g.text for g, ds_ in items for d in ds_ if g.kind != "point"]})
            out.append((shapes, kw, "shapes"))
    return out


# --------------------------------------------------------------------------
# pixel overlays: SEG and parametric maps


def _frames_of(path: str) -> tuple[np.ndarray, object]:
    """All stored frames of an object through napari-dcm's own decoders (stored order)."""
    from .dicom.scan import scan_header
    from .dicom.series import stacks_from_headers
    from .dicom.volume import stack_array

    h = scan_header(path)
    if (h.values.get("photometric") or "").upper() == "PALETTE COLOR":
        h.values["photometric"] = "MONOCHROME2"  # label maps: the stored indices, not the palette's colours
        h.needs_dataset = False
    stacks, skipped = stacks_from_headers([h])
    if not stacks:
        raise ValueError(skipped[0][1] if skipped else "no frames")
    st = stacks[0]
    arr = np.asarray(stack_array(st, force_3d=True).compute())
    order = np.argsort([f.ref.index for f in st.frames])
    return arr[order], _read_header(path)


def _read_header(path):
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _fg(ds, i, seq):
    pf = ds.get("PerFrameFunctionalGroupsSequence")
    if pf is not None and i < len(pf) and pf[i].get(seq):
        return pf[i].get(seq)[0]
    sh = ds.get("SharedFunctionalGroupsSequence")
    if sh and sh[0].get(seq):
        return sh[0].get(seq)[0]
    return None


def _source_of_frame(ds, i):
    """(SOP uid, 1-based frame or None) of the image a stored frame was derived from."""
    der = _fg(ds, i, "DerivationImageSequence")
    if der is not None:
        for src in der.get("SourceImageSequence", []) or []:
            fr = ov._frames(src.get("ReferencedFrameNumber"))
            return str(src.ReferencedSOPInstanceUID), (fr[0] if fr else None)
    return None, None


def lab_to_rgb(lab) -> tuple[float, float, float]:
    """DICOM CIELab (0..65535 scaled) -> sRGB 0..1."""
    L = lab[0] / 65535 * 100
    a = lab[1] / 65535 * 255 - 128
    b = lab[2] / 65535 * 255 - 128
    fy = (L + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def finv(t):
        return t**3 if t**3 > 0.008856 else (t - 16 / 116) / 7.787

    X, Y, Z = 0.95047 * finv(fx), 1.0 * finv(fy), 1.08883 * finv(fz)
    r = 3.2406 * X - 1.5372 * Y - 0.4986 * Z
    g = -0.9689 * X + 1.8758 * Y + 0.0415 * Z
    bb = 0.0557 * X - 0.2040 * Y + 1.0570 * Z

    def gamma(c):
        c = max(0.0, min(1.0, c))
        return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055

    return gamma(r), gamma(g), gamma(bb)


def seg_layers(index: ImageIndex, path: str):
    frames, ds = _frames_of(path)
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    labelmap = str(ds.get("SOPClassUID")) == "1.2.840.10008.5.1.4.1.1.66.7"
    maxfrac = float(ds.get("MaximumFractionalValue", 255) or 255)
    segments = {int(s.SegmentNumber): s for s in ds.get("SegmentSequence", []) or []}
    colors = {0: "transparent"}
    names = {}
    for n, s in segments.items():
        lab = s.get("RecommendedDisplayCIELabValue")
        colors[n] = (*lab_to_rgb([int(v) for v in lab]), 1.0) if lab else None
        names[n] = str(s.get("SegmentLabel", f"segment {n}"))
    placed: dict = {}
    own = np.zeros(frames.shape, dtype=np.uint16)
    for i in range(frames.shape[0]):
        sid = _fg(ds, i, "SegmentIdentificationSequence")
        seg_no = int(sid.ReferencedSegmentNumber) if sid is not None else 1
        f = frames[i]
        if labelmap:
            mask, values = f > 0, f.astype(np.uint16)
        else:
            mask = (f / maxfrac >= 0.5) if seg_type == "FRACTIONAL" else f > 0
            values = np.full(f.shape, seg_no, np.uint16)
        own[i][mask] = values[mask]
        uid, fr = _source_of_frame(ds, i)
        hit = index.place(uid, [fr] if fr else None) if uid else None
        if hit is not None:
            t, displays = hit
            placed.setdefault(id(t), (t, []))[1].append((displays, mask, values))
    out = []
    title = str(ds.get("SeriesDescription", "") or "SEG")
    color_dict = {k: v for k, v in colors.items() if v is not None}
    for t, items in placed.values():
        ndim = _spatial_ndim(t)
        shape = t[0].shape[: ndim]
        lab = np.zeros(shape, np.uint16)
        for displays, mask, values in items:
            for d in displays if ndim == 3 else [None]:
                target = lab[d] if d is not None else lab
                target[mask] = values[mask]
        kw = _shape_kwargs(t[1], ndim, f"{t[1]['name']} · {title}", "seg", path, 0, opacity=0.5)
        kw["metadata"][OVERLAY]["segments"] = names
        if len(color_dict) > 1:
            kw["colormap"] = _label_colormap(color_dict)
        out.append((lab, kw, "labels"))
    if not out:  # references not loaded: the segmentation on its own
        kw = {"name": f"{title} ({os.path.basename(path)})", "opacity": 0.7,
              "metadata": {OVERLAY: {"kind": "seg", "source": path, "segments": names, "standalone": True}}}
        if len(color_dict) > 1:
            kw["colormap"] = _label_colormap(color_dict)
        out.append((own if own.shape[0] > 1 else own[0], kw, "labels"))
    return out, bool(placed)


def _label_colormap(colors: dict) -> dict:
    """A label -> RGBA dict napari's Labels takes as ``colormap`` (None: any other label)."""
    out = {k: (list(v) if not isinstance(v, str) else v) for k, v in colors.items()}
    out[None] = [0.9, 0.9, 0.2, 1.0]
    return out


def pm_layers(index: ImageIndex, path: str):
    frames, ds = _frames_of(path)
    frames = frames.astype(np.float32)
    rwv = _fg(ds, 0, "RealWorldValueMappingSequence")
    units = ""
    if rwv is not None:
        s = float(rwv.get("RealWorldValueSlope", 1) or 1)
        b = float(rwv.get("RealWorldValueIntercept", 0) or 0)
        frames = frames * s + b
        u = rwv.get("MeasurementUnitsCodeSequence")
        units = str(u[0].get("CodeValue", "")) if u else ""
    finite = frames[np.isfinite(frames)]
    lo, hi = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1
    placed = {}
    for i in range(frames.shape[0]):
        uid, fr = _source_of_frame(ds, i)
        if not uid:
            ref = (ds.get("ReferencedImageSequence") or [None])[0] if i == 0 else None
            uid = str(ref.ReferencedSOPInstanceUID) if ref is not None else None
        hit = index.place(uid, [fr] if fr else None) if uid else None
        if hit is not None:
            t, displays = hit
            placed.setdefault(id(t), (t, []))[1].append((displays, frames[i]))
    title = str(ds.get("SeriesDescription", "") or "Parametric map")
    out = []
    for t, items in placed.values():
        ndim = _spatial_ndim(t)
        shape = t[0].shape[:ndim]
        vol = np.full(shape, np.nan, np.float32)
        for displays, f in items:
            if f.shape != shape[-2:]:
                continue
            for d in displays if ndim == 3 else [None]:
                if d is None:
                    vol[...] = f
                else:
                    vol[d] = f
        kw = _shape_kwargs(t[1], ndim, f"{t[1]['name']} · {title}", "pm", path, 0,
                           colormap="magma", opacity=0.6, blending="translucent", contrast_limits=(lo, hi))
        kw["metadata"][OVERLAY]["units"] = units
        out.append((vol, kw, "image"))
    if not out:
        kw = {"name": f"{title} ({os.path.basename(path)})", "colormap": "magma", "contrast_limits": (lo, hi),
              "metadata": {OVERLAY: {"kind": "pm", "source": path, "units": units, "standalone": True}}}
        out.append((frames if frames.shape[0] > 1 else frames[0], kw, "image"))
    return out, bool(placed)


def overlay_tuples(image_tuples: list, overlay_headers: list) -> tuple[list, list]:
    """Layers for the overlay objects; returns (layers, report [(path, message)])."""
    index = ImageIndex(image_tuples)
    out, report = [], []
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
    return out, report


def _sr_document(path: str, index: ImageIndex, kind: str, root=None):
    """An (empty) shapes layer standing for the SR document, for the SR dock and scripts."""
    if root is None:
        root = ov.parse_sr(_read(path))
    name = f"SR: {root.concept or os.path.basename(path)}"
    return [([], {"name": name, "ndim": 2, "metadata": {SR_KEY: path, OVERLAY: {"kind": kind, "source": path, "document": True}}}, "shapes")]


def is_overlay_kind(sop_class: str) -> bool:
    return ov.kind_of(sop_class) is not None
