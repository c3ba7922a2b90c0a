"""A private Orthanc with DICOMweb on loopback for tests and benchmarks.

Recipe from ../shared/notes/orthanc-dicomweb.md: own config, temporary
storage, a free port, authentication on, started and stopped by us.
``Orthanc(dimse=True)`` also runs Orthanc's DICOM server on a private
loopback port (AET ``ORTHANC``, find/get/move/store allowed from any AET),
with ``modalities`` as C-MOVE destinations.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINARY = "/usr/sbin/Orthanc"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD = "napari", "s3cret-pw"


def available() -> bool:
    return os.path.exists(BINARY) and os.path.exists(PLUGIN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    def __init__(
        self, dimse: bool = False, modalities: dict | None = None, aet: str = "ORTHANC", check_called_aet: bool = False
    ):
        """``modalities``: {name: (AET, host, port)}, C-MOVE destinations (needs ``dimse``);
        ``check_called_aet``: reject associations addressed to another AE title."""
        import requests

        self.dir = Path(tempfile.mkdtemp(prefix="orthanc-"))
        self.port = free_port()
        self.aet = aet if dimse else None
        self.dicom_port = free_port() if dimse else None
        self.modalities = dict(modalities or {})
        cfg = {
            "Name": "napari-dcm-test",
            "StorageDirectory": str(self.dir / "db"),
            "IndexDirectory": str(self.dir / "db"),
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "HttpCompressionEnabled": False,
            "SaveJobs": False,
            "Plugins": [PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{self.port}", "Ssl": False},
        }
        if dimse:
            cfg.update(
                {
                    "DicomServerEnabled": True,
                    "DicomAet": aet,
                    "DicomPort": self.dicom_port,
                    "DicomCheckCalledAet": check_called_aet,
                    "DicomAlwaysAllowEcho": True,
                    "DicomAlwaysAllowFind": True,
                    "DicomAlwaysAllowGet": True,
                    "DicomAlwaysAllowMove": True,
                    "DicomAlwaysAllowStore": True,
                    # close Orthanc's outgoing (C-MOVE) associations at once rather than after 5 s
                    "DicomAssociationCloseDelay": 0,
                    "DicomModalities": {k: list(v) for k, v in self.modalities.items()},
                }
            )
        (self.dir / "orthanc.json").write_text(json.dumps(cfg))
        self.log = open(self.dir / "orthanc.log", "w")  # noqa: SIM115 (open while the server runs)
        self.proc = subprocess.Popen(
            [BINARY, str(self.dir / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT
        )
        self.http = requests.Session()
        self.http.auth = (USER, PASSWORD)
        self.http.trust_env = False
        self._wait()

    def restart(self):
        """Stop and start again on the same storage (drops Orthanc's in-memory cache)."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)
        self.proc = subprocess.Popen(
            [BINARY, str(self.dir / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait()

    def _wait(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited with {self.proc.returncode}: {(self.dir / 'orthanc.log').read_text()[-2000:]}"
                )
            try:
                if self.http.get(f"{self.root}/system", timeout=1).status_code == 200:
                    if self.dicom_port is None:
                        return
                    with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                        return
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not start within 30 s")

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.root}/dicom-web"

    def upload(self, path) -> dict:
        r = self.http.post(f"{self.root}/instances", data=Path(path).read_bytes(), timeout=60)
        r.raise_for_status()
        return r.json()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def with_fresh_uids(src, dst, patient: str, study_key: str, series_key: str | None = None):
    """Copy a DICOM file with new Study/Series/SOP UIDs (keeps pixel data bytes as they are)."""
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(src, force=True)
    ds.PatientID = patient
    ds.PatientName = f"{patient}^Test"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", study_key])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", series_key or str(src)])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["sop", str(src), study_key])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(dst)
    return ds
