"""Viewing controls for reviewing cases (what dcmview users know).

* **Tools**: what a left-button drag on the canvas does: ``wl`` window/level
  (the W/L mouse mode of :mod:`.window`), ``pan`` (napari's own pan, wheel
  zooms), ``zoom`` (drag up zooms in), ``scroll`` (drag steps through frames),
  ``roi`` (draw EMBED ROIs; the tool again switches to selecting/editing them).
* **Cine**: plays the frame axis at the file's own rate (Frame Time, Frame Time
  Vector, Cine Rate or Recommended Display Frame Rate, see
  :mod:`napari_dcm.dicom.cine`) or a chosen FPS, looping, once, or sweeping
  back and forth.  Every frame is shown (a slow decode stretches the pass
  rather than dropping frames); the achieved rate is reported.
* **View flips and 90-degree rotations** (of a single view, not of a hanging): of the view, not the data.  A flip is
  the camera's public 2D orientation (``viewer.scene.camera.orientation2d``), a
  rotation is a transposition of the two displayed axes (``viewer.dims.order``)
  plus a flip.  Both act on every layer of the view at once, so ROI and overlay
  layers follow their image, and no layer's data or transform changes: ROI
  coordinates (and their export) are the same in any orientation.
* **Reset** (Home, double-click): fit the view, no flip or rotation, the
  header's default window.
* **Help**: a short list of the keys on the canvas (a napari text overlay).

The keys are bound in :mod:`.keys` (the one place); this module holds what
they do.  One controller per viewer: :func:`viewing`.
"""

from __future__ import annotations

import math
import time
from collections import deque

from qtpy.QtCore import QObject, Qt, QTimer

from .. import _notify
from ..dicom.cine import DEFAULT_FPS, FrameRate, frame_rate
from ..layers import keys
from . import state
from .viewer import dicom_images, image_of

TOOLS = ("wl", "pan", "zoom", "scroll", "roi")
TOOL_NAMES = {"wl": "Window/level", "pan": "Pan", "zoom": "Zoom", "scroll": "Scroll", "roi": "ROI"}
CINE_MODES = ("loop", "once", "sweep")
PX_PER_FRAME = 8  # scroll tool: canvas pixels of drag per frame
ZOOM_PX = 200.0  # zoom tool: drag of this many pixels zooms by e
HELP_OVERLAY = "napari_dcm_help"


def frame_axis(viewer) -> int | None:
    """The slider cine and frame keys move: the last-used one, else the first non-displayed axis
    with more than one step (None when every shown layer is 2D)."""
    dims = viewer.dims
    cands = [a for a in dims.not_displayed if dims.nsteps[a] > 1]
    if not cands:
        return None
    return dims.last_used if dims.last_used in cands else cands[0]


def step_frame(viewer, delta: int) -> None:
    """Previous / next frame (no wrap)."""
    axis = frame_axis(viewer)
    if axis is None:
        return
    n = viewer.dims.nsteps[axis]
    cur = viewer.dims.current_step[axis]
    viewer.dims.set_current_step(axis, min(max(cur + delta, 0), n - 1))


# --------------------------------------------------------------------------
# cine


