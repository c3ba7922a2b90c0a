"""Sending DICOM files: STOW-RS to a DICOMweb server, C-STORE to a DICOM node.

Both take files that are already written (nothing is lost locally when
sending fails), send what can be read, and return one :class:`StoreResult`
per file; when any file was not stored they raise
:class:`~napari_dcm.errors.DicomStoreError` naming each one and why.

STOW-RS goes through dicomweb-client's ``store_instances`` (the multipart
request and the response dataset are its job) on the session napari-dcm
already keeps for that server (``dicomweb.connect``): the same credentials,
TLS verification, no proxies from the environment, bounded timeouts, and no
retries (dicomweb-client would otherwise retry 503s with back-off).
C-STORE uses pynetdicom: one association, a presentation context per SOP
class and stored transfer syntax (plus Explicit and Implicit VR Little
Endian), one C-STORE per file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DicomStoreError, DicomWebError
from .writeback import require

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = ["DicomStoreError", "StoreResult", "store_dicomweb", "store_dimse", "status_text"]

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


@dataclass
class StoreResult:
    """What happened to one file."""

    path: str
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    ok: bool = False
    reason: str = ""  # why it failed, or a warning the receiver gave
    status: int | None = None  # DIMSE status / STOW failure or warning reason code


def status_text(code: int) -> str:
    """A readable storage status (PS3.4 Annex B / PS3.18 failure reasons)."""
    if code == 0:
        return "success"
    if 0xA700 <= code <= 0xA7FF:
        return f"refused: out of resources (0x{code:04X})"
    if 0xA900 <= code <= 0xA9FF:
        return f"data set does not match SOP class (0x{code:04X})"
    if 0xC000 <= code <= 0xCFFF:
        return f"cannot understand (0x{code:04X})"
    known = {
        0x0110: "processing failure",
        0x0111: "duplicate SOP instance",
        0x0117: "invalid object instance",
        0x0122: "refused: SOP class not supported",
        0x0124: "refused: not authorised",
        0x0210: "duplicate invocation",
        0x0211: "unrecognised operation",
        0x0212: "mistyped argument",
        0x0213: "resource limitation",
        0xB000: "stored, with coercion of data elements",
        0xB006: "stored, with elements discarded",
        0xB007: "stored, but the data set does not match the SOP class",
        0xC122: "referenced transfer syntax not supported",
    }
    return f"{known.get(code, 'status')} (0x{code:04X})"


def _read(paths: Iterable[str | os.PathLike[str]], headers_only: bool) -> tuple[list[StoreResult], list[Any]]:
    """(results, datasets): a failed result (and None) for every file that cannot be read."""
    import pydicom

    results, datasets = [], []
    for p in paths:
        path = os.path.abspath(os.fspath(p))
        r = StoreResult(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=headers_only)
            r.sop_instance_uid = str(ds.SOPInstanceUID)
            r.sop_class_uid = str(ds.SOPClassUID)
        except FileNotFoundError:
            r.reason = "file not found"
            ds = None
        except Exception as exc:  # any unreadable file is named, the others still go
            r.reason = f"cannot read: {type(exc).__name__}: {exc}"
            ds = None
        results.append(r)
        datasets.append(ds)
    return results, datasets


def _raise_if_failed(destination: str, results: list[StoreResult]) -> list[StoreResult]:
    if any(not r.ok for r in results):
        raise DicomStoreError(destination, results)
    return results


# --------------------------------------------------------------------------
# STOW-RS


def _http_reason(exc: BaseException, server: Any) -> str:
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS certificate verification failed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"cannot connect: timed out after {server.timeout[0]:g} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no answer within {server.timeout[1]:g} s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        why = "connection refused" if "refused" in str(exc).lower() else "server unreachable"
        return f"cannot connect: {why}"
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code == 401:
            return "authentication failed (HTTP 401): wrong or missing credentials"
        if code == 403:
            return "access denied (HTTP 403)"
        if code == 404:
            return "no STOW-RS service at this URL (HTTP 404)"
        return f"refused by the server (HTTP {code})"
    return f"request failed: {type(exc).__name__}"


def _response_dataset(response: Any) -> Dataset | None:
    """The Store Instances Response of an (error) answer, when it carries one."""
    from pydicom import Dataset

    if response is None or not response.content:
        return None
    ctype = response.headers.get("Content-Type", "").split(";")[0].strip()
    if ctype not in ("application/dicom+json", "application/json"):
        return None
    try:
        return Dataset.from_json(response.json())
    except Exception:
        return None


def _apply_response(results: list[StoreResult], answer: Dataset | None, fallback: str) -> None:
    """Per-object outcome from a Store Instances Response (Referenced / Failed SOP Sequences)."""
    stored: dict[str, int | None] = {}
    failed: dict[str, int | None] = {}
    if answer is not None:
        for it in answer.get("ReferencedSOPSequence", []) or []:
            w = it.get("WarningReason")
            stored[str(it.get("ReferencedSOPInstanceUID", ""))] = int(w) if w is not None else None
        for it in answer.get("FailedSOPSequence", []) or []:
            f = it.get("FailureReason")
            failed[str(it.get("ReferencedSOPInstanceUID", ""))] = int(f) if f is not None else None
    for r in results:
        if r.reason or not r.sop_instance_uid:
            continue  # not sent (unreadable)
        uid = r.sop_instance_uid
        if uid in failed:
            r.status = failed[uid]
            r.reason = "refused by the server: " + (
                status_text(r.status) if r.status is not None else "no reason given"
            )
        elif uid in stored:
            r.ok = True
            r.status = stored[uid]
            if r.status:
                r.reason = status_text(r.status)
        elif answer is None and not fallback:
            r.ok = True  # a success answer without a body
        else:
            r.reason = fallback or "the server did not confirm it was stored"


def store_dicomweb(
    paths: Sequence[str | os.PathLike[str]],
    url: str,
    *,
    auth: Any = None,
    token: str | None = None,
    verify: bool | str = True,
    timeout: tuple[float, float] = (5.0, 120.0),
) -> list[StoreResult]:
    """STOW-RS ``paths`` to the DICOMweb server at ``url``, one request per object (a server
    may refuse a whole multi-object request for one bad object, e.g. Orthanc's HTTP 400, and
    then nobody knows which objects were stored).

    ``auth``/``token``/``verify`` as for :func:`napari_dcm.read_dicomweb`
    (an existing session for that server is reused when none is given).
    Returns one :class:`StoreResult` per file; raises ``DicomStoreError``
    (with those results) when any was not stored.
    """
    require("dicomweb_client", "STOW-RS")
    import requests
    from dicomweb_client.api import DICOMwebClient

    from . import dicomweb

    server = dicomweb.connect(url, auth=auth, token=token, verify=verify, timeout=timeout)
    results, datasets = _read(paths, headers_only=False)
    sendable = [(r, ds) for r, ds in zip(results, datasets) if ds is not None]
    if not sendable:
        return _raise_if_failed(server.base, results)
    client = DICOMwebClient(url=server.base, session=server.session, timeout=server.timeout)
    client.set_http_retry_params(retry=False)
    fatal = ""  # a reason every later object would meet too (unreachable, credentials)
    for r, ds in sendable:
        if fatal:
            r.reason = fatal
            continue
        try:
            answer = client.store_instances([ds])
            _apply_response([r], answer if len(answer) else None, "")
        except requests.exceptions.RequestException as exc:
            response = getattr(exc, "response", None)
            _apply_response([r], _response_dataset(response), _http_reason(exc, server))
            status = getattr(response, "status_code", None)
            if response is None or status in (401, 403, 404):
                fatal = r.reason
        except (DicomWebError, ValueError) as exc:
            _apply_response([r], None, f"unexpected answer: {exc}")
    return _raise_if_failed(server.base, results)


# --------------------------------------------------------------------------
# C-STORE


def _unreachable(host: str, port: int, timeout: float) -> str | None:
    """Why a TCP connection to the node fails, or None when it can be opened."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "cannot connect: connection refused"
    except TimeoutError:
        return f"cannot connect: no answer within {timeout:g} s"
    except OSError as exc:
        return f"cannot connect: {exc.strerror or type(exc).__name__}"


