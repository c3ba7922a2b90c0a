"""Scroll speed in a real napari viewer (issue: "scrolling a DBT feels slow").

    .venv/bin/python bench/bench_scroll.py [--quick] [--repeat N] [--only scroll cine]

Starts its own Xvfb when there is no DISPLAY (or run it under ``xvfb-run -a``).
Each measurement is a fresh process with a shown ``napari.Viewer``:

scroll  open the DBT (``viewer.open(path, plugin="napari-dcm")``), show napari's
        middle frame, let the event loop run 2 s, then step 16 frames forward
        as fast as the canvas draws (step, run Qt until the canvas has drawn and
        swapped that frame, step again).  Baseline, same run: napari scrolling
        an in-memory numpy array of the same shape, dtype and pixels.  Then
        (first repeat only) peak RSS while scrolling all 64 frames twice.
cine    one pass of napari's play (View > Toggle Play, 10 fps, loop mode "once")
        from frame 0: which frame indices were drawn, how many skipped, and how
        long the pass took.

For napari-dcm runs the child also records, from napari-dcm's decode counters, which of
the stepped-to frames had been decoded (read ahead) before their step, the multiscale
level napari showed, and read-ahead's counts.  Diagnostics (one process each, full run
only): J2K and Explicit VR LE with napari's async slicing on, J2K with read-ahead off.

Inputs: the 64 x 2048 x 1664 uint16 DBT-like object of bench_reader (tests/synth.py)
as JPEG 2000 lossless, JPEG-LS lossless, RLE and Explicit VR LE, kept in --data.
Figures are medians over --repeat runs; ratios are to the in-memory ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SOURCES = ["memory", "j2k", "jpegls", "rle", "explicit"]
LABEL = {"memory": "in-memory numpy", **C.SYNTAX_NAMES}


# ---------------------------------------------------------------- child side


def _open(spec):
    """A shown viewer holding the DBT (or the in-memory array), napari's middle frame drawn."""
    shape = tuple(spec["shape"])
    arr = C.explicit_pixels(Path(spec["explicit"]), shape) if spec["source"] == "memory" else None
    import napari
    from napari.settings import get_settings

    app_settings = get_settings().application  # a throw-away settings file (NAPARI_CONFIG)
    if spec.get("cine_fps"):
        app_settings.playback_fps = spec["cine_fps"]
        app_settings.playback_mode = "once"
    if spec.get("napari_dask_cache") is False:
        app_settings.dask.enabled = False  # napari's own opportunistic dask cache (default 25 % of RAM)
    if spec.get("napari_async"):
        get_settings().experimental.async_ = True  # napari slices on a thread, the UI never waits
    viewer = napari.Viewer(show=True)
    watch = C.watch_canvas(viewer, on_paint=lambda: C.frame_state(viewer))
    watch.settle()
    rss_viewer = C.proc_status_kib("VmRSS")
    t = time.perf_counter()
    if arr is not None:
        viewer.add_image(arr, name="in-memory")
    else:
        viewer.open(spec["path"], plugin="napari-dcm")
    assert len(viewer.layers) == 1 and viewer.layers[0].data.shape == shape, viewer.layers
    start = int(viewer.dims.current_step[0])
    t_shown = watch.wait(lambda s: s == (start, True), since=0)
    return viewer, watch, dict(rss_viewer_kib=rss_viewer, open_to_middle_s=t_shown - t, start=start)


def _dcm_state(viewer) -> dict:
    """What napari-dcm decoded (its decode counters) and read ahead, for the napari-dcm layer."""
    from napari_dcm.dicom import decode

    layer = viewer.layers[0]
    path = layer.metadata["paths"][0]

    def level() -> int:
        return int(getattr(layer, "data_level", 0)) if getattr(layer, "multiscale", False) else 0

    def decoded(k: int) -> int:
        return decode.STATS.frames.get((path, k, level()), 0)

    def counts() -> dict:
        try:
            from napari_dcm._qt.readahead import follower
        except ImportError:  # a checkout without read-ahead (the "before" figures)
            return {}
        f = follower(viewer)
        return dict(f.engine.counts) if f is not None else {}

    return dict(decoded=decoded, level=level, counts=counts)


def _step_to(viewer, watch, k: int) -> float:
    """Show frame k and return when the canvas has drawn it (swap time)."""
    n0 = len(watch.draws)
    viewer.dims.set_current_step(0, k)
    return watch.wait(lambda s: s == (k, True), since=n0)


