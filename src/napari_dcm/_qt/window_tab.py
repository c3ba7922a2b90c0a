"""The dock's Window tab: presets (header, CT, full dynamic), numeric entry, the W/L mouse mode."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from .window import apply_window, presets, wl_mode


class WindowTab(QWidget):
    def __init__(self, viewer, current_image, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.current_image = current_image  # callable: the image the dock follows
        self.wl = wl_mode(viewer)
        f = QFormLayout(self)
        self.preset = QComboBox()
        self.center = QDoubleSpinBox()
        self.width = QDoubleSpinBox()
        for sb in (self.center, self.width):
            sb.setRange(-1e9, 1e9)
            sb.setDecimals(2)
        self.width.setMinimum(1e-6)
        self.apply_wc = QPushButton("Apply center/width")
        self.wl_button = QPushButton("W/L mouse mode (W)")
        self.wl_button.setCheckable(True)
        f.addRow("Preset", self.preset)
        row = QHBoxLayout()
        row.addWidget(QLabel("C"))
        row.addWidget(self.center)
        row.addWidget(QLabel("W"))
        row.addWidget(self.width)
        f.addRow(row)
        f.addRow(self.apply_wc)
        f.addRow(self.wl_button)
        self.preset.activated.connect(self._preset_chosen)
        self.apply_wc.clicked.connect(self._apply_numbers)
        self.wl_button.toggled.connect(self.wl.set_active)
        self.wl.listeners.append(self._sync_wl_button)
        self._presets: list = []

    def _sync_wl_button(self, on: bool):
        self.wl_button.blockSignals(True)
        self.wl_button.setChecked(on)
        self.wl_button.blockSignals(False)

    def refresh_presets(self):
        img = self.current_image()
        self.preset.clear()
        self._presets = presets(self.viewer, img) if img is not None else []
        self.preset.addItems([p[0] for p in self._presets])
        if img is not None:
            lo, hi = img.contrast_limits
            self.center.setValue((lo + hi) / 2)
            self.width.setValue(hi - lo)

    def choose_preset(self, label_or_index) -> tuple[float, float]:
        idx = label_or_index if isinstance(label_or_index, int) else [p[0] for p in self._presets].index(label_or_index)
        _, c, w, fn = self._presets[idx]
        img = self.current_image()
        lo, hi = apply_window(img, c, w, fn)
        self.center.setValue((lo + hi) / 2)
        self.width.setValue(hi - lo)
        return lo, hi

    def _preset_chosen(self, idx: int):
        if 0 <= idx < len(self._presets):
            self.choose_preset(idx)

    def _apply_numbers(self):
        img = self.current_image()
        if img is not None:
            apply_window(img, self.center.value(), self.width.value(), "LINEAR_EXACT")