class Cine(QObject):
    """Plays the frame axis with a Qt timer (napari's own player has one global rate setting)."""

    def __init__(self, viewer):
        super().__init__()
        self.viewer = viewer
        self.fps: float | None = None  # None: the file's own rate
        self.mode = "loop"
        self.direction = 1
        self.axis: int | None = None
        self.rate: FrameRate | None = None
        self.listeners: list = []  # called with no argument when playing/rate/mode change
        self._ticks: deque[float] = deque(maxlen=30)
        self._rates: dict[str, FrameRate] = {}
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def file_rate(self) -> FrameRate:
        """The rate of the active image's file (cached per file)."""
        img = image_of(self.viewer, self.viewer.layers.selection.active)
        if img is None:
            imgs = [i for i in dicom_images(self.viewer) if i.visible]
            img = next((i for i in imgs if i.data.ndim - int(i.rgb) >= 3), imgs[0] if imgs else None)
        if img is None:
            return FrameRate(DEFAULT_FPS, "default")
        path = img.metadata[keys.PATHS][0]
        r = self._rates.get(path)
        if r is None:
            r = self._rates[path] = frame_rate(path)
        return r

    def effective_fps(self) -> float:
        return float(self.fps) if self.fps else self.file_rate().fps

    def achieved_fps(self) -> float | None:
        """Frames shown per second over the last ticks."""
        if len(self._ticks) < 3:
            return None
        span = self._ticks[-1] - self._ticks[0]
        return (len(self._ticks) - 1) / span if span > 0 else None

    def set_fps(self, fps: float | None) -> None:
        self.fps = fps if fps and fps > 0 else None
        if self.playing:
            self.timer.setInterval(max(1, round(1000.0 / self.effective_fps())))
        self._changed()

    def set_mode(self, mode: str) -> None:
        if mode not in CINE_MODES:
            raise ValueError(f"cine mode {mode!r}: one of {', '.join(CINE_MODES)}")
        self.mode = mode
        self._changed()

    def play(self) -> bool:
        axis = frame_axis(self.viewer)
        if axis is None:
            _notify.info("napari-dcm: nothing to play (no image with frames is shown)")
            return False
        self.axis = axis
        self.rate = self.file_rate()
        n = self.viewer.dims.nsteps[axis]
        if self.mode == "once" and self.viewer.dims.current_step[axis] >= n - 1:
            self.viewer.dims.set_current_step(axis, 0)
        self.direction = 1
        self._ticks.clear()
        self.timer.start(max(1, round(1000.0 / self.effective_fps())))
        self._changed()
        return True

    def pause(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self._changed()

    def toggle(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def _tick(self) -> None:
        dims = self.viewer.dims
        axis = self.axis
        if axis is None or axis >= dims.ndim or dims.nsteps[axis] < 2:
            self.pause()
            return
        n = dims.nsteps[axis]
        cur = dims.current_step[axis]
        nxt = cur + self.direction
        if not 0 <= nxt < n:
            if self.mode == "loop":
                nxt = 0 if self.direction > 0 else n - 1
            elif self.mode == "sweep":
                self.direction = -self.direction
                nxt = cur + self.direction
            else:
                self.pause()
                return
        dims.set_current_step(axis, nxt)
        self._ticks.append(time.perf_counter())

    def _changed(self) -> None:
        for cb in list(self.listeners):
            cb()


# --------------------------------------------------------------------------
# flips and rotations of the view

_IDENTITY = ((1, 0), (0, 1))


def _mul(a, b):
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(2)) for j in range(2)) for i in range(2))


