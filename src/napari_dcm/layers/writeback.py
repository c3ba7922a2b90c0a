"""ROI and labels layers written back as DICOM, and napari-dcm's own SRs read back as ROIs.

The glue between layers (a viewer, napari layers or the tuples ``read``
returns) and the pure writers in :mod:`napari_dcm.dicom.writeback`:

* :func:`save_rois_sr`: one TID 1500 SR per annotated file (an EMBED row),
* :func:`save_rois_gsps`: one presentation state per ROI layer and series,
* :func:`save_seg`: a labels layer over an image layer as a SEG,
* :func:`rois_from_srs`: ``read`` turns an SR napari-dcm wrote back into an
  editable ROI layer of its image (the same boxes, frames and ROI numbers, so
  ``save_embed_csv`` exports the EMBED row again).

No napari import: napari layers are used through their attributes only.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any

import numpy as np

from ..dicom import writeback as wb
from ..errors import DicomReadError
from . import keys
from .data import LayerData
from .recovery import clear_recovery
from .roi_export import _roi_sources
from .rois import RoiSet, roi_meta, shape_kwargs

log = logging.getLogger("napari_dcm")
SR_SUFFIX = ".sr.dcm"
GSPS_SUFFIX = ".gsps.dcm"


# --------------------------------------------------------------------------
# ROIs -> SR / GSPS


def _source(path: str):
    try:
        return wb.read_source(path)
    except FileNotFoundError:
        raise DicomReadError(path, "the annotated image is no longer there (needed for its header)") from None
    except Exception as exc:
        raise DicomReadError(path, f"cannot read the annotated image's header: {type(exc).__name__}: {exc}") from None


def annotated_files(obj) -> list[tuple[dict, str, list[wb.BoxRoi]]]:
    """``(roi meta, file, boxes)`` for every annotated file of every ROI layer, in layer then file order."""
    out = []
    for data, feats, meta in _roi_sources(obj):
        rs = RoiSet.from_shapes(data, feats, meta)
        by_path: dict[str, list[wb.BoxRoi]] = {}
        for r in rs.rois:
            frames = None if r["frames"] is None else tuple(int(f) for f in r["frames"])
            by_path.setdefault(r["path"], []).append(wb.BoxRoi(tuple(int(v) for v in r["box"]), frames, int(r["id"])))
        order = [p for p in meta.get("paths", []) if p in by_path] + [
            p for p in by_path if p not in meta.get("paths", [])
        ]
        out += [(meta, p, by_path[p]) for p in order]
    return out


def _stem(path: str) -> str:
    base = os.path.basename(path.rstrip("/")) or "image"
    for ext in (".dcm", ".dicom", ".DCM", ".DICOM"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def _target(out_dir: str, stem: str, suffix: str, used: set[str]) -> str:
    name, i = f"{stem}{suffix}", 2
    while name in used:
        name, i = f"{stem}-{i}{suffix}", i + 1
    used.add(name)
    return os.path.join(out_dir, name)


def _write_all(objects: list[tuple[Any, str]], overwrite: bool) -> list[str]:
    """Write every object, after checking none would replace a file (unless ``overwrite``)."""
    if not overwrite:
        existing = [p for _, p in objects if os.path.exists(p)]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise FileExistsError(f"{existing[0]} exists{more} (pass overwrite=True to replace)")
    return [wb.write_object(obj, p, overwrite=True) for obj, p in objects]


def save_rois_sr(
    layers_or_viewer, out_dir, *, overwrite: bool = False, finding=None, observer: str | None = None
) -> list[str]:
    """Write the EMBED ROIs of a viewer, layers or ``read`` tuples as DICOM SR, one per annotated file.

    Each is a Comprehensive 3D SR holding a TID 1500 Measurement Report
    (see :func:`napari_dcm.dicom.writeback.build_sr`), written to
    ``out_dir/<file stem>.sr.dcm``; the SRs of one study share a new series.
    ``finding``: a ``pydicom.sr.coding.Code`` or ``(value, scheme, meaning)``
    for every box (default SCT 49755003 "Morphologically abnormal
    structure"); ``observer``: the person who drew them (default: the
    device napari-dcm).  Returns the absolute paths written; refuses to
    replace files unless ``overwrite``.  Like an EMBED export, it removes the
    autosaved recovery copy of those ROIs (the SRs open again as editable ROIs).
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    files = annotated_files(layers_or_viewer)
    if not files:
        raise ValueError("no EMBED ROIs to save (no ROI layer, or its ROIs were all deleted)")
    series: dict[str, tuple[str, int]] = {}
    used: set[str] = set()
    objects = []
    for meta, path, rois in files:
        src = _source(path)
        study = str(src.get("StudyInstanceUID", ""))
        uid, n = series.get(study, (None, 0))
        extra = (meta.get("rows", {}).get(path) or {}).get("extra") or {}
        sr = wb.build_sr(
            src,
            rois,
            extra=extra,
            finding=finding,
            observer=observer,
            series_instance_uid=uid,
            instance_number=n + 1,
        )
        series[study] = (str(sr.SeriesInstanceUID), n + 1)
        objects.append((sr, _target(out_dir, _stem(path), SR_SUFFIX, used)))
    paths = _write_all(objects, overwrite)
    # the SRs hold every ROI and open again as editable ROIs: like an export, nothing is left to recover
    for _data, _feats, meta in _roi_sources(layers_or_viewer):
        meta["exported_at"] = time.time()
        clear_recovery(meta)
    log.info("napari-dcm: wrote %d SR(s) to %s", len(paths), out_dir)
    return paths


