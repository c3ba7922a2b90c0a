"""``--tunnel user@host``: a scheduler and worker started over SSH (a private sshd on loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import napari_dcm
from napari_dcm.dicom import cluster
from napari_dcm.dicom.tunnel import open_tunnel
from napari_dcm.errors import ClusterError

REPO = Path(__file__).resolve().parents[1]
BIN = os.path.dirname(sys.executable)
REMOTE_MARK = "napari-dcm-tunnel"  # in the command lines of the remote script, scheduler and worker


@pytest.fixture
def remote_python(sshd_server, tmp_path):
    """The "remote" Python: this project's environment, importing this checkout's napari_dcm
    (sshd passes no PYTHONPATH, so a wrapper sets it)."""
    py = tmp_path / "remote-python"
    py.write_text(f'#!/bin/sh\nPYTHONPATH={REPO / "src"} exec {sshd_server.remote_python} "$@"\n')
    py.chmod(0o755)
    return str(py)


def _ssh_args(sshd_server) -> list[str]:
    return ["-i", str(sshd_server.identity), "-p", str(sshd_server.port), *sshd_server.options]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _processes_mentioning(text: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if text.encode() in fh.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def _refused_without_the_key(port: int) -> None:
    """Another user of the remote machine reaches the loopback port but not the scheduler."""
    import ssl

    from distributed import Client

    with pytest.raises((OSError, TimeoutError)):
        Client(f"tcp://127.0.0.1:{port}", timeout="3s", set_as_default=False)  # not TLS: no answer
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # TLS, but without the client certificate
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises((ssl.SSLError, ConnectionError)),
        ctx.wrap_socket(raw) as s,
    ):
        s.sendall(b"x")  # the handshake, then the scheduler's verdict on the first read
        if not s.recv(1):
            raise ConnectionError("closed by the scheduler")


def test_tunnel_opens_a_study_and_tears_everything_down(sshd_server, remote_python, corpus):
    path = corpus / "multiframe" / "emri_small_jpeg_2k_lossless.dcm"
    target = f"{sshd_server.user}@{sshd_server.host}"
    t0 = time.monotonic()
    tunnel = open_tunnel(target, remote_python=remote_python, ssh_args=_ssh_args(sshd_server), nthreads=1)
    startup = time.monotonic() - t0
    try:
        assert tunnel.address == f"tls://127.0.0.1:{tunnel.local_port}" and tunnel.alive()
        assert tunnel.security is not None and tunnel.warnings == []
        _refused_without_the_key(tunnel.remote_port)
        # the scheduler listens on the remote loopback only, reached here through the forward
        assert _listening(tunnel.remote_port) and _listening(tunnel.local_port)
        procs = _processes_mentioning(REMOTE_MARK)
        assert len(procs) >= 3, procs  # the remote script, dask scheduler and worker
        (t,) = napari_dcm.read(path, scheduler=tunnel.address)
        (local,) = napari_dcm.read(path)
        assert np.array_equal(t.data.compute(), local.data.compute())
        assert t.kwargs["scale"] == local.kwargs["scale"]
        assert tunnel.address in cluster.connected()
    finally:
        tunnel.close()
    assert not tunnel.alive() and tunnel.proc.returncode is not None
    assert tunnel.address not in cluster.connected()
    deadline = time.monotonic() + 20
    while _processes_mentioning(REMOTE_MARK) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(REMOTE_MARK) == []
    assert not os.path.exists(f"/proc/{tunnel.remote_pid}")
    assert not _listening(tunnel.remote_port) and not _listening(tunnel.local_port)
    assert startup < 60


def test_tunnel_errors_name_the_host_and_the_reason(sshd_server, remote_python, tmp_path):
    target = f"{sshd_server.user}@{sshd_server.host}"
    # a Python without napari-dcm on the remote side
    with pytest.raises(ClusterError, match="cannot import distributed and napari_dcm") as ei:
        open_tunnel(target, remote_python="/usr/bin/python3", ssh_args=_ssh_args(sshd_server), timeout=60)
    assert ei.value.path == f"ssh://{target}"
    # a key the server does not know: ssh's own words
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    args = _ssh_args(sshd_server)
    args[args.index("-i") + 1] = str(other)
    with pytest.raises(ClusterError, match="Permission denied"):
        open_tunnel(target, remote_python=remote_python, ssh_args=args, timeout=60)


@pytest.mark.viewer
def test_cli_tunnel_opens_in_napari_and_closes_with_it(sshd_server, remote_python, corpus, tmp_path):
    """``napari-dcm --tunnel`` end to end: layers open, and closing napari stops the remote side."""
    series = corpus / "ct_mr_series" / "orthanc_Knee_T1"
    shot = tmp_path / "shot.png"
    argv = [
        os.path.join(BIN, "napari-dcm"),
        "--tunnel",
        f"{sshd_server.user}@{sshd_server.host}",
        "--remote-python",
        remote_python,
        *[f"--ssh-arg={a}" for a in _ssh_args(sshd_server)],
        str(series),
        "--screenshot",
        str(shot),
        "--exit",
    ]
    assert os.environ.get("DISPLAY"), "pytest-xvfb provides a display"
    out = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=dict(os.environ))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "shape=(24, 512, 512)" in out.stdout
    assert shot.exists()
    deadline = time.monotonic() + 20
    while _processes_mentioning(REMOTE_MARK) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(REMOTE_MARK) == []  # nothing left running on the "remote"
