"""PACS panel (DIMSE): C-ECHO a node, C-FIND studies and series, double-click retrieves and opens.

Network work runs off the GUI thread; a retrieved series opens as soon as its
first files have arrived and grows as the rest arrives (:class:`ProgressiveOpen`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import _notify
from ..dicom import dimse
from ..errors import DimseError
from . import state
from .search_form import SearchForm, fill_studies

DOCK = "pacs"
NEW_NODE = "(new node)"


def _run(fn: Callable[[], Any], done: Callable[[Any], object], failed: Callable[[Exception], object]) -> Any:
    """Run ``fn`` on a napari worker thread; ``done``/``failed`` are called on the GUI thread."""
    from napari.qt.threading import create_worker

    return create_worker(fn, _connect={"returned": done, "errored": failed}, _start_thread=True)


# --------------------------------------------------------------------------
# opening as files arrive


class ProgressiveOpen(QObject):
    """Add a retrieve's series to a viewer while it arrives, then extend them.

    Every ``interval_ms`` the files that arrived are scanned (headers only)
    and the series rebuilt: a new series becomes a layer (once two files, or
    the whole retrieve, are there), a growing one gets the new frames in
    place, keeping the frame shown and the contrast.  Nothing is decoded but
    what napari shows.
    """

    def __init__(
        self,
        viewer: Any,
        job: dimse.RetrieveJob,
        cache: dimse.RetrieveCache,
        interval_ms: int = 250,
        on_progress: Callable[[int, int | None], object] | None = None,
        on_done: Callable[[ProgressiveOpen], object] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer, self.job, self.cache = viewer, job, cache
        self.on_progress, self.on_done = on_progress, on_done
        self.headers: dict[str, Any] = {}
        self.layers: dict[tuple[str, int], Any] = {}
        self.updates = 0
        self.first_shown_at: float | None = None  # files arrived when the first layer was added
        self.finished = False
        self.started = time.perf_counter()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        from ..dicom.discovery import scan_one

        files = self.job.files()
        new = [f for f in files if f not in self.headers]
        for f in new:
            self.headers[f] = scan_one(f)
        done = self.job.done.is_set()
        if self.on_progress is not None:
            received, expected = self.job.progress
            self.on_progress(max(received, len(files)), expected)
        if (new and (len(self.headers) >= 2 or done)) or (done and self.headers and not self.layers):
            try:
                self._update()
            except Exception as exc:  # a broken file must not stop the rest
                _notify.error(f"napari-dcm: cannot show what arrived from {self.job.node}: {exc}")
        if done:
            self.finish()

    def _update(self) -> None:
        from ..dicom.overlays import kind_of
        from ..dicom.scan import Header
        from ..dicom.series import stacks_from_headers
        from ..layers.images import layer_tuples
        from .viewer import add_layer_tuples

        # overlay objects (SR, SEG, GSPS, PM) are attached once everything has arrived
        headers = [h for h in self.headers.values() if isinstance(h, Header) and not kind_of(h.sop_class_uid)]
        stacks, _ = stacks_from_headers(headers)
        ordinal: dict[str, int] = {}
        fresh = []
        for stack in stacks:
            uid = str(stack.info.get("series_instance_uid") or "")
            key = (uid, ordinal.get(uid, 0))
            ordinal[uid] = key[1] + 1
            layer = self.layers.get(key)
            if layer is None or layer not in self.viewer.layers:
                fresh.append((key, stack))
            else:
                self.layers[key] = self._extend(layer, stack)
        if fresh:
            tuples = layer_tuples([s for _, s in fresh])
            added = add_layer_tuples(self.viewer, tuples)
            for (key, _), layer in zip(fresh, added):
                self.layers[key] = layer
            if self.first_shown_at is None and added:
                self.first_shown_at = len(self.headers)
        self.updates += 1

    def _extend(self, layer: Any, stack: Any) -> Any:
        """Give ``layer`` the stack's frames, keeping the frame shown and the contrast."""
        from ..dicom.volume import stack_array
        from ..layers import keys
        from ..layers.images import layer_tuples, metadata
        from .viewer import add_layer_tuples

        old_uids = list(layer.metadata.get(keys.SOP_INSTANCE_UIDS, []))
        if stack.nframes == len(old_uids):
            return layer
        data = stack_array(stack, force_3d=True)
        if data.ndim - (1 if stack.rgb else 0) != layer.ndim:  # was one 2D frame: a new layer
            self.viewer.layers.remove(layer)
            return add_layer_tuples(self.viewer, layer_tuples([stack]))[0]
        axis = self.viewer.dims.ndim - layer.ndim
        index = int(round((self.viewer.dims.point[axis] - layer.translate[0]) / layer.scale[0]))
        shown_uid = old_uids[index] if 0 <= index < len(old_uids) else None
        limits = tuple(layer.contrast_limits)
        md = metadata(stack)
        layer.data = data
        layer.scale = tuple(float(x) for x in stack.scale)
        layer.translate = tuple(float(x) for x in stack.translate)
        layer.metadata = md
        layer.contrast_limits = limits
        if shown_uid is not None and shown_uid in md[keys.SOP_INSTANCE_UIDS]:
            i = md[keys.SOP_INSTANCE_UIDS].index(shown_uid)
            self.viewer.dims.set_point(axis, layer.translate[0] + i * layer.scale[0])
        return layer

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.timer.stop()
        job = self.job
        if job.error is not None:
            if isinstance(job.error, DimseError):
                _notify.error(f"napari-dcm: {job.error}")
            else:
                _notify.error(f"napari-dcm: retrieve from {job.node} failed: {type(job.error).__name__}: {job.error}")
        elif job.result is not None:
            for folder in job.result.folders:
                self.cache.pin(folder)
            try:
                self._attach_overlays()
            except Exception as exc:  # the images stay open
                _notify.warning(f"napari-dcm: overlays of {job.node} not shown: {exc}")
            if job.result.partial:
                _notify.warning(f"napari-dcm: partial retrieve, showing what arrived: {job.result.describe()}")
            else:
                _notify.info(f"napari-dcm: opened {job.result.describe()}")
        if self.on_done is not None:
            self.on_done(self)

    def _attach_overlays(self) -> None:
        """SR, SEG, GSPS and PM objects that arrived, as the normal reader shows them."""
        from ..dicom.overlays import kind_of
        from ..dicom.scan import Header
        from ..layers.overlays import overlay_tuples
        from .viewer import add_layer_tuples, layer_data

        overlays = [h for h in self.headers.values() if isinstance(h, Header) and kind_of(h.sop_class_uid)]
        if not overlays:
            return
        images = [layer_data(layer) for layer in self.layers.values() if layer in self.viewer.layers]
        extra, notes = overlay_tuples(images, overlays)
        for path, msg in notes:
            _notify.info(f"napari-dcm: {os.path.basename(path)}: {msg}")
        for i, layer in enumerate(add_layer_tuples(self.viewer, extra)):
            self.layers[("overlay", i)] = layer

    @property
    def added(self) -> list[Any]:
        return list(self.layers.values())


