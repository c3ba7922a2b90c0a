"""napari-dcm's key bindings, bound in one place.

=====  ==========================================  =============================
key    action                                      napari's own binding replaced
=====  ==========================================  =============================
G      show / hide every overlay                   none
N      next image or frame with an overlay         none
R      draw an EMBED ROI on the active image       none (napari: Shift+R in some
                                                   layers' modes, not R)
W      window/level mouse mode on / off            none
=====  ==========================================  =============================

The review keys (case navigator and viewing controls, issue 17) are listed in
``REVIEW_KEYS`` below (the help overlay, key H, shows them) and bound by
``install_review_keys``; they replace W and R above with the W/L and ROI
tools (same actions, and the tool state the dock shows follows them).
"""

from __future__ import annotations

from typing import Any

from . import state


def install(viewer: Any) -> None:
    """Bind napari-dcm's keys on ``viewer`` (once)."""
    st = state.of(viewer)
    if st.keys_bound:
        return
    from .roi_dock import draw_roi
    from .sr_dock import next_overlay, toggle_overlays
    from .window import wl_mode

    viewer.bind_key("g", lambda v: toggle_overlays(v), overwrite=True)
    viewer.bind_key("n", lambda v: next_overlay(v), overwrite=True)
    viewer.bind_key("r", lambda v: draw_roi(v), overwrite=True)
    viewer.bind_key("w", lambda v: wl_mode(v).toggle(), overwrite=True)
    install_review_keys(viewer)
    st.keys_bound = True


# ==========================================================================
# Review keys: case navigator and viewing controls (issue 17).
#
# napari looks a key up in the active layer's keymaps (the layer's own, then
# its class's) before the viewer's, so a key bound on the viewer alone would
# lose to a layer class binding whenever such a layer is active (Shapes binds
# P/Z/S/R, Image binds Z, Labels binds P/Z/[/]/M).  These keys are therefore
# bound on the viewer and on every napari-dcm layer (images, ROI layers,
# overlay layers); layers napari-dcm did not make keep napari's keys.
# Left/Right are napari's own (previous / next step of the slider).

# (key as napari names it, what it does, napari binding it replaces and why)
REVIEW_KEYS: list[tuple[str, str, str]] = [
    ("W", "window/level tool (drag: width / centre); W again: pan", "none"),
    (
        "P",
        "pan tool (drag pans, wheel zooms)",
        "Shapes/Points/Labels P (polygon / add / paint mode) on napari-dcm layers: "
        "EMBED ROIs are rectangles, napari-dcm labels are read-only overlays",
    ),
    (
        "Z",
        "zoom tool (drag up zooms in)",
        "Shapes/Points/Labels Z (pan/zoom mode: that is P here) and Image Z "
        "(plane normal along z, 3D plane rendering) on napari-dcm layers",
    ),
    (
        "S",
        "scroll tool (drag up/down steps frames)",
        "Shapes/Points S (select mode) on napari-dcm layers: R twice selects ROIs",
    ),
    ("R", "ROI tool: draw boxes; R again: select / edit them", "Shapes R (rectangle mode): the same action"),
    ("Space", "cine play / pause (at the file's rate)", "viewer Space (hold for pan/zoom): P is the pan tool"),
    ("[", "previous frame", "Labels [ (brush size) on napari-dcm labels overlays"),
    ("]", "next frame", "Labels ] (brush size) on napari-dcm labels overlays"),
    ("Home", "reset: fit, no flip / rotation, header window", "none"),
    ("PageDown", "next case", "none"),
    ("PageUp", "previous case", "none"),
    ("M", "mark the case reviewed (again: not reviewed)", "Labels M (new label) on napari-dcm labels overlays"),
    ("H", "show / hide this help", "none"),
]
# shown in the help overlay too (bound elsewhere, or napari's own)
OTHER_KEYS = [
    ("Left / Right", "previous / next frame (napari's own)"),
    ("double-click", "reset (replaces napari's double-click zoom)"),
    ("G / N", "overlays on / off, next overlay"),
]


def help_text() -> str:
    rows = [(k, a) for k, a, _ in REVIEW_KEYS] + OTHER_KEYS
    return "napari-dcm keys (H hides)\n" + "\n".join(f"{k}:  {a}" for k, a in rows)


def review_actions(viewer: Any) -> dict[str, Any]:
    """Key -> action(viewer) of the review keys."""
    from .viewing import step_frame, viewing

    def tool(name: str):
        def act(v: Any) -> None:
            vw = viewing(v)
            if name == "wl" and vw.tool == "wl":
                vw.set_tool("pan")
            else:
                vw.set_tool(name)

        return act

    def case(method: str):
        def act(v: Any) -> None:
            nav = state.dock(v, "cases")
            if nav is None:
                from .. import _notify

                _notify.info("napari-dcm: no case list is open (napari-dcm --cases FOLDER_OR_CSV)")
                return
            getattr(nav, method)()

        return act

    return {
        "W": tool("wl"),
        "P": tool("pan"),
        "Z": tool("zoom"),
        "S": tool("scroll"),
        "R": tool("roi"),
        "Space": lambda v: viewing(v).cine.toggle(),
        "[": lambda v: step_frame(v, -1),
        "]": lambda v: step_frame(v, 1),
        "Home": lambda v: viewing(v).reset(),
        "PageDown": case("next_case"),
        "PageUp": case("previous_case"),
        "M": case("toggle_reviewed"),
        "H": lambda v: viewing(v).toggle_help(),
    }


def _is_napari_dcm_layer(layer: Any) -> bool:
    from ..layers import keys as mdkeys

    md = getattr(layer, "metadata", {}) or {}
    return any(k in md for k in (mdkeys.IMAGE, mdkeys.ROI, mdkeys.OVERLAY, mdkeys.OVERLAY_OF))


def _bind_layer(viewer_ref: Any, layer: Any, actions: dict[str, Any]) -> None:
    for key, act in actions.items():
        # the layer calls its own keymap with itself: hand the viewer to the action instead
        def on_layer(_layer: Any, act: Any = act) -> None:
            v = viewer_ref()
            if v is not None:
                act(v)

        layer.bind_key(key, on_layer, overwrite=True)


def install_review_keys(viewer: Any) -> None:
    """Bind the review keys on ``viewer`` and its napari-dcm layers (and on those added later);
    double-click resets the view instead of napari's double-click zoom."""
    import weakref

    from .viewing import viewing

    actions = review_actions(viewer)
    for key, act in actions.items():
        viewer.bind_key(key, act, overwrite=True)
    ref = weakref.ref(viewer)
    for layer in viewer.layers:
        if _is_napari_dcm_layer(layer):
            _bind_layer(ref, layer, actions)

    def on_inserted(event: Any) -> None:
        if _is_napari_dcm_layer(event.value):
            _bind_layer(ref, event.value, actions)

    viewer.layers.events.inserted.connect(on_inserted)
    vw = viewing(viewer)
    cbs = viewer.mouse_double_click_callbacks
    for cb in list(cbs):
        if getattr(cb, "__name__", "") == "double_click_to_zoom":
            cbs.remove(cb)
    if vw.double_click not in cbs:
        cbs.append(vw.double_click)
