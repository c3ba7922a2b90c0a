"""DICOMweb source: QIDO-RS search, WADO-RS metadata and per-frame pixel fetches.

* Frames are fetched in their stored transfer syntax (``transfer-syntax=*``)
  and decoded here with the same decoders as local files; neighbouring frames
  are fetched in one request; a bounded cache keeps what was fetched.
* A server cannot be asked in advance which stored syntaxes it returns as
  they are, so every frame request negotiates (:func:`fetch_frame`): the
  stored syntax; on HTTP 400/406/415/5xx or an unusable answer, Explicit VR
  Little Endian once; then the whole instance (``application/dicom``) read
  here and cached per instance (bounded).  What worked is remembered per
  server and stored syntax, so later frames go straight to it.
* Credentials (HTTP basic or bearer) live only in a per-process session
  registry keyed by server: never in frame references, layer metadata, logs,
  notifications or error messages.  TLS certificates are verified by default;
  timeouts are bounded and nothing is retried in a loop.
* Orthanc does not decode percent-encoded ``*``, ``^`` and ``,`` in QIDO
  queries, so query strings are built here with those characters kept.

Uses ``requests`` (what dicomweb-client is built on) directly: dicomweb-client
percent-encodes wildcards and drops each multipart part's Content-Type, which
is where the stored transfer syntax of a frame is announced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import DicomWebError
from .cache import FrameCache

if TYPE_CHECKING:
    import requests
    from pydicom import Dataset

    from .sources import EncodedFrame

log = logging.getLogger("napari_dcm")

DEFAULT_TIMEOUT = (5.0, 60.0)  # connect, read (seconds)
BATCH = 4  # frames fetched per request (the asked one and its next neighbours)
__all__ = ["DicomWebError", "Server", "connect", "search_studies", "search_series", "metadata", "fetch_frame"]


def normalize_base(url: str) -> str:
    """A DICOMweb base URL; a bare server root (``http://host:8042``) gets Orthanc's ``/dicom-web``."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    p = urllib.parse.urlsplit(url)
    path = p.path.rstrip("/")
    if not path:
        path = "/dicom-web"
    netloc = p.hostname or ""
    if p.port:
        netloc += f":{p.port}"
    return urllib.parse.urlunsplit((p.scheme, netloc, path, "", ""))


def url_credentials(url: str) -> tuple[str, str] | None:
    p = urllib.parse.urlsplit(url.strip() if "://" in url else "http://" + url.strip())
    if p.username:
        return urllib.parse.unquote(p.username), urllib.parse.unquote(p.password or "")
    return None


@dataclass
class Auth:
    user: str | None = None
    password: str | None = None
    token: str | None = None

    @classmethod
    def resolve(
        cls,
        url: str = "",
        auth: Auth | tuple[str, str] | list[str] | str | None = None,
        token: str | None = None,
        prompt: bool = False,
    ) -> Auth:
        """Credentials from options, the URL, the environment, or (``prompt``) the terminal."""
        if isinstance(auth, Auth):
            return auth
        if token:
            return cls(token=token)
        if isinstance(auth, (tuple, list)) and len(auth) == 2:
            return cls(user=auth[0], password=auth[1])
        cred = url_credentials(url) if url else None
        if cred:
            return cls(*cred)
        env_token = os.environ.get("NAPARI_DCM_DICOMWEB_TOKEN")
        if env_token:
            return cls(token=env_token)
        user = auth if isinstance(auth, str) else os.environ.get("NAPARI_DCM_DICOMWEB_USER")
        if user:
            pw = os.environ.get("NAPARI_DCM_DICOMWEB_PASSWORD")
            if pw is None and prompt:
                import getpass

                pw = getpass.getpass(f"DICOMweb password for {user}: ")
            return cls(user=user, password=pw or "")
        return cls()

    def __repr__(self) -> str:  # never print secrets
        kind = "token" if self.token else ("basic" if self.user else "none")
        return f"Auth({kind})"


# --------------------------------------------------------------------------
# sessions


class Server:
    """One DICOMweb server: a requests session with auth, TLS and timeouts."""

    def __init__(
        self,
        base: str,
        auth: Auth | None = None,
        verify: bool | str = True,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.base = normalize_base(base)
        self.timeout = timeout
        s = requests.Session()
        s.mount("http://", HTTPAdapter(max_retries=0))
        s.mount("https://", HTTPAdapter(max_retries=0))
        s.verify = verify
        s.trust_env = False  # no proxies from the environment on the way to a PACS
        auth = auth or Auth()
        if auth.token:
            s.headers["Authorization"] = f"Bearer {auth.token}"
        elif auth.user:
            s.auth = (auth.user, auth.password or "")
        self.session = s
        self._orthanc: str | None | Literal[False] = False  # False: not probed yet
        self.orthanc_ids: dict[str, tuple[str, str]] = {}  # SOPInstanceUID -> (Orthanc id, stored transfer syntax)
        # what worked per stored syntax ("series:<uid>" while the syntax is unknown): a ROUTES entry
        self.routes: dict[str, str] = {}
        self.stored_syntax: dict[str, str] = {}  # SOPInstanceUID -> stored transfer syntax, once learned
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def get(
        self,
        path: str,
        accept: str,
        params: str = "",
        root: str | None = None,
        method: str = "GET",
        data: str | bytes | None = None,
    ) -> requests.Response:
        import requests

        url = f"{root or self.base}/{path.lstrip('/')}" + (f"?{params}" if params else "")
        try:
            r = self.session.request(method, url, headers={"Accept": accept}, timeout=self.timeout, data=data)
        except requests.exceptions.SSLError as exc:
            raise DicomWebError(self.base, f"TLS certificate verification failed ({type(exc).__name__})") from None
        except requests.exceptions.ConnectTimeout:
            raise DicomWebError(self.base, f"cannot connect: timed out after {self.timeout[0]:g} s") from None
        except requests.exceptions.ReadTimeout:
            raise DicomWebError(self.base, f"no answer within {self.timeout[1]:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            reason = str(getattr(exc, "args", [""])[0])
            why = "connection refused" if "refused" in reason.lower() else "server unreachable"
            raise DicomWebError(self.base, f"cannot connect: {why}") from None
        except requests.exceptions.RequestException as exc:
            raise DicomWebError(self.base, f"request failed: {type(exc).__name__}") from None
        with self._lock:
            self.requests += 1
            self.bytes += len(r.content)
        if r.status_code == 401:
            raise DicomWebError(self.base, "authentication failed (HTTP 401): wrong or missing credentials", 401)
        if r.status_code == 403:
            raise DicomWebError(self.base, "access denied (HTTP 403)", 403)
        if r.status_code == 404:
            raise DicomWebError(self.base, f"not found (HTTP 404): {path}", 404)
        if r.status_code >= 400:
            raise DicomWebError(self.base, f"HTTP {r.status_code} for {path}", r.status_code)
        return r

    def json(self, path: str, params: str = "") -> list[dict[str, Any]]:
        r = self.get(path, "application/dicom+json", params)
        if not r.content:
            return []
        ctype = r.headers.get("Content-Type", "")
        try:
            data = r.json()
        except ValueError:
            raise DicomWebError(
                self.base,
                f"does not look like a DICOMweb server ({path} answered {ctype or 'no content type'}, not DICOM JSON)",
            ) from None
        if not isinstance(data, list):
            raise DicomWebError(
                self.base, f"does not look like a DICOMweb server ({path} answered a JSON {type(data).__name__})"
            )
        return data

    @property
    def orthanc_root(self) -> str | None:
        """The Orthanc REST root behind an Orthanc DICOMweb base, else None (probed once)."""
        if self._orthanc is False:
            self._orthanc = None
            if self.base.endswith("/dicom-web"):
                root = self.base[: -len("/dicom-web")]
                try:
                    info = self.get("system", "application/json", root=root).json()
                    if isinstance(info, dict) and "ApiVersion" in info:
                        self._orthanc = root
                except (DicomWebError, ValueError):
                    pass
        return self._orthanc


_servers: dict[str, Server] = {}
_servers_lock = threading.Lock()


def connect(
    url: str,
    auth: Auth | tuple[str, str] | list[str] | str | None = None,
    token: str | None = None,
    verify: bool | str = True,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    prompt: bool = False,
) -> Server:
    """The session for a server (created, or replaced when credentials are given)."""
    base = normalize_base(url)
    with _servers_lock:
        srv = _servers.get(base)
        if srv is None or auth is not None or token is not None or url_credentials(url):
            srv = Server(base, Auth.resolve(url, auth, token, prompt), verify, timeout)
            _servers[base] = srv
        return srv


def server_for(base: str) -> Server:
    srv = _servers.get(base)
    if srv is None:
        raise DicomWebError(
            base, "no session for this server in this process (DICOMweb frames compute where they were opened)"
        )
    return srv


# --------------------------------------------------------------------------
# QIDO-RS


def _q(v: str) -> str:
    return urllib.parse.quote(str(v), safe="*^,-.:?")


def query_string(filters: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    parts = [f"{k}={_q(v)}" for k, v in filters.items() if v not in (None, "")]
    for k, v in (extra or {}).items():
        if isinstance(v, (list, tuple)):
            parts += [f"{k}={_q(x)}" for x in v]
        elif v not in (None, ""):
            parts.append(f"{k}={_q(v)}")
    return "&".join(parts)


def _val(item: dict[str, Any], tag: str) -> Any:
    e = item.get(tag)
    if not e or "Value" not in e or not e["Value"]:
        return None
    v = e["Value"][0]
    if isinstance(v, dict):  # PersonName
        return v.get("Alphabetic", "")
    return v


STUDY_FIELDS = {
    "patient_name": "00100010",
    "patient_id": "00100020",
    "study_date": "00080020",
    "study_description": "00081030",
    "accession_number": "00080050",
    "modalities": "00080061",
    "study_uid": "0020000D",
    "n_series": "00201206",
    "n_instances": "00201208",
}
SERIES_FIELDS = {
    "series_uid": "0020000E",
    "modality": "00080060",
    "series_description": "0008103E",
    "series_number": "00200011",
    "n_instances": "00201209",
}


def search_studies(
    server: Server,
    patient_name: str | None = None,
    patient_id: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    modality: str | None = None,
    accession_number: str | None = None,
    description: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """QIDO-RS studies; wildcards (``*``, ``?``) work against Orthanc."""
    f = {
        "PatientName": patient_name,
        "PatientID": patient_id,
        "ModalitiesInStudy": modality,
        "AccessionNumber": accession_number,
        "StudyDescription": description,
    }
    if date_from or date_to:
        f["StudyDate"] = f"{date_from or ''}-{date_to or ''}"
    extra = {"limit": limit, "includefield": ["00081030", "00201206", "00201208", "00080061"]}
    items = server.json("studies", query_string(f, extra))
    return [{k: _val(it, t) for k, t in STUDY_FIELDS.items()} for it in items]


def search_series(server: Server, study_uid: str, frames: bool = True) -> list[dict[str, Any]]:
    """Series of a study with their instance counts and (``frames``) frame counts."""
    items = server.json(f"studies/{study_uid}/series", query_string({}, {"includefield": ["00201209", "0008103E"]}))
    out = [{k: _val(it, t) for k, t in SERIES_FIELDS.items()} for it in items]
    if frames:
        for s in out:
            inst = server.json(
                f"studies/{study_uid}/series/{s['series_uid']}/instances",
                query_string({}, {"includefield": ["00280008"]}),
            )
            s["n_frames"] = sum(int(_val(i, "00280008") or 1) for i in inst)
            s["n_instances"] = s["n_instances"] or len(inst)
    return sorted(out, key=lambda s: s["series_number"] or 0)


# --------------------------------------------------------------------------
# WADO-RS metadata -> pydicom datasets


def _bulk(uri: str) -> bytes:
    return b""  # bulk data (pixel data, big binaries) is never downloaded with the metadata


ORTHANC_MAX_INSTANCES = 16


def metadata(server: Server, study: str, series: str | None = None, instance: str | None = None) -> list[Dataset]:
    """pydicom Datasets of the instances (no pixel data)."""
    if server.orthanc_root and series:
        fast = _orthanc_metadata(server, study, series, instance)
        if fast is not None:
            return _remember(server, fast)
    return _remember(server, _wado_metadata(server, study, series, instance))


# instance headers already fetched (metadata, tags): a bounded LRU, by frame key
DATASETS = FrameCache(max_bytes=4096, max_items=None, size=lambda ds: 1)


def _remember(server: Server, datasets: list[Dataset]) -> list[Dataset]:
    for ds in datasets:
        key = frame_key(
            server.base,
            str(ds.get("StudyInstanceUID", "")),
            str(ds.get("SeriesInstanceUID", "")),
            str(ds.get("SOPInstanceUID", "")),
        )
        DATASETS.put(key, ds)
    return datasets


def instance_dataset(key: str) -> Dataset:
    """The header of a DICOMweb instance (its frame key): remembered from ``metadata``, else fetched."""
    from pydicom import Dataset

    ds: Dataset | None = DATASETS.get(key)
    if ds is not None:
        return ds
    base, study, series, instance = split_key(key)
    items = server_for(base).json(f"studies/{study}/series/{series}/instances/{instance}/metadata")
    if not items:
        raise DicomWebError(base, f"not found: metadata of instance {instance}", 404)
    ds = Dataset.from_json(items[0], bulk_data_uri_handler=_bulk)
    DATASETS.put(key, ds)
    return ds


def _wado_metadata(server: Server, study: str, series: str | None = None, instance: str | None = None) -> list[Dataset]:
    from pydicom import Dataset

    path = f"studies/{study}"
    if series:
        path += f"/series/{series}"
        if instance:
            path += f"/instances/{instance}"
    try:
        items = server.json(path + "/metadata")
    except DicomWebError as exc:
        if exc.status == 404:
            _probe_qido(server, exc)
        raise
    out = []
    for it in items:
        try:
            out.append(Dataset.from_json(it, bulk_data_uri_handler=_bulk))
        except Exception as exc:  # one odd instance must not hide the others
            log.warning("skipping an instance whose metadata pydicom cannot read (%s)", type(exc).__name__)
    if not out and items == []:
        raise DicomWebError(server.base, f"not found: {path}", 404)
    return out


def _probe_qido(server: Server, missing: DicomWebError) -> None:
    """After a 404: is this a DICOMweb server at all?  One QIDO-RS request says;
    raises a "does not look like a DICOMweb server" error when it is not."""
    try:
        server.json("studies", "limit=1")
    except DicomWebError as exc:
        if exc.status is None and "does not look like" in exc.reason:
            raise DicomWebError(server.base, exc.reason, 404) from None
        if exc.status in (400, 404, 405, 406, 415) or (exc.status or 0) >= 500:
            raise DicomWebError(
                server.base,
                f"does not look like a DICOMweb server (its metadata and QIDO-RS studies routes answer HTTP {exc.status})",
                404,
            ) from None
        raise missing from None


def _orthanc_metadata(server: Server, study: str, series: str, instance: str | None) -> list[Dataset] | None:
    """Orthanc's own REST API for series of a few (typically large, multi-frame)
    instances: its tag route reads only the header, where the DICOMweb plugin
    parses the whole file (about 1 s for a 200 MB tomosynthesis object)."""
    if instance:
        uids = [instance]
    else:
        items = server.json(
            f"studies/{study}/series/{series}/instances", query_string({}, {"limit": ORTHANC_MAX_INSTANCES + 1})
        )
        uids = [_val(it, "00080018") for it in items]
        if not uids or len(uids) > ORTHANC_MAX_INSTANCES:
            return None
    root = server.orthanc_root
    out = []
    for uid in uids:
        found = server.get("tools/lookup", "application/json", root=root, method="POST", data=uid).json()
        ids = [f["ID"] for f in found if f.get("Type") == "Instance"]
        if not ids:
            return None
        oid = ids[0]
        tags = server.get(f"instances/{oid}/tags", "application/json", root=root).json()
        try:
            ts = server.get(f"instances/{oid}/metadata/TransferSyntax", "text/plain", root=root).text.strip()
        except DicomWebError as exc:
            if exc.status != 404:
                raise
            ts = ""  # a syntax Orthanc does not know (e.g. HTJ2K in 1.10): negotiated per frame
        ds = orthanc_tags_to_dataset(tags)
        if str(ds.get("StudyInstanceUID", "")) != study or str(ds.get("SeriesInstanceUID", "")) != series:
            return None
        server.orthanc_ids[uid] = (oid, ts)
        out.append(ds)
    if len(out) == 1 and int(out[0].get("NumberOfFrames", 1) or 1) > 1:
        prefetch(server, out[0])  # a multi-frame object: the middle frame is what napari shows
    return out


def prefetch(server: Server, ds: Dataset) -> None:
    """Start fetching the frame napari will show first (the middle one) while the
    layers are being built: the server's time to extract it overlaps our work."""
    n = int(ds.get("NumberOfFrames", 1) or 1)
    key = frame_key(server.base, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    index = (n - 1) // 2

    nbytes, lossy = frame_nbytes_of(ds), is_lossy(ds)

    def run() -> None:
        with contextlib.suppress(Exception):  # the real request (when shown) reports any error
            fetch_frame(key, index, n, frame_nbytes=nbytes, lossy=lossy)

    t = threading.Thread(target=run, name="napari-dcm-prefetch", daemon=True)
    _prefetches.append(t)
    t.start()


_prefetches: list[threading.Thread] = []


def is_lossy(ds: Dataset) -> bool:
    """The instance says its pixels have been lossy compressed (LossyImageCompression 01)."""
    return str(ds.get("LossyImageCompression", "") or "").strip() == "01"


def frame_nbytes_of(ds: Dataset) -> float:
    """Bytes of one native frame of an instance (its Image Pixel module); 0 when unknown."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return 0.0
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422" and spp == 3:
        return rows * cols * 2 * bits / 8
    return rows * cols * spp * bits / 8


def wait_prefetch(timeout: float = 30) -> None:
    """Wait for background prefetches (tests and benchmarks count requests)."""
    while _prefetches:
        _prefetches.pop().join(timeout)


def orthanc_tags_to_dataset(tags: dict[str, Any]) -> Dataset:
    """An Orthanc ``/instances/{id}/tags`` answer as a pydicom Dataset (binary values left out)."""
    from pydicom import Dataset
    from pydicom.datadict import dictionary_VR

    ds = Dataset()
    for key, entry in tags.items():
        try:
            tag = int(key.replace(",", ""), 16)
        except ValueError:
            continue
        kind, value = entry.get("Type"), entry.get("Value")
        if kind == "Sequence":
            ds.add_new(tag, "SQ", [orthanc_tags_to_dataset(item) for item in (value or [])])
            continue
        if kind != "String" or value is None or (tag >> 16) in (0x0002, 0x7FE0):
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "LO" if len(value) <= 64 else "LT"
        choices = vr.split(" or ")
        nums: list[int] | list[float]
        vr = choices[0]
        try:
            if vr in ("US", "UL", "SS", "SL", "UV", "SV"):
                nums = [int(x) for x in value.split("\\") if x.strip()]
                if len(choices) > 1 and any(n < 0 for n in nums):
                    vr = next((c for c in choices if c.startswith("S")), vr)
                ds.add_new(tag, vr, nums[0] if len(nums) == 1 else nums)
            elif vr in ("FL", "FD"):
                nums = [float(x) for x in value.split("\\") if x.strip()]
                ds.add_new(tag, vr, nums[0] if len(nums) == 1 else nums)
            elif vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN", "AT"):
                continue
            else:
                ds.add_new(tag, vr, value.split("\\") if "\\" in value else value)
        except Exception:  # an odd value must not hide the others
            continue
    return ds


# --------------------------------------------------------------------------
# frames


def frame_key(base: str, study: str, series: str, instance: str) -> str:
    """The ``path`` napari-dcm uses for a DICOMweb instance (no credentials)."""
    from .sources.web import WebInstance

    return WebInstance(base, study, series, instance).key


def split_key(key: str) -> tuple[str, str, str, str]:
    base, rest = key.split("/studies/", 1)
    study, rest = rest.split("/series/", 1)
    series, instance = rest.split("/instances/", 1)
    return base, study, series, instance


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """Parts of a multipart/related body: [(headers, payload), ...]."""
    import email.parser

    boundary = None
    for piece in content_type.split(";"):
        piece = piece.strip()
        if piece.lower().startswith("boundary="):
            boundary = piece.split("=", 1)[1].strip().strip('"')
    if not boundary:
        raise ValueError(f"no multipart boundary in {content_type!r}")
    delim = b"--" + boundary.encode()
    parts = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, payload = chunk.partition(b"\r\n\r\n")
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        headers = dict(email.parser.HeaderParser().parsestr(head.decode("latin-1")).items())
        parts.append(({k.lower(): v for k, v in headers.items()}, payload))
    return parts


def transfer_syntax_of(content_type: str) -> str:
    for piece in content_type.split(";"):
        piece = piece.strip()
        if piece.lower().startswith("transfer-syntax="):
            return piece.split("=", 1)[1].strip().strip('"')
    return "1.2.840.10008.1.2.1"  # application/octet-stream without a syntax: explicit LE


# encoded frames fetched from servers: (bytes, transfer syntax), 256 MiB per process
CACHE = FrameCache(256 * 2**20, max_items=None, size=lambda v: len(v[0]))
_fetch_locks: dict[str, threading.Lock] = {}
_seen: set[str] = set()

# how a frame is fetched, in the order they are tried
ORTHANC_RAW = "orthanc-raw"  # Orthanc REST: /instances/{id}/frames/{i}/raw, the stored bytes
STORED = "stored"  # WADO-RS frames, transfer-syntax=* (the stored syntax)
AS_EXPLICIT_LE = "explicit-le"  # WADO-RS frames transcoded by the server to Explicit VR Little Endian
INSTANCE = "instance"  # the whole instance (application/dicom), its frames read here
ROUTES = (ORTHANC_RAW, STORED, AS_EXPLICIT_LE, INSTANCE)
ROUTE_NAMES = {
    ORTHANC_RAW: "Orthanc's raw frames",
    STORED: "the stored syntax",
    AS_EXPLICIT_LE: "Explicit VR Little Endian",
    INSTANCE: "the whole instance",
}
FALLBACK_STATUSES = {400, 406, 415}  # and every 5xx: the server cannot (or will not) answer this way
# lossy stored syntaxes: a server decodes them with its own decoder, whose rounding may differ
# from ours (DCMTK's 12-bit JPEG is +-1 off pydicom's), so they are never asked for as explicit LE
LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.53",
    "1.2.840.10008.1.2.4.55",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.203",
}


class Unusable(Exception):
    """An answer that arrived but cannot be these frames' pixels (the next route is tried)."""


@dataclass
class WholeInstance:
    """An instance retrieved whole, parsed here: its frames as stored."""

    transfer_syntax: str
    nframes: int
    frames: list[bytes] | None  # encapsulated: one codestream per frame
    native: bytes | bytearray | None  # native: all frames' bytes

    @property
    def nbytes(self) -> int:
        return sum(len(f) for f in self.frames) if self.frames is not None else len(self.native or b"")

    @classmethod
    def parse(cls, blob: bytes) -> WholeInstance:
        import io

        import pydicom
        from pydicom.encaps import generate_frames

        from .scan import DEFLATED_LE, EXPLICIT_LE, NATIVE_SYNTAXES

        try:
            ds = pydicom.dcmread(io.BytesIO(blob), force=True)
            ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
            elem = next((ds[k] for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds), None)
        except Exception as exc:
            raise Unusable(f"the instance could not be parsed ({type(exc).__name__})") from None
        if elem is None or not elem.value:
            raise Unusable("the instance has no pixel data")
        n = int(ds.get("NumberOfFrames", 1) or 1)
        if ts in NATIVE_SYNTAXES or not ts:
            # pydicom has inflated a deflated dataset: its pixel bytes are explicit little endian
            return cls(EXPLICIT_LE if ts in (DEFLATED_LE, "") else ts, n, None, bytearray(elem.value))
        try:
            frames = [bytes(f) for f in generate_frames(elem.value, number_of_frames=n)]
        except Exception as exc:
            raise Unusable(f"the instance's encapsulated pixel data could not be split ({exc})") from None
        return cls(ts, n, frames, None)

    def frame(self, index: int) -> EncodedFrame:
        from .sources import EncodedFrame

        if self.frames is not None:
            if not 0 <= index < len(self.frames):
                raise Unusable(f"the instance holds {len(self.frames)} frame(s), not frame {index + 1}")
            return EncodedFrame(self.frames[index], self.transfer_syntax)
        return EncodedFrame(self.native or b"", self.transfer_syntax, index, self.nframes)


# instances retrieved whole (the last fallback): bounded; one larger instance is held alone
INSTANCES = FrameCache(512 * 2**20, max_items=None, size=lambda v: v.nbytes)
_oversize: dict[str, WholeInstance] = {}


def _instance_get(key: str) -> WholeInstance | None:
    inst: WholeInstance | None = INSTANCES.get(key)
    return inst if inst is not None else _oversize.get(key)


def _instance_put(key: str, inst: WholeInstance) -> None:
    if inst.nbytes > INSTANCES.max_bytes:
        _oversize.clear()
        _oversize[key] = inst
    else:
        INSTANCES.put(key, inst)


@dataclass
class _Want:
    """One frame request: the instance, the frame, what the answer must look like."""

    srv: Server
    key: str
    study: str
    series: str
    instance: str
    index: int
    nframes: int
    frame_nbytes: float  # bytes of one native frame (0: unknown, not checked)
    lossy: bool  # lossy compressed (stored syntax or LossyImageCompression): decoded here only


def _check_native(want: _Want, payload: bytes, ts: str) -> None:
    """A native frame must hold exactly one frame's bytes (a server may pass off other bytes)."""
    if want.frame_nbytes <= 0:
        return
    need = -(-int(want.frame_nbytes * 8) // 8)
    if not need <= len(payload) <= need + 1:
        raise Unusable(f"{len(payload)} bytes in {ts}, where one frame is {need}")


def _known_syntax(ts: str) -> bool:
    from . import codecs
    from .scan import NATIVE_SYNTAXES

    return ts in NATIVE_SYNTAXES or ts == codecs.DEFLATED_IMAGE_FRAME or ts.startswith("1.2.840.10008.1.2.")


def _route_orthanc_raw(want: _Want) -> EncodedFrame:
    from .scan import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, NATIVE_SYNTAXES
    from .sources import EncodedFrame

    srv = want.srv
    oid, ts = srv.orthanc_ids[want.instance]
    if not ts:
        raise Unusable("Orthanc does not know the stored transfer syntax")
    if ts == EXPLICIT_BE:
        # Orthanc hands big-endian pixel data in its own memory byte order, not as stored
        raise Unusable("raw frames of big-endian data are not in the stored byte order")
    r = srv.get(f"instances/{oid}/frames/{want.index}/raw", "*/*", root=srv.orthanc_root)
    if not r.content:
        raise Unusable("an empty answer")
    if ts in NATIVE_SYNTAXES:
        ts = EXPLICIT_LE if ts == DEFLATED_LE else ts  # Orthanc hands the inflated pixel bytes
        _check_native(want, r.content, ts)
    CACHE.put((want.key, want.index), (r.content, ts))
    return EncodedFrame(r.content, ts)


def _frames_request(want: _Want, syntax: str) -> EncodedFrame:
    """WADO-RS frames in ``syntax`` (``*``: as stored); the first frame asked of an
    instance comes alone (fastest first picture), later ones with their next neighbours."""
    from .scan import EXPLICIT_LE, NATIVE_SYNTAXES
    from .sources import EncodedFrame

    key, index = want.key, want.index
    batch = BATCH if key in _seen else 1
    _seen.add(key)
    wanted = [i for i in range(index, min(want.nframes, index + batch)) if CACHE.get((key, i)) is None] or [index]
    numbers = ",".join(str(i + 1) for i in wanted)  # WADO-RS frame numbers are 1-based
    r = want.srv.get(
        f"studies/{want.study}/series/{want.series}/instances/{want.instance}/frames/{numbers}",
        f'multipart/related; type="application/octet-stream"; transfer-syntax={syntax}',
    )
    try:
        parts = parse_multipart(r.content, r.headers.get("Content-Type", ""))
    except ValueError as exc:
        raise Unusable(str(exc)) from None
    if len(parts) != len(wanted):
        raise Unusable(f"asked for {len(wanted)} frame(s), got {len(parts)}")
    got = []
    for headers, payload in parts:
        ts = transfer_syntax_of(headers.get("content-type", ""))
        if not payload:
            raise Unusable("an empty frame")
        if syntax != "*" and ts != syntax:
            raise Unusable(f"asked for {syntax}, got {ts}")
        if not _known_syntax(ts):
            raise Unusable(f"a frame in transfer syntax {ts}")
        if ts in NATIVE_SYNTAXES:
            if ts not in (EXPLICIT_LE, "1.2.840.10008.1.2"):
                raise Unusable(f"a frame in {ts}")
            _check_native(want, payload, ts)
        got.append((payload, ts))
    if syntax == "*" and got[0][1] not in NATIVE_SYNTAXES:
        want.srv.stored_syntax.setdefault(want.instance, got[0][1])
    for i, v in zip(wanted, got):
        CACHE.put((key, i), v)
    return EncodedFrame(*got[0])


def _route_stored(want: _Want) -> EncodedFrame:
    return _frames_request(want, "*")


def _route_explicit_le(want: _Want) -> EncodedFrame:
    from .scan import EXPLICIT_LE

    if want.lossy:
        raise Unusable("lossy compressed pixels are decoded here, not by the server")
    return _frames_request(want, EXPLICIT_LE)


def _route_instance(want: _Want) -> EncodedFrame:
    inst = _instance_get(want.key)
    if inst is None:
        srv = want.srv
        known = srv.orthanc_ids.get(want.instance)
        if known is not None and srv.orthanc_root:
            blob = srv.get(f"instances/{known[0]}/file", "application/dicom", root=srv.orthanc_root).content
        else:
            r = srv.get(
                f"studies/{want.study}/series/{want.series}/instances/{want.instance}",
                'multipart/related; type="application/dicom"; transfer-syntax=*',
            )
            ctype = r.headers.get("Content-Type", "")
            if ctype.lower().startswith("multipart/"):
                try:
                    parts = parse_multipart(r.content, ctype)
                except ValueError as exc:
                    raise Unusable(str(exc)) from None
                if len(parts) != 1:
                    raise Unusable(f"asked for one instance, got {len(parts)} part(s)")
                blob = parts[0][1]
            else:
                blob = r.content
        inst = WholeInstance.parse(blob)
        srv.stored_syntax[want.instance] = inst.transfer_syntax
        _instance_put(want.key, inst)
    return inst.frame(want.index)


_ROUTE_FUNCS = {
    ORTHANC_RAW: _route_orthanc_raw,
    STORED: _route_stored,
    AS_EXPLICIT_LE: _route_explicit_le,
    INSTANCE: _route_instance,
}


def _falls_back(exc: DicomWebError) -> bool:
    return exc.status is not None and (exc.status in FALLBACK_STATUSES or exc.status >= 500)


def fetch_frame(
    key: str, index: int, nframes: int, stored_syntax: str = "", frame_nbytes: float = 0.0, lossy: bool = False
) -> EncodedFrame:
    """Stored frame ``index`` (0-based) of the instance ``key``, as encoded bytes and their syntax.

    Routes are tried in the order of :data:`ROUTES` (Orthanc's raw frames only
    where the instance was opened through Orthanc's REST API), starting at
    the one that last worked for this server and stored syntax (the series
    while the syntax is unknown).  ``frame_nbytes`` (one native frame) lets
    a server's native answer be checked.  Lossy compressed pixels (``lossy``:
    the instance says LossyImageCompression 01, or a lossy stored syntax) are
    never asked for as Explicit VR Little Endian: the server would decode them
    with its own decoder, whose rounding may differ from the local read.
    Raises ``DicomWebError`` naming every way tried when none works.
    """
    from .sources import EncodedFrame

    hit: tuple[bytes, str] | None = CACHE.get((key, index))
    if hit is not None:
        return EncodedFrame(*hit)
    inst = _instance_get(key)
    if inst is not None:
        return inst.frame(index)
    lock = _fetch_locks.setdefault(key, threading.Lock())
    with lock:
        hit = CACHE.get((key, index))
        if hit is not None:
            return EncodedFrame(*hit)
        base, study, series, instance = split_key(key)
        srv = server_for(base)
        known = srv.orthanc_ids.get(instance)
        ts = stored_syntax or (known[1] if known else "") or srv.stored_syntax.get(instance, "")
        want = _Want(srv, key, study, series, instance, index, nframes, frame_nbytes, lossy or ts in LOSSY_SYNTAXES)
        skey = ts or f"series:{series}"
        chain = [r for r in ROUTES if r != ORTHANC_RAW or known is not None]
        remembered = srv.routes.get(skey)
        if remembered in chain:
            chain = chain[chain.index(remembered) :]
        failures: list[str] = []
        for route in chain:
            try:
                enc = _ROUTE_FUNCS[route](want)
            except DicomWebError as exc:
                if not _falls_back(exc):
                    raise
                failures.append(f"{ROUTE_NAMES[route]}: {exc.reason}")
                continue
            except Unusable as exc:
                failures.append(f"{ROUTE_NAMES[route]}: {exc}")
                continue
            if failures:
                learned = srv.stored_syntax.get(instance, "")
                log.info(
                    "DICOMweb %s: frames stored in %s come as %s from now on (%s)",
                    base,
                    learned or ts or f"series {series}",
                    ROUTE_NAMES[route],
                    "; ".join(failures),
                )
                srv.routes[skey] = route
                if learned:
                    srv.routes[learned] = route
            return enc
        raise DicomWebError(
            base, f"frame {index + 1} of instance {instance} could not be fetched ({'; '.join(failures)})"
        )


def reset(sessions: bool = True) -> None:
    """Forget fetched frames, headers and request state, and (``sessions``) the server sessions."""
    wait_prefetch()
    if sessions:
        with _servers_lock:
            _servers.clear()
    CACHE.clear()
    INSTANCES.clear()
    _oversize.clear()
    DATASETS.clear()
    _fetch_locks.clear()
    _seen.clear()


# --------------------------------------------------------------------------
# bulk data the metadata leaves out (overlay planes' Overlay Data)


def bulk_element(key: str, tag: int) -> bytes:
    """The value of a binary element of a DICOMweb instance (its frame key) that the
    metadata leaves out as bulk data: Orthanc's element content route when the server
    is Orthanc, else the element's BulkDataURI (or InlineBinary) in the instance's
    WADO-RS metadata.  b"" when the instance has no such element."""
    import base64

    base, study, series, instance = split_key(key)
    srv = server_for(base)
    path = f"{tag >> 16:04x}-{tag & 0xFFFF:04x}"
    if srv.orthanc_root:
        oid = srv.orthanc_ids.get(instance, (None, ""))[0]
        if oid is None:
            found = srv.get(
                "tools/lookup", "application/json", root=srv.orthanc_root, method="POST", data=instance
            ).json()
            oid = next((f["ID"] for f in found if f.get("Type") == "Instance"), None)
        if oid is not None:
            try:
                return bytes(srv.get(f"instances/{oid}/content/{path}", "*/*", root=srv.orthanc_root).content)
            except DicomWebError as exc:
                if exc.status != 404:
                    raise
                return b""
    items = srv.json(f"studies/{study}/series/{series}/instances/{instance}/metadata")
    el = (items[0] if items else {}).get(f"{tag:08X}") or {}
    if "InlineBinary" in el:
        return base64.b64decode(el["InlineBinary"])
    uri = el.get("BulkDataURI")
    if not uri:
        return b""
    root, _, last = str(uri).rpartition("/")
    r = srv.get(last, 'multipart/related; type="application/octet-stream"', root=root)
    parts = parse_multipart(r.content, r.headers.get("Content-Type", ""))
    return parts[0][1] if parts else bytes(r.content)
