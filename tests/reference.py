"""Reference decodes with pydicom alone (all its plugins), for comparisons."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut


def _fg(ds, i, seq):
    pf = ds.get("PerFrameFunctionalGroupsSequence")
    if pf is not None and i < len(pf) and pf[i].get(seq):
        return pf[i].get(seq)[0]
    sh = ds.get("SharedFunctionalGroupsSequence")
    if sh and sh[0].get(seq):
        return sh[0].get(seq)[0]
    return None


def reference_frames(path: str) -> np.ndarray:
    """Every stored frame, modality LUT / palette applied, shaped (frames, rows, cols[, 3])."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        arr = ds.pixel_array
    nframes = int(ds.get("NumberOfFrames") or 1)
    if nframes == 1:
        arr = arr[None]
    pi = str(ds.get("PhotometricInterpretation", ""))
    if pi == "PALETTE COLOR":
        return apply_color_lut(arr, ds)
    if int(ds.get("SamplesPerPixel", 1)) != 1 or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        return arr
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        out = np.empty(arr.shape, np.float64)
        for i in range(nframes):
            it = _fg(ds, i, "PixelValueTransformationSequence")
            s, b = 1.0, 0.0
            if it is not None and "RescaleSlope" in it:
                s, b = float(it.RescaleSlope), float(it.get("RescaleIntercept", 0))
            out[i] = arr[i] * s + b
        return out
    mlut = ds.get("ModalityLUTSequence")
    if mlut is not None:
        d = mlut[0].get("LUTDescriptor") if len(mlut) else None
        if d is None or len(d) != 3 or not mlut[0].get("LUTData"):
            del ds.ModalityLUTSequence  # an empty/invalid LUT is ignored (rescale applies)
    for kw in ("RescaleSlope", "RescaleIntercept"):
        if kw in ds and ds[kw].value in (None, ""):
            del ds[kw]  # empty values are treated as absent (identity)
    return apply_modality_lut(arr, ds)


def display_order(layer_kwargs) -> list[int]:
    return list(layer_kwargs["metadata"]["display_to_stored"])
