"""The case navigator: review a dataset case by case.

A list of the cases of a study folder tree, a DICOMDIR, an EMBED CSV or a list
of paths (:mod:`napari_dcm.dicom.cases` indexes them in the background, with a
progress bar and a Cancel button), filtered with the CLI's filter fields.
Opening a case replaces the previous case's layers: its ROI rows are kept
(in memory and in the index file), its layers removed, napari-dcm's frame
cache and napari's dask cache emptied, so nothing of it stays decoded.  The new
case opens with an ROI layer per image (its rows as the review left them),
mammograms hung with the chosen layout, and the current tool, window preset
and zoom policy kept; flips and rotations start afresh.  A case that fails to
open shows its error in the list and the navigator moves on.  **Export all
ROIs** writes every case's rows into one EMBED CSV.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

from qtpy.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal
from qtpy.QtGui import QBrush, QColor, QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from .. import _notify
from ..dicom.cases import Case, CaseIndex, IndexCancelled, build_index
from ..dicom.filters import parse_filters
from ..errors import DicomError
from ..layers import keys
from . import state
from .viewing import viewing
from .viewing_panel import ViewingPanel

log = logging.getLogger("napari_dcm")

DOCK = "cases"
LAYOUTS = ("auto", "1x2", "1x3", "2x2", "2x4", "none")
ZOOM_POLICIES = ("fit", "keep")
COLUMNS = ("#", "Rev.", "Edits", "Patient", "Date", "Mod.", "Images", "ROIs", "Status", "Description")
_FILTER_RE = re.compile(r"(\w+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s;]+)")


def parse_filter_text(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``modality=MG patient_id="A 1" foo`` -> (CLI filters, free words); raises ValueError for an unknown field."""
    flt = [(k, v.strip("\"'")) for k, v in _FILTER_RE.findall(text)]
    rest = _FILTER_RE.sub(" ", text)
    words = [w.lower() for w in re.split(r"[\s;,]+", rest) if w]
    parse_filters(flt)  # validate the fields
    return flt, words


