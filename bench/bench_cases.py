"""The case navigator at scale (issue 17: reviewing hundreds of cases).

    .venv/bin/python bench/bench_cases.py [--quick] [--repeat N] [--only index hang]

Every sample is a fresh process; inputs are generated deterministically into --data.

index     ``napari_dcm.cases(folder)`` of 10,000 and 100,000 small files (16 x 16 MR, four
          files a study, one study a folder, 1,000 study folders a group folder), with an
          empty index cache: files/s.  Baseline, same run: ``scan_paths(folder)``, the header
          scan the index is built with (target: the index builds at >= 0.8x the scan's rate).
          Both start warm (imports done and scan workers started on a separate 1,000-file
          folder), the page cache is warm.
reopen    ``napari_dcm.cases(folder)`` again with the saved index (nothing is read again):
          seconds; baseline, same run: listing the tree and ``os.stat`` of every file (a plain
          walk+stat: what a reopen without a saved index must do to see changed files).
          Target <= 2x.  (The saved index keeps the folders' listings: a reopen stats every
          folder and file rather than listing them; the data here was written earlier, so the
          listings are trusted.)  Also: one file touched (its modification time changed), so
          exactly one file is read again.
hang      in a real viewer under Xvfb (a private Xvfb when there is no DISPLAY): the time from
          "next case" (``CaseDock.next_case``, what Page Down does) to the first canvas draw
          showing the new case's four mammograms loaded and hung 2x2 (``_common.watch_canvas``),
          median over the cases of a run.  Baseline, same run: the same cases opened by hand,
          i.e. ``viewer.layers.clear()``, ``napari_dcm.view(files, viewer=viewer)`` and the DICOM
          dock's Hang, to the same first draw.  Cases are 4-view sets written from the corpus'
          GH133.dcm (3062 x 2394 JPEG lossless FFDM) with views and UIDs rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CORPUS = Path(os.environ.get("NAPARI_DCM_CORPUS", C.REPO.parent / "shared" / "dicom-corpus"))
MG_SOURCE = "mammography/GH133.dcm"


# ---------------------------------------------------------------- inputs


def write_case_files_fast(folder: Path, n: int, per_study: int = 4, studies_per_dir: int = 1000) -> Path:
    """``n`` small MR files, ``per_study`` a study (its own folder, its own StudyInstanceUID and
    PatientID), deterministic.  As ``_common.write_small_files_fast``: pydicom encodes one template
    and every file is its bytes with fixed-width values substituted."""
    folder = Path(folder)
    marker = folder / ".complete"
    if marker.exists() and marker.read_text().strip() == f"{n} {per_study} {studies_per_dir}":
        return folder
    import io

    import numpy as np
    from pydicom.uid import MRImageStorage

    from synth import _file_ds, uid

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    width = len(str(n))
    root = "2.25.2" + uid("bench-cases", n, per_study)[5:][:20]
    ph = {
        "sop": root + "1" + "9" * width,
        "study": root + "2" + "8" * width,
        "series": root + "3" + "7" * width,
        "patient": "P" + "6" * width,
        "inst": "5" * 6,
    }
    ds = _file_ds(MRImageStorage, ph["sop"])
    ds.PatientID = ph["patient"]
    ds.PatientName = "Bench^Cases"
    ds.StudyDate = "20220101"
    ds.StudyDescription = "BENCH"
    ds.Modality = "MR"
    ds.StudyInstanceUID = ph["study"]
    ds.SeriesInstanceUID = ph["series"]
    ds.SeriesNumber = 1
    ds.InstanceNumber = ph["inst"]
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((16, 16), np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    blob = buf.getvalue()
    counts = {k: blob.count(v.encode()) for k, v in ph.items()}
    if counts != {"sop": 2, "study": 1, "series": 1, "patient": 1, "inst": 1}:
        raise RuntimeError(f"placeholders not unique in the template: {counts}")
    for i in range(n):
        s, k = divmod(i, per_study)
        sub = folder / f"g{s // studies_per_dir:03d}" / f"p{s:0{width}d}"
        if k == 0:
            sub.mkdir(parents=True, exist_ok=True)
        body = blob
        for key, val in (
            ("sop", f"{root}1{i:0{width}d}"),
            ("study", f"{root}2{s:0{width}d}"),
            ("series", f"{root}3{s:0{width}d}"),
            ("patient", f"P{s:0{width}d}"),
            ("inst", f"{k + 1:<6d}"),
        ):
            body = body.replace(ph[key].encode(), val.encode())
        with open(sub / f"i{i:0{width}d}.dcm", "wb") as fh:
            fh.write(body)
    marker.write_text(f"{n} {per_study} {studies_per_dir}\n")
    return folder


def write_mg_cases(folder: Path, n: int) -> Path:
    """``n`` 4-view mammography studies from the corpus FFDM (views, laterality, UIDs rewritten)."""
    marker = folder / ".complete"
    if marker.exists() and marker.read_text().strip() == str(n):
        return folder
    import pydicom
    from pydicom.uid import generate_uid

    if folder.exists():
        shutil.rmtree(folder)
    src = pydicom.dcmread(CORPUS / MG_SOURCE)
    views = (("CC", "R", ("P", "L")), ("CC", "L", ("A", "R")), ("MLO", "R", ("P", "F")), ("MLO", "L", ("A", "F")))
    for s in range(n):
        d = folder / f"P{s:03d}" / "S1"
        d.mkdir(parents=True)
        for k, (view, lat, po) in enumerate(views):
            ds = src.copy()
            ds.ViewPosition, ds.ImageLaterality, ds.PatientOrientation = view, lat, list(po)
            ds.PatientID, ds.StudyDate, ds.InstanceNumber = f"MG{s:03d}", "20240101", k + 1
            ds.StudyInstanceUID = generate_uid(entropy_srcs=["bench-mg", str(s)])
            ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bench-mg", str(s), view, lat])
            ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench-mg", str(s), str(k)])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if "ViewCodeSequence" in ds:
                del ds.ViewCodeSequence
            ds.save_as(d / f"{lat}{view}.dcm".lower())
    marker.write_text(f"{n}\n")
    return folder


# ---------------------------------------------------------------- child side


def child(spec) -> None:
    kind = spec["kind"]
    out: dict = {}
    if kind in ("scan", "index", "reopen", "touch", "walk"):
        if kind == "walk":
            from napari_dcm.dicom.discovery import iter_files

            t = time.perf_counter()
            n = 0
            for f in iter_files([spec["folder"]]):
                os.stat(f)
                n += 1
            out.update(seconds=time.perf_counter() - t, n=n)
            C.child_result(out)
            return
        import napari_dcm
        import napari_dcm.dicom.cases  # noqa: F401  (imported, as in a session that has used it)
        from napari_dcm.dicom.discovery import scan_paths

        scan_paths([spec["warm"]])  # imports, scan workers (they live for the session)
        if kind == "touch":
            f = next(p for p in Path(spec["folder"]).rglob("*.dcm"))
            st = os.stat(f)
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        t = time.perf_counter()
        if kind == "scan":
            r = scan_paths([spec["folder"]])
            out.update(seconds=time.perf_counter() - t, n=len(r.headers))
        else:
            idx = napari_dcm.cases(spec["folder"])
            out.update(seconds=time.perf_counter() - t, n=idx.n_files, cases=len(idx), scanned=idx.n_scanned)
        C.child_result(out)
        return

    # ---- in a viewer: next case -> first drawn 4-view hanging
    import napari
    from qtpy.QtCore import QTimer

    import napari_dcm
    from napari_dcm._qt.case_dock import cases_dock
    from napari_dcm._qt.dicom_dock import dicom_dock
    from napari_dcm._qt.viewer import dicom_images

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 950)
    dd = dicom_dock(viewer)
    shown: dict = {"key": None}

    def state():
        imgs = dicom_images(viewer)
        return (
            shown["key"],
            len(imgs) == 4 and all(img.loaded and img.visible for img in imgs) and viewer.canvas.grid.enabled,
        )

    watch = C.watch_canvas(viewer, on_paint=state)
    if kind == "navigate":
        dock = cases_dock(viewer)
        idx = dock.load(spec["folder"], background=False)  # opens case 1
        cases = list(idx)[1 : spec["n"] + 1]
    else:
        idx = napari_dcm.cases(spec["folder"])
        napari_dcm.view(idx[0].files, viewer=viewer)
        dd.hang()
        cases = list(idx)[1 : spec["n"] + 1]
    shown["key"] = idx[0].key
    watch.settle(quiet=1.0)
    times = []
    for case in cases:
        n0 = len(watch.draws)
        t0: list[float] = []

        def go(case=case, t0=t0):
            t0.append(time.perf_counter())
            if kind == "navigate":
                dock.next_case()
            else:
                viewer.layers.clear()
                napari_dcm.view(case.files, viewer=viewer)
                dd.hang()
            shown["key"] = case.key

        QTimer.singleShot(0, go)
        t = watch.wait(lambda s, key=case.key: s is not None and s == (key, True), since=n0)
        times.append(t - t0[0])
        watch.settle(quiet=0.5)
    out.update(seconds=times, rss_kib=C.proc_status_kib("VmRSS"))
    C.child_result(out)
    viewer.close()


# ---------------------------------------------------------------- parent side


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 and 5,000 files, 3 cases, one sample (smoke run)")
    ap.add_argument("--data", default=str(C.HERE / "data"))
    ap.add_argument("--repeat", type=int, default=None, help="fresh processes per measurement (default 3; quick 1)")
    ap.add_argument("--only", nargs="*", default=None, help="index hang")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        C.use_repo_src()
        child(json.loads(args.child))
        return

    C.use_repo_src()
    data = Path(args.data)
    only = set(args.only or ["index", "hang"])
    sizes = (1000, 5000) if args.quick else (10_000, 100_000)
    rep = args.repeat or (1 if args.quick else 3)
    print(f"case navigator benchmark: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    res = C.Results("cases", args.quick)
    script = Path(__file__)
    runs: dict = {}

    if "index" in only:
        warm = C.write_small_files_fast(data / "open_1000_files_1000_per_series", 1000, 1000)
        for n in sizes:
            t = time.perf_counter()
            folder = write_case_files_fast(data / f"cases_{n}_files", n)
            if time.perf_counter() - t > 1:
                print(f"  generated {n} files ({n // 4} studies) in {time.perf_counter() - t:.1f} s", flush=True)
            for f in C.list_files(folder):
                C.warm_file(Path(f))
            base = dict(folder=str(folder), warm=str(warm))
            r_scan, r_index, r_reopen, r_walk, r_touch = [], [], [], [], []
            for _ in range(rep):
                cache = tempfile.mkdtemp(prefix="napari-dcm-bench-cases-")
                os.environ["NAPARI_DCM_CACHE"] = cache
                try:
                    r_scan.append(C.run_child(script, dict(base, kind="scan")))
                    r_index.append(C.run_child(script, dict(base, kind="index")))
                    r_reopen.append(C.run_child(script, dict(base, kind="reopen")))
                    r_walk.append(C.run_child(script, dict(base, kind="walk")))
                    r_touch.append(C.run_child(script, dict(base, kind="touch")))
                finally:
                    shutil.rmtree(cache, ignore_errors=True)
                    os.environ.pop("NAPARI_DCM_CACHE", None)
                print(
                    f"  {n:,} files: scan {r_scan[-1]['seconds']:.2f} s, index {r_index[-1]['seconds']:.2f} s "
                    f"({r_index[-1]['cases']} cases), reopen {r_reopen[-1]['seconds']:.3f} s "
                    f"(read again: {r_reopen[-1]['scanned']}), walk+stat {r_walk[-1]['seconds']:.3f} s, "
                    f"one touched {r_touch[-1]['seconds']:.3f} s (read again: {r_touch[-1]['scanned']})",
                    flush=True,
                )
            assert all(r["n"] == n for r in r_index + r_scan), "not every file indexed"
            assert all(r["scanned"] == 0 for r in r_reopen) and all(r["scanned"] == 1 for r in r_touch)
            fps_i = [n / r["seconds"] for r in r_index]
            fps_s = [n / r["seconds"] for r in r_scan]
            ratio = C.med(fps_i) / C.med(fps_s)
            res.record(
                f"case index of {n:,} files ({n // 4:,} studies), empty cache: files/s",
                C.med(fps_i),
                C.med(fps_s),
                "files/s",
                ">= 0.8x scan_paths (the header scan alone)",
                ratio >= 0.8,
                note=f"index {C.spread([r['seconds'] for r in r_index])} s; scan {C.spread([r['seconds'] for r in r_scan])} s",
                samples=fps_i,
            )
            reo = C.med([r["seconds"] for r in r_reopen])
            walk = C.med([r["seconds"] for r in r_walk])
            res.record(
                f"reopen the saved index of {n:,} files: seconds",
                reo,
                walk,
                "s",
                "<= 2x listing + stat of every file",
                reo <= 2 * walk,
                note=f"reopen {C.spread([r['seconds'] for r in r_reopen])} s; one file touched: "
                f"{C.med([r['seconds'] for r in r_touch]):.3f} s",
                samples=[r["seconds"] for r in r_reopen],
            )
            runs[f"index {n}"] = dict(scan=r_scan, index=r_index, reopen=r_reopen, walk=r_walk, touch=r_touch)

    if "hang" in only:
        if not (CORPUS / MG_SOURCE).is_file():
            raise SystemExit(f"corpus not found at {CORPUS} (set NAPARI_DCM_CORPUS)")
        C.ensure_display()
        C.isolated_napari_settings()
        k = 3 if args.quick else 6
        t = time.perf_counter()
        folder = write_mg_cases(data / "cases_mg", k + 1)
        if time.perf_counter() - t > 1:
            print(f"  generated {k + 1} 4-view studies in {time.perf_counter() - t:.1f} s", flush=True)
        for f in C.list_files(folder):
            C.warm_file(Path(f))
        nav, manual = [], []
        for r in range(rep):
            cache = tempfile.mkdtemp(prefix="napari-dcm-bench-cases-")
            os.environ["NAPARI_DCM_CACHE"] = cache
            try:
                order = ("navigate", "manual") if r % 2 == 0 else ("manual", "navigate")
                for kind in order:
                    out = C.run_child(script, dict(kind=kind, folder=str(folder), n=k))
                    (nav if kind == "navigate" else manual).append(out)
                    print(f"  {kind:8s}: " + ", ".join(f"{s:.2f}" for s in out["seconds"]) + " s", flush=True)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
                os.environ.pop("NAPARI_DCM_CACHE", None)
        ours = [s for o in nav for s in o["seconds"]]
        base = [s for o in manual for s in o["seconds"]]
        res.record(
            "next case -> first drawn 4-view hanging (3062 x 2394 JPEG lossless): seconds",
            C.med(ours),
            C.med(base),
            "s",
            "<= 1.0x opening the case by hand (clear, view, hang)",
            C.med(ours) <= C.med(base),
            note=f"ours {C.spread(ours)}; by hand {C.spread(base)}; RSS at the end {C.med([o['rss_kib'] for o in nav]) / 1024:.0f} MiB "
            f"(by hand {C.med([o['rss_kib'] for o in manual]) / 1024:.0f} MiB)",
            samples=ours,
        )
        runs["hang"] = dict(navigate=nav, manual=manual)
    res.extra["runs"] = runs
    res.write(C.meta(args))


if __name__ == "__main__":
    main()
