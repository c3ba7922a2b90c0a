"""Remote inspection through a dask.distributed scheduler.

The files live on the workers' machines; paths are paths there.  What runs
where:

* **on the workers**: listing folders, the header scan (chunks of files per
  task, spread over the workers), the frame tables that need the file
  (encapsulated offset tables, the codestream head that gives the stored
  precision), pydicom headers of the few files that need one, and every
  frame's read (:class:`~napari_dcm.dicom.sources.cluster.ClusterFrame`);
* **on the client**: series assembly, geometry, windows and layers, from the
  scan results exactly as for local files, and the decoding of each frame
  from its stored bytes (unless ``remote_decode``).

Clients live in a per-process registry keyed by the scheduler address (as
DICOMweb sessions do), so references and graphs hold an address, never a
client.  Every wait is bounded: a task whose worker died stays "pending" in
dask forever, so waits poll their future, watch the scheduler's worker list
and give up with a :class:`~napari_dcm.errors.ClusterError` naming the
scheduler and the reason.

Security: a dask scheduler runs any code its clients send.  Addresses that
are not on the loopback interface are refused unless they use TLS
(``tls://``) or ``insecure=True``; reach a remote scheduler through SSH
(``ssh -L``, or :mod:`napari_dcm.dicom.tunnel`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ClusterError
from .sources import EncodedFrame
from .sources.cluster import DECODED, ClusterFile, ClusterFrame

if TYPE_CHECKING:
    from pydicom import Dataset

    from .discovery import ScanResult
    from .imagepixel import PixelDesc
    from .scan import Header

log = logging.getLogger("napari_dcm")


def _env_seconds(name: str, default: float) -> float:
    try:
        v = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return v if v > 0 else default


CONNECT_TIMEOUT = _env_seconds("NAPARI_DCM_CLUSTER_CONNECT_TIMEOUT", 10.0)  # reach the scheduler, see a worker
FRAME_TIMEOUT = _env_seconds("NAPARI_DCM_CLUSTER_TIMEOUT", 60.0)  # one frame, one header, one listing
SCAN_TIMEOUT = _env_seconds("NAPARI_DCM_CLUSTER_SCAN_TIMEOUT", 600.0)  # one chunk of the header scan
NO_WORKER_GRACE = 3.0  # seconds without any worker (or scheduler connection) before waits give up
POLL = 0.2  # how often a wait looks at its future
CHECK_EVERY = 0.5  # how often the worker list is asked for (shared by the waiting threads)
SCAN_CHUNK = 200  # files per header-scan task
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


# --------------------------------------------------------------------------
# addresses and security


def normalize_address(address: str) -> str:
    """``host:port`` -> ``tcp://host:port``; other addresses unchanged (stripped)."""
    a = address.strip()
    return a if "://" in a else f"tcp://{a}"


def _host_of(address: str) -> str:
    rest = address.split("://", 1)[1]
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):  # [::1]:8786
        return rest[1 : rest.index("]")]
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def is_loopback(address: str) -> bool:
    """Is the address's host this machine's loopback interface?"""
    host = _host_of(normalize_address(address)).lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(address: str, insecure: bool = False) -> str:
    """The normalized address, or ClusterError when it would expose a scheduler unprotected.

    Allowed: loopback ``tcp://`` (what ``ssh -L`` gives), ``tls://`` anywhere,
    in-process ``inproc://``; anything else only with ``insecure``.
    """
    a = normalize_address(address)
    scheme = a.split("://", 1)[0].lower()
    if scheme in ("tls", "wss", "inproc") or insecure:
        return a
    if scheme not in ("tcp", "ws", "ucx"):
        raise ClusterError(a, f"unknown scheduler protocol {scheme!r} (expected tcp:// or tls://)")
    if is_loopback(a):
        return a
    raise ClusterError(
        a,
        "refusing to connect: the scheduler is not on the loopback interface and not reached with TLS. "
        "A dask scheduler runs any code its clients send; reach it through SSH "
        "(napari-dcm --tunnel USER@HOST, or ssh -L PORT:127.0.0.1:PORT and --scheduler tcp://127.0.0.1:PORT), "
        "use tls://, or pass --insecure (insecure=True) if this network is trusted",
    )


# --------------------------------------------------------------------------
# the per-process registry of clients