class CaseModel(QAbstractTableModel):
    """The visible cases of an index, as rows."""

    def __init__(self, dock: CaseDock):
        super().__init__()
        self.dock = dock
        self.cases: list[Case] = []

    def rowCount(self, parent=QModelIndex()):  # noqa: N802, B008 (Qt API)
        return 0 if parent.isValid() else len(self.cases)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802, B008 (Qt API)
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 (Qt API)
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def text(self, case: Case, col: int) -> str:
        idx = self.dock.index
        if col == 0:
            return str(case.number)
        if col == 1:
            return "✓" if case.reviewed else ""
        if col == 2:
            return "unexported" if idx is not None and idx.dirty(case) else ""
        if col == 3:
            return case.patient_id or case.patient_name
        if col == 4:
            d = case.study_date
            return f"{d[:4]}-{d[4:6]}-{d[6:]}" if len(d) == 8 else d
        if col == 5:
            return "/".join(case.modalities)
        if col == 6:
            return str(case.n_images) + (f" ({case.n_frames} fr)" if case.n_frames > case.n_images else "")
        if col == 7:
            return str(idx.n_rois(case)) if idx is not None else ""
        if col == 8:
            return _short_status(case)
        views = case.views
        return case.description + (f" [{' '.join(views)}]" if views else "")

    def tooltip(self, case: Case, col: int) -> str:
        if col == 8:
            return case.status
        if col == 2 and self.text(case, 2):
            return "ROI edits not exported yet (Export all ROIs…)"
        if col == 3:
            return " ".join(x for x in (case.patient_id, case.patient_name) if x)
        return self.text(case, col) or case.key

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        case = self.cases[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(case, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(case, index.column())
        if role == Qt.ItemDataRole.FontRole and case is self.dock.current:
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.ItemDataRole.ForegroundRole and index.column() in (2, 8) and self.text(case, index.column()):
            return QBrush(QColor("#ff6e6e"))
        return None

    def set_cases(self, cases: list[Case]) -> None:
        self.beginResetModel()
        self.cases = cases
        self.endResetModel()

    def changed(self, case: Case) -> None:
        try:
            r = self.cases.index(case)
        except ValueError:
            return
        self.dataChanged.emit(self.index(r, 0), self.index(r, len(COLUMNS) - 1))


class _Indexer(QObject):
    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)


def confirm(parent, title: str, text: str) -> bool:
    """Ask yes/no (tests replace this function)."""
    r = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    return r == QMessageBox.StandardButton.Yes


class CaseDock(QWidget):
    """napari-dcm case navigator."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        state.of(napari_viewer).docks[DOCK] = self
        self.index: CaseIndex | None = None
        self.current: Case | None = None
        self.visible_cases: list[Case] = []
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._opening = False
        self._keep: set[int] | None = None  # ids of layers that were there before the first case
        self._left_at: dict[str, float] = {}  # case key -> when its rows were recorded (this session)
        self._groups: dict[str, list[list[str]]] = {}  # case key -> path groups of its ROI layers
        self.filters: list[tuple[str, str]] = []
        self.words: list[str] = []
        self.opened: list[str] = []  # case keys, in the order they were opened (tests, benchmarks)
        self.open_notes: dict[str, list[str]] = {}

        self.source_label = QLabel("No case list")
        self.source_label.setWordWrap(True)
        self.open_folder_btn = QPushButton("Folder…")
        self.open_csv_btn = QPushButton("EMBED CSV…")
        self.reindex_btn = QPushButton("Reindex")
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("filter: modality=MG patient_id=123 (the CLI's fields) or words")
        self.hide_reviewed = QCheckBox("hide reviewed")
        self.table = QTableView()
        self.model = CaseModel(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(120)
        self.table.setWordWrap(False)
        self.prev_btn = QPushButton("◀ Previous (PgUp)")
        self.next_btn = QPushButton("Next (PgDn) ▶")
        self.reviewed_btn = QPushButton("Reviewed (M)")
        self.reviewed_btn.setCheckable(True)
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(list(LAYOUTS))
        self.layout_combo.setToolTip("mammography hanging of each case (none: one view)")
        self.zoom_combo = QComboBox()
        self.zoom_combo.addItems(list(ZOOM_POLICIES))
        self.zoom_combo.setToolTip("fit: each case fitted to the canvas; keep: the zoom and centre you left")
        self.export_btn = QPushButton("Export all ROIs…")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.viewing = ViewingPanel(napari_viewer)

        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.source_label, 1)
        row.addWidget(self.open_folder_btn)
        row.addWidget(self.open_csv_btn)
        row.addWidget(self.reindex_btn)
        lay.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_btn)
        lay.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.filter_edit, 1)
        row.addWidget(self.hide_reviewed)
        lay.addLayout(row)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(self.prev_btn)
        row.addWidget(self.next_btn)
        row.addWidget(self.reviewed_btn)
        lay.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("Layout"))
        row.addWidget(self.layout_combo)
        row.addWidget(QLabel("Zoom"))
        row.addWidget(self.zoom_combo)
        row.addStretch(1)
        row.addWidget(self.export_btn)
        lay.addLayout(row)
        lay.addWidget(self.status)
        box = QGroupBox("Viewing")
        QVBoxLayout(box).addWidget(self.viewing)
        lay.addWidget(box)

        self._indexer = _Indexer()
        self._indexer.progress.connect(self._on_progress)
        self._indexer.finished.connect(self._on_indexed)
        self._indexer.failed.connect(self._on_failed)
        self.open_folder_btn.clicked.connect(self._folder_dialog)
        self.open_csv_btn.clicked.connect(self._csv_dialog)
        self.reindex_btn.clicked.connect(lambda: self.load(self._source, root=self._root) if self._source else None)
        self.cancel_btn.clicked.connect(self.cancel)
        self.filter_edit.editingFinished.connect(self.apply_filter)
        self.hide_reviewed.toggled.connect(lambda _: self.apply_filter())
        self.table.doubleClicked.connect(lambda ix: self.open_case(self.model.cases[ix.row()]))
        self.table.activated.connect(lambda ix: self.open_case(self.model.cases[ix.row()]))
        self.prev_btn.clicked.connect(self.previous_case)
        self.next_btn.clicked.connect(self.next_case)
        self.reviewed_btn.clicked.connect(lambda on: self.set_reviewed(on))
        self.export_btn.clicked.connect(self._export_dialog)
        self._source: Any = None
        self._root: str | None = None
        self._open_first = True

    # ------------------------------------------------------------------ indexing
    @property
    def indexing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def load(self, source, *, root=None, background: bool = True, open_first: bool = True) -> CaseIndex | None:
        """Index ``source`` (folder, DICOMDIR, EMBED CSV or list of paths) and list its cases;
        then open the first case not reviewed yet.  In the background unless ``background=False``
        (then the index is returned)."""
        if self.indexing:
            self.cancel()
            self._thread.join(30)
        self._source, self._root, self._open_first = source, root, open_first
        self._cancel.clear()
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_btn.setVisible(True)
        self.status.setText("Indexing…")
        name = source if isinstance(source, (str, os.PathLike)) else f"{len(source)} path(s)"
        self.source_label.setText(f"Indexing {name}…")

        def run():
            try:
                idx = build_index(
                    source,
                    root=root,
                    progress=lambda d, t: self._indexer.progress.emit(d, t),
                    cancel=self._cancel.is_set,
                )
            except IndexCancelled as exc:
                self._indexer.failed.emit(f"{exc} (what was read is cached; Reindex resumes)")
                return
            except (DicomError, OSError) as exc:
                self._indexer.failed.emit(str(exc))
                return
            except Exception as exc:  # never lose an indexing failure silently
                log.exception("indexing failed")
                self._indexer.failed.emit(f"{type(exc).__name__}: {exc}")
                return
            self._indexer.finished.emit(idx)

        if not background:
            result: list = []
            self._indexer.finished.connect(result.append)
            try:
                run()
            finally:
                self._indexer.finished.disconnect(result.append)
            return result[0] if result else None
        self._thread = threading.Thread(target=run, name="napari-dcm case index", daemon=True)
        self._thread.start()
        return None

    def cancel(self) -> None:
        self._cancel.set()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat("%v / %m files")

    def _on_failed(self, msg: str) -> None:
        self.progress.setVisible(False)
        self.cancel_btn.setVisible(False)
        self.status.setText(msg)
        self.source_label.setText("Indexing stopped")
        _notify.warning(f"napari-dcm: {msg}")

    def _on_indexed(self, idx: CaseIndex) -> None:
        self.progress.setVisible(False)
        self.cancel_btn.setVisible(False)
        self.set_index(idx)
        if self._open_first and self.visible_cases:
            first = next((c for c in self.visible_cases if not c.reviewed), self.visible_cases[0])
            self.open_case(first)

    def set_index(self, idx: CaseIndex) -> None:
        if self.current is not None:
            self._leave()
        self.index = idx
        self.current = None
        n_rows = f", {len(idx.table.rows)} CSV row(s)" if idx.table is not None else ""
        self.source_label.setText(
            f"{os.path.basename(idx.source) or idx.source}: {len(idx)} case(s), {idx.n_files} file(s){n_rows}"
        )
        self.source_label.setToolTip(idx.source)
        msg = f"Indexed in {idx.seconds:.2f} s ({idx.n_scanned} file(s) read, {idx.n_files - idx.n_scanned} from the cache)."
        self.status.setText(" ".join([msg, *idx.notes]))
        for n in idx.notes:
            _notify.info(f"napari-dcm: {n}")
        self.apply_filter()

    # ------------------------------------------------------------------ the list
    def set_filter(self, text: str) -> None:
        self.filter_edit.setText(text)
        self.apply_filter()

    def apply_filter(self) -> None:
        try:
            self.filters, self.words = parse_filter_text(self.filter_edit.text())
            self.filter_edit.setStyleSheet("")
        except ValueError as exc:
            self.filter_edit.setStyleSheet("color: #ff6e6e")
            self.status.setText(str(exc))
            return
        idx = self.index
        cases = idx.filter(self.filters, reviewed=False if self.hide_reviewed.isChecked() else None) if idx else []
        if self.words:
            cases = [c for c in cases if all(w in self._haystack(c) for w in self.words)]
        self.visible_cases = cases
        self.model.set_cases(cases)
        self._select_current()

    def _haystack(self, c: Case) -> str:
        return " ".join([c.patient_id, c.patient_name, c.study_date, c.description, *c.modalities, c.key]).lower()

    def _select_current(self) -> None:
        if self.current is None or self.current not in self.model.cases:
            self.table.clearSelection()
            return
        r = self.model.cases.index(self.current)
        self.table.selectRow(r)
        self.table.scrollTo(self.model.index(r, 0))

    # ------------------------------------------------------------------ navigation
    def next_case(self) -> Case | None:
        return self._step(+1)

    def previous_case(self) -> Case | None:
        return self._step(-1)

    def _step(self, d: int) -> Case | None:
        cases = self.visible_cases
        if not cases:
            return None
        if self.current is None:
            target = 0 if d > 0 else len(cases) - 1
        elif self.current in cases:
            target = cases.index(self.current) + d
        else:  # the current case is filtered out: the next visible one by number
            after = [i for i, c in enumerate(cases) if (c.number > self.current.number) == (d > 0)]
            target = (after[0] if d > 0 else after[-1]) if after else len(cases)
        if not 0 <= target < len(cases):
            self.status.setText("Last case." if d > 0 else "First case.")
            return None
        return self.open_case(cases[target], direction=d)

    def toggle_reviewed(self) -> None:
        if self.current is not None:
            self.set_reviewed(not self.current.reviewed)

    def set_reviewed(self, flag: bool = True) -> None:
        if self.current is None or self.index is None:
            self.reviewed_btn.setChecked(False)
            return
        self.index.set_reviewed(self.current, flag)
        self.reviewed_btn.setChecked(flag)
        self.model.changed(self.current)

    # ------------------------------------------------------------------ opening a case
    def open_case(self, case: Case | int, direction: int = 1) -> Case | None:
        """Open ``case`` (a Case or its number); a case that fails to open shows its error and
        the next one in ``direction`` opens instead.  Returns the case opened (None: none could)."""
        if self.index is None:
            return None
        if isinstance(case, int):
            case = self.index.cases[case - 1]
        tried = 0
        cases = self.visible_cases if case in self.visible_cases else self.index.cases
        i = cases.index(case)
        while 0 <= i < len(cases) and tried < len(cases):
            if self._open_one(cases[i]):
                return cases[i]
            tried += 1
            i += direction
        self.status.setText(f"{case.label()}: {case.open_error}; no further case opened")
        return None

    def _policies(self) -> dict[str, Any]:
        vw = viewing(self.viewer)
        cam = self.viewer.scene.camera
        dd = state.dock(self.viewer, "dicom")
        preset = dd.preset.currentText() if dd is not None and hasattr(dd, "preset") else ""
        return {"tool": vw.tool, "preset": preset, "zoom": cam.zoom, "center": tuple(cam.center)}

    def _open_one(self, case: Case) -> bool:
        from ..api import read
        from ..dicom.report import ReadReport
        from ..layers.case_rois import case_layer_tuples, frame_errors
        from .roi_dock import controllers
        from .viewer import add_layer_tuples

        idx = self.index
        assert idx is not None
        case.open_error = ""
        self.status.setText(f"Opening case {case.number}: {case.label()}…")
        if not case.files:
            case.open_error = case.status or "no readable file"
            self.model.changed(case)
            return False
        # the new case's headers first: a case that cannot open leaves the current one on screen
        report = ReadReport()
        try:
            layers = read(case.files, recursive=False, report=report)
        except DicomError as exc:
            case.open_error = f"cannot open: {exc}"
            self.model.changed(case)
            _notify.warning(f"napari-dcm: case {case.number} ({case.label()}): {exc}; moving on")
            return False
        pol = self._policies()
        viewing(self.viewer).cine.pause()
        self._leave()
        rows = idx.rows_of(case)
        notes = frame_errors(layers, rows)
        if report.skipped:
            notes.append(
                f"{len(report.skipped)} file(s) skipped: "
                + "; ".join(f"{os.path.basename(p)}: {r}" for p, r in report.skipped[:3])
            )
        self.open_notes[case.key] = notes
        case.open_error = "; ".join(notes)
        tuples = case_layer_tuples(layers, rows, idx.source if idx.kind == "csv" else None)
        self._opening = True
        self.current = case
        try:
            add_layer_tuples(self.viewer, tuples)
        finally:
            self._opening = False
        if idx.dirty(case):
            for c in controllers(self.viewer):
                c.dirty = True
        self.opened.append(case.key)
        self._arrange(case, pol)
        self.reviewed_btn.setChecked(case.reviewed)
        self.model.changed(case)
        self._select_current()
        n_img = sum(1 for layer in self.viewer.layers if keys.is_image(layer.metadata))
        self.status.setText(
            f"Case {case.number} of {len(idx)}: {case.label()} ({n_img} image layer(s))"
            + (f" — {case.open_error}" if case.open_error else "")
        )
        return True

    def _arrange(self, case: Case, pol: dict[str, Any]) -> None:
        """Hang, fit or keep the zoom, tool and window preset of the case just opened."""
        from . import hanging
        from .window import apply_window, presets

        vw = viewing(self.viewer)
        vw.view.reset()
        layout = self.layout_combo.currentText()
        hung = False
        if case.is_mammography and layout != "none":
            dd = state.dock(self.viewer, "dicom")
            try:
                if dd is not None and hasattr(dd, "hang"):
                    hung = dd.hang(None if layout == "auto" else layout) is not None
                else:
                    hanging.apply_layout(self.viewer, None if layout == "auto" else layout)
                    hung = True
            except ValueError as exc:
                _notify.warning(f"napari-dcm: {exc}")
        if not hung:
            self.viewer.reset_view()
        if self.zoom_combo.currentText() == "keep" and len(self.opened) > 1:
            cam = self.viewer.scene.camera
            cam.zoom = pol["zoom"]
            cam.center = pol["center"][-len(cam.center) :] if len(pol["center"]) >= len(cam.center) else cam.center
        first = next((layer for layer in self.viewer.layers if keys.is_image(layer.metadata) and layer.visible), None)
        if first is not None:  # the image, not its ROI layer, is the active layer (W/L, tags, status)
            self.viewer.layers.selection.active = first
        vw.set_tool(pol["tool"])
        key = _preset_key(pol["preset"])
        if key and key not in ("Default",):
            for img in (layer for layer in self.viewer.layers if keys.is_image(layer.metadata) and layer.visible):
                match = next((p for p in presets(self.viewer, img) if _preset_key(p[0]) == key), None)
                if match is not None:
                    apply_window(img, match[1], match[2], match[3])
            dd = state.dock(self.viewer, "dicom")
            if dd is not None and hasattr(dd, "refresh_presets"):
                dd.refresh_presets()

    def _leave(self) -> None:
        """Keep the current case's ROI rows, remove its layers, forget its decoded frames."""
        from ..layers.roi_export import collect_rows
        from . import hanging
        from .roi_dock import controllers, detach_controller

        viewer = self.viewer
        case, idx = self.current, self.index
        if self._keep is None:
            self._keep = {id(layer) for layer in viewer.layers if not _is_ours(layer)}
        if case is not None and idx is not None:
            rows = collect_rows(viewer, include_unmatched=False)
            dirty = any(c.dirty for c in controllers(viewer))
            idx.record(case, rows, dirty)
            self._left_at[case.key] = max((e.saved_at for e in idx.edits.values() if e.case_key == case.key), default=0)
            self._groups[case.key] = [
                list(l.metadata[keys.ROI]["paths"]) for l in viewer.layers if keys.ROI in l.metadata
            ]
            self.model.changed(case)
        self.current = None
        gone = [layer for layer in viewer.layers if id(layer) not in self._keep]
        if not gone:
            forget_decoded()
            return
        viewer.layers.selection.clear()
        # one batch: napari collects garbage once at its end (after every removal otherwise,
        # which costs about a second per layer in a large session)
        with viewer.layers.batched_update():
            for layer in gone:
                if keys.ROI in layer.metadata:
                    detach_controller(layer)
                viewer.layers.remove(layer)
            del layer
            if viewer.canvas.grid.enabled:
                hanging.single_view(viewer)
        del gone
        forget_decoded()  # after the removal: docks following the active layer may read frames while it runs

    # ------------------------------------------------------------------ ROI recovery
    def handle_recovery(self, controller, saved: dict) -> bool:
        """Called for an ROI layer of a case being opened that has an autosaved state: restore it
        when it is newer than what this navigator recorded (the session ended without leaving the
        case), else ignore it.  Returns whether the navigator took care of it."""
        if not self._opening or self.current is None:
            return False
        if float(saved.get("saved_at", 0)) > self._left_at.get(self.current.key, 0.0) + 1e-6:
            idx = self.index
            stored = idx is not None and any(
                e.saved_at >= float(saved.get("saved_at", 0))
                for e in idx.edits.values()
                if e.case_key == self.current.key
            )
            if not stored:
                controller.restore(saved)
                _notify.info(f"napari-dcm: autosaved ROI edits of {saved.get('image')} restored")
        return True

    # ------------------------------------------------------------------ export
    def export_all(self, path, overwrite: bool = False) -> str | None:
        """Write every case's ROI rows into one EMBED CSV (the source CSV's order; untouched rows as
        they were).  Returns the path written (None when refused)."""
        from ..layers.recovery import clear_recovery
        from ..layers.roi_export import collect_rows
        from .roi_dock import controllers

        idx = self.index
        if idx is None:
            return None
        path = os.path.abspath(os.fspath(path))
        if self.current is not None:  # what is on screen now counts too
            idx.record(
                self.current,
                collect_rows(self.viewer, include_unmatched=False),
                any(c.dirty for c in controllers(self.viewer)),
            )
        if os.path.exists(path) and not overwrite:
            if idx.kind == "csv" and os.path.abspath(idx.source) == path:
                _notify.warning("napari-dcm: that is the CSV the cases came from; choose another file")
                return None
            if not confirm(self, "Overwrite?", f"{path} exists. Replace it?"):
                return None
        try:
            out = idx.export(path, overwrite=True)
        except (OSError, ValueError) as exc:
            _notify.error(f"napari-dcm: export failed: {exc}")
            return None
        for groups in self._groups.values():
            for g in groups:
                clear_recovery({"paths": g})
        for p in idx.edits:
            clear_recovery({"paths": [p]})
        for c in controllers(self.viewer):
            c.dirty = False
        self.model.set_cases(self.visible_cases)
        self._select_current()
        self.status.setText(f"Exported {len(idx.export_rows())} row(s) to {out}")
        _notify.info(f"napari-dcm: ROIs of every case exported to {out}")
        return out

    # ------------------------------------------------------------------ dialogs
    def _folder_dialog(self):
        d = QFileDialog.getExistingDirectory(self, "Study folder")
        if d:
            self.load(d)

    def _csv_dialog(self):
        p, _ = QFileDialog.getOpenFileName(self, "EMBED CSV", "", "CSV files (*.csv);;All files (*)")
        if p:
            self.load(p)

    def _export_dialog(self):
        p, _ = QFileDialog.getSaveFileName(
            self, "Export every case's ROIs", "", "CSV files (*.csv)", options=QFileDialog.Option.DontConfirmOverwrite
        )
        if p:
            self.export_all(p)


def _short_status(case: Case) -> str:
    """The status column: what is wrong in a word or two (the tooltip has the whole message)."""
    parts = []
    if case.open_error:
        parts.append("cannot open" if case.open_error.startswith("cannot open") else "warnings")
    if case.errors:
        parts.append(f"{len(case.errors)} unreadable")
    if case.missing:
        parts.append(f"{len(case.missing)} missing")
    if not case.files and not case.missing:
        parts.append("no image")
    return ", ".join(parts)


def _is_ours(layer) -> bool:
    md = layer.metadata
    return any(
        k in md for k in (keys.IMAGE, keys.ROI, keys.OVERLAY, keys.OVERLAY_OF, keys.PLACEHOLDER, keys.SR_DOCUMENT)
    )


def _preset_key(label: str) -> str:
    """What identifies a window preset across images: "Header 1" of "Header 1: 40/400 BRAIN", "Lung" of
    "Lung -600/1500", else the label."""
    if not label:
        return ""
    if ":" in label:
        return label.split(":", 1)[0].strip()
    words = []
    for w in label.split():
        if any(ch.isdigit() for ch in w) or "/" in w:
            break
        words.append(w)
    return " ".join(words) or label


def forget_decoded() -> None:
    """Drop every decoded frame: napari-dcm's frame cache and napari's dask cache (napari's
    opportunistic cache of computed chunks, ``napari.utils.resize_dask_cache``)."""
    from napari.utils import resize_dask_cache

    from ..dicom.cache import CACHE

    CACHE.clear()
    resize_dask_cache().cache.clear()


def cases_dock(viewer, source=None, **options) -> CaseDock:
    """Add (or return) the case navigator of ``viewer``; with ``source``, index it and open its first case."""
    dock = state.dock(viewer, DOCK)
    if dock is None:
        dock = CaseDock(viewer)
        viewer.window.add_dock_widget(dock, name="Cases", area="right")
    if source is not None:
        dock.load(source, **options)
    return dock