def save_rois_gsps(layers_or_viewer, out_dir, *, overwrite: bool = False) -> list[str]:
    """Write the EMBED ROIs as Grayscale Softcopy Presentation States: one per ROI layer and
    series (``out_dir/<first file stem>.gsps.dcm``), each box a closed POLYLINE on its images and
    frames (see :func:`napari_dcm.dicom.writeback.build_gsps`).  Returns the paths written."""
    out_dir = os.path.abspath(os.fspath(out_dir))
    files = annotated_files(layers_or_viewer)
    if not files:
        raise ValueError("no EMBED ROIs to save (no ROI layer, or its ROIs were all deleted)")
    groups: dict[tuple[int, str], list[tuple[str, Any, list[wb.BoxRoi]]]] = {}
    for meta, path, rois in files:
        src = _source(path)
        groups.setdefault((id(meta), str(src.get("SeriesInstanceUID", ""))), []).append((path, src, rois))
    used: set[str] = set()
    objects = []
    for items in groups.values():
        gsps = wb.build_gsps([(src, rois) for _, src, rois in items])
        objects.append((gsps, _target(out_dir, _stem(items[0][0]), GSPS_SUFFIX, used)))
    paths = _write_all(objects, overwrite)
    log.info("napari-dcm: wrote %d presentation state(s) to %s", len(paths), out_dir)
    return paths


# --------------------------------------------------------------------------
# labels -> SEG


def _labels_parts(labels) -> tuple[np.ndarray, dict, Any, Any, Any]:
    """(data, metadata, features, get_color, colormap dict) of a labels layer or tuple."""
    if isinstance(labels, tuple):
        t = LayerData.of(labels)
        feats = t.kwargs.get("features")
        if feats is None:
            feats = t.kwargs.get("properties")
        return np.asarray(t.data), t.metadata, feats, None, t.kwargs.get("colormap")
    feats = getattr(labels, "features", None)
    return np.asarray(labels.data), dict(labels.metadata), feats, getattr(labels, "get_color", None), None


def _image_parts(image) -> tuple[tuple[int, ...], dict, bool]:
    t = LayerData.of(image) if isinstance(image, tuple) else None
    if t is not None:
        return tuple(t.data.shape), t.metadata, t.rgb
    return tuple(image.data.shape), dict(image.metadata), bool(getattr(image, "rgb", False))


NAME_COLUMNS = ("name", "label", "segment", "segment_label", "class", "description")
VALUE_COLUMNS = ("index", "value", "label_value")


def segment_specs(labels, values, segments=None) -> list[wb.SegmentSpec]:
    """Segment descriptions for the label ``values``: from ``segments`` ({value: name or
    SegmentSpec or {"label", "color", "category", "type"}}), else the layer's features
    (a name column: name/label/segment/class/description; the value column ``index``, or
    the row number), else the segment names of a SEG napari-dcm read, else ``label <v>``;
    colours from the layer."""
    _, md, feats, get_color, cmap = _labels_parts(labels)
    names: dict[int, str] = {}
    seg_names = (md.get(keys.OVERLAY) or {}).get("segments") or {}
    names.update({int(k): str(v) for k, v in seg_names.items()})
    if feats is not None:
        import pandas as pd

        f = feats if isinstance(feats, pd.DataFrame) else pd.DataFrame(dict(feats))
        name_col = next((c for c in NAME_COLUMNS if c in f.columns), None)
        value_col = next((c for c in VALUE_COLUMNS if c in f.columns and c != name_col), None)
        if name_col is not None:
            vals = f[value_col].tolist() if value_col is not None else list(range(len(f)))
            for v, n in zip(vals, f[name_col].tolist()):
                if n is not None and str(n) not in ("", "nan", "None"):
                    names[int(v)] = str(n)
    out = []
    for v in values:
        v = int(v)
        given = (segments or {}).get(v)
        if isinstance(given, wb.SegmentSpec):
            out.append(given)
            continue
        color = None
        if get_color is not None:
            try:
                c = get_color(v)
                if c is not None:
                    color = tuple(float(x) for x in np.asarray(c)[:3])
            except Exception:  # a colormap that cannot say: no recommended colour
                color = None
        elif isinstance(cmap, dict) and v in cmap and not isinstance(cmap[v], str):
            color = tuple(float(x) for x in list(cmap[v])[:3])
        spec = wb.SegmentSpec(v, names.get(v, f"label {v}"), color)
        if isinstance(given, str):
            spec.label = given
        elif isinstance(given, dict):
            spec.label = str(given.get("label", spec.label))
            spec.color = given.get("color", spec.color)
            spec.category = tuple(given.get("category", spec.category))
            spec.type = tuple(given.get("type", spec.type))
        out.append(spec)
    return out


