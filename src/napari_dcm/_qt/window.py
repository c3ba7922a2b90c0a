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
    from ..layers.images import full_resolution

    data = full_resolution(image.data)  # level 0 of a multiscale layer
    nd = data.ndim - int(image.rgb)
    return np.asarray(data[d] if nd >= 3 else data)


def padding(image) -> tuple[float, float] | None:
    """The image's pixel-padding value range (modality units), or None."""
    pad = image.metadata.get(keys.PADDING)
    return (float(pad[0]), float(pad[1])) if pad else None


def window_of(viewer, image) -> tuple[float, float, str]:
    """(center, width, VOI LUT function) of the window an image shows.

    The window last applied (a preset, the numbers, a W/L drag) or a header
    window of the current frame when the contrast limits are still its limits,
    so a LINEAR window reads as the header or preset wrote it (Lung -600/1500,
    not the limits' -600.5/1499); otherwise the limits as an exact window
    (center = mid-point, width = high - low, e.g. after napari's contrast slider).
    """
    lo, hi = (float(v) for v in image.contrast_limits)
    tol = 1e-6 * max(1.0, abs(lo), abs(hi))
    cands = []
    last = state.layer_state(image).get("window")
    if last is not None:
        cands.append(last)
    d = current_frame(viewer, image) if viewer is not None else 0
    cands += [
        (float(w["center"]), float(w["width"]), (w.get("function") or "LINEAR").upper())
        for w in frame_windows(image, d)
    ]
    for c, w, fn in cands:
        a, b = voi.window_limits(c, w, fn)
        if abs(a - lo) <= tol and abs(b - hi) <= tol:
            return c, w, fn
    return (lo + hi) / 2, hi - lo, "LINEAR_EXACT"


def apply_window(image, center: float, width: float, function: str = "LINEAR") -> tuple[float, float]:
    """Set an image's contrast limits (and colormap for SIGMOID) for a window in modality units."""
    from napari.utils.colormaps import Colormap

    f = (function or "LINEAR").upper()
    if f.startswith(luts.PREFIX):  # a VOI LUT preset: drawn through a colormap built from the LUT
        return luts.apply_lut(image, int(f[len(luts.PREFIX) :]))
    lo, hi = voi.window_limits(center, width, f)
    inverted = luts.inverted(image)  # MONOCHROME1 or Presentation LUT Shape INVERSE
    if f == "SIGMOID":
        name = f"sigmoid{'_r' if inverted else ''}"
        if image.colormap.name != name:
            t, y = voi.sigmoid_ramp()
            g = 1 - y if inverted else y
            colors = np.column_stack([g, g, g, np.ones_like(g)])
            image.colormap = Colormap(colors=colors, controls=t, name=name)
    elif image.colormap.name.startswith("sigmoid") or luts.is_lut_colormap(image):
        image.colormap = "gray_r" if inverted else "gray"
    rng = list(image.contrast_limits_range)
    if lo < rng[0] or hi > rng[1]:
        image.contrast_limits_range = (min(lo, rng[0]), max(hi, rng[1]))
    state.layer_state(image)["window"] = (float(center), float(width), f)
    image.contrast_limits = (lo, hi)
    return lo, hi


def _num(v: float) -> str:
    return f"{v:.6g}"


def presets(viewer, image) -> list[tuple[str, float, float, str]]:
    """(label, center, width, function) of the presets for the current frame; labels carry the numbers."""
    d = current_frame(viewer, image)
    out = []
    wins = frame_windows(image, d)
    for i, w in enumerate(wins):
        label = f"Header {i + 1}: {_num(w['center'])}/{_num(w['width'])}"
        if w.get("explanation"):
            label += f" {w['explanation']}"
        out.append((label, float(w["center"]), float(w["width"]), w.get("function") or "LINEAR"))
    lut_presets = luts.presets(image)  # VOI LUT Sequence (and presentation states' LUTs): issue 9
    out += lut_presets
    pad = padding(image)
    if wins:
        w = wins[0]
        out.append(
            (
                f"Default {_num(w['center'])}/{_num(w['width'])}",
                float(w["center"]),
                float(w["width"]),
                w.get("function") or "LINEAR",
            )
        )
    elif lut_presets:
        out.append((f"Default: {lut_presets[0][0]}", *lut_presets[0][1:]))
    else:
        lo, hi = voi.percentile_limits(frame_array(image, d), 1.0, 99.0, padding=pad)
        c, w = (lo + hi) / 2, hi - lo
        out.append((f"Default {_num(c)}/{_num(w)} (1st-99th percentile)", c, w, "LINEAR_EXACT"))
    lo, hi = voi.full_dynamic(frame_array(image, d), padding=pad)
    out.append((f"Full dynamic {_num(lo)} to {_num(hi)}", (lo + hi) / 2, hi - lo, "LINEAR_EXACT"))
    if str(image.metadata.get("modality", "")).upper() == "CT":
        out += [(f"{name} {c}/{w}", float(c), float(w), "LINEAR") for name, c, w in voi.CT_PRESETS]
    return out


def default_preset(viewer, image) -> tuple[str, float, float, str] | None:
    """The "Default" entry of :func:`presets` (its label carries its numbers or the LUT's name)."""
    return next((p for p in presets(viewer, image) if p[0].startswith("Default")), None)


def value_range(viewer, image) -> float:
    """The span of the current frame's values (padding left out): what a W/L drag is scaled to."""
    lo, hi = voi.full_dynamic(frame_array(image, current_frame(viewer, image)), padding=padding(image))
    return max(hi - lo, 1e-6)


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

    #: a W/L drag of this many screen pixels changes the window by the image's whole value range
    #: (OHIF / cornerstone scale the drag the same way: range / 1024 per pixel)
    PIXELS_PER_RANGE = 1024.0

    def _install(self):
        for img in dicom_images(self.viewer):
            if self._drag not in img.mouse_drag_callbacks:
                img.mouse_drag_callbacks.append(self._drag)
                state.layer_state(img)["mouse_pan"] = getattr(img, "mouse_pan", True)
                img.mouse_pan = False
                self._layers.append(weakref.ref(img))
        ov = self.overlay
        ov.position = "top_left"  # napari's notifications pop up bottom right
        ov.box = True
        ov.font_size = 12
        ov.visible = True
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
        c, w, _ = window_of(self.viewer, image)
        self.overlay.text = f"WC {_num(round(c, 4))} / WW {_num(round(w, 4))}"

    def _drag(self, layer, event):
        if not self.active:
            return
        image = layer
        c0, w0, fn = window_of(self.viewer, image)
        per_px = value_range(self.viewer, image) / self.PIXELS_PER_RANGE
        integer = np.dtype(image.data.dtype).kind in "iub"
        x0, y0 = event.pos[0], event.pos[1]
        yield
        while event.type == "mouse_move":
            dx, dy = event.pos[0] - x0, event.pos[1] - y0
            w = max(w0 + dx * per_px, 1.0 if integer else per_px)
            c = c0 - dy * per_px
            if integer:
                c, w = float(round(c)), float(max(round(w), 1))
            apply_window(image, c, w, fn)
            self._show(image)
            yield


def wl_mode(viewer) -> WindowLevelMode:
    """The W/L mouse mode of ``viewer`` (one per viewer; key W and the dock's button toggle it)."""
    st = state.of(viewer)
    mode = st.docks.get("wl_mode")
    if mode is None:
        mode = st.docks["wl_mode"] = WindowLevelMode(viewer)
    return mode
