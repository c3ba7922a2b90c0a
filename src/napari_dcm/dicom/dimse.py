"""DIMSE query/retrieve with a PACS node: C-ECHO, C-FIND, C-GET, C-MOVE (pynetdicom).

* Associations, presentation contexts, SCP role selection and the temporary
  storage SCP of C-MOVE are pynetdicom's; this module chooses what to ask
  for and turns every outcome into data or a typed :class:`DimseError`
  naming the node and, when the node sent one, the DIMSE status.
* Retrieved instances are written as they arrive (bytes as sent, never
  decoded here) to a private, bounded cache under the user's cache directory
  (:class:`RetrieveCache`), one folder per series, and are read from there by
  the normal reader, lazily.
* C-GET proposes, for each SOP class of the series (learned by an
  IMAGE-level C-FIND), one presentation context per compressed syntax that
  napari-dcm decodes and one for the uncompressed syntaxes: a node finding
  its stored syntax accepted sends the instance as stored (a node that has
  to transcode may not be able to, e.g. Orthanc without GDCM for JPEG 2000).
* Saved nodes live in a small JSON settings file (AE titles, hosts, ports;
  DIMSE needs no secrets).

Nothing here imports napari or Qt; :class:`RetrieveJob` runs a retrieve on a
thread so a viewer can open the files as they arrive.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import DimseError

if TYPE_CHECKING:
    from pydicom import Dataset
    from pynetdicom.association import Association

log = logging.getLogger("napari_dcm")

__all__ = [
    "DimseError",
    "Node",
    "Timeouts",
    "Retrieved",
    "RetrieveCache",
    "RetrieveJob",
    "echo",
    "find_studies",
    "find_series",
    "find_instances",
    "retrieve",
    "load_settings",
    "save_settings",
]

DEFAULT_CALLING_AE = "NAPARI_DCM"
DEFAULT_PORT = 104
DEFAULT_MOVE_PORT = 11113
DEFAULT_CACHE_MB = 4096
METHODS = ("C-GET", "C-MOVE")

EXPLICIT_LE = "1.2.840.10008.1.2.1"
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]
# stored syntaxes napari-dcm decodes, each offered in its own presentation context so a
# node sends instances as stored (most used first: they are kept when contexts run short)
COMPRESSED = [
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.4.51",  # JPEG extended (12 bit)
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.1.99",  # deflated explicit LE
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.8.1",  # deflated image frames
    "1.2.840.10008.1.2.4.53",  # JPEG spectral selection (retired)
]
MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8, pynetdicom)

# image storage classes by modality, for nodes that do not answer IMAGE-level C-FIND
_MODALITY_CLASSES = {
    "CT": ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"],
    "MR": ["1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1"],
    "CR": ["1.2.840.10008.5.1.4.1.1.1"],
    "DX": ["1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1"],
    "MG": ["1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1", "1.2.840.10008.5.1.4.1.1.13.1.3"],
    "US": ["1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1"],
    "XA": ["1.2.840.10008.5.1.4.1.1.12.1"],
    "NM": ["1.2.840.10008.5.1.4.1.1.20"],
    "PT": ["1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.130"],
    "SEG": ["1.2.840.10008.5.1.4.1.1.66.4"],
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


# --------------------------------------------------------------------------
# nodes and settings


_AET_OK = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable, no backslash, 16 characters


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait: TCP connect, association answer, each DIMSE message, an idle network."""

    connect: float = 5.0
    acse: float = 10.0
    dimse: float = 60.0
    network: float = 60.0


