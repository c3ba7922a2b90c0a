"""``--tunnel user@host``: a dask scheduler and worker on another machine, reached through SSH.

One ``ssh`` connection does everything: it runs a small Python script on the
remote machine that starts ``dask scheduler`` and ``dask worker`` bound to the
remote loopback interface, and it forwards a local loopback port to the
scheduler's port (``-L``).  Closing the tunnel closes the script's standard
input; the script then stops the worker and the scheduler and removes its
temporary folder, and ssh exits.  If this process dies, ssh's input closes
the same way.

Loopback is not private on a shared machine: every user there can reach a
port on 127.0.0.1, and a dask scheduler runs any code it is sent.  So the
scheduler and worker speak TLS with a throw-away key and self-signed
certificate made for this tunnel (by ``cryptography`` or ``openssl`` on the
remote machine) in a folder only the user can read; the client gets them
through the ssh channel and keeps them in memory.  Without either tool the
tunnel falls back to plain TCP and says so.

Why the system ``ssh`` (OpenSSH) through ``subprocess`` and not a Python SSH
library: the user's agent, keys, ``~/.ssh/config`` (ProxyJump, ports, user
names), known hosts and any password or passphrase prompt work as they do in
the user's terminal, and nothing new needs to hold credentials.

The equivalent by hand (documented in docs/remote.md)::

    ssh -L 8786:127.0.0.1:8786 user@host \\
        'dask scheduler --host 127.0.0.1 --port 8786 & dask worker tcp://127.0.0.1:8786 --host 127.0.0.1'
    napari-dcm --scheduler tcp://127.0.0.1:8786 /path/on/host
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import random
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import ClusterError

log = logging.getLogger("napari_dcm")

READY = "NAPARI-DCM-READY"
ERROR = "NAPARI-DCM-ERROR"
BUSY = "NAPARI-DCM-PORT-BUSY"
TLS = "NAPARI-DCM-TLS"
WARNING = "NAPARI-DCM-WARNING"

# Runs on the remote machine as ``PYTHON -c SCRIPT PORT NTHREADS``.  Standard library only
# (plus distributed's command-line entry points, started with the same Python).
REMOTE_SCRIPT = r"""
import os, select, shutil, signal, subprocess, sys, tempfile, time
port, nthreads = int(sys.argv[1]), sys.argv[2]
def say(*a):
    print(*a, flush=True)
try:
    import distributed, napari_dcm
except Exception as exc:
    say("NAPARI-DCM-ERROR", f"{sys.executable} on this machine cannot import distributed and napari_dcm ({exc}); install napari-dcm there or pass --remote-python")
    sys.exit(3)
d = tempfile.mkdtemp(prefix="napari-dcm-tunnel-")
procs = []
def stop(*_):
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in reversed(procs):
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(d, ignore_errors=True)
def bye(*_):
    stop()
    os._exit(0)
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, bye)
def die_with_me():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass
def start(args, log):
    fh = open(os.path.join(d, log), "w")
    p = subprocess.Popen([sys.executable, "-m", *args], stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=die_with_me)
    procs.append(p)
    return p
def tail(log):
    try:
        with open(os.path.join(d, log)) as fh:
            return " | ".join(fh.read().strip().splitlines()[-3:])
    except OSError:
        return ""
def credentials():
    # a throw-away key and self-signed certificate, readable by this user only (the folder is 0700):
    # other users of this machine can reach the loopback port but not the scheduler
    key, crt = os.path.join(d, "tls.key"), os.path.join(d, "tls.crt")
    try:
        from distributed.security import Security
        sec = Security.temporary()  # needs the cryptography package
        with open(key, "w") as fh:
            fh.write(sec.tls_scheduler_key)
        with open(crt, "w") as fh:
            fh.write(sec.tls_scheduler_cert)
    except Exception:
        try:
            r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                                "-days", "7", "-subj", "/CN=napari-dcm-tunnel"], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode:
            return None
    os.chmod(key, 0o600)
    return key, crt
tls = credentials()
proto = "tls" if tls else "tcp"
tls_args = ["--tls-ca-file", tls[1], "--tls-cert", tls[1], "--tls-key", tls[0]] if tls else []
if not tls:
    say("NAPARI-DCM-WARNING", "neither the cryptography package nor openssl is available here: the scheduler is "
        "reachable without TLS by every user of this machine")
sfile = os.path.join(d, "scheduler.json")
sched = start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--protocol", proto,
               "--no-dashboard", "--scheduler-file", sfile] + tls_args, "scheduler.log")
deadline = time.monotonic() + 60
while not os.path.exists(sfile):
    if sched.poll() is not None:
        log = tail("scheduler.log")
        say("NAPARI-DCM-PORT-BUSY" if "already in use" in log.lower() else "NAPARI-DCM-ERROR", "dask scheduler exited: " + log)
        bye()
    if time.monotonic() > deadline:
        say("NAPARI-DCM-ERROR", "dask scheduler did not start within 60 s: " + tail("scheduler.log"))
        bye()
    time.sleep(0.1)
address = f"{proto}://127.0.0.1:{port}"
wargs = ["distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--no-dashboard", "--name", "napari-dcm-tunnel",
         "--local-directory", d] + tls_args
if nthreads != "0":
    wargs += ["--nthreads", nthreads]
worker = start(wargs, "worker.log")
if tls:
    import base64
    pem = [base64.b64encode(open(f, "rb").read()).decode() for f in (tls[1], tls[0])]
    say("NAPARI-DCM-TLS", *pem)  # over the ssh channel only
