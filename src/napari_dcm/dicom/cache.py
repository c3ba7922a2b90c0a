"""A byte-bounded LRU cache of frames (decoded arrays, or fetched encoded bytes)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
from typing import Any


def _nbytes(v: Any) -> int:
    return int(v.nbytes)


class FrameCache:
    """An LRU bounded in bytes (and optionally in items), shared by the threads of a process."""

    def __init__(self, max_bytes: int = 128 * 2**20, max_items: int | None = 8, size: Callable[[Any], int] = _nbytes):
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._size = size
        self._d: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._d

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
            self._d[key] = value
            self._bytes += n
            while self._d and (
                self._bytes > self.max_bytes or (self.max_items is not None and len(self._d) > self.max_items)
            ):
                _, old = self._d.popitem(last=False)
                self._bytes -= self._size(old)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._bytes = 0


# decoded frames of this process (the dask tasks' results)
CACHE = FrameCache()
