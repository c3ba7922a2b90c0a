"""The dock's Layout tab: hang mammograms by slot, assign images to cells, back to one view.

* layout (auto, 1x2, 1x3, 2x2, 2x4) and, for 1x2 / 1x3, the view (CC, MLO);
* the patient that hangs (auto: the one with the most standard views in
  their newest study; the others' images are off the grid);
* the cells: slot, the image hanging there (a menu of every image: choose one
  to assign it; "(empty)" empties the cell) and notes (flips, contradictory
  tags, nominal size);
* the off-grid images with the reason each is not on the grid (spot
  compression, prior, second RCC, unknown view ...); drag one onto a cell, or
  choose it in the cell's menu.

The tab follows the viewer: a hanging made elsewhere (the case navigator, a
script) fills it, going back to one view (from anywhere) empties it.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import _notify
from ..dicom import mammo
from . import hanging

EMPTY = "(empty)"
AUTO_PATIENT = "auto"
NO_ID = "(no PatientID)"
NAME_ROLE = int(Qt.ItemDataRole.UserRole)


class CellTable(QTableWidget):
    """The cells; accepts an off-grid image dropped on a row."""

    def __init__(self, tab: LayoutTab):
        super().__init__(0, 4)
        self.tab = tab
        self.setHorizontalHeaderLabels(["Cell", "Slot", "Image", "Notes"])
        self.horizontalHeader().setStretchLastSection(True)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.verticalHeader().setVisible(False)

    def dragEnterEvent(self, event):
        event.acceptProposedAction() if event.source() is self.tab.off_grid else event.ignore()

    def dragMoveEvent(self, event):
        event.acceptProposedAction() if event.source() is self.tab.off_grid else event.ignore()

    def dropEvent(self, event):
        item = self.tab.off_grid.currentItem()
        row = self.rowAt(int(event.position().y()) if hasattr(event, "position") else event.pos().y())
        if item is None or row < 0:
            event.ignore()
            return
        event.acceptProposedAction()
        self.tab.assign(item.data(NAME_ROLE), row)


class LayoutTab(QWidget):
    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        v = QVBoxLayout(self)
        row = QHBoxLayout()
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(["auto", "1x2", "1x3", "2x2", "2x4"])
        self.view_combo = QComboBox()
        self.view_combo.addItems(["CC", "MLO"])
        self.view_combo.setToolTip("the view of a 1x2 or 1x3 (R and L of one view)")
        self.layout_btn = QPushButton("Hang")
        self.single_btn = QPushButton("Single view")
        row.addWidget(self.layout_combo)
        row.addWidget(self.view_combo)
        row.addWidget(self.layout_btn)
        row.addWidget(self.single_btn)
        v.addLayout(row)
        prow = QHBoxLayout()
        prow.addWidget(QLabel("Patient:"))
        self.patient_combo = QComboBox()
        self.patient_combo.addItem(AUTO_PATIENT, None)
        self.patient_combo.setToolTip(
            "the patient whose current and prior studies hang (auto: the most standard views in the newest study);\n"
            "the other patients' images are off the grid"
        )
        # a long patient ID must not widen the dock (and narrow the canvas): elide it
        self.patient_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.patient_combo.setMinimumContentsLength(14)
        self.patient_combo.activated.connect(self._patient_chosen)
        prow.addWidget(self.patient_combo, 1)
        v.addLayout(prow)
        self.cells = CellTable(self)
        v.addWidget(self.cells)
        off_label = QLabel("Off the grid (drag onto a cell, or choose in a cell's menu):")
        off_label.setWordWrap(True)  # long lines wrap: the dock stays narrow, the canvas wide
        v.addWidget(off_label)
        self.off_grid = QListWidget()
        self.off_grid.setDragEnabled(True)
        self.off_grid.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        v.addWidget(self.off_grid)
        self.note = QLabel(
            "All cells share one camera and one frame slider: a DBT scrolls "
            "while 2D views beside it stay on their single frame."
        )
        self.note.setWordWrap(True)
        v.addWidget(self.note)
        self.layout_combo.currentTextChanged.connect(self._sync_view_combo)
        self.layout_btn.clicked.connect(self._hang_clicked)
        self.single_btn.clicked.connect(self.single_view)
        self.current_layout: mammo.Layout | None = None
        self._assign: dict[str, int | None] = {}
        self._filling = False
        self._patient: str | None = None
        self._hanging_now = False
        self._sync_view_combo()
        viewer.canvas.grid.events.enabled.connect(self._grid_toggled)

    # ---- actions
    def _sync_view_combo(self, *_):
        self.view_combo.setEnabled(self.layout_combo.currentText() in ("1x2", "1x3"))

    def _hang_clicked(self):
        choice = self.layout_combo.currentText()
        layout = None if choice == "auto" else choice
        view = self.view_combo.currentText() if choice in ("1x2", "1x3") else None
        self._assign = {}
        self.hang(layout, view=view)

    def _patient_chosen(self, *_):
        self._patient = self.patient_combo.currentData()
        self._assign = {}
        lay = self.current_layout
        if lay is not None:
            self.hang(None if self.layout_combo.currentText() == "auto" else lay.name, view=lay.view)

    def hang(
        self,
        layout: str | None = None,
        cells: dict | None = None,
        view: str | None = None,
        patient: str | None = None,
    ):
        """Hang (``cells``: {image name: cell or None}, kept for later re-hangs of this layout;
        ``patient``: a PatientID, kept too; None: the one chosen in the tab, or auto)."""
        if layout == "1x1":
            self.single_view()
            return mammo.Layout("1x1", (1, 1))
        if patient is not None:
            self._patient = patient
            self._assign = {}
        for name, cell in (cells or {}).items():
            self._assign.pop(name, None)  # the latest assignment is applied last
            self._assign[name] = cell
        self._hanging_now = True
        try:
            self.current_layout = hanging.apply_layout(
                self.viewer, layout, self._assign or None, view, patient=self._patient
            )
        except ValueError as exc:
            _notify.warning(f"napari-dcm: {exc}")
            return None
        finally:
            self._hanging_now = False
        if self.current_layout.name in ("1x2", "1x3") and self.current_layout.view:
            self.view_combo.setCurrentText(self.current_layout.view)
        self._fill()
        return self.current_layout

    def assign(self, image_name: str | None, cell: int, *, clear: bool = False):
        """Put an image into a cell (None with ``clear``: empty the cell) and re-hang."""
        lay = self.current_layout
        if lay is None:
            return None
        if clear or image_name is None:
            occupant = self._image_in(cell)
            if occupant is None:
                return lay
            return self.hang(lay.name, {occupant: None}, lay.view)
        return self.hang(lay.name, {image_name: cell}, lay.view)

    def single_view(self):
        hanging.single_view(self.viewer)
        self._clear()

    def _clear(self):
        self.current_layout = None
        self._assign = {}
        self.cells.setRowCount(0)
        self.off_grid.clear()

    def _grid_toggled(self, event=None):
        """Follow hangings made or undone elsewhere (case navigator, scripts, CLI)."""
        if self._hanging_now:  # hang() fills the tables when it is done
            return
        hang = hanging.current(self.viewer)
        if hang is None:
            if self.current_layout is not None:
                self._clear()
            return
        if self.current_layout is not hang.layout:
            self.current_layout = hang.layout
            self._fill()

    # ---- the tables
    def _image_in(self, cell: int) -> str | None:
        hang = hanging.current(self.viewer)
        img = hang.cells.get(cell) if hang is not None else None
        return img.name if img is not None else None

    def _fill(self):
        lay = self.current_layout
        hang = hanging.current(self.viewer)
        if lay is None or hang is None:
            return
        self._filling = True
        try:
            names = {p.path: hanging.layer_of(self.viewer, lay, p.path) for p in lay.placements}
            labels = {
                p.path: p.label + (f" {mammo.fmt_date(p.study_date)}" if p.study_date else "") for p in lay.placements
            }
            seen: dict[str, int] = {}
            for p in lay.placements:  # two images with one label: number them
                seen[labels[p.path]] = seen.get(labels[p.path], 0) + 1
                if seen[labels[p.path]] > 1:
                    labels[p.path] += f" ({seen[labels[p.path]]})"
            self._fill_patients(lay)
            self.cells.setRowCount(len(lay.slots))
            for i, s in enumerate(lay.slots):
                self.cells.setItem(i, 0, QTableWidgetItem(str(s.cell)))
                self.cells.setItem(i, 1, QTableWidgetItem(s.label))
                combo = QComboBox()
                combo.addItem(EMPTY, None)
                current = 0
                for p in lay.placements:
                    layer = names[p.path]
                    if layer is None:
                        continue
                    combo.addItem(labels[p.path], layer.name)
                    combo.setItemData(combo.count() - 1, layer.name, Qt.ItemDataRole.ToolTipRole)
                    if s.path == p.path:
                        current = combo.count() - 1
                combo.setCurrentIndex(current)
                combo.currentIndexChanged.connect(lambda idx, cell=s.cell, cb=combo: self._combo_changed(cell, cb))
                self.cells.setCellWidget(i, 2, combo)
                notes = []
                if s.path is None:
                    notes.append("missing")
                else:
                    p = lay.placement(s.path)
                    if p.flip_h or p.flip_v:
                        notes.append("flipped " + "+".join(k for k, f in (("H", p.flip_h), ("V", p.flip_v)) if f))
                    notes += [f"⚠ {c}" for c in p.conflicts]
                    layer = names[p.path]
                    if layer is not None and layer.name in hang.nominal:
                        notes.append(hanging.NOMINAL_NOTE)
                self.cells.setItem(i, 3, QTableWidgetItem("; ".join(notes)))
            self.off_grid.clear()
            for p in lay.off_grid:
                layer = names[p.path]
                if layer is None:
                    continue
                text = f"{labels[p.path]} — {p.reason}"
                if p.conflicts:
                    text += " ⚠ " + "; ".join(p.conflicts)
                item = QListWidgetItem(text)
                item.setData(NAME_ROLE, layer.name)
                item.setToolTip(layer.name)
                self.off_grid.addItem(item)
            self.cells.resizeColumnsToContents()
        finally:
            self._filling = False

    def _fill_patients(self, lay: mammo.Layout) -> None:
        counts: dict[str, int] = {}
        for p in lay.placements:
            counts[p.patient] = counts.get(p.patient, 0) + 1
        self.patient_combo.clear()
        auto = AUTO_PATIENT + (f": {lay.patients[0] or NO_ID}" if self._patient is None and lay.patients else "")
        self.patient_combo.addItem(auto, None)
        for pid in sorted(counts):
            self.patient_combo.addItem(f"{pid or NO_ID} ({counts[pid]} image(s))", pid)
        idx = self.patient_combo.findData(self._patient) if self._patient is not None else 0
        self.patient_combo.setCurrentIndex(max(0, idx))
        self.patient_combo.setEnabled(len(counts) > 1 or self._patient is not None)

    def _combo_changed(self, cell: int, combo: QComboBox):
        if self._filling:
            return
        name = combo.currentData()
        self.assign(name, cell, clear=name is None)
