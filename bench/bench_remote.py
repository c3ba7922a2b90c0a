"""Frames through a dask worker (issue 14): bytes per frame, time per frame, scroll fps.

    .venv/bin/python bench/bench_remote.py [--quick] [--repeat N] [--data DIR] [--only frames scroll]

Starts its own ``dask scheduler`` and ``dask worker`` (2 threads) on 127.0.0.1; the
worker reads the files.  Every measurement is a fresh child process:

frames  ``napari_dcm.read(path, scheduler=...)`` of the 64 x 2048 x 1664 JPEG 2000
        lossless DBT of bench_reader, then every frame in a shuffled order as napari
        asks for it (``np.asarray(data[k])``, decoded-frame cache cleared before each):
        - time per frame fetched and decoded here, and decoded on the worker
          (``remote_decode=True``); baseline, same child: a local read of the same file;
        - bytes received per frame: the child reaches the scheduler through a counting
          TCP relay (what would cross an SSH tunnel), and each frame's ``ref.read()`` is
          measured against the frame's stored size (its fragments) and, for
          ``remote_decode``, against the decoded frame;
        - open time (header scan on the worker + assembly here) against a local open.
scroll  a shown napari viewer opens the DBT through the worker
        (``napari_dcm.view(path, scheduler=...)``), shows the middle frame, waits 2 s,
        then steps 16 frames forward as fast as the canvas draws (bench_scroll's
        method; read-ahead, when napari-dcm has it, works as for local files).
        Baseline, same run: the same scroll of the local file.

The worker and this client share the machine's cores and talk over loopback: the
figures are the protocol's cost (serialization, the scheduler hop, the fetch round
trip), not a network's.  docs/remote.md turns the bytes and decode times into
"which side should decode" for real links.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

# ---------------------------------------------------------------- a counting TCP relay


class Relay:
    """127.0.0.1:port -> target, counting the bytes that come back (scheduler -> client)."""

    def __init__(self, target: str):
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self.target = (host, int(port))
        self.down = 0
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.address = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.server.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _pump(self, src, dst, count):
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        try:
            while True:
                n = src.recv_into(buf)
                if not n:
                    break
                if count:
                    with self.lock:
                        self.down += n
                dst.sendall(view[:n])
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def received(self) -> int:
        with self.lock:
            return self.down


# ---------------------------------------------------------------- child side


def _refs(layer):
    return sorted((v[1] for v in dict(layer.data.__dask_graph__()).values()), key=lambda r: r.index)


def child_frames(spec) -> dict:
    import numpy as np

    import napari_dcm
    from napari_dcm.dicom import cluster, decode

    path, address = spec["path"], spec["address"]
    out: dict = {}
    napari_dcm.read(path)  # imports and the file in the page cache: not part of either open
    t = time.perf_counter()
    (local,) = napari_dcm.read(path)
    out["open_local_s"] = time.perf_counter() - t
    t = time.perf_counter()
    cluster.connect(address)
    out["connect_s"] = time.perf_counter() - t
    t = time.perf_counter()
    (remote,) = napari_dcm.read(path, scheduler=address)
    out["open_remote_s"] = time.perf_counter() - t
    (remote_dec,) = napari_dcm.read(path, scheduler=address, remote_decode=True)
    n = local.data.shape[0]
    order = list(range(n))
    random.Random(spec["seed"]).shuffle(order)
    order = order[: spec["frames"]]

    def per_frame(layer, check=None):
        times = []
        for k in order:
            decode.reset()
            t0 = time.perf_counter()
            arr = np.asarray(layer.data[k])
            times.append(time.perf_counter() - t0)
            if check is not None and k in check and not np.array_equal(arr, check[k]):
                raise AssertionError(f"frame {k} differs from the local read")
        return times

    out["local_s"] = per_frame(local)
    reference = {k: np.asarray(local.data[k]) for k in order[:3]}
    out["remote_s"] = per_frame(remote, reference)
    out["remote_decode_s"] = per_frame(remote_dec)
    # bytes: through a counting relay (a fresh client reaches the scheduler through it)
    relay = Relay(address)
    (via,) = napari_dcm.read(path, scheduler=relay.address)
    (via_dec,) = napari_dcm.read(path, scheduler=relay.address, remote_decode=True)
    stored, got, decoded, got_dec = [], [], [], []
    refs, refs_dec = _refs(via), _refs(via_dec)
    for k in order:
        r = refs[k]
        stored.append(sum(length for _, length in r.inner.ranges))
        b0 = relay.received()
        enc = r.read()
        got.append(relay.received() - b0)
        assert len(enc.data) == stored[-1]
        b0 = relay.received()
        enc = refs_dec[k].read()
        got_dec.append(relay.received() - b0)
        decoded.append(int(enc.data.nbytes))
    out.update(stored=stored, received=got, decoded=decoded, received_decoded=got_dec)
    cluster.reset()
    C.child_result(out)
    return out


def child_scroll(spec) -> dict:
    import bench_scroll as S
    import napari

    import napari_dcm

    viewer = napari.Viewer(show=True)
    watch = C.watch_canvas(viewer, on_paint=lambda: C.frame_state(viewer))
    watch.settle()
    t = time.perf_counter()
    napari_dcm.view(
        spec["path"], viewer=viewer, scheduler=spec.get("address"), remote_decode=spec.get("remote_decode", False)
    )
    assert len(viewer.layers) == 1, viewer.layers
    start = int(viewer.dims.current_step[0])
    t_shown = watch.wait(lambda s: s == (start, True), since=0)
    out = dict(open_to_middle_s=t_shown - t, start=start)
    C.run_event_loop(2.0)
    steps = spec["steps"]
    times = []
    t_begin = t = time.perf_counter()
    for i in range(1, steps + 1):
        t_done = S._step_to(viewer, watch, start + i)
        times.append(t_done - t)
        t = time.perf_counter()
    out.update(fps=steps / (t_done - t_begin), step_s=times)
    C.child_result(out)
    viewer.close()
    return out


# ---------------------------------------------------------------- the cluster


def start_cluster(nthreads: int = 2) -> str:
    """A dask scheduler and worker on loopback (stopped at exit); returns the address."""
    d = Path(tempfile.mkdtemp(prefix="napari-dcm-bench-cluster-"))
    env = dict(os.environ)
    sfile = d / "scheduler.json"
    py = sys.executable
    sched = subprocess.Popen(
        [py, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        + ["--scheduler-file", str(sfile)],
        stdout=open(d / "scheduler.log", "w"),  # noqa: SIM115 (lives as long as the process)
        stderr=subprocess.STDOUT,
        env=env,
    )
    procs = [sched]

    def stop():
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    atexit.register(stop)
    deadline = time.monotonic() + 60
    while not sfile.exists():
        if time.monotonic() > deadline or sched.poll() is not None:
            raise SystemExit("dask scheduler did not start: " + (d / "scheduler.log").read_text()[-2000:])
        time.sleep(0.1)
    address = json.loads(sfile.read_text())["address"]
    worker = subprocess.Popen(
        [py, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--no-dashboard"]
        + ["--nthreads", str(nthreads), "--no-nanny", "--local-directory", str(d / "worker")],
        stdout=open(d / "worker.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=env,
    )
    procs.append(worker)
    from distributed import Client

    with Client(address, timeout="30s", set_as_default=False) as c:
        c.wait_for_workers(1, timeout=60)
    return address


# ---------------------------------------------------------------- parent side


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 x 512 x 416 DBT, one repeat (smoke run)")
    ap.add_argument("--data", default=str(C.HERE / "data"))
    ap.add_argument("--repeat", type=int, default=None, help="fresh-process repeats (default 3, quick 1)")
    ap.add_argument("--only", nargs="*", default=None, help="frames scroll")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        C.use_repo_src()
        (child_scroll if spec["kind"] == "scroll" else child_frames)(spec)
        return

    C.use_repo_src()
    only = set(args.only or ["frames", "scroll"])
    if "scroll" in only:
        C.ensure_display()
        C.isolated_napari_settings()
    shape = C.DBT_QUICK if args.quick else C.DBT_FULL
    repeat = args.repeat or (1 if args.quick else 3)
    path = C.dbt_path(Path(args.data), "j2k", shape)
    C.warm_file(path)
    address = start_cluster()
    print(f"cluster: {address}; input {path.name} ({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
    res = C.Results("remote", args.quick)
    frames = shape[0]

    if "frames" in only:
        runs = [
            C.run_child(Path(__file__), dict(kind="frames", path=str(path), address=address, seed=r, frames=frames))
            for r in range(repeat)
        ]
        stored = sum(sum(r["stored"]) for r in runs)
        got = sum(sum(r["received"]) for r in runs)
        worst = max(g / s for r in runs for g, s in zip(r["received"], r["stored"]))
        res.record(
            "bytes received per frame / stored frame size",
            got / sum(len(r["stored"]) for r in runs),
            stored / sum(len(r["stored"]) for r in runs),
            "B",
            target="<= 1.1x",
            ok=got / stored <= 1.1,
            note=f"(worst frame {worst:.4f}x)",
        )
        dec = sum(sum(r["decoded"]) for r in runs)
        got_dec = sum(sum(r["received_decoded"]) for r in runs)
        res.record(
            "remote_decode: bytes received per frame / decoded frame size",
            got_dec / sum(len(r["decoded"]) for r in runs),
            dec / sum(len(r["decoded"]) for r in runs),
            "B",
            note=f"(decoded / stored = {dec / stored:.2f}x)",
        )
        local = [t for r in runs for t in r["local_s"]]
        remote = [t for r in runs for t in r["remote_s"]]
        remote_dec = [t for r in runs for t in r["remote_decode_s"]]
        res.record(
            "time per frame through the worker (decoded here) vs local read",
            C.med(remote),
            C.med(local),
            "s",
            note=f"ours {C.spread(remote)}; local {C.spread(local)}",
            samples=remote,
        )
        res.record(
            "time per frame, decoded on the worker (remote_decode) vs local read",
            C.med(remote_dec),
            C.med(local),
            "s",
            note=f"ours {C.spread(remote_dec)}",
            samples=remote_dec,
        )
        res.record(
            "open (header scan on the worker) vs local open",
            C.med([r["open_remote_s"] for r in runs]),
            C.med([r["open_local_s"] for r in runs]),
            "s",
            note=f"(connecting first: {C.med([r['connect_s'] for r in runs]):.3f} s)",
        )
        res.extra["frames"] = {k: v for k, v in runs[0].items() if not k.startswith("_")}

    if "scroll" in only:
        steps = min(16, frames - frames // 2 - 1)
        fps = {"local": [], "remote": [], "remote_decode": []}
        for _ in range(repeat):
            for src in fps:
                spec = dict(kind="scroll", path=str(path), steps=steps)
                if src != "local":
                    spec.update(address=address, remote_decode=src == "remote_decode")
                fps[src].append(C.run_child(Path(__file__), spec)["fps"])
        res.record(
            f"scroll fps through the worker ({steps} steps) vs local",
            C.med(fps["remote"]),
            C.med(fps["local"]),
            "fps",
            note=f"ours {C.spread(fps['remote'])}; local {C.spread(fps['local'])}",
        )
        res.record(
            "scroll fps, decoded on the worker vs local",
            C.med(fps["remote_decode"]),
            C.med(fps["local"]),
            "fps",
            note=f"ours {C.spread(fps['remote_decode'])}",
        )
        res.extra["scroll_fps"] = fps
    res.write(C.meta(args))


if __name__ == "__main__":
    main()
