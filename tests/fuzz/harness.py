"""Fuzz harness: read mutants with ``napari_dcm.read`` in child processes and classify what happens.

Each mutant runs in its own child, forked from this process after napari-dcm,
pydicom, numpy, dask and the codecs are imported (so a child starts in
milliseconds and nothing one mutant does - caches, warning registries, a
corrupted heap - reaches the next).  The child sets ``RLIMIT_AS`` (address
space) and no core dumps, calls ``napari_dcm.read(path)``, then computes the
first, middle and last frame of every image layer in one ``dask.compute``
(threaded scheduler, as napari does), and writes a JSON result.  The parent
kills a child still running after ``--timeout`` seconds (after asking
faulthandler for its stacks) and hashes every file of the mutant before and
after, and the corpus at the start and the end.

Outcome classes (one per mutant, the first that applies):

crash             the child died on a signal (or exited without a result)
hang              still running at the timeout (stacks in the log)
memory_error      MemoryError escaped ``read`` or a frame computation
foreign_exception anything else that is not a ``napari_dcm.DicomError`` escaped
                  (BaseException subclasses included, e.g. pyo3's PanicException)
lost_warning      a frame failed (napari-dcm's error handler was called) but no
                  DicomDecodeWarning reached the caller
silent_garbage    a frame whose bytes the mutation destroyed (truncation) came back
                  without any decode report
silent_blank      an all-zero frame without any decode report where the unmutated
                  source's same frame is not all zero (truncation / fragment / pixel
                  mutations only: conservative)
blank_warned      a frame was blank and DicomDecodeWarning said so (documented)
typed_error       ``read`` raised a napari_dcm.DicomError subclass (documented)
ok                layers and frames came back, nothing to report

Flags (counted beside the classes): ``slow`` (took more than ``--slow``
seconds), ``input_modified`` (a file of the mutant changed, appeared or went).

Usage (from the repository root)::

    python -m tests.fuzz.harness --n 3000 --seed 1 --jobs 2 --timeout 30 --out report.json
"""

from __future__ import annotations

import os

# numpy's BLAS must not start threads in the process the children are forked from
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import hashlib
import json
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter, defaultdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make "tests.fuzz" importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.fuzz"

import contextlib

from . import mutate

# the checkout's own napari_dcm, whatever is installed
_SRC = mutate.REPO / "src"
if (_SRC / "napari_dcm").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

CLASSES = [
    "crash",
    "hang",
    "memory_error",
    "foreign_exception",
    "lost_warning",
    "silent_garbage",
    "silent_blank",
    "blank_warned",
    "typed_error",
    "ok",
]
FAILURES = ["crash", "hang", "memory_error", "foreign_exception", "lost_warning", "silent_garbage", "silent_blank"]
SILENT_BLANK_OPS = {"truncate", "fragment", "pixel_flip"}


# --------------------------------------------------------------------------
# hashing (sparse files: only their data extents are read)


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    st = os.stat(path)
    h.update(str(st.st_size).encode())
    with open(path, "rb") as fh:
        fd = fh.fileno()
        sparse = st.st_blocks * 512 < st.st_size and hasattr(os, "SEEK_DATA")
        if not sparse:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
            return h.hexdigest()
        pos = 0
        while pos < st.st_size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            h.update(f"@{start}".encode())
            fh.seek(start)
            left = end - start
            while left:
                b = fh.read(min(left, 1 << 20))
                if not b:
                    break
                h.update(b)
                left -= len(b)
            pos = end
    return h.hexdigest()


def tree_digest(root: str) -> dict:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                out[os.path.relpath(p, root)] = file_digest(p)
            except OSError as exc:
                out[os.path.relpath(p, root)] = f"unreadable: {exc}"
    return out


def corpus_digest(root: Path) -> dict:
    return {
        r["path"]: file_digest(str(root / r["path"]))
        for r in mutate.manifest_rows(root)
        if (root / r["path"]).is_file()
    }


# --------------------------------------------------------------------------
# the child