def child_scroll(spec) -> dict:
    viewer, watch, out = _open(spec)
    C.run_event_loop(2.0)  # "wait 2 s" after the middle frame is shown
    start, steps = out["start"], spec["steps"]
    times = []
    n_draws0 = len(watch.draws)
    dcm = _dcm_state(viewer) if spec["source"] != "memory" else None
    ready = []
    t_begin = t = time.perf_counter()
    for i in range(1, steps + 1):
        if dcm is not None:
            ready.append(dcm["decoded"](start + i) > 0)  # decoded (read ahead) before its step?
        t_done = _step_to(viewer, watch, start + i)
        times.append(t_done - t)
        t = time.perf_counter()
    out.update(fps=steps / (t_done - t_begin), step_s=times, draws=len(watch.draws) - n_draws0)
    if dcm is not None:
        out.update(ready_before_step=ready, data_level=dcm["level"](), readahead=dcm["counts"]())
    if spec.get("rss"):
        frames = spec["shape"][0]
        C.run_event_loop(0.2)
        reset = C.reset_peak_rss()
        rss0 = C.proc_status_kib("VmRSS")
        t0 = time.perf_counter()
        n = 0
        for _ in range(2):
            for k in range(frames):
                if k != int(viewer.dims.current_step[0]):
                    _step_to(viewer, watch, k)
                    n += 1
        out.update(
            rss_scroll_start_kib=rss0,
            peak_kib=C.proc_status_kib("VmHWM"),
            peak_reset=reset,
            rss_scroll_steps=n,
            rss_scroll_fps=n / (time.perf_counter() - t0),
        )
    out["layer_kwargs"] = dict(
        name=viewer.layers[0].name, contrast_limits=list(map(float, viewer.layers[0].contrast_limits))
    )
    C.child_result(out)
    viewer.close()
    return out


def _toggle_play_action():
    """napari's View > Toggle Play menu item (what a user clicks; same as the play button)."""
    win = C._main_window()
    for menu_action in win.menuBar().actions():
        menu = menu_action.menu()
        if menu is not None and menu_action.text().replace("&", "") == "View":
            for a in menu.actions():
                if a.text() == "Toggle Play":
                    return a
    raise RuntimeError("View > Toggle Play not found in napari's menu bar")


def child_cine(spec) -> dict:
    viewer, watch, out = _open(spec)
    frames, fps = spec["shape"][0], spec["cine_fps"]
    if out["start"] != 0:
        _step_to(viewer, watch, 0)
    C.run_event_loop(2.0)
    viewer.dims.last_used = 0  # the axis Toggle Play animates
    act = _toggle_play_action()
    n0 = len(watch.draws)
    t0 = time.perf_counter()
    act.trigger()
    limit = t0 + 4 * frames / fps + 60
    while True:
        C.run_event_loop(0.1)
        drawn = watch.draws[n0:]
        now = time.perf_counter()
        last_t = drawn[-1][0] if drawn else t0
        if drawn and drawn[-1][1] == (frames - 1, True):
            break
        # the last frame's request can itself be dropped: then the pass ends in silence
        if now - t0 > frames / fps and now - last_t > 3.0:
            break
        if now > limit:
            break
    seq = [0] + [s[0] for _, s in drawn if s and s[1]]
    shown = sorted(set(seq))
    t_last = drawn[-1][0] if drawn else t0
    out.update(
        frames_drawn=seq,
        shown=len(shown),
        skipped=frames - len(shown),
        skipped_frames=sorted(set(range(frames)) - set(shown)),
        pass_s=t_last - t0,
        nominal_s=(frames - 1) / fps,
        effective_fps=(len(seq) - 1) / (t_last - t0) if t_last > t0 else 0.0,
        reached_last=bool(drawn and drawn[-1][1] == (frames - 1, True)),
    )
    C.child_result(out)
    viewer.close()
    return out