say("NAPARI-DCM-READY", address, os.getpid())
while True:
    r, _, _ = select.select([sys.stdin], [], [], 1.0)
    if r and not os.read(sys.stdin.fileno(), 4096):
        bye()  # the client closed the tunnel (or died)
    for p, name in ((sched, "scheduler"), (worker, "worker")):
        if p.poll() is not None:
            say("NAPARI-DCM-ERROR", f"dask {name} exited: " + tail(name + ".log"))
            bye()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Tunnel:
    """A running tunnel: ``address`` is the scheduler as seen from here (local loopback)."""

    target: str
    address: str
    local_port: int
    remote_port: int
    proc: subprocess.Popen[str]
    stderr: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=50))
    closed: bool = False
    remote_pid: int = 0  # the remote script's process id (for messages and tests)
    security: Any = None  # distributed.Security with the tunnel's throw-away TLS credentials
    warnings: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return not self.closed and self.proc.poll() is None

    def close(self, timeout: float = 15.0) -> None:
        """Stop the remote worker and scheduler and the ssh connection (idempotent, bounded)."""
        if self.closed:
            return
        self.closed = True
        from . import cluster

        cluster.disconnect(self.address)
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF: the remote script stops its processes and exits
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                _signal(self.proc, signal.SIGKILL)
                self.proc.wait(5)

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _signal(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def remote_command(python: str, port: int, nthreads: int = 0) -> str:
    """The command line ssh runs on the remote machine (for a POSIX shell there)."""
    return " ".join(shlex.quote(a) for a in (python, "-c", REMOTE_SCRIPT, str(port), str(nthreads)))


def ssh_argv(
    target: str, local_port: int, remote_port: int, command: str, ssh_args: Sequence[str] = (), ssh: str = "ssh"
) -> list[str]:
    return [
        ssh,
        *ssh_args,
        "-T",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=4",
        "-L",
        f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}",
        target,
        command,
    ]


def open_tunnel(
    target: str,
    *,
    remote_python: str = "python3",
    ssh_args: Sequence[str] = (),
    nthreads: int = 0,
    timeout: float = 120.0,
    ssh: str = "ssh",
    attempts: int = 3,
) -> Tunnel:
    """Start a scheduler and a worker on ``target`` (``[user@]host``) and forward a local port to it.

    ``remote_python``: the Python on the remote machine that has napari-dcm and
    distributed; ``ssh_args``: extra ssh arguments (normally none: ``~/.ssh/config``
    applies); ``nthreads``: worker threads (0: the remote machine's cores).
    Raises :class:`ClusterError` naming the host and the reason (ssh's own
    message when the connection or login fails).
    """
    where = f"ssh://{target}"
    last = ""
    for _ in range(attempts):
        lport, rport = free_port(), random.randint(20000, 59999)
        argv = ssh_argv(target, lport, rport, remote_command(remote_python, rport, nthreads), ssh_args, ssh)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            raise ClusterError(where, f"cannot run {ssh!r}: {exc}") from exc
        t = Tunnel(target, f"tcp://127.0.0.1:{lport}", lport, rport, proc)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines.put, True), daemon=True).start()
        threading.Thread(target=_pump, args=(proc.stderr, _keep(t.stderr), False), daemon=True).start()
        deadline = time.monotonic() + timeout
        status, detail = "", ""
        while not status:
            try:
                line = lines.get(timeout=max(0.05, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() > deadline:
                    status, detail = ERROR, f"the remote scheduler was not ready within {timeout:g} s"
                continue
            if line is None:  # ssh exited
                proc.wait(10)
                time.sleep(0.1)  # let the stderr pump finish
                err = " | ".join(x.strip() for x in list(t.stderr)[-3:] if x.strip())
                status, detail = ERROR, f"ssh exited with {proc.returncode}" + (f": {err}" if err else "")
                break
            word, _, rest = line.strip().partition(" ")
            if word == TLS:
                t.security = _security(rest)
            elif word == WARNING:
                log.warning("napari-dcm: %s: %s", target, rest)
                t.warnings.append(rest)
            elif word in (READY, ERROR, BUSY):
                status, detail = word, rest
        if status == READY:
            with contextlib.suppress(ValueError, IndexError):
                t.remote_pid = int(detail.split()[1])
            remote_address = detail.split()[0] if detail else "tcp://"
            scheme = remote_address.split("://", 1)[0]
            t.address = f"{scheme}://127.0.0.1:{lport}"
            try:
                from . import cluster

                cluster.connect(t.address, security=t.security, timeout=max(10.0, deadline - time.monotonic()))
            except ClusterError as exc:
                t.close(timeout=5)
                raise ClusterError(where, f"the remote scheduler started but {exc.reason}") from exc
            return t
        t.close(timeout=5)
        if status == BUSY:
            last = detail
            continue
        raise ClusterError(where, detail)
    raise ClusterError(where, f"no free port on the remote machine after {attempts} attempts ({last})")


def _security(line: str) -> Any:
    """distributed.Security from the remote's base64 certificate and key (held in memory here)."""
    import base64

    from distributed import security

    cert, key = (base64.b64decode(x).decode() for x in line.split())
    make: Any = security.Security  # untyped
    return make(require_encryption=True, tls_ca_file=cert, tls_client_cert=cert, tls_client_key=key)


def _keep(lines: collections.deque[str]) -> Callable[[str | None], object]:
    def put(line: str | None) -> None:
        if line is not None:
            lines.append(line)

    return put


def _pump(stream: IO[str] | None, put: Callable[[str | None], object], eof: bool) -> None:
    """Hand every line of ``stream`` to ``put``, then None when ``eof``."""
    try:
        for line in stream or ():
            put(line)
    except (OSError, ValueError):
        pass
    finally:
        if eof:
            put(None)
