"""The EMBED ROI dock: import, draw, scope, export, recover.

Buttons "Import ROIs…" and "Export ROIs…", the ROI tool (key ``R``), a scope
control for the selected ROIs ("this frame", "all frames", a typed frame list)
and recovery of autosaved edits.  Closing napari with unexported edits asks
first.
"""

from __future__ import annotations

import os
import weakref

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .. import _notify
from ..dicom.embed import LoadedFile, match_rows, read_embed_csv, unmatched_message
from ..errors import EmbedCSVError
from ..layers import keys
from ..layers.recovery import load_recovery
from ..layers.roi_export import save_embed_csv
from ..layers.rois import META, roi_layer_tuple
from . import state
from .compat import qt_main_window
from .roi_controller import RoiController, fit_edges
from .viewer import dicom_images, keep_whole_view, layer_data, roi_layer_for

DOCK = "roi"
_controllers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def confirm(parent, title: str, text: str) -> bool:
    """Ask yes/no (tests replace this function)."""
    r = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    return r == QMessageBox.StandardButton.Yes


def controller(layer) -> RoiController | None:
    return _controllers.get(layer)


def controllers(viewer) -> list[RoiController]:
    return [c for layer in viewer.layers if (c := _controllers.get(layer)) is not None]


def attach_controller(viewer, layer) -> RoiController:
    c = _controllers.get(layer)
    if c is None:
        c = RoiController(layer, viewer, notify=_notify.warning)
        _controllers[layer] = c
        _install_close_guard(viewer)
        _bind_keys(viewer)
        _follow_zoom(viewer)
        fit_edges(layer, viewer.scene.camera.zoom, force=True)
        saved = load_recovery(c.meta["paths"])
        nav = state.dock(viewer, "cases")  # the case navigator restores its cases' edits itself
        if saved and saved.get("rois") is not None and nav is not None and nav.handle_recovery(c, saved):
            saved = None
        if saved and saved.get("rois") is not None:
            dock = state.dock(viewer, DOCK)
            if dock is not None:
                dock.offer_restore(layer, saved)
            else:
                _notify.warning(
                    f"napari-dcm: unexported ROI edits for {c.meta['image']} were autosaved; "
                    "open the EMBED ROIs dock to restore them"
                )
            c.pending_recovery = saved
    return c


def detach_controller(layer) -> None:
    """Forget a removed ROI layer's controller (the controller holds its layer, so the weak
    mapping alone would keep both alive)."""
    c = _controllers.pop(layer, None)
    if c is not None:
        c.disconnect()


# --------------------------------------------------------------------------
# viewer integration


class _CloseGuard(QObject):
    def __init__(self, viewer):
        super().__init__()
        self.viewer_ref = weakref.ref(viewer)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Close:
            viewer = self.viewer_ref()
            if viewer is not None:
                dirty = [c for c in controllers(viewer) if c.dirty]
                if dirty and not confirm(
                    obj,
                    "Unexported ROI edits",
                    f"{len(dirty)} ROI layer(s) have edits that were not exported "
                    "(they are autosaved and can be restored next time). Close anyway?",
                ):
                    event.ignore()
                    return True
        return False


def _install_close_guard(viewer) -> None:
    st = state.of(viewer)
    if st.close_guard is not None:
        return
    win = qt_main_window(viewer)
    if win is None:
        return
    guard = _CloseGuard(viewer)
    win.installEventFilter(guard)
    st.close_guard = guard


def _follow_zoom(viewer) -> None:
    """Keep ROI outlines a fixed width on screen while the camera zooms (once per viewer)."""
    st = state.of(viewer)
    if st.docks.get("roi_zoom"):
        return
    ref = weakref.ref(viewer)

    def on_zoom(event=None):
        v = ref()
        if v is None:
            return
        for c in controllers(v):
            fit_edges(c.layer, v.scene.camera.zoom)

    viewer.scene.camera.events.zoom.connect(on_zoom)
    st.docks["roi_zoom"] = on_zoom


def _bind_keys(viewer) -> None:
    from .keys import install

    install(viewer)


image_layers = dicom_images


def ensure_roi_layer(viewer, image_layer, rows=None, unmatched=(), source=None):
    """The ROI layer of an image (created right after it, empty, when missing)."""
    layer = roi_layer_for(viewer, image_layer)
    if layer is not None and rows is None:
        return layer
    data, kw, _ = roi_layer_tuple(layer_data(image_layer), rows or {}, unmatched, source)
    if layer is not None:
        viewer.layers.remove(layer)
    new = viewer.add_shapes(data, **kw)
    idx = viewer.layers.index(image_layer)
    viewer.layers.move(viewer.layers.index(new), idx + 1)
    attach_controller(viewer, new)
    return new


