"""DICOM write-back in the docks.

* :class:`SavePanel` (composed into the EMBED ROI dock): "Save ROIs as DICOM
  SR…", "Save ROIs as GSPS…", "Save labels as DICOM SEG…".
* :class:`SendPanel` (composed into the DICOMweb dock and the PACS panel): send
  what was saved (or chosen files) to the connected DICOMweb server by STOW-RS,
  or to the PACS panel's node by C-STORE; every object that was not stored is
  named with the reason.

Files are always written before anything is sent, so a failed send loses
nothing.  The dialog-free methods (``save_sr``, ``save_seg``,
``send_dicomweb``, ...) are what the buttons call after their file dialogs.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

from napari.layers import Labels
from qtpy.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .. import _notify
from ..errors import DicomError, DicomStoreError
from . import state
from .viewer import dicom_images, image_of

_written: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def written(viewer: Any) -> list[str]:
    """DICOM files saved from this viewer (SR, GSPS, SEG), oldest first: what "Send" sends."""
    lst = _written.get(viewer)
    if lst is None:
        lst = _written[viewer] = []
    return lst


def _remember(viewer: Any, paths: list[str]) -> None:
    lst = written(viewer)
    for p in paths:
        if p in lst:
            lst.remove(p)
        lst.append(p)


def confirm(parent: Any, title: str, text: str) -> bool:
    """Ask yes/no (tests replace this function)."""
    r = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    return r == QMessageBox.StandardButton.Yes


def labels_and_image(viewer: Any) -> tuple[Any, Any]:
    """The labels layer to save (the active one, else the top one) and the napari-dcm image it
    covers (the image it is an overlay of, else the nearest image below it with the same shape)."""
    active = viewer.layers.selection.active
    labels = active if isinstance(active, Labels) else None
    if labels is None:
        found = [layer for layer in viewer.layers if isinstance(layer, Labels)]
        labels = found[-1] if found else None
    if labels is None:
        return None, None
    img = image_of(viewer, labels)
    if img is None:
        shape = tuple(labels.data.shape)
        candidates = [i for i in dicom_images(viewer) if tuple(i.data.shape[: i.data.ndim - int(bool(i.rgb))]) == shape]
        below = [i for i in candidates if viewer.layers.index(i) < viewer.layers.index(labels)]
        img = (below or candidates or [None])[-1]
    return labels, img


class SavePanel(QWidget):
    """Save ROIs as DICOM SR or GSPS, labels as DICOM SEG."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.sr_btn = QPushButton("Save ROIs as DICOM SR…")
        self.gsps_btn = QPushButton("Save ROIs as GSPS…")
        self.seg_btn = QPushButton("Save labels as DICOM SEG…")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        box = QGroupBox("Save as DICOM")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        row.addWidget(self.sr_btn)
        row.addWidget(self.gsps_btn)
        lay.addLayout(row)
        lay.addWidget(self.seg_btn)
        lay.addWidget(self.status)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(box)
        self.sr_btn.clicked.connect(lambda: self._dir_dialog("Save ROIs as DICOM SR", self.save_sr))
        self.gsps_btn.clicked.connect(lambda: self._dir_dialog("Save ROIs as GSPS", self.save_gsps))
        self.seg_btn.clicked.connect(self._seg_dialog)

    # ---- dialog-free entry points
    def save_sr(self, out_dir: str | os.PathLike[str], overwrite: bool = False) -> list[str]:
        from ..layers.writeback import save_rois_sr
        from .roi_dock import controllers

        paths = self._save(lambda ow: save_rois_sr(self.viewer, out_dir, overwrite=ow), "SR", overwrite)
        if paths:  # saved: closing napari need not ask about these ROIs (as after an EMBED export)
            for c in controllers(self.viewer):
                c.dirty = False
        return paths

    def save_gsps(self, out_dir: str | os.PathLike[str], overwrite: bool = False) -> list[str]:
        from ..layers.writeback import save_rois_gsps

        return self._save(lambda ow: save_rois_gsps(self.viewer, out_dir, overwrite=ow), "GSPS", overwrite)

    def save_seg(
        self, path: str | os.PathLike[str], labels: Any = None, image: Any = None, overwrite: bool = False
    ) -> str | None:
        from ..layers.writeback import save_seg

        if labels is None or image is None:
            found_labels, found_image = labels_and_image(self.viewer)
            labels, image = labels or found_labels, image or found_image
        if labels is None:
            return self._fail("draw or open a labels layer first")
        if image is None:
            return self._fail(f"no DICOM image under {labels.name!r} (same shape) to reference")
        out = self._save(lambda ow: [save_seg(labels, image, path, overwrite=ow)], "SEG", overwrite)
        return out[0] if out else None

    # ---- internals
    def _save(self, write: Callable[[bool], list[str]], what: str, overwrite: bool) -> list[str]:
        try:
            try:
                paths = write(overwrite)
            except FileExistsError as exc:
                if not confirm(self, "Replace?", f"{exc}. Replace?"):
                    self.status.setText("Nothing saved.")
                    return []
                paths = write(True)
        except (DicomError, ValueError, OSError) as exc:
            self._fail(f"{what} not saved: {exc}")
            return []
        _remember(self.viewer, paths)
        for kind in ("dicomweb", "pacs"):
            send = getattr(state.dock(self.viewer, kind), "send", None)
            if send is not None:
                send.refresh()  # the browser docks' send panels count what there is to send
        where = os.path.dirname(paths[0]) if paths else ""
        names = ", ".join(os.path.basename(p) for p in paths[:4]) + (" …" if len(paths) > 4 else "")
        self.status.setText(f"Saved {len(paths)} {what} file(s) to {where}: {names}")
        _notify.info(f"napari-dcm: saved {len(paths)} DICOM {what} file(s) to {where}")
        return paths

    def _fail(self, msg: str) -> None:
        self.status.setText(msg)
        _notify.error(f"napari-dcm: {msg}")
        return None

    def _dir_dialog(self, title: str, save: Callable[[str], list[str]]) -> None:
        d = QFileDialog.getExistingDirectory(self, title, "")
        if d:
            save(d)

    def _seg_dialog(self) -> None:
        labels, image = labels_and_image(self.viewer)
        if labels is None or image is None:
            self.save_seg("", labels, image)  # explains what is missing
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Save labels as DICOM SEG",
            f"{labels.name}.seg.dcm",
            "DICOM (*.dcm)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.save_seg(path, labels, image)