@dataclass(frozen=True)
class Node:
    """A DICOM node (PACS) to query and retrieve from.

    ``ae_title``: the node's (called) AE title; ``calling_ae``: ours.
    ``method``: how to retrieve ("C-GET", or "C-MOVE" to ``move_ae`` -- by
    default our calling AE title -- which the node must know with our host
    and ``move_port``, where a temporary storage SCP listens meanwhile).
    """

    ae_title: str
    host: str
    port: int = DEFAULT_PORT
    calling_ae: str = DEFAULT_CALLING_AE
    name: str = ""
    method: str = "C-GET"
    move_ae: str = ""
    move_port: int = DEFAULT_MOVE_PORT

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self})" if self.name else str(self)

    @property
    def destination(self) -> str:
        """The C-MOVE destination AE title."""
        return self.move_ae or self.calling_ae

    @classmethod
    def parse(cls, text: str, **options: Any) -> Node:
        """``AET@host:port`` (port 104 when left out) -> Node; raises ValueError."""
        m = re.fullmatch(r"\s*([^@]+)@(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?\s*", text)
        if not m:
            raise ValueError(f"not a DICOM node {text!r} (expected AET@host:port)")
        host = m.group(2).strip("[]")
        node = cls(m.group(1).strip(), host, int(m.group(3) or DEFAULT_PORT), **options)
        node.validate()
        return node

    def validate(self) -> None:
        """Raises ValueError naming what is wrong (AE titles, host, ports, method)."""
        for what, aet in (("AE title", self.ae_title), ("calling AE title", self.calling_ae)):
            if not _AET_OK.match(aet) or not aet.strip():
                raise ValueError(f"{what} {aet!r}: 1-16 printable characters, no backslash")
        if self.move_ae and not _AET_OK.match(self.move_ae):
            raise ValueError(f"C-MOVE destination {self.move_ae!r}: 1-16 printable characters, no backslash")
        if not self.host.strip():
            raise ValueError("no host")
        for what, port in (("port", self.port), ("C-MOVE port", self.move_port)):
            if not 0 < int(port) < 65536:
                raise ValueError(f"{what} {port}: not between 1 and 65535")
        if self.method not in METHODS:
            raise ValueError(f"retrieve method {self.method!r}: one of {', '.join(METHODS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Node:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        node = cls(**known)
        node = replace(node, port=int(node.port), move_port=int(node.move_port))
        node.validate()
        return node


def _base_dir(env: str, xdg: str, fallback: str) -> str:
    return os.environ.get(env) or os.path.join(
        os.environ.get(xdg) or os.path.join(os.path.expanduser("~"), fallback), "napari-dcm"
    )


def cache_root() -> str:
    """napari-dcm's cache directory (``NAPARI_DCM_CACHE``, else ``$XDG_CACHE_HOME/napari-dcm``)."""
    return _base_dir("NAPARI_DCM_CACHE", "XDG_CACHE_HOME", ".cache")


def settings_path() -> str:
    """The PACS settings file (``NAPARI_DCM_CONFIG``, else ``$XDG_CONFIG_HOME/napari-dcm``)/pacs.json."""
    return os.path.join(_base_dir("NAPARI_DCM_CONFIG", "XDG_CONFIG_HOME", ".config"), "pacs.json")


@dataclass
class Settings:
    """What the PACS settings file holds: saved nodes and the cache bound (no secrets)."""

    nodes: list[Node] = field(default_factory=list)
    cache_max_mb: int = DEFAULT_CACHE_MB
    calling_ae: str = DEFAULT_CALLING_AE

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)


def load_settings(path: str | None = None) -> Settings:
    """Saved nodes and options; a missing file gives the defaults, a broken one is
    logged and ignored (never raised: the settings must not stop the viewer)."""
    path = path or settings_path()
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("napari-dcm: ignoring PACS settings %s (%s)", path, exc)
        return Settings()
    nodes = []
    for d in raw.get("nodes", []) if isinstance(raw, dict) else []:
        try:
            nodes.append(Node.from_dict(d))
        except (TypeError, ValueError) as exc:
            log.warning("napari-dcm: ignoring a saved PACS node in %s (%s)", path, exc)
    out = Settings(nodes=nodes)
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        out.cache_max_mb = max(1, int(raw.get("cache_max_mb", DEFAULT_CACHE_MB)))
    with contextlib.suppress(AttributeError):
        out.calling_ae = str(raw.get("calling_ae") or DEFAULT_CALLING_AE)
    return out


