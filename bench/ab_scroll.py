"""Before/after scroll comparison in one run (not part of the suite's benchmarks).

    .venv/bin/python bench/ab_scroll.py OTHER_CHECKOUT [--repeat N] [--sources j2k jpegls rle explicit]

Runs bench_scroll's scroll child for the in-memory ceiling, this checkout and another
checkout (e.g. a worktree of main before a change), interleaved source by source and
repeat by repeat so both see the same machine load, and prints the median fps and the
median of the per-repeat ratios to the in-memory run of the same repeat.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", help="another checkout (its bench/bench_scroll.py and src/ are used)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sources", nargs="*", default=["j2k", "jpegls", "rle", "explicit"])
    ap.add_argument("--data", default=str(C.HERE / "data"))
    args = ap.parse_args()
    C.use_repo_src()
    C.ensure_display()
    C.isolated_napari_settings()
    data = Path(args.data)
    shape = C.DBT_FULL
    paths = {s: C.dbt_path(data, s, shape) for s in C.SYNTAX_NAMES}
    scripts = {"this": C.HERE / "bench_scroll.py", "other": Path(args.other) / "bench" / "bench_scroll.py"}
    steps = 16
    fps: dict[tuple[str, str], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeat):
        for src in args.sources:
            spec = dict(shape=list(shape), explicit=str(paths["explicit"]), steps=steps, rss=False, kind="scroll")
            C.warm_file(paths["explicit"])
            mem = C.run_child(scripts["this"], dict(spec, source="memory", path=None))["fps"]
            for who in ("this", "other") if rep % 2 == 0 else ("other", "this"):
                C.warm_file(paths[src])
                r = C.run_child(scripts[who], dict(spec, source=src, path=str(paths[src])))
                fps.setdefault((src, who), []).append(r["fps"])
                ratios.setdefault((src, who), []).append(r["fps"] / mem)
                print(
                    f"  rep {rep + 1} {src:8s} {who:5s}: {r['fps']:.2f} fps, in-memory {mem:.2f} fps, "
                    f"ratio {r['fps'] / mem:.2f}",
                    flush=True,
                )
    print("\n| input | this checkout: fps, ratio | other checkout: fps, ratio |\n|---|---|---|")
    for src in args.sources:
        a, b = (src, "this"), (src, "other")
        print(
            f"| {C.SYNTAX_NAMES[src]} | {statistics.median(fps[a]):.2f}, {statistics.median(ratios[a]):.2f} "
            f"({', '.join(f'{x:.2f}' for x in ratios[a])}) | {statistics.median(fps[b]):.2f}, "
            f"{statistics.median(ratios[b]):.2f} ({', '.join(f'{x:.2f}' for x in ratios[b])}) |"
        )


if __name__ == "__main__":
    main()