class SendPanel(QWidget):
    """Send saved DICOM objects by STOW-RS to the DICOMweb browser's server (``server``) or by
    C-STORE to the PACS panel's node (``node``: its (called AE, host, port, calling AE))."""

    def __init__(
        self,
        napari_viewer: Any,
        server: Callable[[], Any] | None = None,
        node: Callable[[], tuple[str, str, int, str] | None] | None = None,
    ):
        super().__init__()
        self.viewer = napari_viewer
        self.server = server
        self.node = node
        self.chosen: list[str] = []
        self.last_results: list[Any] = []
        self.count = QLabel("")
        self.add_btn = QPushButton("Choose files…")
        self.stow_btn = QPushButton("Send to this server (STOW-RS)")
        self.cstore_btn = QPushButton("Send to this node (C-STORE)")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        box = QGroupBox("Send DICOM objects")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        row.addWidget(self.count, 1)
        row.addWidget(self.add_btn)
        lay.addLayout(row)
        if server is not None:
            lay.addWidget(self.stow_btn)
        if node is not None:
            lay.addWidget(self.cstore_btn)
        lay.addWidget(self.status)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(box)
        self.add_btn.clicked.connect(self._choose)
        self.stow_btn.clicked.connect(lambda: self.send_dicomweb(background=True))
        self.cstore_btn.clicked.connect(lambda: self.send_dimse(background=True))
        self.refresh()

    def paths(self) -> list[str]:
        """What a send sends: chosen files, else the files saved from this viewer."""
        return list(self.chosen) if self.chosen else list(written(self.viewer))

    def refresh(self) -> None:
        n = len(self.paths())
        what = "chosen" if self.chosen else "saved in this session"
        self.count.setText(f"{n} object(s) {what}" if n else "Nothing saved yet")

    def _choose(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "DICOM files to send", "", "DICOM (*.dcm);;All files (*)")
        if files:
            self.chosen = list(files)
            self.refresh()

    # ---- dialog-free entry points
    def send_dicomweb(self, paths: list[str] | None = None, background: bool = False) -> list[Any] | None:
        from ..dicom.store import store_dicomweb

        self.refresh()
        paths = list(paths) if paths is not None else self.paths()
        if not paths:
            return self._done_error("save ROIs or labels as DICOM first (or choose files)")
        srv = self.server() if self.server is not None else None
        if srv is None:
            return self._done_error("connect to a DICOMweb server first")
        base = srv.base
        return self._run(lambda: store_dicomweb(paths, base), base, len(paths), background)

    def send_dimse(
        self,
        paths: list[str] | None = None,
        host: str | None = None,
        port: int | None = None,
        called_ae: str | None = None,
        calling_ae: str | None = None,
        background: bool = False,
    ) -> list[Any] | None:
        """C-STORE to the given node, else the PACS panel's node."""
        from ..dicom.store import store_dimse

        self.refresh()
        paths = list(paths) if paths is not None else self.paths()
        if not paths:
            return self._done_error("save ROIs or labels as DICOM first (or choose files)")
        if host is None or port is None or called_ae is None:
            node = self.node() if self.node is not None else None
            if node is None:
                return self._done_error("fill in the node (AE title, host, port) first")
            called_ae, host, port, calling_ae = (
                called_ae or node[0],
                host or node[1],
                port or node[2],
                calling_ae or node[3],
            )
        calling = calling_ae or "NAPARI-DCM"
        where = f"{called_ae}@{host}:{port}"
        return self._run(
            lambda: store_dimse(paths, host, int(port), called_ae=called_ae, calling_ae=calling),
            where,
            len(paths),
            background,
        )

    # ---- internals
    def _run(self, send: Callable[[], list[Any]], where: str, n: int, background: bool) -> list[Any] | None:
        self.status.setText(f"Sending {n} object(s) to {where}…")
        if not background:
            try:
                results = send()
            except DicomStoreError as exc:
                self._done_failed(exc)
                return exc.results
            except Exception as exc:
                self._done_error(f"send to {where} failed: {exc}")
                return None
            self._done_ok(results, where)
            return results
        from napari.qt.threading import create_worker

        def attempt() -> tuple[Any, Exception | None]:
            # the outcome is handed back, never raised in the worker thread (superqt would
            # re-raise it in the event loop; a returned exception too, hence the pair)
            try:
                return send(), None
            except Exception as exc:
                return None, exc

        def finished(outcome: tuple[Any, Exception | None]) -> None:
            results, exc = outcome
            if isinstance(exc, DicomStoreError):
                self._done_failed(exc)
            elif exc is not None:
                self._done_error(f"send to {where} failed: {exc}")
            else:
                self._done_ok(results, where)

        worker = create_worker(attempt)
        worker.returned.connect(finished)
        self._worker = worker  # kept until it finishes
        worker.start()
        return None

    def _done_ok(self, results: list[Any], where: str) -> None:
        self.last_results = list(results)
        warn = [r for r in results if r.reason]
        extra = "; ".join(f"{os.path.basename(r.path)}: {r.reason}" for r in warn)
        self.status.setText(f"Stored {len(results)} object(s) on {where}." + (f" Warnings: {extra}" if extra else ""))
        _notify.info(f"napari-dcm: stored {len(results)} object(s) on {where}")

    def _done_failed(self, exc: DicomStoreError) -> None:
        self.last_results = list(exc.results)
        ok = sum(1 for r in exc.results if r.ok)
        self.status.setText(f"{ok} stored; not stored (the files are kept): {exc}")
        _notify.error(f"napari-dcm: {exc}")

    def _done_error(self, msg: str) -> None:
        self.status.setText(msg)
        _notify.error(f"napari-dcm: {msg}")
        return None