def save_settings(settings: Settings, path: str | None = None) -> str:
    """Write the settings file atomically (readable by the user only); returns its path."""
    path = path or settings_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    names = [n.name for n in settings.nodes]
    if len(set(names)) != len(names):
        raise ValueError("saved nodes need distinct names")
    body = {
        "version": 1,
        "calling_ae": settings.calling_ae,
        "cache_max_mb": settings.cache_max_mb,
        "nodes": [n.to_dict() for n in settings.nodes],
    }
    fd, tmp = tempfile.mkstemp(prefix=".pacs-", suffix=".json", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


# --------------------------------------------------------------------------
# the private retrieve cache


_UID_OK = re.compile(r"^[0-9][0-9.]{0,63}$")


def _safe(uid: str) -> str:
    """A UID as a file name: as is when it is a UID, else a hash (a node's UIDs name files)."""
    uid = uid.strip().rstrip("\x00")
    return uid if _UID_OK.match(uid) and ".." not in uid else "x" + hashlib.sha1(uid.encode()).hexdigest()[:32]


class RetrieveCache:
    """Retrieved instances: ``root/<study>/<series>/<sop>.dcm``, bounded in bytes.

    Private to the user (folders 0700, files 0600), under the user's cache
    directory, never beside the user's own data.  Files appear whole (written
    to a temporary name, then renamed).  When the cache grows beyond
    ``max_bytes`` the least recently used series go, except those pinned
    (open in this process) and the one being retrieved.
    """

    def __init__(self, root: str | None = None, max_bytes: int | None = None) -> None:
        if max_bytes is None:
            max_bytes = load_settings().cache_max_mb * 2**20
        self.root = os.path.abspath(root or os.path.join(cache_root(), "pacs"))
        self.max_bytes = int(max_bytes)
        self._pinned: set[str] = set()
        self._lock = threading.Lock()

    def _mkdir(self, path: str) -> None:
        """The folder and those between it and the root, private to the user."""
        parts = os.path.relpath(path, self.root).split(os.sep)
        d = self.root
        for part in ["", *parts]:
            d = os.path.join(d, part) if part else d
            if not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
                os.chmod(d, 0o700)

    def series_dir(self, study: str, series: str) -> str:
        return os.path.join(self.root, _safe(study), _safe(series))

    def store(self, study: str, series: str, sop: str, data: bytes) -> str:
        """Write one instance (DICOM file bytes); returns its path."""
        d = self.series_dir(study, series)
        self._mkdir(d)
        path = os.path.join(d, _safe(sop) + ".dcm")
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=d)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def files(self, study: str, series: str) -> list[str]:
        d = self.series_dir(study, series)
        try:
            names = sorted(n for n in os.listdir(d) if n.endswith(".dcm") and not n.startswith("."))
        except FileNotFoundError:
            return []
        return [os.path.join(d, n) for n in names]

    def has(self, study: str, series: str, sops: list[str]) -> bool:
        """Every instance of ``sops`` is in the cache."""
        have = {os.path.basename(p)[:-4] for p in self.files(study, series)}
        return bool(sops) and all(_safe(s) in have for s in sops)

    def pin(self, folder: str) -> None:
        """Keep a series folder while its files are open in this process."""
        with self._lock:
            self._pinned.add(os.path.abspath(folder))

    def touch(self, folder: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(folder)

    def _series_folders(self) -> list[tuple[float, int, str]]:
        out: list[tuple[float, int, str]] = []
        if not os.path.isdir(self.root):
            return out
        for study in os.scandir(self.root):
            if not study.is_dir(follow_symlinks=False):
                continue
            for series in os.scandir(study.path):
                if not series.is_dir(follow_symlinks=False):
                    continue
                size = 0
                for f in os.scandir(series.path):
                    with contextlib.suppress(OSError):
                        size += f.stat(follow_symlinks=False).st_size
                out.append((series.stat().st_mtime, size, series.path))
        return out

    @property
    def nbytes(self) -> int:
        return sum(size for _, size, _ in self._series_folders())

    def evict(self, keep: tuple[str, ...] = ()) -> int:
        """Remove least recently used series until the cache fits; returns bytes freed."""
        folders = sorted(self._series_folders())
        total = sum(size for _, size, _ in folders)
        freed = 0
        protected = {os.path.abspath(k) for k in keep} | self._pinned
        for _, size, path in folders:
            if total - freed <= self.max_bytes:
                break
            if os.path.abspath(path) in protected:
                continue
            shutil.rmtree(path, ignore_errors=True)
            freed += size
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))  # the study folder, once empty
        if freed:
            log.info("napari-dcm: PACS cache: %d MiB freed (bound %d MiB)", freed >> 20, self.max_bytes >> 20)
        return freed

    def clear(self) -> tuple[int, int]:
        """Remove every series not open in this process; returns (removed, kept) series."""
        removed = kept = 0
        for _, _, path in self._series_folders():
            if os.path.abspath(path) in self._pinned:
                kept += 1
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))
        return removed, kept


_default_cache: RetrieveCache | None = None


def default_cache() -> RetrieveCache:
    """The process's retrieve cache (settings file bound, ``NAPARI_DCM_CACHE`` root)."""
    global _default_cache
    root = os.path.join(cache_root(), "pacs")
    if _default_cache is None or _default_cache.root != os.path.abspath(root):
        _default_cache = RetrieveCache(root)
    return _default_cache


# --------------------------------------------------------------------------
# associations


def _status_text(code: int, service: str) -> str:
    from pynetdicom import status as st

    table = {
        "C-FIND": st.QR_FIND_SERVICE_CLASS_STATUS,
        "C-GET": st.QR_GET_SERVICE_CLASS_STATUS,
        "C-MOVE": st.QR_MOVE_SERVICE_CLASS_STATUS,
    }.get(service, st.GENERAL_STATUS)
    entry = table.get(code) or st.GENERAL_STATUS.get(code)
    return entry[1] if entry else "unknown status"


_REJECT_REASONS = {
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title {calling!r} not recognised (the node must know this AE title)",
    (1, 7): "called AE title {called!r} not recognised (the node's AE title is different)",
    (2, 2): "protocol version not supported",
    (3, 1): "the node is busy (temporary congestion)",
    (3, 2): "the node's local limit of associations is exceeded",
}


def _why_no_connection(node: Node, timeout: float) -> tuple[str, str]:
    """The reason a TCP connection to the node fails (one diagnostic attempt)."""
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout):
            return "the connection closed before the association was answered", "aborted"
    except ConnectionRefusedError:
        return "cannot connect: connection refused (nothing listens on that port)", "connect"
    except TimeoutError:
        return f"cannot connect: timed out after {timeout:g} s", "timeout"
    except socket.gaierror:
        return f"cannot connect: unknown host {node.host!r}", "connect"
    except OSError as exc:
        return f"cannot connect: {exc.strerror or type(exc).__name__}", "connect"