def _preload() -> None:
    """Import everything a read may need, once, before forking."""
    import dask
    import dask.array  # noqa: F401
    import numpy  # noqa: F401
    import pydicom
    import pydicom.fileset
    import pydicom.pixels  # noqa: F401

    import napari_dcm
    import napari_dcm.api
    import napari_dcm.layers.images
    import napari_dcm.layers.overlays  # noqa: F401
    from napari_dcm.dicom import codecs, decode, discovery, overlays, series  # noqa: F401
    from napari_dcm.dicom.sources import file  # noqa: F401

    for mod in ("imagecodecs", "pylibjpeg", "openjpeg", "libjpeg", "jpeg_ls", "rle", "rle.utils", "highdicom"):
        with contextlib.suppress(Exception):
            __import__(mod)
    from pydicom.pixels import get_decoder

    for ts in mutate.SWAP_SYNTAXES:
        with contextlib.suppress(Exception):
            get_decoder(ts)
    assert napari_dcm


def _frame_indices(n: int) -> list[int]:
    return sorted({0, (n - 1) // 2, n - 1})


def _where(tb) -> dict:
    """Innermost frame, and innermost frame inside napari_dcm, of a traceback."""
    frames = traceback.extract_tb(tb)
    out = {}
    if frames:
        f = frames[-1]
        out["top"] = f"{_short(f.filename)}:{f.name}:{f.lineno}"
    for f in reversed(frames):
        if "napari_dcm" in f.filename:
            out["ours"] = f"{_short(f.filename)}:{f.name}:{f.lineno}"
            break
    out["stack"] = [f"{_short(f.filename)}:{f.name}:{f.lineno}" for f in frames[-8:]]
    return out


def _short(filename: str) -> str:
    for key in ("napari_dcm/", "site-packages/", "lib/python3"):
        i = filename.rfind(key)
        if i >= 0:
            return filename[i + (0 if key == "napari_dcm/" else len(key)) :]
    return filename


def _exc_record(exc: BaseException) -> dict:
    rec = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc)[:500],
        "mro": [c.__name__ for c in type(exc).__mro__],
    }
    rec.update(_where(exc.__traceback__))
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        rec["cause"] = {"type": f"{type(cause).__module__}.{type(cause).__qualname__}", "message": str(cause)[:300]}
        rec["cause"].update(_where(cause.__traceback__))
    return rec


def child_run(path: str) -> dict:
    """What reading ``path`` does (runs in the forked child)."""
    import warnings

    import dask
    import numpy as np

    import napari_dcm
    from napari_dcm.dicom import decode

    res: dict = {"phase": "read", "layers": [], "reports": [], "warnings": {}}
    reports = res["reports"]

    def handler(err):
        reports.append(
            {
                "type": type(err).__name__,
                "reason": str(getattr(err, "reason", err))[:400],
                "frame": getattr(err, "frame", None),
                "cause": _cause_of(err),
            }
        )

    decode.add_error_handler(handler)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            layers = napari_dcm.read(path)
            res["t_read"] = time.perf_counter() - t0
            res["phase"] = "frames"
            for _li, (data, kw, kind) in enumerate(layers):
                if kind != "image":
                    res["layers"].append({"kind": kind})
                    continue
                rgb = bool(kw.get("rgb"))
                stacked = data.ndim == (4 if rgb else 3)
                n = data.shape[0] if stacked else 1
                ks = _frame_indices(n)
                md = kw.get("metadata") or {}
                d2s = md.get("display_to_stored") or list(range(n))
                fpaths = md.get("frame_paths") or []
                lay = {"kind": kind, "shape": list(data.shape), "dtype": str(data.dtype), "frames": []}
                res["layers"].append(lay)
                parts = [data[k] if stacked else data for k in ks]
                t1 = time.perf_counter()
                arrays = dask.compute(*parts, scheduler="threads")
                lay["t_frames"] = time.perf_counter() - t1
                for k, arr in zip(ks, arrays):
                    arr = np.asarray(arr)
                    lay["frames"].append(
                        {
                            "k": k,
                            "stored": d2s[k] if k < len(d2s) else k,
                            "path": fpaths[k] if k < len(fpaths) else None,
                            "blank": not bool(arr.any()),
                            "crc": zlib.crc32(np.ascontiguousarray(arr).tobytes()),
                            "shape": list(arr.shape),
                        }
                    )
            res["kind"] = "ok"
        except napari_dcm.DicomError as exc:
            res["kind"] = "typed_error"
            res["error"] = _exc_record(exc)
        except MemoryError as exc:
            res["kind"] = "memory_error"
            res["error"] = _exc_record(exc)
        except BaseException as exc:  # noqa: BLE001 - everything else is what we are looking for
            res["kind"] = "foreign_exception"
            res["error"] = _exc_record(exc)
    res["t_total"] = time.perf_counter() - t0
    w = Counter()
    for c in caught:
        w[c.category.__name__] += 1
    res["warnings"] = dict(w)
    res["decode_warnings"] = w.get("DicomDecodeWarning", 0)
    return res


