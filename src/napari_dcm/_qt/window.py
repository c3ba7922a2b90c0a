"""Windows in a live viewer: header presets, applying a window, the W/L mouse mode."""

from __future__ import annotations

import weakref

import numpy as np

from ..dicom import voi
from ..layers import keys
from . import luts, state
from .viewer import dicom_images, image_of


def current_frame(viewer, image) -> int:
    """Display frame of ``image`` under the dims slider (0 for 2D)."""
    nd = image.data.ndim - int(image.rgb)
    if nd < 3:
        return 0
    step = viewer.dims.current_step
    axis = len(step) - nd  # the image's frame axis in world dims
    return int(np.clip(step[axis], 0, image.data.shape[0] - 1))


def frame_windows(image, d: int) -> list[dict]:
    md = image.metadata
    fw = md.get(keys.FRAME_WINDOWS)
    if fw and d < len(fw):
        return fw[d]
    return md.get(keys.WINDOWS, [])


def frame_array(image, d: int) -> np.ndarray:
    nd = image.data.ndim - int(image.rgb)
    return np.asarray(image.data[d] if nd >= 3 else image.data)


def apply_window(image, center: float, width: float, function: str = "LINEAR") -> tuple[float, float]:
    """Set an image's contrast limits (and colormap for SIGMOID) for a window in modality units."""
    from napari.utils.colormaps import Colormap

    f = (function or "LINEAR").upper()
    if f.startswith(luts.PREFIX):  # a VOI LUT preset: drawn through a colormap built from the LUT
        return luts.apply_lut(image, int(f[len(luts.PREFIX) :]))
    lo, hi = voi.window_limits(center, width, f)
    inverted = luts.inverted(image)  # MONOCHROME1 or Presentation LUT Shape INVERSE
    if f == "SIGMOID":
        t, y = voi.sigmoid_ramp()
        g = 1 - y if inverted else y
        colors = np.column_stack([g, g, g, np.ones_like(g)])
        image.colormap = Colormap(colors=colors, controls=t, name=f"sigmoid{'_r' if inverted else ''}")
    elif image.colormap.name.startswith("sigmoid") or luts.is_lut_colormap(image):
        image.colormap = "gray_r" if inverted else "gray"
    rng = list(image.contrast_limits_range)
    if lo < rng[0] or hi > rng[1]:
        image.contrast_limits_range = (min(lo, rng[0]), max(hi, rng[1]))
    image.contrast_limits = (lo, hi)
    return lo, hi


def presets(viewer, image) -> list[tuple[str, float, float, str]]:
    """(label, center, width, function) of the presets for the current frame."""
    d = current_frame(viewer, image)
    out = []
    wins = frame_windows(image, d)
    for i, w in enumerate(wins):
        label = f"Header {i + 1}: {w['center']:g}/{w['width']:g}"
        if w.get("explanation"):
            label += f" {w['explanation']}"
        out.append((label, float(w["center"]), float(w["width"]), w.get("function") or "LINEAR"))
    lut_presets = luts.presets(image)  # VOI LUT Sequence (and presentation states' LUTs): issue 9
    out += lut_presets
    if wins:
        w = wins[0]
        out.append(("Default", float(w["center"]), float(w["width"]), w.get("function") or "LINEAR"))
    elif lut_presets:
        out.append(("Default", *lut_presets[0][1:]))
    else:
        lo, hi = voi.percentile_limits(frame_array(image, d), 1.0, 99.0)
        out.append(("Default", (lo + hi) / 2, hi - lo, "LINEAR_EXACT"))
    lo, hi = voi.full_dynamic(frame_array(image, d))
    out.append(("Full dynamic", (lo + hi) / 2, hi - lo, "LINEAR_EXACT"))
    if str(image.metadata.get("modality", "")).upper() == "CT":
        out += [(name, float(c), float(w), "LINEAR") for name, c, w in voi.CT_PRESETS]
    return out


# --------------------------------------------------------------------------
# window/level mouse mode


class WindowLevelMode:
    """Drag on the canvas: horizontal changes the width, vertical the center; a live "WC / WW" readout."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.active = False
        self._layers: list = []
        self.listeners: list = []  # called with the new state (the dock's button follows)

    def toggle(self):
        self.set_active(not self.active)

    def set_active(self, on: bool):
        if on == self.active:
            return
        self.active = on
        if on:
            self._install()
        else:
            self._uninstall()
        for cb in list(self.listeners):
            cb(on)

    @property
    def overlay(self):
        """napari's canvas text overlay, where the live "WC / WW" readout goes."""
        return self.viewer.canvas.overlays["text"]

    def _install(self):
        for img in dicom_images(self.viewer):
            if self._drag not in img.mouse_drag_callbacks:
                img.mouse_drag_callbacks.append(self._drag)
                state.layer_state(img)["mouse_pan"] = getattr(img, "mouse_pan", True)
                img.mouse_pan = False
                self._layers.append(weakref.ref(img))
        self.overlay.visible = True
        self._show(image_of(self.viewer, self.viewer.layers.selection.active))

    def _uninstall(self):
        for ref in self._layers:
            img = ref()
            if img is not None and self._drag in img.mouse_drag_callbacks:
                img.mouse_drag_callbacks.remove(self._drag)
                img.mouse_pan = state.layer_state(img).get("mouse_pan", True)
        self._layers = []
        self.overlay.visible = False

    def _show(self, image):
        if image is None:
            self.overlay.text = "W/L"
            return
        lo, hi = image.contrast_limits
        self.overlay.text = f"WC {(lo + hi) / 2:.6g} / WW {hi - lo:.6g}"

    def _drag(self, layer, event):
        if not self.active:
            return
        image = layer
        lo, hi = image.contrast_limits
        c0, w0 = (lo + hi) / 2, hi - lo
        rng = image.contrast_limits_range
        per_px = max(float(rng[1] - rng[0]), 1e-6) / 500.0
        x0, y0 = event.pos[0], event.pos[1]
        yield
        while event.type == "mouse_move":
            dx, dy = event.pos[0] - x0, event.pos[1] - y0
            w = max(w0 + dx * per_px * 2, per_px)
            c = c0 - dy * per_px
            image.contrast_limits = (c - w / 2, c + w / 2)
            self._show(image)
            yield


def wl_mode(viewer) -> WindowLevelMode:
    """The W/L mouse mode of ``viewer`` (one per viewer; key W and the dock's button toggle it)."""
    st = state.of(viewer)
    mode = st.docks.get("wl_mode")
    if mode is None:
        mode = st.docks["wl_mode"] = WindowLevelMode(viewer)
    return mode