def _association_error(
    node: Node, assoc: Association, connected: bool, received: list[Any], timeouts: Timeouts
) -> DimseError:
    """Why an association was not established, from what the node sent (``received``: PDUs)."""
    from pynetdicom.pdu import A_ASSOCIATE_RJ

    rj = next((p for p in received if isinstance(p, A_ASSOCIATE_RJ)), None)
    # the node's A-ASSOCIATE-RJ (seen even when its closing the connection races with it)
    if rj is not None or assoc.is_rejected:
        prim = rj if rj is not None else assoc.acceptor.primitive
        source = int(getattr(prim, "source", getattr(prim, "result_source", 0)) or 0)
        diag = int(getattr(prim, "reason_diagnostic", getattr(prim, "diagnostic", 0)) or 0)
        permanent = int(getattr(prim, "result", 1) or 1) == 1
        text = _REJECT_REASONS.get((source, diag))
        kind = "unknown-ae" if (source, diag) in ((1, 3), (1, 7)) else "rejected"
        if text is None:
            text = f"{getattr(prim, 'reason_str', 'no reason given')} ({getattr(prim, 'source_str', 'node')})"
        text = text.format(called=node.ae_title, calling=node.calling_ae)
        return DimseError(str(node), f"association rejected{'' if permanent else ' (transient)'}: {text}", None, kind)
    if not connected:
        reason, kind = _why_no_connection(node, timeouts.connect)
        return DimseError(str(node), reason, None, kind)
    if not received:
        return DimseError(
            str(node), f"no answer to the association request within {timeouts.acse:g} s", None, "timeout"
        )
    if assoc.rejected_contexts and not assoc.accepted_contexts:
        return DimseError(str(node), "the node accepted none of the proposed presentation contexts", None, "rejected")
    return DimseError(str(node), "the node aborted the association", None, "aborted")


@contextlib.contextmanager
def _associate(
    node: Node,
    contexts: list[Any],
    timeouts: Timeouts,
    roles: list[Any] | None = None,
    handlers: list[Any] | None = None,
) -> Iterator[Association]:
    """An established association (released afterwards) or a DimseError."""
    from pynetdicom import AE, evt

    node.validate()
    ae = AE(ae_title=node.calling_ae)
    ae.connection_timeout = timeouts.connect
    ae.acse_timeout = timeouts.acse
    ae.dimse_timeout = timeouts.dimse
    ae.network_timeout = timeouts.network
    ae.maximum_pdu_size = 0  # no limit on what the node sends us
    for cx in contexts:
        ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
    opened = threading.Event()
    received: list[Any] = []  # what the node sent while the association was negotiated

    def on_pdu(event: Any) -> None:
        received.append(event.pdu)

    hs = list(handlers or []) + [(evt.EVT_CONN_OPEN, lambda event: opened.set()), (evt.EVT_PDU_RECV, on_pdu)]
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=roles or None, evt_handlers=hs)
    if not assoc.is_established:
        raise _association_error(node, assoc, opened.is_set(), received, timeouts)
    assoc.unbind(evt.EVT_PDU_RECV, on_pdu)  # only the association's answer mattered
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _check_final(node: Node, service: str, status: Dataset | None, timeouts: Timeouts) -> int:
    """The final status code; raises for no answer (timeout / abort)."""
    if status is None or "Status" not in status:
        raise DimseError(
            str(node),
            f"{service}: no answer within {timeouts.dimse:g} s, or the association was aborted",
            None,
            "timeout",
        )
    return int(status.Status)


# --------------------------------------------------------------------------
# C-ECHO, C-FIND


def echo(node: Node, timeouts: Timeouts | None = None) -> float:
    """C-ECHO; returns the round trip in seconds (association included)."""
    from pynetdicom import build_context
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    timeouts = timeouts or Timeouts()
    t0 = time.perf_counter()
    with _associate(node, [build_context(Verification)], timeouts) as assoc:
        status = assoc.send_c_echo()
        code = _check_final(node, "C-ECHO", status, timeouts)
    if code != 0x0000:
        raise DimseError(str(node), f"C-ECHO failed: {_status_text(code, 'C-ECHO')}", code)
    return time.perf_counter() - t0


def _find(node: Node, query: Dataset, timeouts: Timeouts, limit: int = 0, model: str = "study") -> list[Dataset]:
    """C-FIND with the Study Root model (``model="patient"``: Patient Root); cancels past ``limit``."""
    from pynetdicom import build_context
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
    )

    sop = StudyRootQueryRetrieveInformationModelFind
    if model == "patient":
        sop = PatientRootQueryRetrieveInformationModelFind
    out: list[Dataset] = []
    final = None
    with _associate(node, [build_context(sop)], timeouts) as assoc:
        cancelled = False
        for status, ident in assoc.send_c_find(query, sop, msg_id=1):
            if not status or "Status" not in status:
                final = None
                break
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if ident is not None and (not limit or len(out) < limit):
                    out.append(ident)
                if limit and len(out) >= limit and not cancelled:
                    assoc.send_c_cancel(1, query_model=sop)
                    cancelled = True
                continue
            final = status
    code = _check_final(node, "C-FIND", final, timeouts)
    if code not in (0x0000, 0xFE00):
        raise DimseError(str(node), f"C-FIND failed: {_status_text(code, 'C-FIND')}", code)
    return out


