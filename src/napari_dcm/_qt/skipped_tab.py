"""The DICOM dock's Skipped tab: every file a read into this viewer skipped, with its reason.

Toasts fade; this list stays until cleared.  It also lists the parts of opened
files that are not shown (an overlay whose image is missing, a frame that cannot
be decoded is reported when shown, not here).  Rows are added by
:func:`napari_dcm._qt.viewer.read_with_notifications` through :func:`record`,
also while the dock is closed (it shows them when opened).
"""

from __future__ import annotations

import os
from typing import Any

from qtpy.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import state

TITLE = "Skipped"


def record(viewer: Any, skipped: list[tuple[str, str]], problems: list[tuple[str, str]]) -> None:
    """Remember a read's skipped files and problems for ``viewer`` and refresh its dock."""
    st = state.of(viewer)
    st.skipped.extend(("skipped", p, r) for p, r in skipped)
    st.skipped.extend(("not shown", p, r) for p, r in problems)
    dock = state.dock(viewer, "dicom")
    if dock is not None:
        dock.refresh_skipped()


def line(kind: str, path: str, reason: str) -> str:
    """One row as shown: "badVR.dcm: <reason>" (the reason wraps; the full path is the tooltip)."""
    name = os.path.basename(path.rstrip(os.sep)) or path
    return f"{name}: {reason}" if kind == "skipped" else f"{name} (opened; {kind}): {reason}"


class SkippedTab(QWidget):
    """One wrapped line per file, its name first; the full path in the tooltip."""

    def __init__(self, viewer: Any) -> None:
        super().__init__()
        self.viewer = viewer
        lay = QVBoxLayout(self)
        self.summary = QLabel("No file skipped")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setUniformItemSizes(False)
        self.list.setSpacing(3)  # rows apart (napari's theme makes alternating colours unreadable)
        lay.addWidget(self.list)
        row = QHBoxLayout()
        self.copy_button = QPushButton("Copy list")
        self.copy_button.setToolTip("Copy every row (full path, what happened, reason) as tab-separated text")
        self.copy_button.clicked.connect(self.copy)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        row.addWidget(self.copy_button)
        row.addWidget(self.clear_button)
        row.addStretch(1)
        lay.addLayout(row)

    def rows(self) -> list[tuple[str, str, str]]:
        return list(state.of(self.viewer).skipped)

    def refresh(self) -> None:
        rows = self.rows()
        self.list.clear()
        for kind, path, reason in rows:
            item = QListWidgetItem(line(kind, path, reason))
            item.setToolTip(path)
            self.list.addItem(item)
        n_skip = sum(1 for k, _, _ in rows if k == "skipped")
        n_part = len(rows) - n_skip
        parts = []
        if n_skip:
            parts.append(f"{n_skip} file(s) skipped")
        if n_part:
            parts.append(f"{n_part} part(s) of opened files not shown")
        self.summary.setText(" · ".join(parts) if parts else "No file skipped")
        self.copy_button.setEnabled(bool(rows))
        self.clear_button.setEnabled(bool(rows))

    def copy(self) -> str:
        text = "\n".join("\t".join(r) for r in self.rows())
        clip = QApplication.clipboard()
        if clip is not None:
            clip.setText(text)
        return text

    def clear(self) -> None:
        state.of(self.viewer).skipped.clear()
        dock = state.dock(self.viewer, "dicom")
        if dock is not None:
            dock.refresh_skipped()
        else:
            self.refresh()
