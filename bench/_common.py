"""Helpers shared by bench_scroll, bench_first_image and bench_open.

Every measurement runs in a fresh child process (clean imports, clean peak RSS);
the parent generates inputs, repeats, takes medians and writes
bench/results/<name>.json.  Only napari-dcm's public API (``napari_dcm.read``,
``viewer.open(path, plugin="napari-dcm")``) and napari's public API are used.
The one thing napari has no public API for, "the canvas has drawn", lives in
``watch_canvas`` below and nowhere else.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
sys.path.insert(0, str(REPO / "tests"))


def use_repo_src() -> None:
    """Measure this checkout's napari_dcm (as the tests do with PYTHONPATH=src),
    in this process and in every child it starts."""
    src = str(REPO / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([src, *parts])


# ---------------------------------------------------------------- memory


def proc_status_kib(field: str, pid: int | str = "self") -> int:
    """A /proc/<pid>/status field in KiB (VmHWM = peak RSS, VmRSS = RSS now)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes


def ensure_display() -> None:
    """Start a private Xvfb when there is no display (or reuse xvfb-run's)."""
    if os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb":
        # napari's canvas cannot render with the offscreen platform (see headless notes)
        os.environ["QT_QPA_PLATFORM"] = "xcb"
    if os.environ.get("DISPLAY"):
        return
    if not shutil.which("Xvfb"):
        raise SystemExit("no DISPLAY and no Xvfb: apt-get install xvfb (or run under xvfb-run -a)")
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    buf = b""
    deadline = time.monotonic() + 30
    while not buf.endswith(b"\n") and time.monotonic() < deadline:
        chunk = os.read(r, 16)
        if not chunk:
            break
        buf += chunk
    os.close(r)
    if not buf.strip():
        proc.kill()
        raise SystemExit("Xvfb did not start")
    os.environ["DISPLAY"] = f":{buf.decode().strip()}"

    def stop():
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    atexit.register(stop)
    # a terminated benchmark still stops its Xvfb (atexit runs on SystemExit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


_SETTINGS_DIR: list[str] = []


def isolated_napari_settings() -> None:
    """Every child gets a fresh napari settings file: the benchmarks set playback and
    dask-cache options and napari saves its settings on close; none of that may reach
    the user's settings or the next child."""
    d = tempfile.mkdtemp(prefix="napari-dcm-bench-")
    _SETTINGS_DIR.append(d)
    atexit.register(shutil.rmtree, d, True)


def run_child(script: Path, spec: dict, timeout: float = 900) -> dict:
    """Run ``script --child JSON`` in a fresh interpreter; it prints ``RESULT {json}``."""
    cmd = [sys.executable, *spec.pop("_python_flags", []), str(script), "--child", json.dumps(spec)]
    env = dict(os.environ)
    if _SETTINGS_DIR:
        env["NAPARI_CONFIG"] = tempfile.mkdtemp(dir=_SETTINGS_DIR[0]) + "/settings.yaml"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-6000:])
        raise RuntimeError(f"child {spec} failed (exit {out.returncode})")
    res = json.loads(lines[-1][len("RESULT ") :])
    res["_stderr"] = out.stderr
    return res


def child_result(obj: dict) -> None:
    print("RESULT " + json.dumps(obj), flush=True)


# ---------------------------------------------------------------- results


class Results:
    """Rows of (name, ours, baseline, ratio, target, met) plus free-form extras."""

    def __init__(self, name: str, quick: bool = False):
        self.name = name + ("_quick" if quick else "")  # a smoke run never overwrites full figures
        self.rows: list[dict] = []
        self.extra: dict = {}

    def record(self, name, ours, base, unit, target="", ok=None, note="", samples=None):
        ratio = ours / base if base else float("nan")
        row = dict(name=name, ours=ours, baseline=base, ratio=ratio, unit=unit, target=target, ok=ok, note=note)
        if samples:
            row["samples"] = samples
        self.rows.append(row)
        flag = "    " if ok is None else ("OK  " if ok else "MISS")
        print(
            f"[{flag}] {name}: ours {ours:.4g} {unit}, baseline {base:.4g} {unit}, ratio {ratio:.3f}"
            + (f" (target {target})" if target else "")
            + (f" {note}" if note else ""),
            flush=True,
        )

    def write(self, meta: dict) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.json"
        path.write_text(json.dumps(dict(meta=meta, results=self.rows, extra=self.extra), indent=2, default=str))
        print("\n| benchmark | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|")
        for r in self.rows:
            met = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
            print(
                f"| {r['name']} | {r['ours']:.4g} {r['unit']} | {r['baseline']:.4g} {r['unit']} | "
                f"{r['ratio']:.3f} | {r['target']} | {met} |"
            )
        print(f"\nJSON: {path}")
        return path


def med(xs):
    return statistics.median(xs)