def _text(ds: Dataset, keyword: str) -> str | None:
    v = ds.get(keyword)
    if v is None or v == "":
        return None
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v)


def _int(ds: Dataset, keyword: str) -> int | None:
    v = _text(ds, keyword)
    try:
        return int(float(v)) if v is not None else None
    except ValueError:
        return None


def find_studies(
    node: Node,
    patient_name: str | None = None,
    patient_id: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    modality: str | None = None,
    accession_number: str | None = None,
    description: str | None = None,
    limit: int = 200,
    timeouts: Timeouts | None = None,
) -> list[dict[str, Any]]:
    """C-FIND at STUDY level with the DICOMweb search's fields (wildcards ``*`` ``?``).

    Returns dicts with the keys of :func:`napari_dcm.dicom.dicomweb.search_studies`.
    """
    from pydicom import Dataset

    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.PatientName = patient_name or ""
    q.PatientID = patient_id or ""
    q.StudyDate = f"{date_from or ''}-{date_to or ''}" if (date_from or date_to) else ""
    q.AccessionNumber = accession_number or ""
    q.StudyDescription = description or ""
    q.ModalitiesInStudy = modality or ""
    q.StudyInstanceUID = ""
    q.NumberOfStudyRelatedSeries = ""
    q.NumberOfStudyRelatedInstances = ""
    found = _find(node, q, timeouts or Timeouts(), limit)
    out = [
        {
            "patient_name": _text(ds, "PatientName"),
            "patient_id": _text(ds, "PatientID"),
            "study_date": _text(ds, "StudyDate"),
            "study_description": _text(ds, "StudyDescription"),
            "accession_number": _text(ds, "AccessionNumber"),
            "modalities": _text(ds, "ModalitiesInStudy"),
            "study_uid": _text(ds, "StudyInstanceUID"),
            "n_series": _int(ds, "NumberOfStudyRelatedSeries"),
            "n_instances": _int(ds, "NumberOfStudyRelatedInstances"),
        }
        for ds in found
    ]
    return [s for s in out if s["study_uid"]]


def find_series(node: Node, study_uid: str, timeouts: Timeouts | None = None) -> list[dict[str, Any]]:
    """C-FIND at SERIES level: the series of a study, by series number."""
    from pydicom import Dataset

    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = study_uid
    q.SeriesInstanceUID = ""
    q.Modality = ""
    q.SeriesDescription = ""
    q.SeriesNumber = ""
    q.NumberOfSeriesRelatedInstances = ""
    found = _find(node, q, timeouts or Timeouts())
    out = [
        {
            "series_uid": _text(ds, "SeriesInstanceUID"),
            "modality": _text(ds, "Modality"),
            "series_description": _text(ds, "SeriesDescription"),
            "series_number": _int(ds, "SeriesNumber"),
            "n_instances": _int(ds, "NumberOfSeriesRelatedInstances"),
        }
        for ds in found
    ]
    return sorted((s for s in out if s["series_uid"]), key=lambda s: s["series_number"] or 0)


def find_instances(
    node: Node, study_uid: str, series_uid: str, timeouts: Timeouts | None = None
) -> list[dict[str, Any]]:
    """C-FIND at IMAGE level: the instances of a series with their SOP classes."""
    from pydicom import Dataset

    q = Dataset()
    q.QueryRetrieveLevel = "IMAGE"
    q.StudyInstanceUID = study_uid
    q.SeriesInstanceUID = series_uid
    q.SOPInstanceUID = ""
    q.SOPClassUID = ""
    q.InstanceNumber = ""
    found = _find(node, q, timeouts or Timeouts())
    out = [
        {
            "sop_uid": _text(ds, "SOPInstanceUID"),
            "sop_class": _text(ds, "SOPClassUID"),
            "instance_number": _int(ds, "InstanceNumber"),
            "series_uid": series_uid,
        }
        for ds in found
    ]
    return [i for i in out if i["sop_uid"]]


# --------------------------------------------------------------------------
# retrieve


@dataclass
class Retrieved:
    """What a retrieve brought: files, and how complete it is."""

    node: str
    method: str
    study: str
    series: str | None
    files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # series folders in the cache
    expected: int | None = None  # instances the node listed (C-FIND), when known
    status: int | None = None  # the final DIMSE status
    status_text: str = ""
    completed: int = 0
    failed: int = 0
    warning: int = 0
    refused: int = 0  # instances this side refused (unexpected study, write failure, cancel)
    cancelled: bool = False
    from_cache: bool = False

    @property
    def partial(self) -> bool:
        """Fewer instances than the node listed, or the node reported failed sub-operations."""
        short = self.expected is not None and len(self.files) < self.expected
        return bool(self.files) and (short or self.failed > 0 or self.cancelled)

    def describe(self) -> str:
        what = f"{len(self.files)}" + (f" of {self.expected}" if self.expected is not None else "")
        s = f"{self.method} from {self.node}: {what} instance(s)"
        if self.from_cache:
            s += " (from the local cache)"
        if self.cancelled:
            s += ", cancelled"
        if self.failed:
            s += f", {self.failed} failed sub-operation(s)"
        if self.status is not None and self.status != 0x0000:
            s += f"; DIMSE status 0x{self.status:04X}: {self.status_text}"
        return s


