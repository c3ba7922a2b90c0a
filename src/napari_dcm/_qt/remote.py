"""Studies on a dask cluster in a viewer: ``--scheduler`` and ``--tunnel`` (see docs/remote.md).

A tunnel belongs to the viewer that opened it: it is closed (remote worker
and scheduler stopped, ssh ended) when that viewer's window is destroyed,
when the Qt application quits, or when this process exits, whichever comes
first.
"""

from __future__ import annotations

import atexit
import contextlib
import weakref
from collections.abc import Sequence
from typing import Any

from .. import _notify
from ..errors import ClusterError
from .compat import qt_main_window

_tunnels: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()  # viewer -> its tunnels


def open_tunnel(
    viewer: Any,
    target: str,
    *,
    remote_python: str = "python3",
    ssh_args: Sequence[str] = (),
    nthreads: int = 0,
) -> Any | None:
    """Start a scheduler and a worker on ``target`` over SSH for ``viewer``; None (and a
    notification naming the host and the reason) when that fails."""
    from ..dicom.tunnel import open_tunnel as _open

    _notify.info(f"napari-dcm: starting a dask scheduler and worker on {target} over ssh ...")
    try:
        tunnel = _open(target, remote_python=remote_python, ssh_args=ssh_args, nthreads=nthreads)
    except ClusterError as exc:
        _notify.error(f"napari-dcm: {exc}")
        return None
    close_with(viewer, tunnel)
    return tunnel


def close_with(viewer: Any, tunnel: Any) -> None:
    """Close ``tunnel`` when ``viewer``'s window goes away (or the application or process ends)."""
    _tunnels.setdefault(viewer, []).append(tunnel)

    def close(*_: Any) -> None:
        with contextlib.suppress(Exception):
            tunnel.close()

    win = qt_main_window(viewer)
    if win is not None:
        win.destroyed.connect(close)
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(close)
    atexit.register(close)


def tunnels(viewer: Any) -> list[Any]:
    """The tunnels ``viewer`` opened (open or closed)."""
    return list(_tunnels.get(viewer, []))


def remote_options(
    viewer: Any,
    *,
    scheduler: Any = None,
    tunnel: str | None = None,
    remote_python: str = "python3",
    ssh_args: Sequence[str] = (),
    remote_decode: bool = False,
    insecure: bool = False,
) -> dict[str, Any] | None:
    """The ``read`` options for a study on a cluster (a tunnel is opened first); None when
    the tunnel could not be opened (already notified)."""
    if tunnel:
        t = open_tunnel(viewer, tunnel, remote_python=remote_python, ssh_args=ssh_args)
        if t is None:
            return None
        scheduler = t.address
    opts: dict[str, Any] = {"scheduler": scheduler}
    if remote_decode:
        opts["remote_decode"] = True
    if insecure:
        opts["insecure"] = True
    return opts
