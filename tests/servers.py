"""Real servers on loopback, started and stopped by the test session.

Fixtures (registered by one import line in conftest.py):

- ``orthanc_dimse`` (session): an Orthanc with its DICOM server on a private
  loopback port (AET ``ORTHANC``; associations addressed to another AE title
  are rejected) and REST/DICOMweb on another, preloaded
  with corpus files (original UIDs). A C-MOVE destination ``napari`` ->
  (``NAPARI_SCP``, 127.0.0.1, a free port the fixture chose) is registered;
  nothing listens there until a test starts its storage SCP on it.
- ``dask_remote`` (function; the cluster itself lives for the session): a
  ``dask scheduler`` on 127.0.0.1 and one ``dask worker`` in a private mount
  namespace (``unshare -m``) whose tmpfs holds copies of corpus files at paths
  that do not exist for the test process. Restarts the worker if a previous
  test killed it.
- ``sshd_server`` (session): OpenSSH's sshd on 127.0.0.1 with throwaway host
  and user keys, key-only login for the current user.
- ``dciodvfy`` (session): ``validators.dciodvfy`` once the binary is known to exist.

Each fails (CI=true) or skips (elsewhere) when its binary is missing.
Start-up is bounded (timeouts below); teardown kills what was started.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOOPBACK = "127.0.0.1"


def require(ok: bool, what: str):
    """A missing server binary fails the test in CI and skips it elsewhere."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} (CI=true: required)", pytrace=False)
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


try:
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl  # resolved here, not in the forked child
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent():
    """preexec_fn: SIGTERM the child when the test process dies (no orphans after a crash).

    The child makes one libc call (PR_SET_PDEATHSIG) between fork and exec."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)


def _stop(proc: subprocess.Popen | None, timeout: float = 10, group: bool = True):
    """SIGTERM (the process group when it has its own), then SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    send = (lambda sig: os.killpg(proc.pid, sig)) if group else proc.send_signal
    try:
        send(signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout)
    except ProcessLookupError:
        proc.wait(timeout)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Orthanc with DIMSE


MOVE_AET = "NAPARI_SCP"
# name -> corpus path (file or series folder); original UIDs, so retrieved
# files can be compared with the corpus by SOP Instance UID
DIMSE_DATA = {
    "knee": "ct_mr_series/orthanc_Knee_T1",  # 24-slice MR series, JPEG 2000 (lossy) stored
    "j2k_multiframe": "multiframe/emri_small_jpeg_2k_lossless.dcm",  # Enhanced MR, 10 frames, J2K lossless
    "ct": "transfer_syntax/CT_small.dcm",  # Explicit VR LE
    "mr_big_endian": "transfer_syntax/MR_small_bigendian.dcm",  # Explicit VR BE (retired syntax)
}


@dataclass
class DimseEntry:
    """One preloaded study/series: local corpus files and their UIDs."""

    paths: list[Path]
    study: str
    series: str
    sops: list[str]
    sop_class: str
    transfer_syntax: str
    patient_name: str
    by_sop: dict = field(default_factory=dict)  # SOP Instance UID -> local path


