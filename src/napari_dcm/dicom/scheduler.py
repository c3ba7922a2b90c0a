"""dask's default scheduler, chosen without importing ``distributed`` just to find out.

With no scheduler configured, every ``compute`` (napari's ``np.asarray(data[k])``)
asks dask which scheduler to use, and dask answers by importing ``distributed``
to look for a client (``dask.base.get_scheduler``).  That import costs 0.3-0.5 s
on the first frame a viewer shows, although no client can exist in a process that
has not imported ``distributed``.

:func:`use_local_until_distributed` sets dask's ``scheduler`` option (public
configuration) to :func:`local_until_distributed` when no scheduler is configured
and ``distributed`` is not imported.  That function runs dask's threaded scheduler,
which is what dask picks when there is no client, until ``distributed`` has been
imported by anyone; from then on it clears the option again and hands the graph to
whatever dask chooses (a current client, or the threaded scheduler), so dask's
own choice applies from the first compute after ``distributed`` is imported.  A
``distributed.Client`` made with ``set_as_default=True`` (the default) sets the
option itself and is used as before.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_lock = threading.Lock()


def local_until_distributed(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """A dask scheduler function: dask's threaded scheduler while ``distributed`` is not
    imported, dask's own choice (after clearing this override) once it is."""
    import dask

    if "distributed" in sys.modules:
        from dask.base import get_scheduler

        with _lock:
            if dask.config.get("scheduler", None) is local_until_distributed:
                dask.config.set(scheduler=None)
        get = get_scheduler()  # type: ignore[no-untyped-call]  # a current client, else None (dask is untyped)
        if get is not None and get is not local_until_distributed:
            return get(dsk, keys, **kwargs)
    from dask.threaded import get as threaded_get

    return threaded_get(dsk, keys, **kwargs)


def use_local_until_distributed() -> bool:
    """Install :func:`local_until_distributed` as dask's scheduler when none is configured
    and ``distributed`` is not imported; True when it is (now or before)."""
    if "distributed" in sys.modules:
        return False
    import dask

    with _lock:
        current = dask.config.get("scheduler", None)
        if current is None:
            dask.config.set(scheduler=local_until_distributed)
            return True
        return current is local_until_distributed
