"""What a read found: counts, and every file that was skipped with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
            import os

            path, msg = self.problems[0]
            more = f" and {len(self.problems) - 1} more" if len(self.problems) > 1 else ""
            s += f", not shown: {os.path.basename(path)}: {msg}{more}"
        if self.filtered_out:
            s += f", {self.filtered_out} filtered out"
        if self.skipped:
            reasons: dict[str, int] = {}
            for _, r in self.skipped:
                reasons[r] = reasons.get(r, 0) + 1
            top = "; ".join(f"{n}x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:4])
            s += f", {len(self.skipped)} skipped ({top})"
        return s