# ---------------------------------------------------------------- parent side


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="8 x 512 x 416 inputs, one repeat, in-memory/J2K/RLE only (smoke run)"
    )
    ap.add_argument("--data", default=str(C.HERE / "data"))
    ap.add_argument("--repeat", type=int, default=None, help="fresh-process repeats (default 3, quick 1)")
    ap.add_argument("--only", nargs="*", default=None, help="scroll cine")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        C.use_repo_src()
        (child_cine if spec["kind"] == "cine" else child_scroll)(spec)
        return

    C.use_repo_src()
    C.ensure_display()
    C.isolated_napari_settings()
    data = Path(args.data)
    shape = C.DBT_QUICK if args.quick else C.DBT_FULL
    repeat = args.repeat or (1 if args.quick else 3)
    only = set(args.only or ["scroll", "cine"])
    frames = shape[0]
    steps = min(16, frames - frames // 2 - 1)
    paths = {s: C.dbt_path(data, s, shape) for s in C.SYNTAX_NAMES}
    base = dict(shape=list(shape), explicit=str(paths["explicit"]))
    res = C.Results("scroll", args.quick)
    print(
        f"napari scroll benchmark: {frames}x{shape[1]}x{shape[2]} uint16, {repeat} repeat(s), "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    def spec_for(src, **kw):
        return dict(base, source=src, path=None if src == "memory" else str(paths[src]), **kw)

    # --quick: fewer fresh viewers (each costs ~5-10 s to start on a loaded 2-core machine)
    sources = ["memory", "j2k", "rle"] if args.quick else SOURCES
    if "scroll" in only:
        runs: dict[str, list[dict]] = {s: [] for s in sources}
        for rep in range(repeat):
            order = sources[rep % len(sources) :] + sources[: rep % len(sources)]  # spread drift
            for src in order:
                C.warm_file(paths["explicit" if src == "memory" else src])
                r = C.run_child(Path(__file__), spec_for(src, kind="scroll", steps=steps, rss=rep == 0))
                r.pop("_stderr")
                runs[src].append(r)
                extra = f", peak RSS {r['peak_kib'] / 1024:.0f} MiB" if "peak_kib" in r else ""
                print(
                    f"  rep {rep + 1} {src:8s}: {r['fps']:.2f} fps (slowest step {max(r['step_s']) * 1e3:.0f} ms, "
                    f"{r['draws']} draws){extra}",
                    flush=True,
                )
        mem = [r["fps"] for r in runs["memory"]]
        res.extra["scroll_runs"] = runs
        for src in sources:
            fps = [r["fps"] for r in runs[src]]
            paired = [a / b for a, b in zip(fps, mem, strict=True)]
            res.record(
                f"scroll {steps} frames from the middle, fps [{LABEL[src]}]",
                C.med(fps),
                C.med(mem),
                "fps",
                note=f"paired ratios {', '.join(f'{x:.2f}' for x in paired)}; fps {C.spread(fps)}",
                samples=fps,
            )
        for src in sources:
            r = runs[src][0]
            peak, before = r["peak_kib"] / 1024, r["rss_viewer_kib"] / 1024
            mpeak = runs["memory"][0]["peak_kib"] / 1024
            res.record(
                f"peak RSS scrolling all {frames} frames twice [{LABEL[src]}]",
                peak,
                mpeak,
                "MiB",
                note=f"viewer alone before open {before:.0f} MiB; RSS when the scroll began "
                f"{r['rss_scroll_start_kib'] / 1024:.0f} MiB; {r['rss_scroll_fps']:.1f} fps over "
                f"{r['rss_scroll_steps']} steps; baseline = in-memory array's run "
                f"(holds the {frames * shape[1] * shape[2] * 2 / 2**20:.0f} MiB array)",
            )

        for src in sources:
            rs = [r for r in runs[src] if "ready_before_step" in r]
            if rs:
                ready = [sum(r["ready_before_step"]) for r in rs]
                print(
                    f"  {src}: frames decoded before their step {ready} of {steps}; level shown "
                    f"{[r['data_level'] for r in rs]}; read-ahead {rs[0]['readahead']}",
                    flush=True,
                )
        if not args.quick:
            # diagnostics, one fresh process each: napari's async slicing (napari slices on a
            # thread, the UI never waits for dask), and read-ahead switched off
            for src, what, kw, env in (
                ("j2k", "napari async slicing", dict(napari_async=True), {}),
                ("explicit", "napari async slicing", dict(napari_async=True), {}),
                ("j2k", "read-ahead off", {}, {"NAPARI_DCM_READAHEAD": "0"}),
            ):
                C.warm_file(paths[src])
                old_env = {k: os.environ.get(k) for k in env}
                os.environ.update(env)
                try:
                    r = C.run_child(Path(__file__), spec_for(src, kind="scroll", steps=steps, **kw))
                finally:
                    for k, v in old_env.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
                r.pop("_stderr")
                runs[f"{src} ({what})"] = [r]
                print(f"  {src} with {what}: {r['fps']:.2f} fps", flush=True)
                res.record(
                    f"scroll {steps} frames from the middle, fps [{LABEL[src]}, {what}]",
                    r["fps"],
                    C.med(mem),
                    "fps",
                    note=f"one process; baseline = the in-memory median of this run; frames decoded before "
                    f"their step {sum(r.get('ready_before_step', []))} of {steps}",
                )
    if "cine" in only:
        cine_sources = ["j2k"] if args.quick else SOURCES
        cines: dict[str, list[dict]] = {s: [] for s in cine_sources}
        for src in cine_sources:
            for _ in range(repeat if src in ("memory", "j2k") else 1):
                C.warm_file(paths["explicit" if src == "memory" else src])
                r = C.run_child(Path(__file__), spec_for(src, kind="cine", cine_fps=10))
                r.pop("_stderr")
                cines[src].append(r)
                print(
                    f"  cine {src:8s}: {r['shown']}/{frames} frames drawn, {r['skipped']} skipped, pass "
                    f"{r['pass_s']:.1f} s (nominal {r['nominal_s']:.1f} s), {r['effective_fps']:.2f} fps "
                    f"effective",
                    flush=True,
                )
        res.extra["cine_runs"] = cines
        for src in cine_sources:
            rs = cines[src]
            res.record(
                f"cine 10 fps, one pass: frames drawn of {frames} [{LABEL[src]}]",
                C.med([r["shown"] for r in rs]),
                frames,
                "frames",
                note=f"skipped {C.med([r['skipped'] for r in rs])}; pass {C.med([r['pass_s'] for r in rs]):.1f} s "
                f"vs nominal {rs[0]['nominal_s']:.1f} s; effective {C.med([r['effective_fps'] for r in rs]):.2f} fps"
                + (f" (n={len(rs)})" if len(rs) > 1 else ""),
            )
    res.write(C.meta(args))


if __name__ == "__main__":
    main()