def seg_inputs(labels, image) -> tuple[list[str], np.ndarray]:
    """(source files, labels per source frame) of a labels layer drawn over an image layer.

    A series: one label frame per file, in display order.  A multi-frame
    file: the label frames reordered to stored order (display frame ``d``
    is stored frame ``display_to_stored[d]``); stored frames not shown stay 0."""
    lab, *_ = _labels_parts(labels)
    shape, md, rgb = _image_parts(image)
    if not keys.is_image(md):
        raise ValueError("the source layer is not a DICOM image read by napari-dcm")
    spatial = shape[:-1] if rgb else shape
    if tuple(lab.shape) != tuple(spatial):
        raise ValueError(f"the labels layer {tuple(lab.shape)} does not match the image {tuple(spatial)}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, not {lab.dtype}")
    fp, d2s = list(md[keys.FRAME_PATHS]), list(md[keys.DISPLAY_TO_STORED])
    if lab.ndim == 2:
        return [fp[0]], lab[None]
    if len(set(fp)) == 1:
        n = int(md.get(keys.NUMBER_OF_FRAMES) or len(fp))
        out = np.zeros((n, *lab.shape[1:]), dtype=lab.dtype)
        for d, s in enumerate(d2s):
            out[s] = lab[d]
        return [fp[0]], out
    if len(set(fp)) != len(fp) or any(s != 0 for s in d2s):
        raise ValueError("the image mixes multi-frame files: save a SEG per file")
    return fp, lab


