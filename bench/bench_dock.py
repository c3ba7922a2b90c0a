"""Dock benchmarks (issue 4).

    xvfb-run -a .venv/bin/python bench/bench_dock.py

Fill the tag tree with a 10,000-element header: target <= 0.5 s.  The
baseline, measured in the same run, is pydicom's own text dump of the same
dataset (``str(ds)``), for scale.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    import napari
    from pydicom.dataset import Dataset

    from napari_dcm._qt.dicom_dock import DicomDock

    ds = Dataset()
    ds.PatientName = "Many^Tags"
    block = 0x0011
    ds.add_new((block << 16) | 0x0010, "LO", "NAPARI DCM BENCH")
    for i in range(9_998):
        group = 0x0011 + 2 * (i // 0xF0)
        if i % 0xF0 == 0 and group != 0x0011:
            ds.add_new((group << 16) | 0x0010, "LO", "NAPARI DCM BENCH")
        ds.add_new((group << 16) | (0x1000 + i % 0xF0), "LO", f"value {i}")
    n = len(ds)
    viewer = napari.Viewer(show=False)
    dock = DicomDock(viewer)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        dock.fill_tree(ds)
        ts.append(time.perf_counter() - t)
    ours = statistics.median(ts)
    t = time.perf_counter()
    str(ds)
    base = time.perf_counter() - t
    assert dock.tree.topLevelItemCount() == n
    ok = ours <= 0.5
    print(
        f"[{'OK ' if ok else 'MISS'}] tag tree fill, {n} elements: {ours:.3f} s (target <= 0.5 s); pydicom str(ds) {base:.3f} s; ratio {ours / base:.2f}"
    )
    print(
        f"\n| benchmark | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|\n| tag tree fill, {n} elements | {ours:.3f} s | {base:.3f} s (pydicom str(ds)) | {ours / base:.2f} | <= 0.5 s | {'yes' if ok else 'NO'} |"
    )
    viewer.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
