"""The napari-dcm dock: DICOM tags, windows (presets, W/L mouse mode), mammography layouts.

It follows the active layer (a napari-dcm image, or one of its ROI/overlay
layers) and the current frame.
"""

from __future__ import annotations

import collections
import weakref

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import _notify
from .._roi import META
from ..dicom import tags as tagmod
from ..dicom import voi
from . import layout as layoutmod

_docks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------
# helpers over napari-dcm layers


def image_of(viewer, layer):
    """The napari-dcm image a layer belongs to (itself, or the image of its ROI/overlay layer)."""
    if layer is None:
        return None
    md = layer.metadata
    if layer._type_string == "image" and "napari_dcm" in md:
        return layer
    name = md.get(META, {}).get("image") or md.get("napari_dcm_overlay_of")
    if name and name in viewer.layers:
        return viewer.layers[name]
    return None


def current_frame(viewer, image) -> int:
    """Display frame of ``image`` under the dims slider (0 for 2D)."""
    nd = image.data.ndim - int(image.rgb)
    if nd < 3:
        return 0
    step = viewer.dims.current_step
    axis = len(step) - nd  # the image's frame axis in world dims
    return int(np.clip(step[axis], 0, image.data.shape[0] - 1))


def frame_windows(image, d: int) -> list[dict]:
    md = image.metadata
    fw = md.get("frame_windows")
    if fw and d < len(fw):
        return fw[d]
    return md.get("windows", [])


def frame_array(image, d: int) -> np.ndarray:
    nd = image.data.ndim - int(image.rgb)
    return np.asarray(image.data[d] if nd >= 3 else image.data)


def apply_window(image, center: float, width: float, function: str = "LINEAR") -> tuple[float, float]:
    """Set an image's contrast limits (and colormap for SIGMOID) for a window in modality units."""
    from napari.utils.colormaps import Colormap

    f = (function or "LINEAR").upper()
    lo, hi = voi.window_limits(center, width, f)
    inverted = image.metadata.get("photometric") == "MONOCHROME1"
    if f == "SIGMOID":
        t, y = voi.sigmoid_ramp()
        g = 1 - y if inverted else y
        colors = np.column_stack([g, g, g, np.ones_like(g)])
        image.colormap = Colormap(colors=colors, controls=t, name=f"sigmoid{'_r' if inverted else ''}")
    elif image.colormap.name.startswith("sigmoid"):
        image.colormap = "gray_r" if inverted else "gray"
    rng = list(image.contrast_limits_range)
    if lo < rng[0] or hi > rng[1]:
        image.contrast_limits_range = (min(lo, rng[0]), max(hi, rng[1]))
    image.contrast_limits = (lo, hi)
    return lo, hi


def presets(viewer, image) -> list[tuple[str, float, float, str]]:
    """(label, center, width, function) of the presets for the current frame."""
    d = current_frame(viewer, image)
    out = []
    wins = frame_windows(image, d)
    for i, w in enumerate(wins):
        label = f"Header {i + 1}: {w['center']:g}/{w['width']:g}"
        if w.get("explanation"):
            label += f" {w['explanation']}"
        out.append((label, float(w["center"]), float(w["width"]), w.get("function") or "LINEAR"))
    if wins:
        w = wins[0]
        out.append(("Default", float(w["center"]), float(w["width"]), w.get("function") or "LINEAR"))
    else:
        lo, hi = voi.percentile_limits(frame_array(image, d), 1.0, 99.0)
        out.append(("Default", (lo + hi) / 2, hi - lo, "LINEAR_EXACT"))
    lo, hi = voi.full_dynamic(frame_array(image, d))
    out.append(("Full dynamic", (lo + hi) / 2, hi - lo, "LINEAR_EXACT"))
    if str(image.metadata.get("modality", "")).upper() == "CT":
        out += [(name, float(c), float(w), "LINEAR") for name, c, w in voi.CT_PRESETS]
    return out


# --------------------------------------------------------------------------
# window/level mouse mode