@dataclass
class _Entry:
    """A connected scheduler: its client and what the waits know about its health."""

    address: str
    client: Any  # distributed.Client (untyped)
    owned: bool  # created here (closed by disconnect) or handed in by the caller
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked: float = 0.0  # when the worker list was last asked for
    workers: int = 1
    no_workers_since: float | None = None
    lost_since: float | None = None
    down: str = ""  # why the cluster cannot serve now ("" when it can)
    notified: bool = False  # the outage was notified once (see outage_notice)

    def health(self, force: bool = False) -> str:
        """Why the scheduler cannot serve now (no worker, no connection, after the grace time), or ""."""
        now = time.monotonic()
        with self.lock:
            fresh = not force and now - self.checked < CHECK_EVERY
        status = getattr(self.client, "status", "running")
        if status in ("closed", "closing"):
            return "the connection to the scheduler was closed"
        if status != "running":
            with self.lock:
                self.lost_since = self.lost_since or now
                if now - self.lost_since >= NO_WORKER_GRACE:
                    return "the connection to the scheduler is lost"
            return ""
        with self.lock:
            self.lost_since = None
        if not fresh:
            try:
                n = len(self.client.nthreads(callback_timeout=2))
            except Exception:  # the scheduler does not answer in time
                n = -1
            with self.lock:
                self.checked = time.monotonic()
                if n < 0:
                    self.lost_since = self.lost_since or now
                    return "the scheduler does not answer" if now - self.lost_since >= NO_WORKER_GRACE else ""
                self.workers = n
        with self.lock:
            if self.workers > 0:
                self.no_workers_since = None
                return ""
            self.no_workers_since = self.no_workers_since or now
            if now - self.no_workers_since >= NO_WORKER_GRACE or force:
                return "no workers are connected to the scheduler (a worker died or left)"
        return ""

    def mark_down(self, reason: str) -> None:
        with self.lock:
            if not self.down:
                self.notified = False
            self.down = reason

    def mark_up(self) -> None:
        with self.lock:
            self.down = ""
            self.notified = False
            self.no_workers_since = None


_registry: dict[str, _Entry] = {}
_registry_lock = threading.Lock()


