"""The viewing controls as a panel: tools, cine (play, FPS, loop / once / sweep), flips and rotations,
reset, help.  Part of the case navigator; also its own dock (Plugins > napari-dcm > Viewing)."""

from __future__ import annotations

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import keys as keymod
from . import state
from .viewing import CINE_MODES, TOOL_NAMES, TOOLS, viewing

TOOL_KEYS = {"wl": "W", "pan": "P", "zoom": "Z", "scroll": "S", "roi": "R"}
DOCK = "viewing_panel"


class ViewingPanel(QWidget):
    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.vw = viewing(napari_viewer)
        keymod.install(napari_viewer)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)

        # tools
        row = QHBoxLayout()
        self.tool_buttons: dict[str, QPushButton] = {}
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(True)
        for t in TOOLS:
            b = QPushButton(f"{TOOL_NAMES[t]} ({TOOL_KEYS[t]})")
            b.setCheckable(True)
            b.setToolTip(f"left-button drag: {TOOL_NAMES[t].lower()} (key {TOOL_KEYS[t]})")
            b.clicked.connect(lambda _=False, t=t: self.vw.set_tool(t))
            self.tool_group.addButton(b)
            self.tool_buttons[t] = b
            row.addWidget(b)
        lay.addLayout(row)

        # cine
        row = QHBoxLayout()
        self.play_btn = QPushButton("Play (Space)")
        self.play_btn.setCheckable(True)
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.0, 240.0)
        self.fps.setDecimals(1)
        self.fps.setSpecialValueText("file rate")
        self.fps.setSuffix(" fps")
        self.fps.setToolTip("0 = the file's own rate (Frame Time, Cine Rate or Recommended Display Frame Rate)")
        self.mode = QComboBox()
        self.mode.addItems(list(CINE_MODES))
        self.mode.setToolTip("loop; once (stop at the last frame); sweep (back and forth)")
        row.addWidget(self.play_btn)
        row.addWidget(self.fps)
        row.addWidget(self.mode)
        lay.addLayout(row)

        # view
        row = QHBoxLayout()
        self.flip_h_btn = QPushButton("Flip ↔")
        self.flip_v_btn = QPushButton("Flip ↕")
        self.rot_ccw_btn = QPushButton("⟲ 90°")
        self.rot_cw_btn = QPushButton("⟳ 90°")
        self.reset_btn = QPushButton("Reset (Home)")
        self.help_btn = QPushButton("Keys (H)")
        self.help_btn.setCheckable(True)
        for b in (self.flip_h_btn, self.flip_v_btn, self.rot_ccw_btn, self.rot_cw_btn, self.reset_btn, self.help_btn):
            row.addWidget(b)
        lay.addLayout(row)
        self.rate_label = QLabel("")
        self.view_label = QLabel("")
        row = QHBoxLayout()
        row.addWidget(self.rate_label, 1)
        row.addWidget(self.view_label)
        lay.addLayout(row)
        self.setMinimumHeight(self.sizeHint().height())  # never squeezed below its buttons

        self.play_btn.clicked.connect(lambda _=False: self.vw.cine.toggle())
        self.fps.valueChanged.connect(lambda v: self.vw.cine.set_fps(v or None))
        self.mode.currentTextChanged.connect(self.vw.cine.set_mode)
        self.flip_h_btn.clicked.connect(lambda: self.vw.view.flip_h())
        self.flip_v_btn.clicked.connect(lambda: self.vw.view.flip_v())
        self.rot_ccw_btn.clicked.connect(lambda: self.vw.view.rotate(clockwise=False))
        self.rot_cw_btn.clicked.connect(lambda: self.vw.view.rotate(clockwise=True))
        self.reset_btn.clicked.connect(lambda: self.vw.reset())
        self.help_btn.clicked.connect(lambda _=False: self._help())
        self._rate_timer = QTimer(self)  # the achieved rate, while playing
        self._rate_timer.setInterval(500)
        self._rate_timer.timeout.connect(self._show_rate)
        self.vw.listeners.append(self._on_tool)
        self.vw.cine.listeners.append(self._on_cine)
        self.vw.view.listeners.append(self._on_view)
        self._on_tool(self.vw.tool)
        self._on_cine()
        self._on_view()

    def _help(self):
        self.help_btn.setChecked(self.vw.toggle_help())

    def _on_tool(self, tool: str) -> None:
        b = self.tool_buttons.get(tool)
        if b is not None and not b.isChecked():
            b.setChecked(True)

    def _on_cine(self) -> None:
        c = self.vw.cine
        self.play_btn.blockSignals(True)
        self.play_btn.setChecked(c.playing)
        self.play_btn.setText("Pause (Space)" if c.playing else "Play (Space)")
        self.play_btn.blockSignals(False)
        if self.mode.currentText() != c.mode:
            self.mode.setCurrentText(c.mode)
        if c.playing and not self._rate_timer.isActive():
            self._rate_timer.start()
        elif not c.playing:
            self._rate_timer.stop()
        self._show_rate()

    def _show_rate(self) -> None:
        c = self.vw.cine
        r = c.rate
        src = f"file rate {r.fps:.3g} fps ({r.source})" if r is not None else ""
        if c.playing:
            got = c.achieved_fps()
            src += f"; playing at {c.effective_fps():.3g} fps" + (f", {got:.3g} shown/s" if got else "")
        self.rate_label.setText(src)

    def _on_view(self) -> None:
        self.view_label.setText(f"View: {self.vw.view.describe()}")


def viewing_panel(viewer) -> ViewingPanel:
    """Add (or return) the viewing controls as their own dock."""
    dock = state.dock(viewer, DOCK)
    if dock is None:
        dock = ViewingPanel(viewer)
        state.of(viewer).docks[DOCK] = dock
        viewer.window.add_dock_widget(dock, name="Viewing", area="right")
    return dock
