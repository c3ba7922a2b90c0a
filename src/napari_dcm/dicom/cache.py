"""A byte-bounded LRU cache of frames (decoded arrays, or fetched encoded bytes).

:data:`CACHE` holds this process's decoded frames: what every dask chunk
returns and what read-ahead (:mod:`.readahead`) decodes in advance.  Its byte
budget is set from the memory available when napari-dcm is imported (a
sixteenth of it, between 128 MiB and 512 MiB), or by the environment variable
``NAPARI_DCM_CACHE_MB``, or at any time with :func:`set_cache_size`.  The
budget is never exceeded: a value larger than the budget is not stored, and
storing a value first evicts the least recently used ones.

Threads that want the same missing frame decode it once: the first
:meth:`FrameCache.claim` of a key makes that thread the owner, later claims wait
for the owner's :meth:`FrameCache.release` (so a frame being read ahead is not
decoded a second time when napari asks for it).
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

MiB = 2**20
DEFAULT_MIN = 128 * MiB
DEFAULT_MAX = 512 * MiB
ENV = "NAPARI_DCM_CACHE_MB"


def _nbytes(v: Any) -> int:
    return int(v.nbytes)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable, else physical pages), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def default_budget() -> int:
    """The decoded-frame budget: ``NAPARI_DCM_CACHE_MB`` if set, else 1/16 of available
    memory clamped to [128 MiB, 512 MiB]."""
    env = os.environ.get(ENV, "").strip()
    if env:
        try:
            mb = float(env)
        except ValueError:
            mb = -1
        if mb >= 0:
            return int(mb * MiB)
    avail = available_memory()
    if not avail:
        return 256 * MiB
    return int(min(DEFAULT_MAX, max(DEFAULT_MIN, avail // 16)))


class _Claim:
    """A thread's right (and duty) to compute one missing value."""

    __slots__ = ("event", "owner")

    def __init__(self, owner: bool) -> None:
        self.owner = owner
        self.event = threading.Event()


class FrameCache:
    """An LRU bounded in bytes (and optionally in items), shared by the threads of a process."""

    def __init__(
        self, max_bytes: int = 128 * MiB, max_items: int | None = 8, size: Callable[[Any], int] = _nbytes
    ) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._size = size
        self._d: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._bytes = 0
        self._peak = 0
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, _Claim] = {}

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    @property
    def peak_nbytes(self) -> int:
        """The most bytes held at once since the last :meth:`clear` (never above ``max_bytes``)."""
        return self._peak

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._d

    def busy(self, key: Hashable) -> bool:
        """Is ``key`` held, or being computed by some thread right now?"""
        return key in self._d or key in self._inflight

    def get(self, key: Hashable) -> Any:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: Hashable, value: Any) -> None:
        n = self._size(value)
        if n > self.max_bytes:
            return
        with self._lock:
            if key in self._d:
                return
            self._evict(self.max_bytes - n, None if self.max_items is None else self.max_items - 1)
            self._d[key] = value
            self._bytes += n
            self._peak = max(self._peak, self._bytes)

    def _evict(self, bytes_left: int, items_left: int | None) -> None:
        """Drop least recently used values until at most ``bytes_left`` / ``items_left`` remain (lock held)."""
        while self._d and (self._bytes > bytes_left or (items_left is not None and len(self._d) > items_left)):
            _, old = self._d.popitem(last=False)
            self._bytes -= self._size(old)

    def resize(self, max_bytes: int, max_items: int | None = -1) -> None:
        """Set a new budget (``max_items`` -1: unchanged) and evict down to it."""
        with self._lock:
            self.max_bytes = int(max_bytes)
            if max_items != -1:
                self.max_items = max_items
            self._evict(self.max_bytes, self.max_items)

    # ---- one computation per missing key, whatever the number of threads asking

    def claim(self, key: Hashable, timeout: float | None = None) -> tuple[Any, _Claim | None]:
        """``(value, None)`` when ``key`` is held; else ``(None, claim)``.

        The first thread to claim a missing key owns it (``claim.owner``) and
        must call :meth:`release`.  A thread claiming a key another thread is
        computing waits for it (up to ``timeout`` seconds) and gets the value;
        if the owner failed, or the wait timed out, it gets a claim of its own
        that is not registered (it computes the value itself).
        """
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
                return v, None
            other = self._inflight.get(key)
            if other is None:
                mine = _Claim(owner=True)
                self._inflight[key] = mine
                return None, mine
        other.event.wait(timeout)
        v = self.get(key)
        if v is not None:
            return v, None
        return None, _Claim(owner=False)

    def release(self, key: Hashable, claim: _Claim | None, value: Any = None) -> None:
        """End a claim: store ``value`` (unless None) and wake the threads waiting for ``key``."""
        if value is not None:
            self.put(key, value)
        if claim is None or not claim.owner:
            return
        with self._lock:
            if self._inflight.get(key) is claim:
                del self._inflight[key]
        claim.event.set()

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._bytes = 0
            self._peak = 0


# decoded frames of this process (the dask tasks' results and read-ahead)
CACHE = FrameCache(default_budget(), max_items=4096)


def set_cache_size(megabytes: float | None = None) -> int:
    """Set the decoded-frame cache budget in MiB (None: the default from
    ``NAPARI_DCM_CACHE_MB`` / available memory); returns the budget in bytes."""
    budget = default_budget() if megabytes is None else int(float(megabytes) * MiB)
    if budget < 0:
        raise ValueError(f"cache size must be >= 0 MiB, got {megabytes}")
    CACHE.resize(budget)
    return budget


def cache_info() -> dict[str, int]:
    """The decoded-frame cache now: budget, bytes held, peak bytes, frames held."""
    return {
        "max_bytes": CACHE.max_bytes,
        "nbytes": CACHE.nbytes,
        "peak_nbytes": CACHE.peak_nbytes,
        "frames": len(CACHE),
    }
