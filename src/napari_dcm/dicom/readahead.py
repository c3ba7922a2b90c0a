"""Read-ahead: decode the frames around the one on screen before they are asked for.

While a reader looks at frame ``k`` of a stack, background threads decode
``k+1, k+2, ...`` (the direction of travel first), then ``k-1, k-2, ...``, into
the decoded-frame cache (:data:`napari_dcm.dicom.cache.CACHE`); when napari
then asks for a frame, its dask chunk finds it there and nothing is decoded on
napari's thread.  This module knows nothing about napari: it is given *targets*
(a stack's :class:`~napari_dcm.dicom.volume.FrameTable`, the index shown and the
direction) by the viewer hook (``napari_dcm._qt.readahead``), or by any script.

Rules it keeps:

* **The window.**  Only frames within ``ahead`` frames in the direction of
  travel and ``behind`` frames against it are decoded, and no more than fit in
  ``fill`` (3/4) of the cache's byte budget, shared between the targets.  A new
  request replaces the queue, so work for a window the reader has left is
  dropped before it starts (a decode already running finishes: C decoders
  cannot be interrupted; its frame is cached).
* **The cache stays bounded.**  Frames go through the same byte-bounded cache
  as napari's requests; read-ahead never holds frames of its own.
* **No double work.**  A frame held or being decoded (by napari's thread or a
  read-ahead thread) is skipped; a napari request for a frame being read ahead
  waits for that decode instead of starting a second one (``FrameCache.claim``).
* **Slow or failing frames.**  Failures are counted and dropped (napari reports
  the frame when it is shown, as for any frame).  A decode running longer than
  ``slow_after`` seconds (a stalled network fetch) gets an extra thread next to
  it, up to ``max_extra``, so the frames behind it still come.
* **Any source.**  It only calls ``FrameTable.load`` (the chunk's own work:
  ``ref.read()`` then decode), so local files, DICOMweb and any future source
  behave alike.

Settings (:data:`SETTINGS`, :func:`configure`): ``NAPARI_DCM_READAHEAD`` = ``0``
(off), ``AHEAD`` or ``AHEAD,BEHIND``; ``NAPARI_DCM_READAHEAD_THREADS``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .cache import CACHE, FrameCache

if TYPE_CHECKING:
    from .volume import FrameTable

__all__ = ["SETTINGS", "ReadAhead", "Settings", "Target", "configure", "shutdown_all", "window"]


def _default_threads() -> int:
    # at least two, so one slow frame never holds up the others; no more than the cores
    # napari does not draw with (up to four).  Decoders release the GIL, and no new
    # decode starts while napari slices and draws (``ReadAhead.hold``).
    return max(2, min(4, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    ahead: int = 16  # frames in the direction of travel
    behind: int = 4  # frames against it
    threads: int = field(default_factory=_default_threads)
    fill: float = 0.75  # share of the cache budget the window may take
    slow_after: float = 2.0  # seconds before a running decode counts as stalled
    max_extra: int = 4  # extra threads beside stalled decodes
    idle_exit: float = 10.0  # an idle thread ends after this many seconds
    # the viewer holds new decodes while napari slices and draws a step, and this long
    # after it: a fast scroll runs on the frames already decoded, read-ahead refills in
    # the pauses (napari's play at 10 fps leaves ~60 ms per frame)
    quiet_after_step: float = 0.03
    # OS priority of read-ahead threads below napari's (Linux nice steps).  0 by default:
    # napari's thread waits for a frame read-ahead is decoding (rather than decoding it
    # twice), and a lowered priority would then slow napari down on a busy machine
    nice: int = 0


def _from_env() -> Settings:
    s = Settings()
    env = os.environ.get("NAPARI_DCM_READAHEAD", "").strip().lower()
    if env in ("0", "off", "no", "false"):
        s = replace(s, enabled=False)
    elif env:
        try:
            parts = [int(x) for x in env.replace(" ", "").split(",") if x]
            if parts:
                s = replace(s, ahead=max(0, parts[0]))
            if len(parts) > 1:
                s = replace(s, behind=max(0, parts[1]))
        except ValueError:
            pass
    th = os.environ.get("NAPARI_DCM_READAHEAD_THREADS", "").strip()
    if th.isdigit() and int(th) > 0:
        s = replace(s, threads=int(th))
    quiet = os.environ.get("NAPARI_DCM_READAHEAD_QUIET_MS", "").strip()
    if quiet.isdigit():
        s = replace(s, quiet_after_step=int(quiet) / 1000)
    nice = os.environ.get("NAPARI_DCM_READAHEAD_NICE", "").strip()
    if nice.isdigit():
        s = replace(s, nice=int(nice))
    return s


SETTINGS = _from_env()


def configure(**changes: Any) -> Settings:
    """Change the process-wide read-ahead settings (``enabled``, ``ahead``, ``behind``,
    ``threads``, ``fill``, ...); engines created after this use them, running ones
    from their next request.  Returns the new settings."""
    global SETTINGS
    SETTINGS = replace(SETTINGS, **changes)
    return SETTINGS


@dataclass(frozen=True)
class Target:
    """A stack on screen: its frames, the index shown and the direction of travel.

    ``extra`` are tables whose same frames are wanted too (napari's thumbnail
    level of a multiscale layer).
    """

    table: FrameTable
    index: int
    direction: int = 1
    extra: tuple[FrameTable, ...] = ()


def window(index: int, n: int, direction: int, ahead: int, behind: int) -> list[int]:
    """Frame indices to have ready, in order: ``index``, then ``ahead`` frames in the
    direction of travel (nearest first), then ``behind`` frames the other way."""
    d = 1 if direction >= 0 else -1
    if not 0 <= index < n:
        return []
    out = [index]
    out += [index + d * i for i in range(1, ahead + 1) if 0 <= index + d * i < n]
    out += [index - d * i for i in range(1, behind + 1) if 0 <= index - d * i < n]
    return out


def _background_thread(nice: int) -> None:
    """Make the calling thread a read-ahead thread: decoders that release the GIL
    (:func:`napari_dcm.dicom.codecs.set_background`) and, on Linux, a lower CPU
    priority than napari's threads (threads a decoder starts inherit it)."""
    from . import codecs

    codecs.set_background(True)
    codecs.register_background_plugins()
    if nice > 0 and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        with contextlib.suppress(OSError):  # Linux: the priority of one thread (its task id)
            os.setpriority(
                os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)
            )