class WindowLevelMode:
    """Drag on the canvas: horizontal changes the width, vertical the center; a live "WC / WW" readout."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.active = False
        self._layers: list = []

    def toggle(self):
        self.set_active(not self.active)

    def set_active(self, on: bool):
        if on == self.active:
            return
        self.active = on
        if on:
            self._install()
        else:
            self._uninstall()

    def _install(self):
        for img in layoutmod.dicom_images(self.viewer):
            if self._drag not in img.mouse_drag_callbacks:
                img.mouse_drag_callbacks.append(self._drag)
                img._napari_dcm_pan = getattr(img, "mouse_pan", True)
                img.mouse_pan = False
                self._layers.append(weakref.ref(img))
        self.viewer.text_overlay.visible = True
        self._show(image_of(self.viewer, self.viewer.layers.selection.active))

    def _uninstall(self):
        for ref in self._layers:
            img = ref()
            if img is not None and self._drag in img.mouse_drag_callbacks:
                img.mouse_drag_callbacks.remove(self._drag)
                img.mouse_pan = getattr(img, "_napari_dcm_pan", True)
        self._layers = []
        self.viewer.text_overlay.visible = False

    def _show(self, image):
        if image is None:
            self.viewer.text_overlay.text = "W/L"
            return
        lo, hi = image.contrast_limits
        self.viewer.text_overlay.text = f"WC {(lo + hi) / 2:.6g} / WW {hi - lo:.6g}"

    def _drag(self, layer, event):
        if not self.active:
            return
        image = layer
        lo, hi = image.contrast_limits
        c0, w0 = (lo + hi) / 2, hi - lo
        rng = image.contrast_limits_range
        per_px = max(float(rng[1] - rng[0]), 1e-6) / 500.0
        x0, y0 = event.pos[0], event.pos[1]
        yield
        while event.type == "mouse_move":
            dx, dy = event.pos[0] - x0, event.pos[1] - y0
            w = max(w0 + dx * per_px * 2, per_px)
            c = c0 - dy * per_px
            image.contrast_limits = (c - w / 2, c + w / 2)
            self._show(image)
            yield


# --------------------------------------------------------------------------
# the dock


class DicomDock(QWidget):
    """Tags, windows and mammography layouts of the active DICOM layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        _docks[napari_viewer] = self
        self.wl = WindowLevelMode(napari_viewer)
        self._ds_cache: collections.OrderedDict = collections.OrderedDict()
        self._shown = None  # (path, stored frame) in the tag tree

        self.tabs = QTabWidget()
        lay = QVBoxLayout(self)
        self.title = QLabel("No DICOM layer selected")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        lay.addWidget(self.tabs)
        self._build_tags()
        self._build_window()
        self._build_layout()

        from .sr_dock import bind_overlay_keys

        bind_overlay_keys(napari_viewer)
        napari_viewer.layers.selection.events.active.connect(self._on_active)
        napari_viewer.dims.events.current_step.connect(self._on_step)
        try:
            napari_viewer.bind_key("w", lambda v: self.wl.toggle() or self._sync_wl_button(), overwrite=True)
        except Exception:  # an existing binding that cannot be replaced: the button still works
            pass
        self.refresh()

    # ---- tags
    def _build_tags(self):
        w = QWidget()
        v = QVBoxLayout(w)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter: tag, keyword or value")
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tag", "VR", "Keyword", "Value"])
        self.tree.setUniformRowHeights(True)
        hdr = self.tree.header()
        fm = self.tree.fontMetrics()
        hdr.resizeSection(0, fm.horizontalAdvance("(0000,0000)  ") + 30)
        hdr.resizeSection(1, fm.horizontalAdvance("VRVR") + 8)
        hdr.resizeSection(2, fm.horizontalAdvance("ReferencedImageSequence"))
        self.tree.itemExpanded.connect(self._expand)
        self.tree.itemClicked.connect(self._copy)
        self.filter.textChanged.connect(self._apply_filter)
        v.addWidget(self.filter)
        v.addWidget(self.tree)
        self.tabs.addTab(w, "Tags")

    def _dataset(self, path):
        from ..dicom.series import DATASETS

        ds = self._ds_cache.get(path) or DATASETS.get(path)  # DICOMweb: the WADO-RS metadata
        if ds is None:
            ds = tagmod.read_header(path)
            self._ds_cache[path] = ds
            while len(self._ds_cache) > 4:
                self._ds_cache.popitem(last=False)
        return ds

    def show_tags(self, path: str, stored_frame: int = 0):
        try:
            ds = self._dataset(path)
        except Exception as exc:  # the header is unreadable now (moved, deleted): say so
            self.tree.clear()
            self.tree.addTopLevelItem(QTreeWidgetItem(["", "", "error", f"{type(exc).__name__}: {exc}"]))
            self._shown = (path, stored_frame)
            return
        if "PerFrameFunctionalGroupsSequence" in ds:
            ds = tagmod.frame_view(ds, stored_frame)
        self.fill_tree(ds)
        self._shown = (path, stored_frame)

    def fill_tree(self, ds):
        rows = tagmod.dataset_rows(ds)
        self.tree.setUpdatesEnabled(False)
        try:
            self.tree.clear()
            self.tree.addTopLevelItems([self._item(r) for r in rows])
        finally:
            self.tree.setUpdatesEnabled(True)
        if self.filter.text():
            self._apply_filter(self.filter.text())

    def _item(self, row: tagmod.TagRow) -> QTreeWidgetItem:
        it = QTreeWidgetItem([row.tag, row.vr, row.keyword, row.value])
        it.setData(0, Qt.ItemDataRole.UserRole, row)
        if row.is_sequence and row.n_items:
            it.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
        return it

    def _expand(self, item: QTreeWidgetItem):
        row = item.data(0, Qt.ItemDataRole.UserRole)
        if item.childCount() or row is None:
            return
        if isinstance(row, tagmod.TagRow) and row.is_sequence:
            for i, sub in enumerate(row.element.value):
                child = QTreeWidgetItem([f"Item {i + 1}", "", "", f"{len(sub)} element(s)"])
                child.setData(0, Qt.ItemDataRole.UserRole, ("item", sub))
                child.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
                item.addChild(child)
        elif isinstance(row, tuple) and row[0] == "item":
            item.addChildren([self._item(tagmod.element_row(row[1], el)) for el in row[1]])

    def _copy(self, item: QTreeWidgetItem, column: int = 3):
        row = item.data(0, Qt.ItemDataRole.UserRole)
        if isinstance(row, tagmod.TagRow):
            QApplication.clipboard().setText(row.full_value)

    def _apply_filter(self, text: str):
        for i in range(self.tree.topLevelItemCount()):
            it = self.tree.topLevelItem(i)
            row = it.data(0, Qt.ItemDataRole.UserRole)
            it.setHidden(bool(text) and not tagmod.matches(row, text))

    # ---- window
    def _build_window(self):
        w = QWidget()
        f = QFormLayout(w)
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
        self.tabs.addTab(w, "Window")
        self._presets: list = []

    def _sync_wl_button(self):
        self.wl_button.blockSignals(True)
        self.wl_button.setChecked(self.wl.active)
        self.wl_button.blockSignals(False)

    def current_image(self):
        return image_of(self.viewer, self.viewer.layers.selection.active) or (layoutmod.dicom_images(self.viewer) or [None])[-1]

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

    # ---- layout
    def _build_layout(self):
        w = QWidget()
        v = QVBoxLayout(w)
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
        v.addWidget(QLabel("All cells share one camera and one frame slider: a DBT scrolls\nwhile 2D views beside it stay on their single frame."))
        self.layout_btn.clicked.connect(lambda: self.hang(None if self.layout_combo.currentText() == "auto" else self.layout_combo.currentText()))
        self.single_btn.clicked.connect(lambda: layoutmod.single_view(self.viewer))
        self.move_btn.clicked.connect(self._apply_cells)
        self.tabs.addTab(w, "Layout")
        self._layout = None

    def hang(self, layout: str | None = None, cells: dict | None = None):
        try:
            self._layout = layoutmod.apply_layout(self.viewer, layout, cells)
        except ValueError as exc:
            _notify.warning(f"napari-dcm: {exc}")
            return None
        self._fill_cells()
        return self._layout

    def _fill_cells(self):
        lay = self._layout
        if lay is None:
            return
        imgs = {l.metadata["paths"][0]: l for l in layoutmod.dicom_images(self.viewer)}
        self.cells.setRowCount(len(lay.placements))
        for i, p in enumerate(lay.placements):
            img = imgs.get(p.path)
            self.cells.setItem(i, 0, QTableWidgetItem(img.name if img else p.path))
            self.cells.setItem(i, 1, QTableWidgetItem(f"{p.laterality or '?'}{p.view or '?'}" + (" (flipped)" if p.flip_h or p.flip_v else "")))
            sb = QSpinBox()
            sb.setRange(0, 7)
            sb.setValue(p.cell)
            self.cells.setCellWidget(i, 2, sb)

    def _apply_cells(self):
        if self._layout is None:
            return
        cells = {}
        for i in range(self.cells.rowCount()):
            cells[self.cells.item(i, 0).text()] = self.cells.cellWidget(i, 2).value()
        self.hang(self._layout.name, cells)

    # ---- following the viewer
    def _on_active(self, event=None):
        self.refresh()

    def _on_step(self, event=None):
        img = self.current_image()
        if img is None:
            return
        d = current_frame(self.viewer, img)
        key = (img.metadata["frame_paths"][d], img.metadata["display_to_stored"][d])
        if key != self._shown and self.tabs.currentIndex() == 0:
            self.show_tags(*key)

    def refresh(self):
        img = self.current_image()
        if img is None:
            self.title.setText("No DICOM layer selected")
            return
        self.title.setText(img.name)
        d = current_frame(self.viewer, img)
        self.show_tags(img.metadata["frame_paths"][d], img.metadata["display_to_stored"][d])
        self.refresh_presets()


def dicom_dock(viewer) -> DicomDock:
    dock = _docks.get(viewer)
    if dock is None:
        dock = DicomDock(viewer)
        viewer.window.add_dock_widget(dock, name="DICOM", area="right")
    return dock