@pytest.fixture(scope="session")
def orthanc_dimse(corpus):
    """Orthanc (DIMSE + REST + DICOMweb) on loopback, preloaded with ``DIMSE_DATA``.

    Yields ``orthanc.Orthanc`` with extra attributes: ``host`` (127.0.0.1),
    ``aet`` ("ORTHANC"), ``dicom_port``, ``move_aet``/``move_port`` (the
    registered C-MOVE destination ``napari``), ``unreachable_aet`` (a
    registered destination nobody listens on), ``files`` {name: DimseEntry},
    ``startup_s``. REST is at ``.root`` (``.http`` is an authenticated session).
    Tests that C-STORE should use their own patient and delete what they stored.
    """
    import pydicom

    from orthanc import Orthanc, available

    require(available(), "Orthanc (apt: orthanc orthanc-dicomweb) is not installed")
    move_port = free_port()
    t0 = time.perf_counter()
    server = Orthanc(
        dimse=True,
        check_called_aet=True,
        modalities={
            "napari": (MOVE_AET, LOOPBACK, move_port),
            "unreachable": ("NOBODY", LOOPBACK, free_port()),
        },
    )
    server.startup_s = time.perf_counter() - t0
    server.host, server.move_aet, server.move_port, server.unreachable_aet = LOOPBACK, MOVE_AET, move_port, "NOBODY"
    try:
        files = {}
        for name, rel in DIMSE_DATA.items():
            src = corpus / rel
            paths = sorted(p for p in src.iterdir() if p.is_file()) if src.is_dir() else [src]
            by_sop = {}
            for p in paths:
                answer = server.upload(p)
                if answer.get("Status") != "Success":
                    raise RuntimeError(f"Orthanc did not store {p} afresh: {answer}")
                ds = pydicom.dcmread(p, stop_before_pixels=True)
                by_sop[ds.SOPInstanceUID] = p
            files[name] = DimseEntry(
                paths=paths,
                study=ds.StudyInstanceUID,
                series=ds.SeriesInstanceUID,
                sops=list(by_sop),
                sop_class=ds.SOPClassUID,
                transfer_syntax=ds.file_meta.TransferSyntaxUID,
                patient_name=str(ds.get("PatientName", "")),
                by_sop=by_sop,
            )
        server.files = files
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------
# dask.distributed, worker in a private mount namespace

# corpus files copied into the worker's tmpfs (kept at the same relative paths)
REMOTE_DATA = {
    "mr_series": "ct_mr_series/orthanc_Knee_T1",  # 24 MR slices, JPEG 2000
    "j2k_multiframe": "multiframe/emri_small_jpeg_2k_lossless.dcm",  # 10 frames, J2K lossless
    "rgb_cine": "multiframe/ultrasound-multiframe.dcm",  # 30 frames 600x800 RGB, 43 MB, native
}