def _cause_of(err) -> dict | None:
    c = err.__cause__ or err.__context__
    if c is None:
        return None
    d = {"type": f"{type(c).__module__}.{type(c).__qualname__}"}
    d.update(_where(c.__traceback__))
    return d


def _child_main(path: str, result_file: str, log_file: str, mem_limit: int) -> None:
    """Body of the forked child; never returns."""
    code = 0
    try:
        os.setpgid(0, 0)
        logf = open(log_file, "w")  # noqa: SIM115 - lives until os._exit
        os.dup2(logf.fileno(), 1)
        os.dup2(logf.fileno(), 2)
        sys.stdout = sys.stderr = logf  # also when the parent replaced them (pytest's capture)
        import faulthandler

        faulthandler.enable(file=logf, all_threads=True)
        faulthandler.register(signal.SIGUSR1, file=logf, all_threads=True)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if mem_limit:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
        res = child_run(path)
        tmp = result_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(res, fh)
        os.rename(tmp, result_file)
    except BaseException:  # noqa: BLE001
        with contextlib.suppress(BaseException):
            traceback.print_exc()
        code = 3
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code)


# --------------------------------------------------------------------------
# the parent


class Job:
    def __init__(self, mid, m, target, pid, start, result_file, log_file, before, is_ref=False):
        self.mid, self.m, self.target, self.pid, self.start = mid, m, target, pid, start
        self.result_file, self.log_file, self.before, self.is_ref = result_file, log_file, before, is_ref
        self.timed_out = False
        self.usr1_sent = 0.0


def _spawn(target: str, workdir: str, tag: str, mem_limit: int) -> tuple[int, str, str]:
    result_file = os.path.join(workdir, f"r-{tag}.json")
    log_file = os.path.join(workdir, f"log-{tag}.txt")
    for f in (result_file, log_file):
        if os.path.exists(f):
            os.unlink(f)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child_main(target, result_file, log_file, mem_limit)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    return pid, result_file, log_file