def _storage_contexts(sop_classes: list[str]) -> list[Any]:
    """Storage contexts (SCP role) for C-GET: the uncompressed syntaxes in one context per
    class, then one context per compressed syntax, as many as fit in one association."""
    from pynetdicom import build_context

    classes = list(dict.fromkeys(sop_classes)) or [_SECONDARY_CAPTURE]
    room = MAX_CONTEXTS - 1  # the Get model's own context
    per_class = max(1, min(1 + len(COMPRESSED), room // len(classes)))
    if room // len(classes) < 1:
        raise ValueError(f"{len(classes)} SOP classes do not fit in one association")
    groups = [UNCOMPRESSED] + [[ts] for ts in COMPRESSED]
    out = []
    for sop in classes:
        out += [build_context(sop, g) for g in groups[:per_class]]
    return out


def _scp_contexts() -> list[tuple[str, list[str]]]:
    """What the temporary storage SCP of C-MOVE accepts: every storage class, every syntax we decode."""
    from pynetdicom import AllStoragePresentationContexts

    syntaxes = UNCOMPRESSED + COMPRESSED
    return [(str(cx.abstract_syntax), syntaxes) for cx in AllStoragePresentationContexts]


class _Receiver:
    """The C-STORE handler: writes each instance of the wanted study to the cache."""

    def __init__(
        self,
        cache: RetrieveCache,
        study: str,
        series_of: dict[str, str],
        result: Retrieved,
        on_file: Callable[[str], object] | None,
        cancel: threading.Event,
    ) -> None:
        self.cache, self.study, self.series_of, self.result = cache, study, series_of, result
        self.on_file, self.cancel = on_file, cancel
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> int:
        if self.cancel.is_set():
            with self.lock:
                self.result.refused += 1
            return 0xA700  # refused: out of resources (the user cancelled)
        try:
            sop = str(event.request.AffectedSOPInstanceUID)
            series = self.series_of.get(sop)
            if series is None:
                ds = event.dataset
                if str(ds.get("StudyInstanceUID", "")) != self.study:
                    log.warning("napari-dcm: refused an instance of another study from %s", self.result.node)
                    with self.lock:
                        self.result.refused += 1
                    return 0xA900  # data set does not match SOP class (not what was asked for)
                series = str(ds.get("SeriesInstanceUID", "") or "unknown")
            path = self.cache.store(self.study, series, sop, event.encoded_dataset(include_meta=True))
        except OSError as exc:
            log.error("napari-dcm: cannot write a retrieved instance to %s: %s", self.cache.root, exc)
            with self.lock:
                self.result.refused += 1
            return 0xA700
        with self.lock:
            self.result.files.append(path)
            folder = os.path.dirname(path)
            if folder not in self.result.folders:
                self.result.folders.append(folder)
        if self.on_file is not None:
            try:
                self.on_file(path)
            except Exception:  # a viewer callback must not fail the transfer
                log.exception("napari-dcm: on_file callback failed")
        return 0x0000


def _plan(
    node: Node, study: str, series: str | None, timeouts: Timeouts
) -> tuple[list[dict[str, Any]], dict[str, str], list[str], bool]:
    """Instances to expect (IMAGE-level C-FIND per series), their series and SOP classes.

    Raises ``DimseError`` ("not-found") when the node has no such study or series.
    Returns (instances, sop -> series, SOP classes, instance list known)."""
    listed = find_series(node, study, timeouts)
    if series:
        listed = [s for s in listed if s["series_uid"] == series]
    if not listed:
        what = f"series {series} of study {study}" if series else f"study {study}"
        raise DimseError(str(node), f"{what} not found (C-FIND matched nothing)", None, "not-found")
    instances: list[dict[str, Any]] = []
    known = True
    for s in listed:
        try:
            instances += find_instances(node, study, s["series_uid"], timeouts)
        except DimseError as exc:
            if exc.kind not in ("failed", "rejected"):
                raise
            known = False  # the node does not answer IMAGE-level queries: classes from the modality
    classes = [str(i["sop_class"]) for i in instances if i.get("sop_class")]
    if not known or not classes:
        for s in listed:
            classes += _MODALITY_CLASSES.get(str(s.get("modality") or "").upper(), [])
        classes.append(_SECONDARY_CAPTURE)
    series_of = {str(i["sop_uid"]): str(i["series_uid"]) for i in instances}
    if known and not instances:
        n = sum(int(s.get("n_instances") or 0) for s in listed)
        if not n:
            raise DimseError(str(node), f"no instances in study {study}", None, "not-found")
        known = False
    return instances, series_of, list(dict.fromkeys(classes)), known


def _level_query(study: str, series: str | None) -> Dataset:
    from pydicom import Dataset

    q = Dataset()
    q.QueryRetrieveLevel = "SERIES" if series else "STUDY"
    q.StudyInstanceUID = study
    if series:
        q.SeriesInstanceUID = series
    return q


def _collect(
    node: Node,
    service: str,
    responses: Iterator[tuple[Dataset, Dataset | None]],
    result: Retrieved,
    timeouts: Timeouts,
    on_progress: Callable[[int, int | None], object] | None,
    cancel: threading.Event,
    send_cancel: Callable[[], object],
) -> None:
    final = None
    cancel_sent = False
    for status, _ in responses:
        if not status or "Status" not in status:
            final = None
            break
        code = int(status.Status)
        remaining = status.get("NumberOfRemainingSuboperations")
        result.completed = int(status.get("NumberOfCompletedSuboperations", result.completed) or 0)
        result.failed = int(status.get("NumberOfFailedSuboperations", result.failed) or 0)
        result.warning = int(status.get("NumberOfWarningSuboperations", result.warning) or 0)
        if code in (0xFF00, 0xFF01):
            if on_progress is not None and remaining is not None and result.expected is None:
                with contextlib.suppress(Exception):
                    on_progress(len(result.files), result.completed + result.failed + int(remaining))
            if cancel.is_set() and not cancel_sent:
                with contextlib.suppress(Exception):
                    send_cancel()
                cancel_sent = True
            continue
        final = status
    result.cancelled = cancel.is_set()
    if final is None:
        if result.files:
            result.status_text = "the association ended before the retrieve completed"
            return  # partial: the caller says so
        raise DimseError(
            str(node),
            f"{service}: no answer within {timeouts.dimse:g} s, or the association was aborted",
            None,
            "timeout",
        )
    result.status = int(final.Status)
    result.status_text = _status_text(result.status, service)


def retrieve(
    node: Node,
    study: str,
    series: str | None = None,
    *,
    method: str | None = None,
    cache: RetrieveCache | None = None,
    on_file: Callable[[str], object] | None = None,
    on_progress: Callable[[int, int | None], object] | None = None,
    cancel: threading.Event | None = None,
    timeouts: Timeouts | None = None,
    use_cache: bool = True,
) -> Retrieved:
    """Retrieve a series (or a whole study) into the private cache.

    The node is asked first (C-FIND) which instances it holds: none gives
    ``DimseError`` (kind "not-found"); when the cache already holds all of
    them nothing is transferred.  ``method``: "C-GET" or "C-MOVE" (default:
    the node's).  ``on_file(path)`` is called from the network thread as each
    file lands; ``on_progress(received, expected)`` on every pending status;
    setting ``cancel`` refuses further instances and asks the node to stop.

    A retrieve that brought some but not all instances returns with
    ``partial`` set (the caller opens what arrived and says so); one that
    brought nothing raises ``DimseError`` with the node's DIMSE status.
    """
    from pynetdicom import build_role, evt

    timeouts = timeouts or Timeouts()
    method = (method or node.method).upper()
    if method not in METHODS:
        raise ValueError(f"retrieve method {method!r}: one of {', '.join(METHODS)}")
    cache = cache or default_cache()
    cancel = cancel or threading.Event()
    instances, series_of, classes, known = _plan(node, study, series, timeouts)
    result = Retrieved(str(node), method, study, series, expected=len(instances) if known else None)
    if use_cache and known:
        by_series: dict[str, list[str]] = {}
        for i in instances:
            by_series.setdefault(str(i["series_uid"]), []).append(str(i["sop_uid"]))
        if all(cache.has(study, s, sops) for s, sops in by_series.items()):
            for s, sops in sorted(by_series.items()):
                folder = cache.series_dir(study, s)
                cache.touch(folder)
                result.folders.append(folder)
                wanted = {_safe(x) for x in sops}
                result.files += [p for p in cache.files(study, s) if os.path.basename(p)[:-4] in wanted]
            result.from_cache, result.status, result.status_text = True, 0x0000, "Success"
            result.completed = len(result.files)
            for path in result.files:
                if on_file is not None:
                    on_file(path)
            return result
    keep = tuple(cache.series_dir(study, s) for s in {str(i["series_uid"]) for i in instances} | {series or ""})
    cache.evict(keep=keep)
    receiver = _Receiver(cache, study, series_of, result, on_file, cancel)
    query = _level_query(study, series)
    if on_progress is not None and result.expected is not None:
        with contextlib.suppress(Exception):
            on_progress(0, result.expected)
    progress = on_progress
    if on_progress is not None and result.expected is not None:
        expected = result.expected

        def progress(received: int, _total: int | None) -> None:
            on_progress(received, expected)

    if method == "C-GET":
        from pynetdicom import build_context
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet  # type: ignore[attr-defined]

        model = StudyRootQueryRetrieveInformationModelGet
        contexts = [build_context(model), *_storage_contexts(classes)]
        roles = [build_role(sop, scp_role=True) for sop in dict.fromkeys(cx.abstract_syntax for cx in contexts[1:])]
        with _associate(node, contexts, timeouts, roles, [(evt.EVT_C_STORE, receiver)]) as assoc:
            _collect(
                node,
                "C-GET",
                assoc.send_c_get(query, model, msg_id=1),
                result,
                timeouts,
                progress,
                cancel,
                lambda: assoc.send_c_cancel(1, query_model=model),
            )
    else:
        _move(node, query, result, receiver, timeouts, progress, cancel)
    result.files.sort()
    cache.evict(keep=tuple(result.folders))
    if not result.files:
        code = result.status
        if code == 0x0000 and result.expected == 0:
            raise DimseError(str(node), f"{method}: the node sent nothing", code, "not-found")
        why = result.status_text or "nothing arrived"
        if code is not None:
            why += f" (DIMSE status 0x{code:04X})"
        register = f"{node.destination!r} with this host and port {node.move_port}"
        if method == "C-MOVE" and code == 0xA801:
            raise DimseError(
                str(node), f"C-MOVE failed: the node does not know the move destination {register}", code, "unknown-ae"
            )
        if result.cancelled:
            why = "cancelled before any instance arrived"
        elif method == "C-MOVE":
            why += f"; does the node know the move destination {register}?"
        raise DimseError(str(node), f"{method} brought no instance: {why}", code, "failed")
    log.info("napari-dcm: %s", result.describe())
    return result


def _move(
    node: Node,
    query: Dataset,
    result: Retrieved,
    receiver: _Receiver,
    timeouts: Timeouts,
    on_progress: Callable[[int, int | None], object] | None,
    cancel: threading.Event,
) -> None:
    """C-MOVE to ``node.destination`` with a temporary storage SCP on ``node.move_port``."""
    from pynetdicom import AE, build_context, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove  # type: ignore[attr-defined]

    scp = AE(ae_title=node.destination)
    scp.acse_timeout, scp.dimse_timeout, scp.network_timeout = timeouts.acse, timeouts.dimse, timeouts.network
    scp.maximum_pdu_size = 0
    for sop, syntaxes in _scp_contexts():
        scp.add_supported_context(sop, syntaxes)
    try:
        server = scp.start_server(("", node.move_port), block=False, evt_handlers=[(evt.EVT_C_STORE, receiver)])
    except OSError as exc:
        raise DimseError(
            str(node),
            f"cannot listen on port {node.move_port} for the C-MOVE: {exc.strerror or exc}",
            None,
            "local",
        ) from None
    try:
        model = StudyRootQueryRetrieveInformationModelMove
        with _associate(node, [build_context(model)], timeouts) as assoc:
            _collect(
                node,
                "C-MOVE",
                assoc.send_c_move(query, node.destination, model, msg_id=1),
                result,
                timeouts,
                on_progress,
                cancel,
                lambda: assoc.send_c_cancel(1, query_model=model),
            )
    finally:
        if server is not None:
            server.shutdown()


class RetrieveJob:
    """A retrieve on a background thread: files can be opened while more arrive.

    ``files()`` is what has arrived so far; ``done`` is set at the end, with
    ``result`` (a :class:`Retrieved`) or ``error`` (a ``DimseError``).
    ``cancel()`` refuses further instances and asks the node to stop.
    ``on_file`` callbacks run on the network thread (keep them short).
    """

    def __init__(self, node: Node, study: str, series: str | None = None, **options: Any) -> None:
        self.node, self.study, self.series = node, study, series
        self.options = options
        self._files: list[str] = []
        self._lock = threading.Lock()
        self.progress: tuple[int, int | None] = (0, None)
        self.done = threading.Event()
        self.result: Retrieved | None = None
        self.error: Exception | None = None
        self._cancel = threading.Event()
        self.on_file: list[Callable[[str], object]] = []
        self.thread = threading.Thread(target=self._run, name="napari-dcm-retrieve", daemon=True)

    def start(self) -> RetrieveJob:
        self.thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def files(self) -> list[str]:
        with self._lock:
            return list(self._files)

    def _file(self, path: str) -> None:
        with self._lock:
            self._files.append(path)
        for cb in list(self.on_file):
            cb(path)

    def _progress(self, received: int, expected: int | None) -> None:
        self.progress = (received, expected)

    def _run(self) -> None:
        try:
            self.result = retrieve(
                self.node,
                self.study,
                self.series,
                on_file=self._file,
                on_progress=self._progress,
                cancel=self._cancel,
                **self.options,
            )
        except Exception as exc:  # handed to whoever waits (typed DimseError, or a bug to report)
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout: float | None = None) -> Retrieved:
        """Block until done; the result, or the error raised."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"retrieve from {self.node} still running after {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