class ViewTransform:
    """The view's orientation as a signed permutation ``m``: screen (down, right) = m @ data (row, col).

    Flips and rotations act on the screen (a horizontal flip always mirrors
    left and right as the user sees them), relative to the camera orientation
    the viewer had when the first one was made (napari's setting).
    """

    FLIP_H = ((1, 0), (0, -1))
    FLIP_V = ((-1, 0), (0, 1))
    ROT_CW = ((0, 1), (-1, 0))  # screen: what was up goes right
    ROT_CCW = ((0, -1), (1, 0))

    def __init__(self, viewer):
        self.viewer = viewer
        self.m = _IDENTITY
        self._base: tuple[str, str] | None = None
        self.listeners: list = []

    @property
    def is_identity(self) -> bool:
        return self.m == _IDENTITY

    @property
    def transposed(self) -> bool:
        return self.m[0][0] == 0

    def describe(self) -> str:
        """E.g. "rotated 90° clockwise, flipped horizontally"."""
        m = self.m
        for rot, name in ((0, ""), (1, "rotated 90° clockwise"), (2, "rotated 180°"), (3, "rotated 90° anticlockwise")):
            r = _IDENTITY
            for _ in range(rot):
                r = _mul(self.ROT_CW, r)
            if r == m:
                return name or "as stored"
            if _mul(self.FLIP_H, r) == m:
                return ", ".join(x for x in (name, "flipped horizontally") if x)
        return "as stored"

    def flip_h(self) -> None:
        self._apply(_mul(self.FLIP_H, self.m))

    def flip_v(self) -> None:
        self._apply(_mul(self.FLIP_V, self.m))

    def rotate(self, clockwise: bool = True) -> None:
        self._apply(_mul(self.ROT_CW if clockwise else self.ROT_CCW, self.m))

    def reset(self) -> None:
        self._apply(_IDENTITY)

    def reapply(self) -> None:
        """After the layers changed (napari resets the axis order when the number of dimensions changes)."""
        self._apply(self.m)

    def _apply(self, m) -> None:
        viewer = self.viewer
        if viewer.dims.ndisplay != 2:
            _notify.info("napari-dcm: flips and rotations are for 2D views")
            return
        if m != _IDENTITY and viewer.canvas.grid.enabled:
            # a hanging places each view by its chest wall; one camera turned for every cell undoes that
            _notify.info("napari-dcm: flips and rotations are for a single view (Layout: none, or Single view)")
            return
        cam = viewer.scene.camera
        if self._base is None:
            v, h = cam.orientation2d
            self._base = (str(getattr(v, "value", v)), str(getattr(h, "value", h)))
        self.m = m
        ndim = viewer.dims.ndim
        if ndim >= 2:
            rc = [ndim - 1, ndim - 2] if self.transposed else [ndim - 2, ndim - 1]
            rest = [a for a in viewer.dims.order if a not in (ndim - 2, ndim - 1)]
            order = tuple(rest + rc)
            if tuple(viewer.dims.order) != order:
                viewer.dims.order = order
        sv = m[0][1] if self.transposed else m[0][0]
        sh = m[1][0] if self.transposed else m[1][1]
        bv, bh = self._base
        flip_v = {"down": "up", "up": "down"}
        flip_h = {"right": "left", "left": "right"}
        vert = bv if sv > 0 else flip_v[bv]
        horiz = bh if sh > 0 else flip_h[bh]
        cam.orientation2d = (vert, horiz)
        for cb in list(self.listeners):
            cb()


# --------------------------------------------------------------------------
# the per-viewer controller