def _log_tail(log_file: str, n: int = 200_000) -> str:
    try:
        with open(log_file, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - n))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _fault_top(log: str) -> str | None:
    """The innermost Python frame of the crashing (or first) thread in a faulthandler dump."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("Current thread", "Thread 0x")) and "most recent call first" in line:
            for nxt in lines[i + 1 : i + 4]:
                nxt = nxt.strip()
                if nxt.startswith("File "):
                    try:
                        fn = nxt.split('"')[1]
                        lineno = nxt.split("line ")[1].split()[0]
                        func = nxt.split(" in ")[-1]
                        return f"{_short(fn)}:{func}:{lineno}"
                    except IndexError:
                        return nxt
    return None


def _fault_stacks(log: str) -> list[str]:
    """Innermost frames of every thread in a faulthandler dump (for hangs)."""
    out = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "most recent call first" in line:
            frames = []
            for nxt in lines[i + 1 : i + 40]:
                nxt = nxt.strip()
                if not nxt.startswith("File "):
                    break
                try:
                    frames.append(
                        f"{_short(nxt.split(chr(34))[1])}:{nxt.split(' in ')[-1]}:{nxt.split('line ')[1].split()[0]}"
                    )
                except IndexError:
                    frames.append(nxt)
            out.append(" <- ".join(frames))
    return out


def probe(path: str, timeout: float = 30.0, mem_limit: int = 4 << 30) -> dict:
    """Read one path in a forked child (as ``run`` does); return its status, result and stacks."""
    _preload()
    workdir = tempfile.mkdtemp(prefix="napari-dcm-probe-")
    try:
        pid, rf, lf = _spawn(path, workdir, "probe", mem_limit)
        start = time.monotonic()
        timed_out = False
        while True:
            got, st = os.waitpid(pid, os.WNOHANG)
            if got:
                break
            if not timed_out and time.monotonic() - start > timeout:
                timed_out = True
                os.killpg(pid, signal.SIGUSR1)
                time.sleep(1.0)
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.01)
        res = None
        if os.path.exists(rf):
            with open(rf) as fh:
                res = json.load(fh)
        log = _log_tail(lf)
        if timed_out:
            status = "hang"
        elif os.WIFSIGNALED(st):
            status = f"crash: {signal.Signals(os.WTERMSIG(st)).name}"
        elif res is None:
            status = f"crash: exit {os.WEXITSTATUS(st)} without a result"
        else:
            status = "done"
        return {
            "status": status,
            "result": res,
            "stacks": _fault_stacks(log) if timed_out else [],
            "log": log,
            "time": time.monotonic() - start,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


_IDLE = ("threading.py", "queue.py", "concurrent/futures", "dask/local.py", "dask/threaded.py", "dask/base.py")


def hang_signature(stacks: list[str]) -> str:
    """Where a hung child was busy: the innermost frame of the first thread that is not
    waiting on a queue, and the innermost napari_dcm frame of that thread."""
    busy = [s for s in stacks if s and not s.split(" <- ")[0].startswith(_IDLE)]
    busy.sort(key=lambda s: "napari_dcm/" not in s)
    if not busy:
        return "hang"
    frames = busy[0].split(" <- ")
    i = next((k for k, f in enumerate(frames) if f.startswith("napari_dcm/")), None)
    if i is None:
        return f"hang in {frames[0]}"
    if i == 0:
        return f"hang in {frames[0]}"
    entry = frames[i - 1].rsplit(":", 1)[0]  # the library call napari_dcm made (no line: it varies)
    return f"hang in {entry} (called from {frames[i]})"


def classify(m, res: dict | None, status: str, ref: dict | None) -> tuple[str, str]:
    """(class, signature) of one mutant."""
    if status.startswith("crash"):
        return "crash", status
    if status == "hang":
        return "hang", "hang"
    kind = res.get("kind")
    if kind in ("memory_error", "foreign_exception"):
        e = res["error"]
        return kind, f"{e['type']} @ {e.get('ours') or e.get('top')}"
    if kind == "typed_error":
        e = res["error"]
        return "typed_error", f"{e['type'].rsplit('.', 1)[-1]}: {_reason_head(e['message'])}"
    reports = res.get("reports") or []
    frames = [(li, f) for li, lay in enumerate(res.get("layers") or []) for f in lay.get("frames", [])]
    if reports and not res.get("decode_warnings"):
        return "lost_warning", "decode failed, no DicomDecodeWarning: " + _reason_head(reports[0]["reason"])
    if not reports and m is not None:
        target = os.path.basename(m.path)
        imp = set(m.impossible_frames or [])
        for _li, f in frames:
            if imp and f["stored"] in imp and (f.get("path") and os.path.basename(f["path"]) == target):
                return (
                    "silent_garbage",
                    f"{m.op}: destroyed frame {f['stored']} returned without a report ({'blank' if f['blank'] else 'non-blank'})",
                )
        if ref and ref.get("kind") == "ok" and m.op in SILENT_BLANK_OPS:
            rl = ref.get("layers") or []
            for li, f in frames:
                if not f["blank"] or li >= len(rl):
                    continue
                rf = {x["k"]: x for x in rl[li].get("frames", [])}.get(f["k"])
                if rf and not rf["blank"] and rf["shape"] == f["shape"]:
                    return "silent_blank", f"{m.op}: all-zero frame without a report"
    if any(f["blank"] for _, f in frames) and reports:
        return "blank_warned", "blank: " + _reason_head(reports[0]["reason"])
    return "ok", "ok"


def _reason_head(msg: str) -> str:
    """A message without its file path and numbers, for grouping."""
    import re

    msg = msg.split(": ", 1)[1] if msg.startswith("/") and ": " in msg else msg
    msg = re.sub(r"(?:(?<=\s)|^)/[^\s:'\"]+", "<path>", msg)
    msg = re.sub(r"0x[0-9A-Fa-f]+|\d+", "N", msg)
    return msg[:140]


def run(
    ids: list[str],
    *,
    jobs: int = 2,
    timeout: float = 30.0,
    mem_limit: int = 4 << 30,
    slow: float = 5.0,
    workdir: str | None = None,
    root: Path | None = None,
    keep: bool = False,
    references: bool = True,
    limit: int | None = None,
    progress=None,
) -> dict:
    """Run mutants ``ids`` (those not applicable to their source are skipped, and the
    next ids are taken until ``limit`` ran); return the report."""
    root = root or mutate.corpus_root()
    own_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="napari-dcm-fuzz-")
    os.makedirs(workdir, exist_ok=True)
    mutdir = os.path.join(workdir, "mutants")
    os.makedirs(mutdir, exist_ok=True)
    _preload()
    t_start = time.time()
    corpus_before = corpus_digest(root)
    manifest = {r["path"]: r for r in mutate.manifest_rows(root)}

    # reference reads of the unmutated sources (what "not blank" means for each frame)
    refs: dict = {}
    ref_targets = {}
    for mid in ids:
        src, op, _ = mutate.parse_id(mid)
        if references and op in SILENT_BLANK_OPS:
            ref_targets[src] = str(root / src)
    results = []
    queue = [("ref", t) for t in sorted(ref_targets)] + [("mut", mid) for mid in ids]
    running: dict[int, Job] = {}
    done = 0
    total = len(queue)
    skipped = []
    qi = 0

    started = 0

    def start_next() -> bool:
        nonlocal qi, started
        while qi < len(queue):
            kind, x = queue[qi]
            if kind == "mut" and limit is not None and started >= limit:
                return False
            qi += 1
            if kind == "ref":
                tag = "ref-" + hashlib.sha1(x.encode()).hexdigest()[:12]
                pid, rf, lf = _spawn(ref_targets[x], workdir, tag, mem_limit)
                running[pid] = Job(x, None, ref_targets[x], pid, time.monotonic(), rf, lf, None, is_ref=True)
                return True
            try:
                m = mutate.make(x, mutdir, root)
            except mutate.NotApplicable as exc:
                skipped.append((x, str(exc)))
                continue
            except Exception as exc:  # a mutator bug must not stop the run
                skipped.append((x, f"mutator failed: {type(exc).__name__}: {exc}"))
                continue
            before = tree_digest(m.root)
            tag = os.path.basename(m.root)
            pid, rf, lf = _spawn(m.path, workdir, tag, mem_limit)
            running[pid] = Job(x, m, m.path, pid, time.monotonic(), rf, lf, before)
            started += 1
            return True
        return False

    while True:
        while len(running) < jobs and start_next():
            pass
        if not running:
            break
        time.sleep(0.01)
        now = time.monotonic()
        for pid, job in list(running.items()):
            if not job.timed_out and now - job.start > timeout:
                job.timed_out = True
                job.usr1_sent = now
                with contextlib.suppress(OSError):  # faulthandler: dump every thread's stack
                    os.killpg(pid, signal.SIGUSR1)
            elif job.timed_out and now - job.usr1_sent > 1.0:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            job = running.pop(pid, None)
            if job is None:
                continue
            with contextlib.suppress(OSError):  # the child's own children (none expected) go too
                os.killpg(pid, signal.SIGKILL)
            elapsed = time.monotonic() - job.start
            res = None
            if os.path.exists(job.result_file):
                with open(job.result_file) as fh:
                    res = json.load(fh)
            if job.timed_out:
                status = "hang"
            elif os.WIFSIGNALED(st):
                status = f"crash: {signal.Signals(os.WTERMSIG(st)).name}"
            elif res is None:
                status = f"crash: exit {os.WEXITSTATUS(st)} without a result"
            else:
                status = "done"
            log = _log_tail(job.log_file)
            done += 1
            if job.is_ref:
                refs[job.mid] = res if status == "done" else {"kind": status}
            else:
                rec = _record(job, res, status, elapsed, log, refs, manifest, slow)
                results.append(rec)
                if not keep:
                    shutil.rmtree(job.m.root, ignore_errors=True)
            for f in (job.result_file, job.log_file):
                if not keep and os.path.exists(f):
                    os.unlink(f)
            if progress:
                progress(done, total, None if job.is_ref else results[-1])
    corpus_after = corpus_digest(root)
    changed = sorted(p for p in corpus_before if corpus_before[p] != corpus_after.get(p))
    report = {
        "ids": len(ids),
        "ran": len(results),
        "mutant_ids": [r["id"] for r in results],
        "not_applicable": skipped,
        "timeout": timeout,
        "mem_limit": mem_limit,
        "slow_threshold": slow,
        "jobs": jobs,
        "wall_s": round(time.time() - t_start, 1),
        "corpus_files_checked": len(corpus_before),
        "corpus_modified": changed,
        "references": {k: (v or {}).get("kind") for k, v in refs.items()},
        "results": results,
    }
    report["summary"] = summarize(report)
    if own_workdir and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def _record(job: Job, res, status, elapsed, log, refs, manifest, slow) -> dict:
    m = job.m
    ref = refs.get(m.source)
    cls, sig = classify(m, res, status, ref)
    after = tree_digest(m.root)
    modified = sorted(k for k in set(job.before) | set(after) if job.before.get(k) != after.get(k))
    rec = {
        "id": m.id,
        "op": m.op,
        "source": m.source,
        "note": m.note,
        "ts": (manifest.get(m.source) or {}).get("transfer_syntax", ""),
        "class": cls,
        "signature": sig,
        "time": round(elapsed, 3),
        "slow": elapsed > slow,
        "input_modified": modified,
    }
    if res is not None:
        rec["t_read"] = round(res.get("t_read", 0.0), 3)
        rec["t_frames"] = round(sum(lay.get("t_frames", 0.0) for lay in res.get("layers") or []), 3)
        for k in ("error", "reports", "warnings"):
            if res.get(k):
                rec[k] = res[k] if k != "reports" else res[k][:3]
        rec["layers"] = [
            {k: v for k, v in lay.items() if k != "frames"} | {"blank": [f["blank"] for f in lay.get("frames", [])]}
            for lay in res.get("layers") or []
        ]
    if cls == "crash":
        rec["fault_top"] = _fault_top(log)
        rec["log_tail"] = log[-1500:]
    if cls == "hang":
        rec["stacks"] = _fault_stacks(log)
        rec["signature"] = hang_signature(rec["stacks"])
    if cls in ("crash", "foreign_exception", "memory_error") and log:
        rec.setdefault("log_tail", log[-800:])
    return rec


def summarize(report: dict) -> dict:
    res = report["results"]
    counts = Counter(r["class"] for r in res)
    sigs: dict = defaultdict(lambda: {"count": 0, "ids": [], "ops": Counter()})
    for r in res:
        if r["class"] in ("ok",):
            continue
        s = sigs[(r["class"], r["signature"])]
        s["count"] += 1
        s["ops"][r["op"]] += 1
        if len(s["ids"]) < 3:
            s["ids"].append(r["id"])
    times = sorted(r["time"] for r in res)
    return {
        "classes": {c: counts.get(c, 0) for c in CLASSES},
        "slow": sum(1 for r in res if r["slow"]),
        "input_modified": sum(1 for r in res if r["input_modified"]),
        "corpus_modified": len(report["corpus_modified"]),
        "median_s": times[len(times) // 2] if times else 0,
        "p99_s": times[int(len(times) * 0.99)] if times else 0,
        "max_s": times[-1] if times else 0,
        "signatures": [
            {"class": c, "signature": sig, "count": v["count"], "ops": dict(v["ops"]), "ids": v["ids"]}
            for (c, sig), v in sorted(sigs.items(), key=lambda kv: (CLASSES.index(kv[0][0]), -kv[1]["count"]))
        ],
    }


def print_summary(report: dict, file=sys.stdout) -> None:
    s = report["summary"]
    n = report["ran"]
    print(
        f"\nnapari-dcm fuzz: {n} mutants ({len(report['not_applicable'])} not applicable), jobs={report['jobs']}, "
        f"timeout={report['timeout']}s, RLIMIT_AS={report['mem_limit'] >> 20} MiB, wall {report['wall_s']} s",
        file=file,
    )
    print(f"{'outcome':<20}{'count':>7}{'share':>8}", file=file)
    for c in CLASSES:
        k = s["classes"][c]
        print(f"{c:<20}{k:>7}{(100 * k / n if n else 0):>7.1f}%", file=file)
    print(f"{'slow (>' + str(report['slow_threshold']) + 's)':<20}{s['slow']:>7}", file=file)
    print(f"{'input modified':<20}{s['input_modified']:>7}", file=file)
    print(f"{'corpus modified':<20}{s['corpus_modified']:>7}   (of {report['corpus_files_checked']} files)", file=file)
    print(f"time per mutant: median {s['median_s']:.2f} s, p99 {s['p99_s']:.2f} s, max {s['max_s']:.2f} s", file=file)
    fails = [x for x in s["signatures"] if x["class"] in FAILURES]
    if fails:
        print("\nfailure signatures:", file=file)
        for x in fails:
            print(f"  [{x['class']}] x{x['count']} {x['signature'][:150]}\n      e.g. {x['ids'][0]}", file=file)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="number of mutants")
    ap.add_argument("--seed", type=int, default=1, help="campaign seed")
    ap.add_argument("--jobs", type=int, default=2, help="children at once (2 at most on shared machines)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a child counts as hung")
    ap.add_argument("--mem", type=float, default=4.0, help="address-space limit of a child, GiB (RLIMIT_AS)")
    ap.add_argument("--slow", type=float, default=5.0, help="seconds above which a mutant is flagged slow")
    ap.add_argument("--max-source-size", type=int, default=None, help="skip corpus files larger than this (bytes)")
    ap.add_argument("--ops", default=None, help="comma-separated operators (default: all)")
    ap.add_argument("--id", action="append", default=[], help="run this mutant id only (repeatable)")
    ap.add_argument("--out", default=None, help="write the JSON report here")
    ap.add_argument("--workdir", default=None, help="keep mutants, results and logs here (with --keep)")
    ap.add_argument("--keep", action="store_true", help="keep mutants and child logs")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--show", default=None, metavar="REPORT", help="print the summary of a saved report and exit")
    a = ap.parse_args(argv)
    if a.show:
        with open(a.show) as fh:
            print_summary(json.load(fh))
        return 0
    if a.id:
        ids = a.id
    else:
        ops = a.ops.split(",") if a.ops else None
        # a few spare ids replace mutants whose operator does not fit their source
        ids = mutate.campaign(a.n + a.n // 10 + 10, a.seed, max_size=a.max_source_size, ops=ops)

    t0 = time.time()

    def progress(done, total, rec):
        if a.quiet or rec is None:
            return
        if rec["class"] in FAILURES or done % 100 == 0:
            print(
                f"[{done}/{total} {time.time() - t0:.0f}s] {rec['class']}: {rec['id']} {rec['signature'][:100]}",
                flush=True,
            )

    report = run(
        ids,
        jobs=a.jobs,
        timeout=a.timeout,
        mem_limit=int(a.mem * 2**30),
        slow=a.slow,
        workdir=a.workdir,
        keep=a.keep,
        limit=None if a.id else a.n,
        progress=progress,
    )
    report["seed"] = a.seed
    report["n"] = a.n
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
    print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