def save_seg(
    labels_layer,
    source_layer,
    path,
    *,
    overwrite: bool = False,
    segments=None,
    labelmap: bool = False,
    description: str | None = None,
) -> str:
    """Write a labels layer drawn over a napari-dcm image layer as a DICOM Segmentation.

    Every label value present becomes a segment (numbered 1, 2, ... in
    increasing label order, as DICOM requires; a layer labelled 1..N keeps
    its values), named from ``segments`` or the layer's features (see
    :func:`segment_specs`), with the layer's colour.  BINARY unless
    ``labelmap`` (Label Map Segmentation, newer than Debian's dciodvfy).
    Returns the absolute path; refuses to replace a file unless ``overwrite``.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    files, lab = seg_inputs(labels_layer, source_layer)
    values = sorted(int(v) for v in np.unique(lab) if v != 0)
    if not values:
        raise ValueError("the labels layer is empty: nothing to save")
    if values[0] < 0:
        raise ValueError("negative label values cannot be segments")
    specs = segment_specs(labels_layer, values, segments)
    sources = [_source(p) for p in files]
    _, md, *_ = _labels_parts(labels_layer)
    if isinstance(labels_layer, tuple):
        name = LayerData.of(labels_layer).name
    else:
        name = str(getattr(labels_layer, "name", "") or "")
    owner = md.get(keys.OVERLAY_OF)
    if owner and name.startswith(f"{owner} · "):
        name = name[len(owner) + 3 :]  # "<image> · <segmentation title>": the title
    seg = wb.build_seg(sources, lab, specs, labelmap=labelmap, description=description or name or "napari labels")
    return wb.write_object(seg, path, overwrite=overwrite)


# --------------------------------------------------------------------------
# SRs napari-dcm wrote -> ROI layers


def _read_sr(path: str):
    import pydicom

    from ..dicom.tags import header_source

    remote = header_source(path)  # a file on a dask worker (napari_dcm.dicom.cluster)
    if remote is not None:
        return remote(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def _when(ds) -> tuple[str, str, str, str]:
    return tuple(
        str(ds.get(k, "") or "") for k in ("ContentDate", "ContentTime", "InstanceCreationDate", "InstanceCreationTime")
    )


def rois_from_srs(layers: list, notes: list | None = None) -> list[LayerData]:
    """Replace the region layers of SRs napari-dcm wrote by editable ROI layers.

    For every referenced file the newest such SR (content date/time) gives
    its ROIs (boxes, stored frames, ROI numbers, the EMBED row's extra
    columns); the ROI layer comes right after its image, where
    ``save_embed_csv``, the ROI dock and the SR writer find it.  Images that
    already have an ROI layer (e.g. from ``annotations=``) and older SRs keep
    the plain SR overlay.  ``notes`` gets ``(sr path, message)`` per SR used.
    """
    items = [LayerData.of(t) for t in layers]
    images = [t for t in items if t.is_image]
    by_uid: dict[str, tuple[LayerData, str, int]] = {}
    for t in images:
        md = t.metadata
        n_by = roi_meta(t.kwargs, t.data.ndim, t.data.shape)["nframes_by_path"]
        for uid, p in zip(md.get(keys.SOP_INSTANCE_UIDS, []), md[keys.FRAME_PATHS]):
            if uid:
                by_uid.setdefault(uid, (t, p, n_by.get(p, 1)))
    sr_paths: list[str] = []
    for t in items:
        ov = t.metadata.get(keys.OVERLAY) or {}
        if ov.get("kind") == "sr" and not ov.get("document") and ov.get("source") not in sr_paths:
            sr_paths.append(ov["source"])
    newest: dict[str, tuple[tuple, str, list[wb.SrRoi]]] = {}
    for p in sr_paths:
        try:
            ds = _read_sr(p)
            rois = wb.sr_rois(ds)
        except Exception:  # not ours, or unreadable: stays an overlay
            log.debug("SR %s not read back as ROIs", p, exc_info=True)
            continue
        if not rois or len({r.sop_instance_uid for r in rois}) != 1:
            continue
        uid = rois[0].sop_instance_uid
        hit = by_uid.get(uid)
        if hit is None:
            continue
        _, _, nframes = hit
        if any(f >= nframes for r in rois for f in (r.roi.frames or ())):
            continue
        if uid not in newest or _when(ds) > newest[uid][0]:
            newest[uid] = (_when(ds), p, rois)
    has_rois = {t.metadata[keys.ROI].get("image") for t in items if keys.ROI in t.metadata}
    per_image: dict[str, list[tuple[str, str, list[wb.SrRoi]]]] = {}
    for uid, (_, p, rois) in newest.items():
        t, path, _ = by_uid[uid]
        if t.name not in has_rois:
            per_image.setdefault(t.name, []).append((path, p, rois))
    if not per_image:
        return items
    used_srs = {p for entries in per_image.values() for _, p, _ in entries}
    roi_layers = {t.name: _roi_layer(t, per_image[t.name]) for t in images if t.name in per_image}
    out: list[LayerData] = []
    for t in items:
        ov = t.metadata.get(keys.OVERLAY) or {}
        converted = ov.get("kind") == "sr" and not ov.get("document") and ov.get("source") in used_srs
        if converted and t.metadata.get(keys.OVERLAY_OF) in roi_layers:
            continue  # drawn by the ROI layer instead
        out.append(t)
        if t.is_image and t.name in roi_layers:
            out.append(roi_layers[t.name])
    if notes is not None:
        for name, entries in per_image.items():
            for _, p, rois in entries:
                notes.append((p, f"{len(rois)} EMBED ROI(s) of {name} (editable)"))
    return out


def _roi_layer(image: LayerData, entries: list[tuple[str, str, list[wb.SrRoi]]]) -> LayerData:
    meta = roi_meta(image.kwargs, image.data.ndim, image.data.shape)
    rs = RoiSet(meta)
    order = {p: i for i, p in enumerate(meta["paths"])}
    seen: set[int] = set()
    for path, sr_path, rois in sorted(entries, key=lambda e: order.get(e[0], len(order))):
        extra: dict[str, str] = {}
        for r in rois:
            extra.update(r.extra)
        meta["rows"][path] = {"csv_path": path, "line": 0, "frames_cell": "", "edited": True, "extra": extra}
        meta.setdefault("source_sr", []).append(sr_path)
        for r in rois:
            rid = r.roi.number if r.roi.number not in seen and r.roi.number >= 0 else -1
            frames = None if r.roi.frames is None or meta["ndim"] == 2 else list(r.roi.frames)
            rs.rois.append({"id": rid, "path": path, "box": tuple(r.roi.box), "frames": frames})
            if rid >= 0:
                seen.add(rid)
    rs._next = max(seen, default=-1) + 1
    for r in rs.rois:
        if r["id"] < 0:
            r["id"] = rs._next
            rs._next += 1
    shapes, feats = rs.shapes()
    return LayerData(shapes, shape_kwargs(image.kwargs, meta, feats, len(shapes)), "shapes")