def store_dimse(
    paths: Sequence[str | os.PathLike[str]],
    host: str,
    port: int,
    *,
    called_ae: str = "ANY-SCP",
    calling_ae: str = "NAPARI-DCM",
    timeout: float = 30.0,
) -> list[StoreResult]:
    """C-STORE ``paths`` to the DICOM node ``called_ae`` at ``host``:``port`` (one association).

    Returns one :class:`StoreResult` per file (warnings such as coercion
    count as stored, with the warning as ``reason``); raises
    ``DicomStoreError`` when any was not stored.
    """
    require("pynetdicom", "C-STORE")
    from pynetdicom import AE

    destination = f"{called_ae}@{host}:{port}"
    results, datasets = _read(paths, headers_only=True)
    sendable = [(r, ds) for r, ds in zip(results, datasets) if ds is not None]
    if not sendable:
        return _raise_if_failed(destination, results)
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = min(timeout, 10.0)
    contexts: dict[str, list[str]] = {}
    for _, ds in sendable:
        ts = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "") or EXPLICIT_LE)
        syntaxes = contexts.setdefault(str(ds.SOPClassUID), [])
        for s in (ts, EXPLICIT_LE, IMPLICIT_LE):
            if s not in syntaxes:
                syntaxes.append(s)
    if len(contexts) > 128:
        for r, _ in sendable:
            r.reason = "more than 128 SOP classes in one send"
        return _raise_if_failed(destination, results)
    for sop_class, syntaxes in contexts.items():
        ae.add_requested_context(sop_class, syntaxes)
    assoc = ae.associate(host, int(port), ae_title=called_ae)
    if not assoc.is_established:
        if assoc.is_rejected:
            why = "association rejected by the peer (check the called AE title and that it accepts this caller)"
        else:
            why = _unreachable(host, int(port), min(timeout, 10.0)) or "association aborted by the peer"
        for r, _ in sendable:
            r.reason = why
        return _raise_if_failed(destination, results)
    try:
        for r, _ in sendable:
            if not assoc.is_established:
                r.reason = "association lost before this object was sent"
                continue
            try:
                status = assoc.send_c_store(r.path)
            except ValueError as exc:  # no accepted presentation context for this SOP class / syntax
                r.reason = f"not accepted by the peer: {exc}"
                continue
            except Exception as exc:
                r.reason = f"C-STORE failed: {type(exc).__name__}: {exc}"
                continue
            code = int(status.Status) if status is not None and "Status" in status else None
            r.status = code
            if code is None:
                r.reason = "no answer to C-STORE (timed out or association aborted)"
            elif code == 0 or 0xB000 <= code <= 0xBFFF:
                r.ok = True
                r.reason = "" if code == 0 else status_text(code)
            else:
                r.reason = "refused by the peer: " + status_text(code)
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()
    return _raise_if_failed(destination, results)