class ReadAhead:
    """Background decoding of the frames around the shown ones (see the module docstring)."""

    def __init__(self, settings: Settings | None = None, cache: FrameCache = CACHE) -> None:
        self._settings = settings
        self.cache = cache
        self._cond = threading.Condition()
        self._pending: deque[tuple[FrameTable, int]] = deque()
        self._running: dict[int, tuple[float, FrameTable, int]] = {}  # thread id -> (start, table, k)
        self._threads: set[threading.Thread] = set()
        self._watchdog: threading.Thread | None = None
        self._closed = False
        self._held = False
        self._planned: list[tuple[FrameTable, int]] = []
        self.counts = {"requests": 0, "queued": 0, "decoded": 0, "skipped": 0, "dropped": 0, "failed": 0}
        _engines.add(self)

    @property
    def settings(self) -> Settings:
        return self._settings or SETTINGS

    # ---- planning

    def plan(self, targets: Sequence[Target]) -> list[tuple[FrameTable, int]]:
        """The (table, frame) jobs of ``targets``, nearest first, within the window and the byte budget."""
        s = self.settings
        if not s.enabled or not targets:
            return []
        per_frame = sum(t.table.frame_nbytes + sum(e.frame_nbytes for e in t.extra) for t in targets)
        fit = int(s.fill * self.cache.max_bytes // max(per_frame, 1)) if per_frame else 0
        if fit < 1:
            return []
        ahead = min(s.ahead, max(fit - 1, 0))
        behind = min(s.behind, max(fit - 1 - ahead, 0))
        orders = [window(t.index, len(t.table), t.direction, ahead, behind) for t in targets]
        jobs: list[tuple[FrameTable, int]] = []
        for i in range(max((len(o) for o in orders), default=0)):
            for t, order in zip(targets, orders):
                if i < len(order):
                    k = order[i]
                    jobs.append((t.table, k))
                    jobs += [(e, k) for e in t.extra if k < len(e)]
        return jobs

    def request(self, targets: Sequence[Target]) -> list[tuple[FrameTable, int]]:
        """Replace the queue with the window of ``targets``; returns the planned jobs.

        Never blocks: it only computes the window and wakes the threads.
        """
        jobs = self.plan(targets)
        with self._cond:
            if self._closed:
                return []
            self.counts["requests"] += 1
            self.counts["dropped"] += len(self._pending)
            todo = [(t, k) for t, k in jobs if not self.cache.busy(t.key(k))]
            self._pending = deque(todo)
            self._planned = jobs
            self.counts["queued"] += len(todo)
            self._ensure_threads()
            self._cond.notify_all()
        return jobs

    def hold(self, held: bool = True) -> None:
        """While held, no new decode starts (running ones finish): the viewer holds
        read-ahead while napari slices and draws a step, so the cores go to the
        picture on screen first, and releases it when the event loop is idle."""
        with self._cond:
            self._held = held
            if not held:
                self._cond.notify_all()

    @property
    def held(self) -> bool:
        return self._held

    def cancel(self) -> None:
        """Drop every queued job (running decodes finish)."""
        with self._cond:
            self.counts["dropped"] += len(self._pending)
            self._pending.clear()
            self._planned = []

    @property
    def planned(self) -> list[tuple[FrameTable, int]]:
        """The jobs of the last request (for tests and benchmarks)."""
        return list(self._planned)

    # ---- threads

    def _stalled(self) -> int:
        now = time.monotonic()
        return sum(1 for start, _, _ in self._running.values() if now - start > self.settings.slow_after)

    def _wanted_threads(self) -> int:
        s = self.settings
        return max(1, s.threads) + min(self._stalled(), s.max_extra)

    def _ensure_threads(self) -> None:
        """Start threads up to the wanted number (lock held)."""
        alive = {t for t in self._threads if t.is_alive()}
        self._threads = alive
        while self._pending and len(self._threads) < self._wanted_threads():
            t = threading.Thread(target=self._work, name="napari-dcm-readahead", daemon=True)
            self._threads.add(t)
            t.start()
        if self._pending and (self._watchdog is None or not self._watchdog.is_alive()):
            self._watchdog = threading.Thread(target=self._watch, name="napari-dcm-readahead-watch", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        """While frames wait, look for stalled decodes and start threads beside them."""
        with self._cond:
            while not self._closed and (self._pending or self._running):
                self._cond.wait(max(0.05, self.settings.slow_after / 4))
                if self._pending:
                    self._ensure_threads()

    def _work(self) -> None:
        me = threading.get_ident()
        _background_thread(self.settings.nice)
        while True:
            with self._cond:
                deadline = time.monotonic() + self.settings.idle_exit
                while (not self._pending or self._held) and not self._closed:
                    left = deadline - time.monotonic()
                    if not self._held and (left <= 0 or len(self._threads) > self._wanted_threads()):
                        self._threads.discard(threading.current_thread())
                        return
                    self._cond.wait(min(left, 1.0) if left > 0 else 1.0)
                if self._closed:
                    self._threads.discard(threading.current_thread())
                    return
                table, k = self._pending.popleft()
                if self.cache.busy(table.key(k)):
                    self.counts["skipped"] += 1
                    continue
                self._running[me] = (time.monotonic(), table, k)
                # a new request may find this decode stalled and add a thread beside it
                self._ensure_threads()
            ok = True
            try:
                table.load(k, strict=True)
            except Exception:  # a failing frame is napari's to report when shown
                ok = False
            with self._cond:
                self._running.pop(me, None)
                self.counts["decoded" if ok else "failed"] += 1
                self._cond.notify_all()
                if len(self._threads) > self._wanted_threads():
                    self._threads.discard(threading.current_thread())
                    return

    def idle(self) -> bool:
        """Nothing queued (or held) and nothing decoding."""
        with self._cond:
            return (not self._pending or self._held) and not self._running

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until :meth:`idle` (tests, benchmarks); False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while (self._pending and not self._held) or self._running:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, wait: float = 0.0) -> bool:
        """Stop: drop the queue; threads end after their current decode (waited for up
        to ``wait`` seconds).  Returns whether nothing is decoding any more."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
        return self.wait_idle(wait) if wait > 0 else self.idle()


_engines: weakref.WeakSet[ReadAhead] = weakref.WeakSet()


def shutdown_all(wait: float = 10.0) -> bool:
    """Close every read-ahead engine of this process and wait for running decodes
    (a new session, test teardown).  Returns whether all stopped in time."""
    ok = True
    for e in list(_engines):
        ok = e.close(wait) and ok
    return ok