def draw_roi(viewer):
    """The ROI tool: select the active image's ROI layer in rectangle mode."""
    active = viewer.layers.selection.active
    if active is not None and META in active.metadata:
        layer = active
    else:
        imgs = [active] if active is not None and active in image_layers(viewer) else image_layers(viewer)[-1:]
        if not imgs:
            _notify.warning("napari-dcm: open a DICOM image before drawing ROIs")
            return None
        layer = ensure_roi_layer(viewer, imgs[0])
    viewer.layers.selection.active = layer
    layer.mode = "add_rectangle"
    return layer


def import_rois(viewer, csv_path, cwd=None) -> tuple[list, list]:
    """Import an EMBED CSV onto the loaded images; returns (roi layers, unmatched rows)."""
    table = read_embed_csv(csv_path)
    imgs = image_layers(viewer)
    files = []
    for img in imgs:
        md = img.metadata
        n_by: dict = {}
        for p, s in zip(md[keys.FRAME_PATHS], md[keys.DISPLAY_TO_STORED]):
            n_by[p] = max(n_by.get(p, 0), s + 1)
        if md.get(keys.NUMBER_OF_FRAMES):
            n_by[md[keys.PATHS][0]] = md[keys.NUMBER_OF_FRAMES]
        files += [LoadedFile(p, n_by.get(p, 1)) for p in md[keys.PATHS]]
    matched, unmatched = match_rows(table, files, cwd)
    layers = []
    for i, img in enumerate(imgs):
        existing = roi_layer_for(viewer, img)
        c = controller(existing) if existing is not None else None
        if (
            c is not None
            and c.dirty
            and not confirm(
                None, "Replace ROIs", f"{img.name} has unexported ROI edits. Replace them with the imported ROIs?"
            )
        ):
            continue
        layers.append(ensure_roi_layer(viewer, img, matched, unmatched if i == 0 else (), table.source))
    if unmatched:
        _notify.warning(unmatched_message(csv_path, [r.path for r in unmatched]))
    return layers, unmatched


# --------------------------------------------------------------------------
# the dock