class Viewing:
    """Tools, cine, view transform, reset and help of one viewer."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.tool = "pan"
        self.cine = Cine(viewer)
        self.view = ViewTransform(viewer)
        self.listeners: list = []  # called with the tool name when it changes
        self._drag_installed = False
        viewer.layers.events.inserted.connect(self._on_inserted)

    # ---- tools
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"tool {tool!r}: one of {', '.join(TOOLS)}")
        from .roi_dock import draw_roi
        from .window import wl_mode

        if tool == "roi":
            active = self.viewer.layers.selection.active
            if self.tool == "roi" and active is not None and keys.ROI in active.metadata:
                # the ROI tool again: from drawing to selecting and editing (and back)
                active.mode = "select" if str(active.mode) == "add_rectangle" else "add_rectangle"
                return
        old = self.tool
        if old == "wl" and tool != "wl":
            wl_mode(self.viewer).set_active(False)
        if old in ("zoom", "scroll") and tool not in ("zoom", "scroll"):
            self._remove_drag()
        self.tool = tool
        if tool != "roi":
            self._roi_layers_pan()
        if tool == "wl":
            self._activate_image()
            mode = wl_mode(self.viewer)
            if mode.active:  # (re)install on the images shown now
                mode.set_active(False)
            mode.set_active(True)
        elif tool in ("zoom", "scroll"):
            self._install_drag()
        elif tool == "roi":
            draw_roi(self.viewer)
        for cb in list(self.listeners):
            cb(tool)

    def _activate_image(self) -> None:
        img = image_of(self.viewer, self.viewer.layers.selection.active)
        if img is None:
            imgs = [i for i in dicom_images(self.viewer) if i.visible]
            img = imgs[0] if imgs else None
        if img is not None:
            self.viewer.layers.selection.active = img

    def _roi_layers_pan(self) -> None:
        for layer in self.viewer.layers:
            if keys.ROI in layer.metadata and str(layer.mode) != "pan_zoom":
                layer.mode = "pan_zoom"

    def _install_drag(self) -> None:
        if not self._drag_installed:
            self.viewer.mouse_drag_callbacks.append(self._drag)
            self._drag_installed = True
        for layer in self.viewer.layers:
            self._no_pan(layer)

    def _no_pan(self, layer) -> None:
        st = state.layer_state(layer)
        if "tool_mouse_pan" not in st:
            st["tool_mouse_pan"] = layer.mouse_pan
        layer.mouse_pan = False

    def _remove_drag(self) -> None:
        if self._drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._drag)
        self._drag_installed = False
        for layer in self.viewer.layers:
            st = state.layer_state(layer)
            if "tool_mouse_pan" in st:
                layer.mouse_pan = st.pop("tool_mouse_pan")

    def _on_inserted(self, event) -> None:
        layer = event.value
        if self.tool in ("zoom", "scroll"):
            self._no_pan(layer)

    def _drag(self, viewer, event):
        if self.tool not in ("zoom", "scroll") or event.type != "mouse_press" or event.modifiers:
            return
        active = viewer.layers.selection.active
        if active is not None and str(getattr(active, "mode", "pan_zoom")) != "pan_zoom":
            return  # a layer tool (drawing, selecting) has the drag
        y0 = event.pos[1]
        if self.tool == "zoom":
            cam = viewer.scene.camera
            z0 = cam.zoom
            yield
            while event.type == "mouse_move":
                cam.zoom = z0 * math.exp((y0 - event.pos[1]) / ZOOM_PX)
                yield
        else:
            axis = frame_axis(viewer)
            if axis is None:
                return
            s0 = viewer.dims.current_step[axis]
            n = viewer.dims.nsteps[axis]
            yield
            while event.type == "mouse_move":
                d = int((event.pos[1] - y0) / PX_PER_FRAME)
                viewer.dims.set_current_step(axis, min(max(s0 + d, 0), n - 1))
                yield

    # ---- reset
    def reset(self) -> None:
        """Fit the view, no flip or rotation, the header's default window on every shown image."""
        from .window import apply_window, default_preset

        self.view.reset()
        self.viewer.reset_view()
        for img in dicom_images(self.viewer):
            if not img.visible or img.rgb:
                continue
            default = default_preset(self.viewer, img)
            if default is not None:
                apply_window(img, default[1], default[2], default[3])

    def double_click(self, viewer, event) -> None:
        active = viewer.layers.selection.active
        if active is not None and str(getattr(active, "mode", "pan_zoom")) != "pan_zoom":
            return  # double-clicks while drawing or editing belong to the layer
        self.reset()

    # ---- help
    def help_overlay(self):
        from napari.components.overlays import TextOverlay

        from .keys import help_text

        overlays = self.viewer.canvas.overlays
        ov = overlays.get(HELP_OVERLAY)
        if ov is None:
            ov = TextOverlay(
                text=help_text(),
                position="top_left",
                visible=False,
                font_size=9,
                color=(1, 1, 0.7, 1),
                box=True,
                box_color=(0, 0, 0, 0.75),
            )
            self.viewer.canvas.overlays[HELP_OVERLAY] = ov
        return ov

    def toggle_help(self) -> bool:
        ov = self.help_overlay()
        ov.visible = not ov.visible
        return bool(ov.visible)


def viewing(viewer) -> Viewing:
    """The viewing controller of ``viewer`` (one per viewer)."""
    st = state.of(viewer)
    v = st.docks.get("viewing")
    if v is None:
        v = st.docks["viewing"] = Viewing(viewer)
    return v
