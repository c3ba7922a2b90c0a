"""EMBED ROI benchmarks (issue 3).

    xvfb-run -a .venv/bin/python bench/bench_roi.py [--data DIR]

1. Import a 10,000-row CSV for 10,000 loaded files (parse, validate, match,
   build the ROI layer data): target <= 2 s.  Baseline for scale: reading the
   same CSV with pandas.read_csv (no validation) in the same run.
2. A 64-frame DBT with 50 frame-scoped ROIs in a real napari viewer: time to
   step through all 64 frames, against stepping through the same image with no
   ROI layer (ratio; "responsive" = each step well under 100 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import numpy as np  # noqa: E402

from synth import write_multiframe, write_small_files  # noqa: E402

RESULTS = []


def record(name, ours, base, unit, target, ok, note=""):
    RESULTS.append(
        dict(
            name=name,
            ours=ours,
            baseline=base,
            ratio=ours / base if base else float("nan"),
            unit=unit,
            target=target,
            ok=ok,
            note=note,
        )
    )
    print(
        f"[{'OK ' if ok else 'MISS'}] {name}: ours {ours:.4g} {unit}, baseline {base:.4g} {unit} (target {target}) {note}",
        flush=True,
    )


def bench_import(data: Path):
    import pandas as pd

    import napari_dcm
    from napari_dcm.layers.rois import attach_annotations

    folder = data / "small_10000"
    if not folder.exists():
        write_small_files(folder, 10000)
    # one layer per file, as for a folder of mammograms: read each file's series separately
    from napari_dcm.dicom.discovery import iter_files

    files = list(iter_files([str(folder)]))
    csv = data / "rois_10000.csv"
    rng = np.random.default_rng(0)
    with open(csv, "w") as fh:
        fh.write("anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n")
        for f in files:
            y, x = (int(v) for v in rng.integers(0, 8, 2))
            fh.write(f'{os.path.relpath(f)},1,"[[{y},{x},{y + 4},{x + 4}]]",[]\n')
    layers = napari_dcm.read(folder)  # 100 series layers of 100 files each (the files are a stacked series)
    t = time.perf_counter()
    out = attach_annotations(layers, csv)
    dt = time.perf_counter() - t
    n_rois = sum(len(d) for d, kw, k in out if k == "shapes")
    t = time.perf_counter()
    pd.read_csv(csv)
    base = time.perf_counter() - t
    record(
        "import 10,000-row CSV for 10,000 loaded files",
        dt,
        base,
        "s",
        "<= 2 s",
        dt <= 2.0,
        note=f"{n_rois} ROIs placed; pandas.read_csv alone {base:.3f}s",
    )


def bench_scroll(data: Path):
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_dcm._qt.roi_dock import import_rois

    path = data / "dbt_64x512x416_roi.dcm"
    if not path.exists():
        write_multiframe(path, frames=64, rows=512, cols=416)
    csv = data / "rois_dbt.csv"
    rng = np.random.default_rng(1)
    with open(csv, "w") as fh:
        fh.write("anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n")
        boxes, frames = [], []
        for _i in range(50):
            y, x = int(rng.integers(0, 450)), int(rng.integers(0, 350))
            boxes.append([y, x, y + 40, x + 40])
            k = int(rng.integers(0, 60))
            frames.append(list(range(k, k + 5)))
        fh.write(
            f'{path},50,"{json.dumps(boxes, separators=(",", ":"))}","{json.dumps(frames, separators=(",", ":"))}"\n'
        )
    viewer = napari.Viewer()
    viewer.open(str(path), plugin="napari-dcm")
    app = QApplication.instance()

    def sweep():
        ts = []
        for k in range(64):
            t = time.perf_counter()
            viewer.dims.set_current_step(0, k)
            app.processEvents()
            ts.append(time.perf_counter() - t)
        return ts

    sweep()
    base = sweep()
    import_rois(viewer, csv)
    sweep()
    ours = sweep()
    viewer.close()
    mo, mb = statistics.median(ours), statistics.median(base)
    record(
        "DBT 64 frames, 50 frame-scoped ROIs: median frame step",
        mo,
        mb,
        "s",
        "each step < 100 ms (ratio to no ROIs reported)",
        max(ours) < 0.1,
        note=f"max step {max(ours) * 1e3:.1f} ms with ROIs, {max(base) * 1e3:.1f} ms without",
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    os.chdir(data)
    only = set(args.only or ["import", "scroll"])
    if "import" in only:
        bench_import(data)
    if "scroll" in only:
        bench_scroll(data)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "roi.json").write_text(json.dumps(RESULTS, indent=2))
    print("\n| benchmark | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|")
    for r in RESULTS:
        print(
            f"| {r['name']} | {r['ours']:.4g} {r['unit']} | {r['baseline']:.4g} {r['unit']} | {r['ratio']:.2f} | {r['target']} | {'yes' if r['ok'] else 'NO'} |"
        )


if __name__ == "__main__":
    main()