def connect(
    scheduler: Any,
    *,
    insecure: bool = False,
    timeout: float = CONNECT_TIMEOUT,
    security: Any = None,
) -> str:
    """Connect to a scheduler (an address or a ``distributed.Client``); return its registry address.

    Waits up to ``timeout`` seconds for the scheduler and for at least one
    worker that can import napari_dcm.  Raises :class:`ClusterError`
    (unreachable, refused as insecure, no workers, workers without napari-dcm).
    """
    if not isinstance(scheduler, str):
        address = str(scheduler.scheduler.address)
        with _registry_lock:
            if address not in _registry or _registry[address].client is not scheduler:
                _registry[address] = _Entry(address, scheduler, owned=False)
            given = _registry[address]
        _check_workers(given, timeout)
        return address
    address = check_address(scheduler, insecure)
    with _registry_lock:
        known = _registry.get(address)
    if known is not None and known.client.status == "running":
        return address
    import distributed

    new_client: Any = distributed.Client  # untyped
    try:
        client: Any = new_client(
            address,
            timeout=f"{max(1, int(timeout))}s",
            set_as_default=False,
            security=security,
            direct_to_workers=False,
        )
    except (OSError, TimeoutError) as exc:
        raise ClusterError(address, f"scheduler unreachable ({_first_line(exc)})") from exc
    except ValueError as exc:  # e.g. tls:// without certificates
        raise ClusterError(address, f"cannot connect: {_first_line(exc)}") from exc
    entry = _Entry(address, client, owned=True)
    try:
        _check_workers(entry, timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            client.close(timeout=2)
        raise
    with _registry_lock:
        old = _registry.get(address)
        _registry[address] = entry
    if old is not None and old.owned:
        with contextlib.suppress(Exception):
            old.client.close(timeout=2)
    return address


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__


def _check_workers(entry: _Entry, timeout: float) -> None:
    """At least one worker, and the workers import napari_dcm (checked with one small task)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            n = len(entry.client.nthreads(callback_timeout=max(1.0, min(5.0, deadline - time.monotonic()))))
        except Exception as exc:  # no answer in time (or distributed's sync tripping over its own timeout)
            if time.monotonic() > deadline:
                raise ClusterError(entry.address, f"the scheduler does not answer ({_first_line(exc)})") from exc
            n = 0
        if n:
            break
        if time.monotonic() > deadline:
            raise ClusterError(entry.address, f"no workers are connected to the scheduler (waited {timeout:g} s)")
        time.sleep(0.1)
    try:
        info = _wait(entry, entry.client.submit(_worker_hello, pure=False), timeout + FRAME_TIMEOUT, "a first task")
    except ClusterError:
        raise
    except Exception as exc:
        raise ClusterError(
            entry.address,
            f"the workers cannot run napari-dcm ({type(exc).__name__}: {_first_line(exc)}); "
            "install napari-dcm in the workers' Python environment",
        ) from exc
    if info.get("version") != _version():
        log.warning(
            "napari-dcm %s on the workers of %s, %s here: frame references may not match",
            info.get("version"),
            entry.address,
            _version(),
        )


def _version() -> str:
    try:
        from .._version import __version__
    except ImportError:  # pragma: no cover - a checkout without the generated file
        return "?"
    return str(__version__)


def _entry(address: str) -> _Entry:
    """The registry entry of ``address`` (connecting, with the security rules, if this process has none)."""
    with _registry_lock:
        entry = _registry.get(address)
    if entry is None:
        connect(address)  # e.g. a graph unpickled in another process
        with _registry_lock:
            entry = _registry[address]
    return entry


def client(address: str) -> Any:
    """The ``distributed.Client`` registered for ``address`` (connecting if needed)."""
    return _entry(address).client


def connected() -> list[str]:
    """Addresses with a registered client."""
    with _registry_lock:
        return list(_registry)


def disconnect(address: str) -> None:
    """Forget ``address`` (closing its client if it was created here) and its header readers."""
    from . import tags

    with _registry_lock:
        entry = _registry.pop(address, None)
    tags.remove_header_source(HeaderReader(address))
    if entry is not None and entry.owned:
        with contextlib.suppress(Exception):
            entry.client.close(timeout=5)


def reset() -> None:
    """Disconnect everything (tests; a new session)."""
    for a in connected():
        disconnect(a)


def outage_notice(reason: str) -> str | None:
    """What to tell the user about a frame that failed with ``reason`` (its error text):
    None when it is not a cluster outage (report it as any frame error); "" when this
    outage was already told; else one message naming the scheduler and the reason."""
    with _registry_lock:
        entries = list(_registry.values())
    for e in entries:
        mark = f"ClusterError: {e.address}: "
        if mark not in reason:
            continue
        with e.lock:
            if e.notified:
                return ""
            e.notified = True
        why = reason.split(mark, 1)[1]
        if why.endswith(")") and " (frame " in why:
            why = why[: why.rindex(" (frame ")]
        return f"napari-dcm: {e.address}: {why}; frames that cannot be fetched are shown blank"
    return None


# --------------------------------------------------------------------------
# bounded waits


def _wait(entry: _Entry, fut: Any, timeout: float, what: str) -> Any:
    """The future's result; ClusterError when the cluster cannot give it (bounded in time).

    Errors raised by the task itself (a missing file, a decoding error) come
    back as they were raised on the worker.  The wait is on a local event set
    by the future's done-callback (polling ``Future.result(timeout=...)`` from
    several threads races inside distributed's ``sync``).
    """
    from distributed.client import FutureCancelledError

    finished = threading.Event()
    fut.add_done_callback(lambda _f: finished.set())
    deadline = time.monotonic() + timeout
    try:
        while True:
            if finished.wait(POLL) or fut.done():
                try:
                    result = fut.result()
                except FutureCancelledError as exc:
                    reason = entry.health(force=True)
                    if reason:
                        entry.mark_down(reason)
                    raise ClusterError(entry.address, _msg(what, reason or "the task was cancelled")) from exc
                entry.mark_up()
                return result
            reason = entry.health()
            if reason:
                entry.mark_down(reason)
                raise ClusterError(entry.address, _msg(what, reason))
            if time.monotonic() > deadline:
                raise ClusterError(entry.address, _msg(what, f"no answer within {timeout:g} s"))
    finally:
        if not fut.done():
            with contextlib.suppress(Exception):
                fut.cancel()


def _msg(what: str, reason: str) -> str:
    return f"{what}: {reason}" if what else reason


def run(address: str, fn: Callable[..., Any], *args: Any, timeout: float = FRAME_TIMEOUT, what: str = "") -> Any:
    """Run ``fn(*args)`` on a worker of ``address`` and wait (bounded) for its result."""
    entry = _entry(address)
    if entry.down:
        reason = entry.health(force=True)
        if reason:
            raise ClusterError(address, _msg(what, reason))
        entry.mark_up()
    return _wait(entry, entry.client.submit(fn, *args, pure=False), timeout, what)


# --------------------------------------------------------------------------
# frames


def _on_worker_with(path: str) -> bool:
    """Is this code running inside a dask worker that can see ``path`` (a graph computed on the cluster)?"""
    import sys

    if "distributed.worker" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return os.path.exists(path)


def fetch_frame(ref: ClusterFrame) -> EncodedFrame:
    """``ref``'s stored bytes (or its decoded array with ``decode_desc``), read on a worker."""
    if _on_worker_with(ref.path):
        return _worker_fetch(ref.inner, ref.decode_desc)
    enc: EncodedFrame = run(
        ref.address, _worker_fetch, ref.inner, ref.decode_desc, what=""
    )  # the frame's error names the file and frame
    return enc


def _worker_fetch(inner: Any, desc: PixelDesc | None) -> EncodedFrame:
    """On a worker: the frame's stored bytes; decoded there when ``desc`` is given."""
    enc: EncodedFrame = inner.read()
    if desc is None:
        if not isinstance(enc.data, bytes):
            import numpy as np

            # one contiguous buffer (numpy arrays travel out of band, without a copy)
            data = np.frombuffer(enc.data, np.uint8)
            return EncodedFrame(data, enc.transfer_syntax, enc.index, enc.nframes, enc.bit_offset)
        return enc
    from .decode import decode

    return EncodedFrame(decode(enc, desc), DECODED)


# --------------------------------------------------------------------------
# headers (the DICOM dock's tags, mammography views) read on a worker


def read_remote_header(address: str, path: str) -> Dataset:
    """The pydicom header (no pixel data) of ``path`` on the workers of ``address``."""
    ds: Dataset = run(address, _worker_header, path, what=f"the header of {path}")
    return ds


@dataclass(frozen=True)
class HeaderReader:
    """``tags.read_header`` for files of one scheduler (equal for equal addresses)."""

    address: str

    def __call__(self, path: str) -> Dataset:
        return read_remote_header(self.address, path)


def _worker_header(path: str) -> Dataset:
    import warnings

    from .scan import read_dataset  # bounded: refuses FIFOs, never inflates a whole deflated file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_dataset(path)


# --------------------------------------------------------------------------
# the header scan on the workers


def _worker_hello() -> dict[str, Any]:
    import platform

    return {"version": _version(), "host": platform.node(), "pid": os.getpid()}


def _worker_list(path: str, recursive: bool) -> tuple[str, list[str]]:
    """On a worker: (absolute path, its files), or ("", [path]) when it does not exist."""
    from .discovery import _is_dicomdir_name, dicomdir_files, iter_files
    from .scan import sniff

    p = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(p):
        return "", [path]
    if os.path.isfile(p) and _is_dicomdir_name(p) and sniff(p) is not None:
        return p, dicomdir_files(p)
    return p, [f for f in iter_files([p], recursive) if not _is_dicomdir_name(f)]


def _worker_scan(files: list[str], address: str, remote_decode: bool) -> list[Header | tuple[str, str]]:
    """On a worker: scan a chunk of files and build what needs the files (see :func:`prepare`)."""
    from .discovery import _scan_chunk
    from .scan import Header

    out = _scan_chunk(files)
    for h in out:
        if isinstance(h, Header):
            prepare(h, address, remote_decode)
    return out


def prepare(h: Header, address: str, remote_decode: bool = False) -> None:
    """On a worker: give a scanned header what the client cannot read itself.

    ``h.source`` becomes a :class:`ClusterFile` holding the frame references
    (offset tables read here), the codestream head of frame 0 and any error
    the client must report; ``h.dataset`` the pydicom header when the stack
    needs one.  File-size checks run here, where the file is.
    """
    from .overlays import kind_of
    from .series import NON_IMAGE_SOP_CLASSES, StackError, check_size, load_dataset, pixel_desc
    from .sources.file import file_frame_refs

    if kind_of(h.sop_class_uid) or not h.has_pixels or h.sop_class_uid in NON_IMAGE_SOP_CLASSES:
        h.source = ClusterFile(address)  # overlays are built on a worker; the rest is skipped
        return
    try:
        nframes = h.values.get("number_of_frames") or 1
        desc = pixel_desc(h)
        check_size(h, desc, nframes)
        if not h.walked or h.needs_dataset:
            h.dataset = load_dataset(h)
        refs = file_frame_refs(h, desc, nframes)
        h.source = ClusterFile(address, tuple(refs), head=_head(refs[0], desc), remote_decode=remote_decode)
    except StackError as exc:
        h.source = ClusterFile(address, error=str(exc))
    except (ValueError, EOFError, OSError) as exc:
        h.source = ClusterFile(address, error=f"cannot locate frames: {exc}")
    except Exception as exc:  # never let one file stop the chunk
        h.source = ClusterFile(address, error=f"{type(exc).__name__}: {exc}")


def _head(ref: Any, desc: PixelDesc) -> bytes | None:
    """The shortest prefix of frame 0's codestream that gives the same SIZ/SOF parameters
    as its first 4 KiB (what the client's precision check reads), or None."""
    from . import codecs

    ts = desc.transfer_syntax
    if ts in codecs.JPEG2000_SYNTAXES:
        parse: Callable[[bytes], dict[str, Any]] = codecs.j2k_parameters
    elif ts in codecs.JPEGLS_SYNTAXES:
        parse = codecs.jpeg_parameters
    else:
        return None
    head_of = getattr(ref, "head", None)
    if head_of is None:
        return None
    try:
        full: bytes = head_of(4096)
        want = parse(full)
    except Exception:
        return None
    for n in (256, 1024):
        if n < len(full):
            if ts in codecs.JPEG2000_SYNTAXES and b"\xff\x52" not in full[:n]:
                continue  # keep the COD marker too (decomposition levels, for reduced resolutions)
            try:
                if parse(full[:n]) == want:
                    return full[:n]
            except Exception:
                pass
    return full


def scan(
    address: str,
    paths: Sequence[str],
    recursive: bool = True,
    progress: Callable[[int, int], None] | None = None,
    remote_decode: bool = False,
) -> ScanResult:
    """Find and scan every file under ``paths`` (paths on the workers) on the workers.

    Folders are listed on the workers (one task per path), then the files are
    scanned in chunks of ``SCAN_CHUNK`` per task, spread over the workers; only
    the scan results come back.  Raises ClusterError for a path that does not
    exist there (naming it) and when the cluster cannot answer.
    """
    from .discovery import ScanResult
    from .scan import Header

    entry = _entry(address)
    c = entry.client
    listings = [
        _wait(entry, fut, FRAME_TIMEOUT, f"listing {p}")
        for p, fut in zip(paths, c.map(_worker_list, list(paths), recursive=recursive, pure=False))
    ]
    files: list[str] = []
    for p, (root, found) in zip(paths, listings):
        if not root:
            raise ClusterError(address, f"{p}: no such file or folder on the workers")
        files += found
    files = list(dict.fromkeys(files))
    result = ScanResult(n_files=len(files))
    chunks = [files[i : i + SCAN_CHUNK] for i in range(0, len(files), SCAN_CHUNK)]
    futs = c.map(_worker_scan, chunks, address=address, remote_decode=remote_decode, pure=False)
    done = 0
    try:
        for i, fut in enumerate(futs):
            items = _wait(entry, fut, SCAN_TIMEOUT, f"the header scan ({done} of {len(files)} files done)")
            for it in items:
                if isinstance(it, Header):
                    result.headers.append(it)
                else:
                    result.skipped.append(it)
            done += len(chunks[i])
            if progress:
                progress(done, len(files))
    finally:
        for f in futs:
            if not f.done():
                with contextlib.suppress(Exception):
                    f.cancel()
    from . import tags

    tags.add_header_source([h.path for h in result.headers], HeaderReader(address))
    return result


def remote_paths(headers: Iterable[Header]) -> list[str]:
    """Paths of headers that came from a cluster scan."""
    return [h.path for h in headers if isinstance(h.source, ClusterFile)]
