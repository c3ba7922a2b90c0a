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
    st.keys_bound = True