class RoiDock(QWidget):
    """napari-dcm EMBED ROIs."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        state.of(napari_viewer).docks[DOCK] = self
        _bind_keys(napari_viewer)
        _install_close_guard(napari_viewer)
        self.source = None
        self._pending: list = []

        self.import_btn = QPushButton("Import ROIs…")
        self.export_btn = QPushButton("Export ROIs…")
        self.draw_btn = QPushButton("Draw ROI (R)")
        self.scope = QComboBox()
        self.scope.addItems(["this frame", "all frames", "frames:"])
        self.frames_edit = QLineEdit()
        self.frames_edit.setPlaceholderText("e.g. 0, 3-5")
        self.apply_btn = QPushButton("Set scope")
        self.drop_unmatched = QCheckBox("drop rows that match no loaded file")
        self.restore_btn = QPushButton("Restore autosaved ROIs")
        self.restore_btn.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.import_btn)
        row.addWidget(self.export_btn)
        lay.addLayout(row)
        lay.addWidget(self.draw_btn)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Selected ROIs:"))
        row2.addWidget(self.scope)
        row2.addWidget(self.frames_edit)
        row2.addWidget(self.apply_btn)
        lay.addLayout(row2)
        lay.addWidget(self.drop_unmatched)
        lay.addWidget(self.restore_btn)
        lay.addWidget(self.status)
        # DICOM write-back (SR / GSPS / SEG): its own widget, composed here
        from .writeback_panel import SavePanel

        self.writeback = SavePanel(napari_viewer)
        lay.addWidget(self.writeback)
        lay.addStretch(1)

        self.import_btn.clicked.connect(self._import_dialog)
        self.export_btn.clicked.connect(self._export_dialog)
        self.draw_btn.clicked.connect(lambda: draw_roi(self.viewer))
        self.apply_btn.clicked.connect(self._apply_scope)
        self.restore_btn.clicked.connect(self.restore_pending)
        for c in controllers(napari_viewer):
            if getattr(c, "pending_recovery", None):
                self.offer_restore(c.layer, c.pending_recovery)
        for img in image_layers(napari_viewer):
            self._check_recovery(img)
        napari_viewer.layers.events.inserted.connect(self._on_inserted)
        keep_whole_view(napari_viewer)  # the dock takes its share of the window

    def _on_inserted(self, event):
        layer = event.value
        if layer in image_layers(self.viewer):
            self._check_recovery(layer)

    def _check_recovery(self, img):
        """Reopened files with autosaved, unexported ROI edits: offer to restore them."""
        if roi_layer_for(self.viewer, img) is not None:
            return
        if load_recovery(img.metadata[keys.PATHS]) is not None:
            ensure_roi_layer(self.viewer, img)

    # ---- import / export (dialog-free entry points used by the buttons and tests)
    def import_csv(self, path) -> list:
        try:
            layers, unmatched = import_rois(self.viewer, path)
        except EmbedCSVError as exc:
            _notify.error(f"napari-dcm: invalid EMBED CSV: {exc}")
            self.status.setText(str(exc))
            return []
        self.source = os.path.abspath(os.fspath(path))
        n = sum(len({*l.features["roi"]}) for l in layers if len(l.features))
        self.status.setText(
            f"Imported {n} ROI(s) onto {len(layers)} image(s); {len(unmatched)} row(s) unmatched (kept)."
        )
        return layers

    def export_csv(self, path, overwrite: bool = False) -> str | None:
        path = os.path.abspath(os.fspath(path))
        if os.path.exists(path) and not overwrite:
            src = " (the CSV the ROIs were imported from)" if self._is_source(path) else ""
            if not confirm(self, "Overwrite?", f"{path}{src} exists. Replace it?"):
                return None
        for c in controllers(self.viewer):
            c.flush()  # the layers show their ROI state (export reads the layers)
        try:
            out = save_embed_csv(
                self.viewer, path, overwrite=True, include_unmatched=not self.drop_unmatched.isChecked()
            )
        except (OSError, ValueError) as exc:
            _notify.error(f"napari-dcm: export failed: {exc}")
            return None
        for c in controllers(self.viewer):
            c.dirty = False
        self.status.setText(f"Exported to {out}")
        _notify.info(f"napari-dcm: ROIs exported to {out}")
        return out

    def _is_source(self, path) -> bool:
        srcs = {self.source} | {l.metadata[META].get("source") for l in self.viewer.layers if META in l.metadata}
        return any(s and os.path.abspath(s) == path for s in srcs)

    def _import_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Import EMBED ROIs", "", "CSV files (*.csv);;All files (*)")
        if path:
            self.import_csv(path)

    def _export_dialog(self):
        path, _ = QFileDialog.getSaveFileName(
            self, "Export EMBED ROIs", "", "CSV files (*.csv)", options=QFileDialog.Option.DontConfirmOverwrite
        )
        if path:
            self.export_csv(path)

    # ---- scope
    def _apply_scope(self):
        layer = self.viewer.layers.selection.active
        c = controller(layer) if layer is not None else None
        if c is None:
            _notify.warning("napari-dcm: select an ROI layer and its ROIs first")
            return
        choice = self.scope.currentText()
        try:
            if choice == "this frame":
                c.set_scope("this")
            elif choice == "all frames":
                c.set_scope("all")
            else:
                c.set_scope(parse_frame_list(self.frames_edit.text()))
        except ValueError as exc:
            _notify.warning(f"napari-dcm: {exc}")

    # ---- recovery
    def offer_restore(self, layer, saved):
        self._pending.append((weakref.ref(layer), saved))
        self.restore_btn.setVisible(True)
        self.status.setText(f"Unexported ROI edits of {saved.get('image')} were autosaved. Restore them?")

    def restore_pending(self):
        for ref, saved in self._pending:
            layer = ref()
            c = controller(layer) if layer is not None else None
            if c is not None:
                c.restore(saved)
        self._pending = []
        self.restore_btn.setVisible(False)
        self.status.setText("Autosaved ROIs restored.")


def parse_frame_list(text: str) -> list[int]:
    """ "0, 3-5, 9" -> [0, 3, 4, 5, 9]."""
    out: set = set()
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            lo, hi = int(a), int(b)
            if hi < lo:
                raise ValueError(f"bad frame range {part!r}")
            out.update(range(lo, hi + 1))
        else:
            out.add(int(part))
    if not out:
        raise ValueError("type one or more frame numbers")
    return sorted(out)


def roi_dock(viewer) -> RoiDock:
    """Add (or return) the EMBED ROI dock of ``viewer``."""
    dock = state.dock(viewer, DOCK)
    if dock is None:
        dock = RoiDock(viewer)
        viewer.window.add_dock_widget(dock, name="EMBED ROIs", area="right")
    return dock
