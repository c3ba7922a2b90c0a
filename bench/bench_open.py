"""Open an archive of many small files (issue: "opening a big study folder is slow").

    .venv/bin/python bench/bench_open.py [--quick] [--repeat N] [--only 10k 100k profile]

Every sample is a fresh process (so peak RSS is that of the read alone):

ours      ``napari_dcm.read(folder)`` of 10,000 small files in 10 series, and of
          100,000 files in one folder tree (10 x 10 series folders, 1,000 files each);
          napari_dcm is warmed first on a separate 1,000-file folder (imports done,
          scan workers started, as in a napari session that has opened something);
baseline  a ``pydicom.dcmread(f, stop_before_pixels=True)`` loop over the same
          10,000 files (listed beforehand), in the same run.

Reported: files/s and the ratio to the dcmread loop (target >= 10x), and the peak
RSS of the read (VmHWM reset just before it; scan workers reported separately).
``profile`` runs cProfile over the 10,000-file read (main thread only; the header
scan runs in worker processes) and saves the top 25 by cumulative time to
bench/results/open_profile_10k.txt (and the raw stats to .prof).
Inputs are generated deterministically into --data (fast: see _common.write_small_files_fast).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

import _common as C  # noqa: E402

# The memory budget of opening N files (peak RSS, VmHWM): the main process stays under
# BUDGET_BASE_MIB (python, numpy, dask, pydicom, napari-dcm imported) plus
# BUDGET_PER_FILE_KIB per file (its header while the series are assembled, then its
# frame, reference and dask task); the two scan workers' peaks stay under
# BUDGET_WORKERS_MIB together, whatever N (they hold one 500-file chunk at a time).
BUDGET_BASE_MIB = 100
BUDGET_PER_FILE_KIB = 2
BUDGET_WORKERS_MIB = 100

# ---------------------------------------------------------------- child side


def _workers():
    import psutil

    return psutil.Process().children(recursive=True)


def child(spec) -> None:
    folder = spec["folder"]
    out: dict = {}
    if spec["kind"] == "dcmread":
        import pydicom

        files = C.list_files(Path(folder))
        for f in files[:20]:  # warm the import paths
            pydicom.dcmread(f, stop_before_pixels=True)
        gc.collect()
        C.reset_peak_rss()
        rss0 = C.proc_status_kib("VmRSS")
        t = time.perf_counter()
        for f in files:
            pydicom.dcmread(f, stop_before_pixels=True)
        dt = time.perf_counter() - t
        out.update(seconds=dt, n=len(files), rss0_kib=rss0, peak_kib=C.proc_status_kib("VmHWM"))
    else:
        import napari_dcm

        napari_dcm.read(spec["warm"])  # imports, scan workers (they live for the session)
        gc.collect()
        workers = _workers()
        for w in workers:
            C.reset_peak_rss(w.pid)
        C.reset_peak_rss()
        rss0 = C.proc_status_kib("VmRSS")
        prof = None
        if spec["kind"] == "profile":
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t = time.perf_counter()
        layers = napari_dcm.read(folder)
        dt = time.perf_counter() - t
        if prof is not None:
            prof.disable()
        peak = C.proc_status_kib("VmHWM")
        wpeak = []
        for w in workers:
            with contextlib.suppress(OSError, KeyError):
                wpeak.append(C.proc_status_kib("VmHWM", w.pid))
        images = [d for d, kw, kind in layers if kind == "image"]
        n = sum(int(d.shape[0]) for d in images)
        out.update(
            seconds=dt,
            n=n,
            layers=len(images),
            rss0_kib=rss0,
            peak_kib=peak,
            rss_after_kib=C.proc_status_kib("VmRSS"),
            worker_peaks_kib=wpeak,
        )
        if prof is not None:
            import io
            import pstats

            prof.dump_stats(spec["prof_out"])
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            buf.write("\n\n---- top 25 by own time (tottime) ----\n")
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
            Path(spec["txt_out"]).write_text(
                f"napari_dcm.read({folder!r}): {dt:.3f} s under cProfile, {n} files\n\n" + buf.getvalue()
            )
    C.child_result(out)


# ---------------------------------------------------------------- parent side


def _warm_tree(folder: Path) -> int:
    n = 0
    for f in C.list_files(folder):
        with open(f, "rb") as fh:
            fh.read()
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 and 5,000 files, one sample each (smoke run)")
    ap.add_argument("--data", default=str(C.HERE / "data"))
    ap.add_argument(
        "--repeat", type=int, default=None, help="fresh processes per measurement (default 5; 3 for 100k; quick 1)"
    )
    ap.add_argument("--only", nargs="*", default=None, help="10k 100k profile")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        C.use_repo_src()
        child(json.loads(args.child))
        return

    C.use_repo_src()
    data = Path(args.data)
    only = set(args.only or ["10k", "100k", "profile"])
    n_small, n_big = (1000, 5000) if args.quick else (10_000, 100_000)
    rep_small = args.repeat or (1 if args.quick else 5)
    rep_big = args.repeat or (1 if args.quick else 3)
    print(f"archive open benchmark: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    folders = {}
    for key, n, per_series, per_dir in (
        ("warm", 1000, 1000, 0),
        ("10k", n_small, n_small // 10, 0),
        ("100k", n_big, 1000 if not args.quick else 500, 10),
    ):
        t = time.perf_counter()
        folders[key] = C.write_small_files_fast(
            data / f"open_{n}_files_{per_series}_per_series", n, per_series, per_dir
        )
        took = time.perf_counter() - t
        if took > 1:
            print(f"  generated {n} files ({n // per_series} series) in {took:.1f} s", flush=True)
    for key in folders:
        t = time.perf_counter()
        k = _warm_tree(folders[key])
        print(f"  page cache warmed: {key} ({k} files, {time.perf_counter() - t:.1f} s)", flush=True)

    res = C.Results("open", args.quick)
    script = Path(__file__)

    def measure(kind, key, reps):
        out = []
        for _ in range(reps):
            r = C.run_child(script, dict(kind=kind, folder=str(folders[key]), warm=str(folders["warm"])))
            r.pop("_stderr")
            out.append(r)
            w = f", workers' peak {sum(r['worker_peaks_kib']) / 1024:.0f} MiB" if r.get("worker_peaks_kib") else ""
            print(
                f"  {kind:8s} {key:5s}: {r['n']} files in {r['seconds']:.3f} s = {r['n'] / r['seconds']:,.0f} files/s, "
                f"peak RSS {r['peak_kib'] / 1024:.0f} MiB ({(r['peak_kib'] - r['rss0_kib']) / 1024:+.0f} MiB){w}",
                flush=True,
            )
        return out

    runs = {}
    if only & {"10k", "100k"}:
        # interleave ours and the baseline so both see the same machine load
        runs["dcmread 10k"], runs["ours 10k"] = [], []
        for _ in range(max(rep_small, 1)):
            runs["ours 10k"] += measure("read", "10k", 1)
            if len(runs["dcmread 10k"]) < max(1, min(3, rep_small)):
                runs["dcmread 10k"] += measure("dcmread", "10k", 1)
        if "100k" in only:
            runs["ours 100k"] = measure("read", "100k", rep_big)
        base = [r["n"] / r["seconds"] for r in runs["dcmread 10k"]]
        bpeak = C.med([r["peak_kib"] / 1024 for r in runs["dcmread 10k"]])
        for key, n in (("ours 10k", n_small), ("ours 100k", n_big)):
            if key not in runs:
                continue
            rs = runs[key]
            assert all(r["n"] == n for r in rs), [r["n"] for r in rs]
            fps = [r["n"] / r["seconds"] for r in rs]
            ratio = C.med(fps) / C.med(base)
            where = "10 series" if key == "ours 10k" else f"{rs[0]['layers']} series in a folder tree"
            res.record(
                f"read() of {n:,} small files ({where}), files/s",
                C.med(fps),
                C.med(base),
                "files/s",
                ">= 10x dcmread(stop_before_pixels) loop over the 10,000",
                ratio >= 10,
                note=f"ours {C.spread([r['seconds'] for r in rs])} s; dcmread loop {C.spread([r['seconds'] for r in runs['dcmread 10k']])} s",
                samples=fps,
            )
            peak = C.med([r["peak_kib"] / 1024 for r in rs])
            wp = C.med([sum(r["worker_peaks_kib"]) / 1024 for r in rs])
            budget = BUDGET_BASE_MIB + n * BUDGET_PER_FILE_KIB / 1024
            res.record(
                f"peak RSS during read() of {n:,} files (main process)",
                peak,
                bpeak,
                "MiB",
                f"<= {budget:.0f} MiB (budget: {BUDGET_BASE_MIB} MiB + {BUDGET_PER_FILE_KIB} KiB per file; "
                f"scan workers <= {BUDGET_WORKERS_MIB} MiB together, whatever the count)",
                peak <= budget and wp <= BUDGET_WORKERS_MIB,
                note=f"{C.med([(r['peak_kib'] - r['rss0_kib']) / 1024 for r in rs]):+.0f} MiB above the warmed process "
                f"before the read; scan workers' own peaks summed {wp:.0f} MiB (pages shared with the parent "
                f"counted in each); baseline = the dcmread loop process's peak "
                f"({C.med([(r['peak_kib'] - r['rss0_kib']) / 1024 for r in runs['dcmread 10k']]):+.0f} MiB)",
            )
        res.extra["runs"] = runs

    if "profile" in only:
        C.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stem = "open_profile_quick" if args.quick else "open_profile_10k"
        prof_out, txt_out = C.RESULTS_DIR / f"{stem}.prof", C.RESULTS_DIR / f"{stem}.txt"
        r = C.run_child(
            script,
            dict(
                kind="profile",
                folder=str(folders["10k"]),
                warm=str(folders["warm"]),
                prof_out=str(prof_out),
                txt_out=str(txt_out),
            ),
        )
        r.pop("_stderr")
        res.extra["profile"] = dict(seconds=r["seconds"], n=r["n"], txt=str(txt_out), prof=str(prof_out))
        print(
            f"\ncProfile of read() of {r['n']} files: {r['seconds']:.2f} s under the profiler "
            f"({r['seconds'] / r['n'] * 1e6:.0f} us/file); top 25 by cumulative in {txt_out}"
        )
        text = txt_out.read_text()
        print("\n".join(text.split("---- top 25 by own time")[0].splitlines()[:45]))
    res.write(C.meta(args))


if __name__ == "__main__":
    main()
