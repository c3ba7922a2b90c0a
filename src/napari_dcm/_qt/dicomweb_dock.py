"""DICOMweb browser dock: QIDO-RS search, studies with their series, double-click opens."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import _notify
from ..dicom import dicomweb as dw
from . import state
from .search_form import SearchForm, fill_studies

DOCK = "dicomweb"


def open_from_web(
    viewer, server: dw.Server, study: str, series: str | None = None, instance: str | None = None
) -> list:
    """Add the layers of a study/series/instance; errors become notifications."""
    from ..web import read_dicomweb

    try:
        layers = read_dicomweb(server.base, study, series, instance)
    except dw.DicomWebError as exc:
        _notify.error(f"napari-dcm: {exc}")
        return []
    from .hanging import prefetch_tuples
    from .viewer import add_layer_tuples

    _notify.install_decode_notifier()
    prefetch_tuples(layers)  # the shown frame of every image, fetched in parallel (issue 9)
    added = add_layer_tuples(viewer, layers)  # only the shown frame is fetched
    _notify.info(f"napari-dcm: opened {len(added)} layer(s) from {server.base}")
    return added


class DicomWebDock(QWidget):
    """Search a DICOMweb server and open studies or series lazily."""

    def __init__(self, napari_viewer, server: dw.Server | None = None):
        super().__init__()
        self.viewer = napari_viewer
        self.server = server
        state.of(napari_viewer).docks[DOCK] = self
        self.url = QLineEdit(server.base if server else "")
        self.url.setPlaceholderText("http://host:8042 (Orthanc) or a DICOMweb base URL")
        self.user = QLineEdit()
        self.user.setPlaceholderText("user (optional)")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("password")
        self.connect_btn = QPushButton("Connect")
        self.form = SearchForm()
        self.fields = self.form.native_fields()
        self.search_btn = QPushButton("Search")
        self.results = QTreeWidget()
        self.results.setHeaderLabels(
            ["Patient / series", "ID / modality", "Date / number", "Description", "Series / instances / frames"]
        )
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Server", self.url)
        cred = QHBoxLayout()
        cred.addWidget(self.user)
        cred.addWidget(self.password)
        cred.addWidget(self.connect_btn)
        form.addRow("Login", cred)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.form.native)
        lay.addWidget(self.search_btn)
        lay.addWidget(self.results)
        lay.addWidget(self.status)
        # sending saved DICOM objects (SR/GSPS/SEG) to this server by STOW-RS: its own widget, composed here
        from .writeback_panel import SendPanel

        self.send = SendPanel(napari_viewer, server=lambda: self.server or self.connect_server())
        lay.addWidget(self.send)
        self.connect_btn.clicked.connect(self.connect_server)
        self.search_btn.clicked.connect(self.search)
        self.results.itemExpanded.connect(self._expand)
        self.results.itemDoubleClicked.connect(self._open)
        from .viewer import keep_whole_view

        keep_whole_view(napari_viewer)  # the dock takes its share of the window

    def connect_server(self) -> dw.Server | None:
        url = self.url.text().strip()
        if not url:
            self.status.setText("Type a server URL first.")
            return None
        auth = (self.user.text(), self.password.text()) if self.user.text() else None
        self.server = dw.connect(url, auth=auth)
        self.password.clear()  # the session keeps it; the widget does not
        self.url.setText(self.server.base)
        self.status.setText(f"Connected to {self.server.base}")
        return self.server

    def search(self) -> list[dict]:
        if self.server is None and self.connect_server() is None:
            return []
        q = self.form.values()
        try:
            studies = dw.search_studies(self.server, **q)
        except dw.DicomWebError as exc:
            _notify.error(f"napari-dcm: {exc}")
            self.status.setText(str(exc))
            return []
        fill_studies(self.results, studies, no_name="")
        self.status.setText(f"{len(studies)} study(ies) on {self.server.base}")
        return studies

    def _expand(self, item: QTreeWidgetItem):
        kind, uid = item.data(0, Qt.ItemDataRole.UserRole)
        if kind != "study" or item.childCount():
            return
        try:
            series = dw.search_series(self.server, uid)
        except dw.DicomWebError as exc:
            _notify.error(f"napari-dcm: {exc}")
            return
        for s in series:
            frames = f", {s['n_frames']} frame(s)" if s.get("n_frames") is not None else ""
            child = QTreeWidgetItem(
                [
                    f"Series {s['series_number'] or ''}",
                    str(s["modality"] or ""),
                    str(s["series_number"] or ""),
                    str(s["series_description"] or ""),
                    f"{s['n_instances'] or '?'} instance(s){frames}",
                ]
            )
            child.setData(0, Qt.ItemDataRole.UserRole, ("series", (uid, s["series_uid"])))
            item.addChild(child)

    def _open(self, item: QTreeWidgetItem, column: int = 0) -> list:
        kind, uid = item.data(0, Qt.ItemDataRole.UserRole)
        if kind == "study":
            return open_from_web(self.viewer, self.server, uid)
        study, series = uid
        return open_from_web(self.viewer, self.server, study, series)


def dicomweb_dock(viewer, server: dw.Server | None = None) -> DicomWebDock:
    dock = state.dock(viewer, DOCK)
    if dock is None:
        dock = DicomWebDock(viewer, server)
        viewer.window.add_dock_widget(dock, name="DICOMweb", area="right")
    elif server is not None:
        dock.server = server
        dock.url.setText(server.base)
    return dock
