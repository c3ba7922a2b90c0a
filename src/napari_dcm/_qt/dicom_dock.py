"""The napari-dcm dock: DICOM tags, windows (presets, W/L mouse mode), mammography layouts,
and the files a read skipped.

It follows the active layer (a napari-dcm image, or one of its ROI/overlay
layers) and the current frame.  Each tab is its own widget
(:mod:`.tags_tab`, :mod:`.window_tab`, :mod:`.layout_tab`, :mod:`.skipped_tab`).
"""

from __future__ import annotations

from qtpy.QtWidgets import QLabel, QTabWidget, QVBoxLayout, QWidget

from ..layers import keys
from . import keys as keymod
from . import state
from .layout_tab import LayoutTab
from .skipped_tab import TITLE as SKIPPED
from .skipped_tab import SkippedTab
from .tags_tab import TagsTab
from .viewer import dicom_images, fit_visible, image_of, keep_whole_view
from .window import current_frame
from .window_tab import WindowTab

DOCK = "dicom"


class DicomDock(QWidget):
    """Tags, windows and mammography layouts of the active DICOM layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        state.of(napari_viewer).docks[DOCK] = self
        self.tabs = QTabWidget()
        lay = QVBoxLayout(self)
        self.title = QLabel("No DICOM layer selected")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        lay.addWidget(self.tabs)
        self.tags_tab = TagsTab()
        self.window_tab = WindowTab(napari_viewer, self.current_image)
        self.layout_tab = LayoutTab(napari_viewer)
        self.tabs.addTab(self.tags_tab, "Tags")
        self.tabs.addTab(self.window_tab, "Window")
        self.tabs.addTab(self.layout_tab, "Layout")
        self.skipped_tab = SkippedTab(napari_viewer)
        self.tabs.addTab(self.skipped_tab, SKIPPED)
        self.refresh_skipped()
        # the parts tests and scripts drive directly
        self.tree, self.filter = self.tags_tab.tree, self.tags_tab.filter
        self.preset, self.center, self.width = self.window_tab.preset, self.window_tab.center, self.window_tab.width
        self.wl, self.wl_button = self.window_tab.wl, self.window_tab.wl_button
        self.cells = self.layout_tab.cells

        keymod.install(napari_viewer)
        napari_viewer.layers.selection.events.active.connect(self._on_active)
        napari_viewer.dims.events.current_step.connect(self._on_step)
        self.tabs.currentChanged.connect(self._on_tab)
        self.refresh()
        # the dock takes its share of the window: keep a whole first view whole
        keep_whole_view(napari_viewer)

    # ---- delegation to the tabs
    def show_tags(self, path: str, stored_frame: int = 0):
        self.tags_tab.show_tags(path, stored_frame)

    def fill_tree(self, ds):
        self.tags_tab.fill_tree(ds)

    @property
    def _shown(self):
        return self.tags_tab.shown

    def choose_preset(self, label_or_index):
        return self.window_tab.choose_preset(label_or_index)

    def refresh_presets(self):
        self.window_tab.refresh_presets()

    @property
    def _presets(self):
        return self.window_tab._presets

    def _apply_numbers(self):
        self.window_tab._apply_numbers()

    def hang(self, layout: str | None = None, cells: dict | None = None):
        lay = self.layout_tab.hang(layout, cells)
        if lay is not None and lay.name == "1x1":  # back to one view: fit the visible layers, keep them whole
            fit_visible(self.viewer)
            keep_whole_view(self.viewer)
        return lay  # a hanging fits itself, also when the canvas then changes size

    def refresh_skipped(self):
        """The Skipped tab's rows and its title ("Skipped (12)")."""
        self.skipped_tab.refresh()
        n = len(self.skipped_tab.rows())
        self.tabs.setTabText(self.tabs.indexOf(self.skipped_tab), f"{SKIPPED} ({n})" if n else SKIPPED)

    # ---- following the viewer
    def current_image(self):
        return image_of(self.viewer, self.viewer.layers.selection.active) or (dicom_images(self.viewer) or [None])[-1]

    def _on_active(self, event=None):
        self.refresh()

    def _frame_key(self, img) -> tuple[str, int]:
        d = current_frame(self.viewer, img)
        return img.metadata[keys.FRAME_PATHS][d], img.metadata[keys.DISPLAY_TO_STORED][d]

    def _on_step(self, event=None):
        """The slice changed: the visible tab follows now; a hidden Tags tab when it is shown again."""
        img = self.current_image()
        if img is None:
            return
        if self.tabs.currentWidget() is self.tags_tab:
            key = self._frame_key(img)
            if key != self._shown:
                self.show_tags(*key)
        self.window_tab.on_step()

    def _on_tab(self, index: int = 0):
        img = self.current_image()
        if img is None:
            return
        if self.tabs.currentWidget() is self.tags_tab:
            key = self._frame_key(img)
            if key != self._shown:  # stale: the slice changed while another tab was shown
                self.show_tags(*key)
        elif self.tabs.currentWidget() is self.window_tab:
            self.window_tab.refresh_presets()

    def refresh(self):
        img = self.current_image()
        if img is None:
            self.title.setText("No DICOM layer selected")
            return
        self.title.setText(img.name)
        d = current_frame(self.viewer, img)
        self.show_tags(img.metadata[keys.FRAME_PATHS][d], img.metadata[keys.DISPLAY_TO_STORED][d])
        self.refresh_presets()


def dicom_dock(viewer) -> DicomDock:
    dock = state.dock(viewer, DOCK)
    if dock is None:
        dock = DicomDock(viewer)
        viewer.window.add_dock_widget(dock, name="DICOM", area="right")
    return dock
