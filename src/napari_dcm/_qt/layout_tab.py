"""The dock's Layout tab: hang mammograms in a grid, move images between cells, back to one view."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import _notify
from ..layers import keys
from . import hanging
from .viewer import dicom_images


class LayoutTab(QWidget):
    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        v = QVBoxLayout(self)
        row = QHBoxLayout()
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(["auto", "1x2", "1x3", "2x2", "2x4"])
        self.layout_btn = QPushButton("Hang")
        self.single_btn = QPushButton("Single view")
        row.addWidget(self.layout_combo)
        row.addWidget(self.layout_btn)
        row.addWidget(self.single_btn)
        v.addLayout(row)
        self.cells = QTableWidget(0, 3)
        self.cells.setHorizontalHeaderLabels(["Image", "View", "Cell"])
        v.addWidget(self.cells)
        self.move_btn = QPushButton("Apply cells")
        v.addWidget(self.move_btn)
        v.addWidget(
            QLabel(
                "All cells share one camera and one frame slider: a DBT scrolls\nwhile 2D views beside it stay on their single frame."
            )
        )
        self.layout_btn.clicked.connect(
            lambda: self.hang(None if self.layout_combo.currentText() == "auto" else self.layout_combo.currentText())
        )
        self.single_btn.clicked.connect(lambda: hanging.single_view(self.viewer))
        self.move_btn.clicked.connect(self._apply_cells)
        self.current_layout = None

    def hang(self, layout: str | None = None, cells: dict | None = None):
        try:
            self.current_layout = hanging.apply_layout(self.viewer, layout, cells)
        except ValueError as exc:
            _notify.warning(f"napari-dcm: {exc}")
            return None
        self._fill_cells()
        return self.current_layout

    def _fill_cells(self):
        lay = self.current_layout
        if lay is None:
            return
        imgs = {layer.metadata[keys.PATHS][0]: layer for layer in dicom_images(self.viewer)}
        self.cells.setRowCount(len(lay.placements))
        for i, p in enumerate(lay.placements):
            img = imgs.get(p.path)
            self.cells.setItem(i, 0, QTableWidgetItem(img.name if img else p.path))
            self.cells.setItem(
                i,
                1,
                QTableWidgetItem(
                    f"{p.laterality or '?'}{p.view or '?'}" + (" (flipped)" if p.flip_h or p.flip_v else "")
                ),
            )
            sb = QSpinBox()
            sb.setRange(0, 7)
            sb.setValue(p.cell)
            self.cells.setCellWidget(i, 2, sb)

    def _apply_cells(self):
        if self.current_layout is None:
            return
        cells = {}
        for i in range(self.cells.rowCount()):
            cells[self.cells.item(i, 0).text()] = self.cells.cellWidget(i, 2).value()
        self.hang(self.current_layout.name, cells)
