"""What a read found: counts, and every file that was skipped with its reason."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

#: skipped files named one notification each (more: one notification listing them all)
NAMED_ONE_BY_ONE = 3


@dataclass
class ReadReport:
    """Counts and skipped files of one read (filled in by ``napari_dcm.read`` and friends)."""

    n_files: int = 0
    n_series: int = 0
    n_layers: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    filtered_out: int = 0
    unmatched_rows: list[str] = field(default_factory=list)  # EMBED rows matching no loaded file
    overlays: list[Any] = field(default_factory=list)  # headers of GSPS / SR / SEG / PM objects
    overlay_notes: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    source: str = ""  # where the files are, when not here (a dask scheduler's address)
    problems: list[tuple[str, str]] = field(default_factory=list)  # parts of opened files not shown (path, message)

    def summary(self) -> str:
        where = f" ({self.source})" if self.source else ""
        s = f"napari-dcm{where}: {self.n_files} file(s), {self.n_series} series, {self.n_layers} layer(s)"
        if self.overlays:
            s += f", {len(self.overlays)} overlay object(s)"
        if self.overlay_notes:
            s += f" ({len(self.overlay_notes)} not attached to a loaded image)"
        if self.problems:
            path, msg = self.problems[0]
            more = f" and {len(self.problems) - 1} more" if len(self.problems) > 1 else ""
            s += f", not shown: {os.path.basename(path)}: {msg}{more}"
        if self.filtered_out:
            s += f", {self.filtered_out} filtered out"
        if self.skipped:
            reasons: dict[str, int] = {}
            for _, r in self.skipped:
                reasons[r] = reasons.get(r, 0) + 1
            ranked = sorted(reasons.items(), key=lambda kv: -kv[1])
            top = "; ".join(f"{n}x {r}" for r, n in ranked[:4])
            if len(ranked) > 4:
                top += f"; and {len(ranked) - 4} more reason(s)"
            s += f", {len(self.skipped)} skipped ({top})"
        return s

    def skipped_lines(self) -> list[str]:
        """One line per skipped file, its name first: "GH1376.dcm: <reason>  [<full path>]"."""
        return [f"{os.path.basename(p.rstrip(os.sep)) or p}: {r}  [{p}]" for p, r in self.skipped]

    def skipped_notices(self, limit: int = NAMED_ONE_BY_ONE) -> list[str]:
        """What to tell a viewer's user about the skipped files, every file named with its reason.

        Up to ``limit`` files: one message each ("napari-dcm: skipped GH1376.dcm: <reason>
        [<path>]").  More: one message whose first line says how many and names the first
        ones ("... and 9 more"), followed by one line per file (napari's notification shows
        the whole text when it is expanded, and the log gets it too).
        """
        lines = self.skipped_lines()
        if len(lines) <= limit:
            return [f"napari-dcm: skipped {line}" for line in lines]
        names = ", ".join(os.path.basename(p.rstrip(os.sep)) or p for p, _ in self.skipped[:limit])
        head = (
            f"napari-dcm: {len(lines)} file(s) skipped: {names} and {len(lines) - limit} more "
            "(expand for every file and its reason)"
        )
        return [head + "\n" + "\n".join(lines)]
