"""The dock's Window tab: presets (header, CT, full dynamic), numeric entry, the W/L mouse mode.

The tab follows the image: its center/width boxes and the preset shown change
with the slice (Enhanced objects have per-frame windows), with a W/L drag and
with napari's own contrast-limits slider.
"""

from __future__ import annotations

import contextlib
import weakref

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from .window import apply_window, current_frame, frame_windows, presets, window_of, wl_mode


class WindowTab(QWidget):
    def __init__(self, viewer, current_image, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.current_image = current_image  # callable: the image the dock follows
        self.wl = wl_mode(viewer)
        f = QFormLayout(self)
        self.preset = QComboBox()
        self.preset.setPlaceholderText("custom")
        self.center = QDoubleSpinBox()
        self.width = QDoubleSpinBox()
        for sb in (self.center, self.width):
            sb.setRange(-1e9, 1e9)
            sb.setDecimals(2)
            sb.setKeyboardTracking(False)
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
        self._image_ref = None  # the image whose contrast limits the boxes follow
        self._frame_key = None  # (image id, that frame's header windows) the presets were made for
        # slice changes are coalesced: the presets of a data-derived window need the frame's values
        self._step_timer = QTimer(self)
        self._step_timer.setSingleShot(True)
        self._step_timer.setInterval(80)
        self._step_timer.timeout.connect(self.follow_frame)

    def _sync_wl_button(self, on: bool):
        self.wl_button.blockSignals(True)
        self.wl_button.setChecked(on)
        self.wl_button.blockSignals(False)

    # ---- following the image
    def _follow(self, img):
        old = self._image_ref() if self._image_ref is not None else None
        if old is img:
            return
        if old is not None:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                old.events.contrast_limits.disconnect(self._on_limits)
        self._image_ref = weakref.ref(img) if img is not None else None
        if img is not None:
            img.events.contrast_limits.connect(self._on_limits)

    def _on_limits(self, event=None):
        self.show_numbers()

    def on_step(self):
        """The slice changed: refresh soon (coalesced while scrolling)."""
        self._step_timer.start()

    def follow_frame(self):
        img = self.current_image()
        if img is None:
            return
        d = current_frame(self.viewer, img)
        key = (id(img), repr(frame_windows(img, d)))
        data_derived = not frame_windows(img, d)  # Default / Full dynamic come from the frame's values
        if key != self._frame_key or (data_derived and self.isVisible()):
            self.refresh_presets()
        else:
            self.show_numbers()

    def show_numbers(self):
        """Center/width boxes and the preset shown, from the window the image shows now."""
        img = self.current_image()
        if img is None:
            return
        c, w, _ = window_of(self.viewer, img)
        for sb, v in ((self.center, c), (self.width, w)):
            sb.blockSignals(True)
            sb.setValue(v)
            sb.blockSignals(False)
        match = -1
        for i, (_, pc, pw, _fn) in enumerate(self._presets):
            if abs(pc - c) <= 1e-6 * max(1, abs(c)) and abs(pw - w) <= 1e-6 * max(1, abs(w)):
                match = i
                break
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(match)
        self.preset.blockSignals(False)
        if self.wl.active:
            self.wl._show(img)

    def refresh_presets(self):
        img = self.current_image()
        self._follow(img)
        self.preset.blockSignals(True)
        self.preset.clear()
        self._presets = presets(self.viewer, img) if img is not None else []
        self.preset.addItems([p[0] for p in self._presets])
        self.preset.blockSignals(False)
        if img is not None:
            d = current_frame(self.viewer, img)
            self._frame_key = (id(img), repr(frame_windows(img, d)))
            self.show_numbers()

    # ---- applying
    def preset_index(self, name: str) -> int:
        """Index of the preset labelled ``name``, or whose label starts with it ("Lung" for "Lung -600/1500")."""
        labels = [p[0] for p in self._presets]
        if name in labels:
            return labels.index(name)
        for i, label in enumerate(labels):
            if label.startswith((name + " ", name + ":")):
                return i
        raise ValueError(f"no preset {name!r} (presets: {labels})")

    def choose_preset(self, label_or_index) -> tuple[float, float]:
        idx = label_or_index if isinstance(label_or_index, int) else self.preset_index(label_or_index)
        _, c, w, fn = self._presets[idx]
        img = self.current_image()
        lo, hi = apply_window(img, c, w, fn)
        self.show_numbers()
        return lo, hi

    def _preset_chosen(self, idx: int):
        if 0 <= idx < len(self._presets):
            self.choose_preset(idx)

    def _apply_numbers(self):
        img = self.current_image()
        if img is not None:
            apply_window(img, self.center.value(), self.width.value(), "LINEAR_EXACT")
            self.show_numbers()