def spread(xs) -> str:
    """min-max around the median, in % of the median (the noise we saw)."""
    m = statistics.median(xs)
    if not m or len(xs) < 2:
        return "n=1"
    return f"n={len(xs)}, min {min(xs):.4g}, max {max(xs):.4g} ({(min(xs) / m - 1) * 100:+.0f}%/{(max(xs) / m - 1) * 100:+.0f}%)"


def meta(args) -> dict:
    return dict(
        cpus=os.cpu_count(),
        python=sys.version.split()[0],
        argv=sys.argv,
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
        load_avg=os.getloadavg(),
        quick=getattr(args, "quick", False),
    )


# ---------------------------------------------------------------- inputs

DBT_FULL = (64, 2048, 1664)
DBT_QUICK = (8, 512, 416)
SYNTAX_NAMES = {
    "j2k": "JPEG 2000 lossless",
    "jpegls": "JPEG-LS lossless",
    "rle": "RLE lossless",
    "explicit": "Explicit VR LE",
}


def dbt_path(data: Path, syntax: str, shape=DBT_FULL) -> Path:
    """The DBT-like object bench_reader uses (same name, same bytes), generated if missing."""
    from synth import write_multiframe

    frames, rows, cols = shape
    path = data / f"dbt_{frames}x{rows}x{cols}_{syntax}.dcm"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        tmp = path.with_name(path.name + ".part")
        write_multiframe(tmp, frames=frames, rows=rows, cols=cols, syntax=syntax)
        tmp.rename(path)
        print(
            f"  generated {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}s",
            flush=True,
        )
    return path