def unshare_argv() -> list[str] | None:
    """The ``unshare`` prefix giving a private mount namespace in which tmpfs can be mounted.

    Root: ``unshare --mount``. Otherwise a user namespace mapping the caller to
    root (``--map-root-user``), when the kernel allows it. None if neither works."""
    if not shutil.which("unshare"):
        return None
    argv = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        argv.insert(1, "--map-root-user")
        try:
            probe = subprocess.run([*argv, "--", "true"], check=False, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if probe.returncode:
            return None
    return argv


class NamespacedDaskCluster:
    """``dask scheduler`` on 127.0.0.1 + one ``dask worker`` inside ``unshare -m``.

    The worker mounts a tmpfs on ``mountpoint`` (an empty directory for every
    other process) and copies ``REMOTE_DATA`` into ``remote_root`` =
    ``mountpoint/cluster-data`` inside its namespace: those paths exist for
    the worker only. ``remote[name]`` is the remote path of a ``REMOTE_DATA``
    entry; ``sources`` maps every remote file to its corpus file.
    """

    SCHEDULER_TIMEOUT = 60
    WORKER_TIMEOUT = 60

    def __init__(self, corpus: Path, nthreads: int = 2):
        self.unshare = unshare_argv()
        if self.unshare is None:
            raise RuntimeError("no private mount namespace: unshare missing, or not root and no user namespaces")
        self.corpus = Path(corpus)
        self.nthreads = nthreads
        self.dir = Path(tempfile.mkdtemp(prefix="napari-dcm-dask-"))
        self.mountpoint = self.dir / "ns"
        self.mountpoint.mkdir()
        self.remote_root = self.mountpoint / "cluster-data"
        self.remote: dict[str, Path] = {k: self.remote_root / rel for k, rel in REMOTE_DATA.items()}
        self.sources: dict[Path, Path] = {}
        for rel in REMOTE_DATA.values():
            src = self.corpus / rel
            for f in sorted(src.iterdir()) if src.is_dir() else [src]:
                self.sources[self.remote_root / f.relative_to(self.corpus)] = f
        self.scheduler: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.address = ""
        self.scheduler_startup_s = self.worker_startup_s = 0.0
        self._worker_runs = 0
        self.env = dict(os.environ)
        # the worker imports napari_dcm and test helpers as the test process does
        extra = [str(REPO / "src"), str(HERE)]
        self.env["PYTHONPATH"] = os.pathsep.join(extra + [p for p in [os.environ.get("PYTHONPATH")] if p])
        try:
            self._start_scheduler()
            self.start_worker()
        except BaseException:
            self.stop()
            raise

    # -- processes
    def _start_scheduler(self):
        t0 = time.perf_counter()
        sfile = self.dir / "scheduler.json"
        with open(self.dir / "scheduler.log", "w") as log:
            self.scheduler = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    LOOPBACK,
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(sfile),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + self.SCHEDULER_TIMEOUT
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                log = _tail(self.dir / "scheduler.log")
                raise RuntimeError(f"dask scheduler exited with {self.scheduler.returncode}:\n{log}")
            try:
                self.address = json.loads(sfile.read_text())["address"]
                host, port = self.address.removeprefix("tcp://").rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=1):
                    break
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        else:
            log = _tail(self.dir / "scheduler.log")
            raise RuntimeError(f"dask scheduler did not start within {self.SCHEDULER_TIMEOUT} s:\n{log}")
        self.scheduler_startup_s = time.perf_counter() - t0

    def _worker_script(self) -> str:
        q = shlex.quote
        lines = ["set -eu", f"mount -t tmpfs -o size=256m,mode=0755 napari-dcm-cluster {q(str(self.mountpoint))}"]
        for dst, src in self.sources.items():
            lines.append(f"mkdir -p {q(str(dst.parent))} && cp -- {q(str(src))} {q(str(dst))}")
        lines.append(
            "exec "
            + " ".join(
                q(a)
                for a in [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    self.address,
                    "--host",
                    LOOPBACK,
                    "--nthreads",
                    str(self.nthreads),
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    "napari-dcm-ns-worker",
                    "--local-directory",
                    str(self.mountpoint / "worker-space"),
                    "--death-timeout",
                    "60",
                ]
            )
        )
        return "\n".join(lines)

    def start_worker(self):
        """Start the namespaced worker (fresh tmpfs and copies); wait until the scheduler has it."""
        from distributed import Client

        if self.worker_alive():
            return
        t0 = time.perf_counter()
        self._worker_runs += 1
        log = self.dir / f"worker-{self._worker_runs}.log"
        with Client(self.address, timeout="10s", set_as_default=False) as c:
            deadline = time.monotonic() + self.WORKER_TIMEOUT
            # a worker that died on its own may still be listed: its name must be free again
            while c.scheduler_info(n_workers=-1)["workers"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the scheduler still lists a dead worker")
                time.sleep(0.1)
            with open(log, "w") as fh:
                # unshare execs sh, which execs the worker: one process, its own group
                self.worker = subprocess.Popen(
                    [*self.unshare, "--", "sh", "-c", self._worker_script()],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            while time.monotonic() < deadline:
                if self.worker.poll() is not None:
                    raise RuntimeError(f"namespaced dask worker exited with {self.worker.returncode}:\n{_tail(log)}")
                if c.scheduler_info(n_workers=-1)["workers"]:
                    break
                time.sleep(0.1)
            else:
                _stop(self.worker)
                raise RuntimeError(f"namespaced dask worker did not join within {self.WORKER_TIMEOUT} s:\n{_tail(log)}")
        self.worker_startup_s = time.perf_counter() - t0

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    def kill_worker(self, timeout: float = 30):
        """SIGKILL the worker (a crash, not a shutdown); wait until the scheduler has dropped it."""
        from distributed import Client

        if self.worker is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout)
        with Client(self.address, timeout="10s", set_as_default=False) as c:
            deadline = time.monotonic() + timeout
            while c.scheduler_info(n_workers=-1)["workers"]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"scheduler still lists the killed worker after {timeout} s")
                time.sleep(0.1)

    def pids(self) -> list[int]:
        return [p.pid for p in (self.scheduler, self.worker) if p is not None]

    def stop(self):
        _stop(self.worker)
        _stop(self.scheduler)
        # the tmpfs lived in the worker's namespace only: nothing is mounted here
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def dask_remote_session(corpus):
    require(
        unshare_argv() is not None,
        "the namespaced dask worker needs `unshare` (util-linux) and root or unprivileged user namespaces",
    )
    cluster = NamespacedDaskCluster(corpus)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def dask_remote(dask_remote_session):
    """The session's ``NamespacedDaskCluster`` with its worker running.

    ``.address`` (tcp://127.0.0.1:PORT), ``.remote`` {"mr_series": dir,
    "j2k_multiframe": file, "rgb_cine": file}, ``.remote_root``, ``.sources``
    {remote file: corpus file}, ``.kill_worker()``, ``.start_worker()``.
    """
    dask_remote_session.start_worker()
    return dask_remote_session