def open_from_dimse(
    viewer: Any,
    node: dimse.Node,
    study: str,
    series: str | None = None,
    cache: dimse.RetrieveCache | None = None,
    hooks: list[Callable[[dimse.RetrieveJob], object]] | None = None,
    parent: QObject | None = None,
    **options: Any,
) -> ProgressiveOpen:
    """Retrieve a study/series in the background and open it as it arrives (see ProgressiveOpen)."""
    cache = cache or dimse.default_cache()
    _notify.install_decode_notifier()
    job = dimse.RetrieveJob(node, study, series, cache=cache, **options)
    for hook in hooks or []:
        hook(job)
    job.start()
    return ProgressiveOpen(viewer, job, cache, parent=parent)


# --------------------------------------------------------------------------
# the panel


class PacsDock(QWidget):
    """Query a PACS over DIMSE and open series from it (retrieved into a private cache)."""

    def __init__(self, napari_viewer: Any, node: dimse.Node | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        state.of(napari_viewer).docks[DOCK] = self
        self.settings = dimse.load_settings()
        self.cache = dimse.default_cache()
        self.opener: ProgressiveOpen | None = None
        self.job_hooks: list[Callable[[dimse.RetrieveJob], object]] = []
        self.workers: list[Any] = []

        self.nodes = QComboBox()
        self.name = QLineEdit()
        self.name.setPlaceholderText("a name for this node")
        self.aet = QLineEdit()
        self.aet.setPlaceholderText("the node's AE title, e.g. ORTHANC")
        self.host = QLineEdit()
        self.host.setPlaceholderText("host name or address")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(dimse.DEFAULT_PORT)
        self.port.setMinimumWidth(100)
        self.calling = QLineEdit(self.settings.calling_ae)
        self.method = QComboBox()
        self.method.addItems(list(dimse.METHODS))
        self.move_port = QSpinBox()
        self.move_port.setRange(1, 65535)
        self.move_port.setValue(dimse.DEFAULT_MOVE_PORT)
        self.move_port.setMinimumWidth(100)
        self.move_port.setToolTip(
            "C-MOVE: a temporary storage SCP listens here; the node must know our AE title and port"
        )
        self.echo_btn = QPushButton("Echo")
        self.save_btn = QPushButton("Save node")
        self.delete_btn = QPushButton("Delete")
        self.form = SearchForm()
        self.fields = self.form.native_fields()
        self.search_btn = QPushButton("Search (C-FIND)")
        self.results = QTreeWidget()
        self.results.setHeaderLabels(
            ["Patient / series", "ID / modality", "Date / number", "Description", "Series / instances"]
        )
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.cache_label = QLabel("")
        self.cache_label.setWordWrap(True)
        self.clear_btn = QPushButton("Clear cache")

        form = QFormLayout()
        form.addRow("Saved", self.nodes)
        form.addRow("Name", self.name)
        form.addRow("AE title", self.aet)
        hp = QHBoxLayout()
        hp.addWidget(self.host, 1)
        hp.addWidget(self.port)
        form.addRow("Host, port", hp)
        form.addRow("Our AE title", self.calling)
        mp = QHBoxLayout()
        mp.addWidget(self.method)
        mp.addWidget(QLabel("C-MOVE port"))
        mp.addWidget(self.move_port)
        form.addRow("Retrieve", mp)
        buttons = QHBoxLayout()
        for b in (self.echo_btn, self.save_btn, self.delete_btn):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.form.native)
        lay.addWidget(self.search_btn)
        lay.addWidget(self.results, 1)
        prog = QHBoxLayout()
        prog.addWidget(self.progress, 1)
        prog.addWidget(self.cancel_btn)
        lay.addLayout(prog)
        lay.addWidget(self.status)
        cache_row = QHBoxLayout()
        cache_row.addWidget(self.cache_label, 1)
        cache_row.addWidget(self.clear_btn)
        lay.addLayout(cache_row)
        # sending saved DICOM objects (SR/GSPS/SEG) to this node by C-STORE: its own widget, composed here
        from .writeback_panel import SendPanel

        self.send = SendPanel(napari_viewer, node=self._send_node)
        lay.addWidget(self.send)

        self.nodes.currentTextChanged.connect(self._pick_saved)
        self.method.currentTextChanged.connect(lambda m: self.move_port.setEnabled(m == "C-MOVE"))
        self.move_port.setEnabled(False)
        self.echo_btn.clicked.connect(self.echo)
        self.save_btn.clicked.connect(self.save_node)
        self.delete_btn.clicked.connect(self.delete_node)
        self.search_btn.clicked.connect(self.search)
        self.results.itemExpanded.connect(self._expand)
        self.results.itemDoubleClicked.connect(self._open)
        self.cancel_btn.clicked.connect(self.cancel)
        self.clear_btn.clicked.connect(self.clear_cache)
        self._fill_saved()
        if node is not None:
            self.set_node(node)
        self._show_cache()

    # -- nodes
    def _fill_saved(self, select: str | None = None) -> None:
        self.nodes.blockSignals(True)
        self.nodes.clear()
        self.nodes.addItem(NEW_NODE)
        for n in self.settings.nodes:
            self.nodes.addItem(n.name)
        self.nodes.blockSignals(False)
        if select:
            self.nodes.setCurrentText(select)
        elif self.settings.nodes:
            self.nodes.setCurrentIndex(1)

    def _pick_saved(self, name: str) -> None:
        node = self.settings.node(name)
        if node is not None:
            self.set_node(node)

    def set_node(self, node: dimse.Node) -> None:
        self.name.setText(node.name)
        self.aet.setText(node.ae_title)
        self.host.setText(node.host)
        self.port.setValue(node.port)
        self.calling.setText(node.calling_ae)
        self.method.setCurrentText(node.method)
        self.move_port.setValue(node.move_port)

    def node(self) -> dimse.Node | None:
        """The node the fields describe, or None (said in the status line)."""
        try:
            node = dimse.Node(
                self.aet.text().strip(),
                self.host.text().strip(),
                self.port.value(),
                calling_ae=self.calling.text().strip() or dimse.DEFAULT_CALLING_AE,
                name=self.name.text().strip(),
                method=self.method.currentText(),
                move_port=self.move_port.value(),
            )
            node.validate()
        except ValueError as exc:
            self.status.setText(f"Node: {exc}")
            return None
        return node

    def _send_node(self) -> tuple[str, str, int, str] | None:
        """(called AE, host, port, calling AE) of the node, for the send panel."""
        node = self.node()
        return None if node is None else (node.ae_title, node.host, node.port, node.calling_ae)

    def save_node(self) -> dimse.Node | None:
        node = self.node()
        if node is None:
            return None
        if not node.name:
            self.status.setText("Give the node a name to save it.")
            return None
        self.settings.nodes = [n for n in self.settings.nodes if n.name != node.name] + [node]
        try:
            path = dimse.save_settings(self.settings)
        except (OSError, ValueError) as exc:
            self.status.setText(f"Cannot save the node: {exc}")
            return None
        self._fill_saved(node.name)
        self.status.setText(f"Saved {node.label} in {path}")
        return node

    def delete_node(self) -> None:
        name = self.nodes.currentText()
        if name == NEW_NODE:
            return
        self.settings.nodes = [n for n in self.settings.nodes if n.name != name]
        dimse.save_settings(self.settings)
        self._fill_saved()
        self.status.setText(f"Deleted {name}")

    # -- network (off the GUI thread)
    def _failed(self, what: str) -> Callable[[Exception], None]:
        def failed(exc: Exception) -> None:
            msg = str(exc) if isinstance(exc, DimseError) else f"{what}: {type(exc).__name__}: {exc}"
            self.status.setText(msg)
            _notify.error(f"napari-dcm: {msg}")
            self._busy(False)

        return failed

    def _busy(self, busy: bool) -> None:
        for b in (self.echo_btn, self.search_btn):
            b.setEnabled(not busy)

    def echo(self) -> Any:
        node = self.node()
        if node is None:
            return None
        self.status.setText(f"C-ECHO {node} ...")
        self._busy(True)

        def done(seconds: float) -> None:
            self.status.setText(f"{node} answered C-ECHO in {seconds * 1000:.0f} ms")
            self._busy(False)

        w = _run(lambda: dimse.echo(node), done, self._failed(f"C-ECHO {node}"))
        self.workers.append(w)
        return w

    def search(self) -> Any:
        node = self.node()
        if node is None:
            return None
        q = self.form.values()
        self.status.setText(f"C-FIND on {node} ...")
        self._busy(True)
        self.results.clear()
        w = _run(lambda: dimse.find_studies(node, **q), lambda s: self._show_studies(node, s), self._failed("C-FIND"))
        self.workers.append(w)
        return w

    def _show_studies(self, node: dimse.Node, studies: list[dict[str, Any]]) -> None:
        fill_studies(self.results, studies, no_name="(no name)")
        for i in range(self.results.columnCount()):
            self.results.resizeColumnToContents(i)
        self.status.setText(f"{len(studies)} study(ies) on {node}")
        self._busy(False)

    def _expand(self, item: QTreeWidgetItem) -> Any:
        kind, uid = item.data(0, Qt.ItemDataRole.UserRole)
        node = self.node()
        if kind != "study" or item.childCount() or node is None:
            return None

        def done(series: list[dict[str, Any]]) -> None:
            for s in series:
                child = QTreeWidgetItem(
                    [
                        f"Series {s['series_number'] or ''}",
                        str(s["modality"] or ""),
                        str(s["series_number"] or ""),
                        str(s["series_description"] or ""),
                        f"{s['n_instances'] or '?'} instance(s)",
                    ]
                )
                child.setData(0, Qt.ItemDataRole.UserRole, ("series", (uid, s["series_uid"])))
                item.addChild(child)

        w = _run(lambda: dimse.find_series(node, uid), done, self._failed("C-FIND series"))
        self.workers.append(w)
        return w

    # -- retrieve and open
    def _open(self, item: QTreeWidgetItem, column: int = 0) -> ProgressiveOpen | None:
        kind, uid = item.data(0, Qt.ItemDataRole.UserRole)
        study, series = (uid, None) if kind == "study" else uid
        return self.retrieve(study, series)

    def retrieve(self, study: str, series: str | None = None) -> ProgressiveOpen | None:
        node = self.node()
        if node is None:
            return None
        if self.opener is not None and not self.opener.finished:
            self.status.setText("A retrieve is running: wait or cancel it first.")
            return None
        what = f"series {series}" if series else f"study {study}"
        self.status.setText(f"{node.method} {what} from {node} ...")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_btn.setVisible(True)
        self.opener = open_from_dimse(
            self.viewer, node, study, series, cache=self.cache, hooks=self.job_hooks, parent=self
        )
        job = self.opener.job
        self.destroyed.connect(lambda *_: job.cancel())  # a closed panel stops its transfer
        self.opener.on_progress = self._progress
        self.opener.on_done = self._retrieved
        return self.opener

    def _progress(self, received: int, expected: int | None) -> None:
        if expected:
            self.progress.setRange(0, expected)
            self.progress.setValue(min(received, expected))
            self.progress.setFormat(f"{received} / {expected} instance(s)")

    def _retrieved(self, opener: ProgressiveOpen) -> None:
        self.progress.setVisible(False)
        self.cancel_btn.setVisible(False)
        job = opener.job
        if job.error is not None:
            self.status.setText(str(job.error))
        elif job.result is not None:
            prefix = "Partial retrieve, showing what arrived: " if job.result.partial else "Opened "
            self.status.setText(prefix + job.result.describe())
        self._show_cache()

    def cancel(self) -> None:
        if self.opener is not None and not self.opener.finished:
            self.opener.job.cancel()
            self.status.setText("Cancelling: what has arrived stays open ...")

    # -- the cache
    def _show_cache(self) -> None:
        used = self.cache.nbytes
        self.cache_label.setText(
            f"Cache: {used / 2**20:.0f} MiB of {self.cache.max_bytes / 2**20:.0f} MiB in {self.cache.root}"
        )

    def clear_cache(self) -> tuple[int, int]:
        removed, kept = self.cache.clear()
        msg = f"Cache cleared: {removed} series removed"
        if kept:
            msg += f", {kept} kept (open in this viewer)"
        self.status.setText(msg)
        self._show_cache()
        return removed, kept


def pacs_dock(viewer: Any, node: dimse.Node | None = None) -> PacsDock:
    """The viewer's PACS panel (added beside the other browser docks, tabbed)."""
    dock = state.dock(viewer, DOCK)
    if dock is None:
        dock = PacsDock(viewer, node)
        viewer.window.add_dock_widget(dock, name="PACS", area="right", tabify=True)
    elif node is not None:
        dock.set_node(node)
    return dock


__all__ = ["PacsDock", "ProgressiveOpen", "open_from_dimse", "pacs_dock"]
