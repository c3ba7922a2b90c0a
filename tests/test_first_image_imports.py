"""Time to first image: what opening a plain file must not import (each costs the first
image 0.1-0.5 s), and dask's own scheduler choice kept once ``distributed`` is imported.

Every check runs in a fresh interpreter: this test process has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parent.parent / "src")

#: modules a plain open must leave alone: the first compute's distributed probe
#: (dicom/scheduler.py), write-back, DIMSE, DICOMweb, EMBED tables, and the hanging /
#: overlay modules nothing on screen needs yet
NOT_FOR_A_PLAIN_OPEN = (
    "distributed",
    "highdicom",
    "pynetdicom",
    "dicomweb_client",
    "pandas",
    "napari_dcm._qt.hanging",
    "napari_dcm.layers.overlays",
    "napari_dcm.layers.writeback",
)


@pytest.fixture(scope="module")
def dbt_j2k(tmp_path_factory) -> Path:
    from synth import write_multiframe

    return write_multiframe(tmp_path_factory.mktemp("fi") / "dbt.dcm", frames=3, rows=2048, cols=1664, syntax="j2k")


def _run(code: str, timeout: float = 240) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env["QT_QPA_PLATFORM"] = "xcb"  # the display pytest-xvfb started (napari's canvas needs a real one)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout[-2000:] + out.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


OPEN_IN_VIEWER = """
import json, sys
import numpy as np
import napari
viewer = napari.Viewer(show=True)
(layer,) = viewer.open({path!r}, plugin="napari-dcm")
viewer.screenshot(canvas_only=True, flash=False)  # drawn
shown = np.asarray(viewer.layers[0].data[0][int(viewer.dims.current_step[0])] if layer.multiscale
                   else viewer.layers[0].data[int(viewer.dims.current_step[0])])
import pydicom
ref = pydicom.dcmread({path!r}).pixel_array[int(viewer.dims.current_step[0])]
print("RESULT " + json.dumps(dict(
    imported=[m for m in {mods!r} if m in sys.modules],
    same=bool(np.array_equal(shown, ref)),
    multiscale=bool(layer.multiscale),
)))
viewer.close()
"""


@pytest.mark.viewer
def test_opening_a_file_in_napari_imports_only_what_the_first_frame_needs(corpus):
    path = str(corpus / "multiframe" / "jpeg2000-multiframe-multifragments.dcm")
    got = _run(OPEN_IN_VIEWER.format(path=path, mods=list(NOT_FOR_A_PLAIN_OPEN)))
    assert got["imported"] == [], got
    assert got["same"]  # the frame shown is pydicom's


@pytest.mark.parametrize("window", [(900, 700), (1200, 1000)])
def test_first_frame_prefetch_predicts_the_levels_napari_draws(make_napari_viewer, qtbot, dbt_j2k, window):
    """A multiscale J2K as the first layer: the first-frame prefetch decodes the levels
    napari draws first (from the level it picks for the fitted frame to its thumbnail
    level), not the full resolution, whatever the canvas size."""
    from napari_dcm._qt.viewer import first_levels
    from napari_dcm.api import read_stacks

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*window)
    qtbot.wait(200)
    (stack,), _ = read_stacks([str(dbt_j2k)])
    levels = first_levels(stack, viewer)
    (layer,) = viewer.open(str(dbt_j2k), plugin="napari-dcm")
    viewer.screenshot(canvas_only=True, flash=False)
    assert layer.multiscale and len(layer.data) == 4
    # napari's pick for the fitted frame is the finest level listed; its thumbnail the coarsest
    assert min(levels) == layer.data_level >= 1, (levels, layer.data_level, viewer.canvas.size)
    assert levels == tuple(range(len(layer.data) - 1, layer.data_level - 1, -1))
    # a viewer that already shows a layer keeps its camera: full resolution, as before
    assert first_levels(stack, viewer) == (0,)


SCHEDULER = """
import json, sys
import numpy as np
import dask, dask.array as da
from napari_dcm.dicom.scheduler import local_until_distributed, use_local_until_distributed
out = {}
out["installed"] = use_local_until_distributed()
x = da.arange(12, chunks=4)
out["sum_before"] = int(x.sum().compute())
out["distributed_after_compute"] = "distributed" in sys.modules
out["option_before"] = dask.config.get("scheduler", None) is local_until_distributed
from distributed import Client, LocalCluster, get_worker

def where(_):
    try:
        return np.array([get_worker().address is not None])
    except ValueError:
        return np.array([False])

with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
    with Client(cluster, set_as_default=False) as client, client.as_current():  # current, not the default
        out["on_worker"] = bool(da.ones(1, chunks=1).map_blocks(where, dtype=bool).compute()[0])
    with Client(cluster):  # the default client
        out["on_worker_default"] = bool(da.ones(1, chunks=1).map_blocks(where, dtype=bool).compute()[0])
out["on_worker_after"] = bool(da.ones(1, chunks=1).map_blocks(where, dtype=bool).compute()[0])
out["option_cleared"] = dask.config.get("scheduler", None) is None  # by the first compute it saw after the import
out["installed_again"] = use_local_until_distributed()
print("RESULT " + json.dumps(out))
"""


def test_scheduler_override_gives_way_to_distributed():
    """No scheduler configured: computes use dask's threaded scheduler without importing
    distributed; once distributed is imported, a current client gets the graph as with
    dask's default, and the option is cleared (never installed again)."""
    got = _run(SCHEDULER)
    assert got == {
        "installed": True,
        "sum_before": 66,
        "distributed_after_compute": False,
        "option_before": True,
        "on_worker": True,
        "option_cleared": True,
        "on_worker_default": True,
        "on_worker_after": False,
        "installed_again": False,
    }, got


def test_a_configured_scheduler_is_left_alone():
    code = """
import json, dask
from napari_dcm.dicom.scheduler import use_local_until_distributed
dask.config.set(scheduler="synchronous")
print("RESULT " + json.dumps(dict(installed=use_local_until_distributed(), option=dask.config.get("scheduler"))))
"""
    assert _run(code) == {"installed": False, "option": "synchronous"}