# --------------------------------------------------------------------------
# sshd

SSHD = "/usr/sbin/sshd"


@dataclass
class SshServer:
    """A private sshd: log in as ``user`` at ``host``:``port`` with ``identity``.

    ``options``: ssh ``-o`` options (no -i/-p) that pin the throwaway host key
    (no prompt, no ~/.ssh use). ``argv(*cmd)``: a full ssh command line.
    ``remote_python``: a Python with this project's environment on the "remote".
    """

    user: str
    host: str
    port: int
    identity: Path
    known_hosts: Path
    options: list[str]
    dir: Path
    remote_python: str = sys.executable
    proc: subprocess.Popen | None = None
    startup_s: float = 0.0

    def argv(self, *remote_cmd: str, extra: tuple = ()) -> list[str]:
        return [
            "ssh",
            "-i",
            str(self.identity),
            "-p",
            str(self.port),
            *self.options,
            *extra,
            f"{self.user}@{self.host}",
            *remote_cmd,
        ]

    def stop(self):
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_sshd(timeout: float = 20) -> SshServer:
    t0 = time.perf_counter()
    d = Path(tempfile.mkdtemp(prefix="napari-dcm-sshd-"))
    user = pwd.getpwuid(os.getuid()).pw_name
    port = free_port()
    try:
        for key, comment in (("host_ed25519", "napari-dcm-test-host"), ("id_ed25519", "napari-dcm-test-user")):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(d / key)],
                check=True,
                capture_output=True,
                timeout=30,
            )
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        os.chmod(d / "authorized_keys", 0o600)
        host_pub = (d / "host_ed25519.pub").read_text().split()
        (d / "known_hosts").write_text(f"[{LOOPBACK}]:{port} {host_pub[0]} {host_pub[1]}\n")
        cfg = d / "sshd_config"
        cfg.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    f"ListenAddress {LOOPBACK}",
                    f"HostKey {d / 'host_ed25519'}",
                    f"PidFile {d / 'sshd.pid'}",
                    f"AuthorizedKeysFile {d / 'authorized_keys'}",
                    f"AllowUsers {user}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    # the key files live in a temp dir under world-writable /tmp
                    "StrictModes no",
                    "AllowTcpForwarding yes",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "MaxStartups 100",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            # sshd run as root needs its privilege-separation directory (the ssh
            # service creates it at boot; containers often lack it)
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        check = subprocess.run([SSHD, "-t", "-f", str(cfg)], check=False, capture_output=True, text=True, timeout=30)
        if check.returncode:
            raise RuntimeError(f"sshd -t rejected {cfg}: {check.stderr.strip()}")
        options = [
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={d / 'known_hosts'}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ]
        server = SshServer(
            user=user,
            host=LOOPBACK,
            port=port,
            identity=d / "id_ed25519",
            known_hosts=d / "known_hosts",
            options=options,
            dir=d,
        )
        with open(d / "sshd.log", "w") as log:
            server.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            log = _tail(d / "sshd.log")
            server.stop()
            raise RuntimeError(f"sshd exited with {server.proc.returncode}:\n{log}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        server.stop()
        raise RuntimeError(f"sshd did not answer on {LOOPBACK}:{port} within {timeout} s")
    server.startup_s = time.perf_counter() - t0
    return server


@pytest.fixture(scope="session")
def sshd_server():
    """``SshServer`` (user, host, port, identity, known_hosts, options, argv(), remote_python)."""
    require(
        os.access(SSHD, os.X_OK) and shutil.which("ssh") and shutil.which("ssh-keygen"),
        "OpenSSH server/client (apt: openssh-server) is not installed",
    )
    server = start_sshd()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------
# validators


@pytest.fixture(scope="session")
def dciodvfy():
    """``validators.dciodvfy(path) -> (errors, warnings)``."""
    from validators import dciodvfy as run
    from validators import dciodvfy_available

    require(dciodvfy_available(), "dciodvfy (apt: dicom3tools) is not installed")
    return run