def explicit_pixels(path: Path, shape):
    """The pixel data of an uncompressed (Explicit VR LE) DBT as an in-memory numpy array,
    read with numpy alone (the baseline process must not import pydicom or napari-dcm)."""
    import numpy as np

    nbytes = int(np.prod(shape)) * 2
    off = path.stat().st_size - nbytes  # Pixel Data is the last element, no trailing padding
    with open(path, "rb") as fh:
        fh.seek(off - 12)
        head = fh.read(12)
    tag, vr, length = head[:4], head[4:6], struct.unpack("<I", head[8:12])[0]
    if tag != b"\xe0\x7f\x10\x00" or vr not in (b"OW", b"OB") or length != nbytes:
        raise ValueError(f"{path}: Pixel Data is not the last element of {nbytes} bytes")
    return np.fromfile(path, dtype="<u2", count=nbytes // 2, offset=off).reshape(shape)


def warm_file(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(64 << 20):
            pass


# ---------------------------------------------------------------- the canvas


def _main_window():
    from qtpy.QtWidgets import QApplication, QMainWindow

    wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]
    if len(wins) != 1:
        raise RuntimeError(f"expected one shown napari window, found {len(wins)}")
    return wins[0]


def run_event_loop(seconds: float) -> None:
    """Let Qt run normally (no busy polling) for ``seconds``."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(0, int(seconds * 1000)), loop.quit)
    loop.exec()


def watch_canvas(viewer, on_paint=None):
    """Watch the completed draws of a shown napari viewer's canvas.

    Why this exists: napari has no public "the canvas drew" event, and the
    benchmarks must step only once the new frame is really on screen.  napari
    0.9 renders with vispy into a Qt ``QOpenGLWidget`` in the viewer's main
    window.  A ``QEvent.Paint`` delivered to that widget is one vispy draw
    (``paintGL`` emits the SceneCanvas ``draw`` event: checked 1:1 against it),
    and the widget's ``frameSwapped`` signal follows once the window has
    composed that draw on screen.  Both are public Qt API, so no napari or vispy
    private attribute is touched; this is the only place in bench/ that depends
    on how napari builds its canvas.

    ``on_paint()`` is called when a paint starts (the state it returns is what
    that draw shows, napari slices synchronously); a draw is counted when its
    frame has been swapped.  Returns the watcher (``.draws``, ``.wait``).
    """
    from qtpy.QtCore import QEvent, QEventLoop, QObject, QTimer
    from qtpy.QtOpenGLWidgets import QOpenGLWidget

    gls = _main_window().findChildren(QOpenGLWidget)
    if len(gls) != 1:
        raise RuntimeError(f"expected napari's one canvas widget, found {len(gls)}")

    class _Watch(QObject):
        def __init__(self, gl):
            super().__init__()
            self.gl = gl
            self.draws: list[tuple[float, object]] = []  # (time swapped, on_paint() at paint)
            self._painting = None
            self._loop = None
            self._until = None
            gl.installEventFilter(self)
            gl.frameSwapped.connect(self._swapped)

        def eventFilter(self, obj, ev):  # noqa: N802 (Qt name)
            if obj is self.gl and ev.type() == QEvent.Type.Paint:
                try:
                    self._painting = [on_paint() if on_paint else None]
                except Exception as exc:  # an exception escaping a Qt virtual aborts under PyQt6
                    self._painting = [exc]
            return False

        def _swapped(self):
            if self._painting is None:
                return  # the window composed without a new canvas draw
            self.draws.append((time.perf_counter(), self._painting[0]))
            self._painting = None
            if self._loop is not None and self._until(self.draws[-1][1]):
                self._loop.quit()

        def wait(self, until=lambda state: True, since: int | None = None, timeout: float = 120.0):
            """Run the event loop until a draw (after draw number ``since``, default: now)
            whose paint-time state satisfies ``until``; return its swap time."""
            start = len(self.draws) if since is None else since
            for t, state in self.draws[start:]:
                if until(state):
                    return t
            self._until = until
            self._loop = QEventLoop()
            timer = QTimer()
            timer.setSingleShot(True)
            timer.timeout.connect(self._loop.quit)
            timer.start(int(timeout * 1000))
            n = len(self.draws)
            self._loop.exec()
            self._loop = None
            for t, state in self.draws[n:]:
                if until(state):
                    return t
            raise TimeoutError(f"no canvas draw satisfying the condition within {timeout} s")

        def settle(self, quiet: float = 0.5, limit: float = 10.0):
            """Run the event loop until no draw happened for ``quiet`` seconds."""
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < limit:
                n = len(self.draws)
                run_event_loop(quiet)
                if len(self.draws) == n:
                    return

    return _Watch(gls[0])


def frame_state(viewer):
    """What a draw shows (for watch_canvas' on_paint): (current frame index, all layers loaded)."""
    if not len(viewer.layers):
        return None
    return (int(viewer.dims.current_step[0]), all(layer.loaded for layer in viewer.layers))


# ---------------------------------------------------------------- many small files


def write_small_files_fast(folder: Path, n: int, per_series: int, series_per_dir: int = 0) -> Path:
    """``n`` small MR files (16x16 uint16), ``per_series`` per series, deterministic.

    Same content as tests/synth.write_small_files, but pydicom encodes one
    file per series and the other files of the series are that file's bytes
    with fixed-width fields substituted (SOP Instance UID, Instance Number,
    Image Position z): pydicom's save_as costs ~1.4 ms a file here, which is
    minutes for 100,000 files; this writes them at file-system speed.  Values
    are padded with spaces to keep every length (allowed for IS and DS).
    Files go to s<series>/ (or d<group>/s<series>/ when ``series_per_dir``),
    and a ``.complete`` marker is written last.
    """
    folder = Path(folder)
    marker = folder / ".complete"
    if marker.exists() and marker.read_text().strip() == f"{n} {per_series}":
        return folder
    import io

    import numpy as np
    from pydicom.uid import MRImageStorage

    from synth import _file_ds, uid

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rows = cols = 16
    sop_root = "2.25.1" + uid("bench-many", n, per_series)[5:][:25]  # fixed length, no leading zero
    width = len(str(n - 1))
    ph_sop = sop_root + "9" * width
    ph_inst, ph_z = "8" * 6, "7" * 6 + ".5"
    for s in range((n + per_series - 1) // per_series):
        ds = _file_ds(MRImageStorage, ph_sop)
        ds.PatientID = "MANY"
        ds.PatientName = "Many^Files"
        ds.StudyDate = "20220101"
        ds.Modality = "MR"
        ds.StudyInstanceUID = uid("bench-many", n)
        ds.SeriesInstanceUID = uid("bench-many", n, s)
        ds.SeriesNumber = s + 1
        ds.SeriesDescription = f"S{s}"
        ds.InstanceNumber = ph_inst
        ds.ImagePositionPatient = [0.0, 0.0, ph_z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 1.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.zeros((rows, cols), np.uint16).tobytes()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        blob = buf.getvalue()
        if blob.count(ph_sop.encode()) != 2 or blob.count(ph_inst.encode()) != 1 or blob.count(ph_z.encode()) != 1:
            raise RuntimeError("placeholder not unique in the template")
        a, b = blob.split(ph_sop.encode(), 1)
        b, c = b.split(ph_sop.encode(), 1)
        sub = folder / (f"d{s // series_per_dir:03d}" if series_per_dir else "") / f"s{s:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(s * per_series, min(n, (s + 1) * per_series)):
            k = i % per_series
            sop = f"{sop_root}{i:0{width}d}".encode()
            body = (
                (a + sop + b + sop + c)
                .replace(ph_inst.encode(), f"{k + 1:<6d}".encode())
                .replace(ph_z.encode(), f"{float(k):<8.1f}".encode())
            )
            with open(sub / f"i{i:06d}.dcm", "wb") as fh:
                fh.write(body)
    marker.write_text(f"{n} {per_series}\n")
    return folder


def list_files(folder: Path) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out += [os.path.join(root, f) for f in sorted(files) if f.endswith(".dcm")]
    return out
