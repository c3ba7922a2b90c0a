"""The dock's Tags tab: a lazy tag tree of the current slice or Enhanced frame."""

from __future__ import annotations

import collections

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ..dicom import tags as tagmod


class TagsTab(QWidget):
    """Tag, VR, keyword and value rows; sequences expand on demand; filter; click copies a value."""

    def __init__(self, parent=None):
        super().__init__(parent)
        v = QVBoxLayout(self)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter: tag, keyword, name or value (searches inside sequences)")
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tag", "VR", "Keyword", "Value"])
        self.tree.setUniformRowHeights(True)
        hdr = self.tree.header()
        fm = self.tree.fontMetrics()
        self.tree.setIndentation(12)  # sequences nest: keep the tag readable three levels down
        # Tag and VR are narrow and fixed; the keyword gets at most ~22 % of the width; the
        # value (what a user reads) stretches over the rest (re-split on every resize)
        self._tag_w = fm.horizontalAdvance("(0000,0000)  ") + 12 + 24
        self._vr_w = fm.horizontalAdvance("VRVR") + 8
        self._kw_w = fm.horizontalAdvance("ReferencedImageSequen")
        hdr.setStretchLastSection(True)
        hdr.resizeSection(0, self._tag_w)
        hdr.resizeSection(1, self._vr_w)
        hdr.resizeSection(2, self._kw_w)
        self.tree.viewport().installEventFilter(self)
        self.tree.itemExpanded.connect(self._expand)
        self.tree.itemClicked.connect(self._copy)
        self.filter.textChanged.connect(self._apply_filter)
        v.addWidget(self.filter)
        v.addWidget(self.tree)
        self._ds_cache: collections.OrderedDict = collections.OrderedDict()
        self.shown = None  # (path, stored frame) in the tree

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        from qtpy.QtCore import QEvent

        if obj is self.tree.viewport() and event.type() == QEvent.Type.Resize:
            self._split_columns(event.size().width())
        return super().eventFilter(obj, event)

    def _split_columns(self, width: int) -> None:
        """Keyword at most 22 % of ``width`` (never under 80 px; elided, full in its tooltip), the value the rest."""
        if width <= 0:
            return
        hdr = self.tree.header()
        hdr.resizeSection(0, self._tag_w)
        hdr.resizeSection(1, self._vr_w)
        hdr.resizeSection(2, max(80, min(self._kw_w, int(0.22 * width))))

    def _dataset(self, path, dataset=None):
        ds = self._ds_cache.get(path)
        if ds is None:
            ds = dataset if dataset is not None else tagmod.read_header(path)
            self._ds_cache[path] = ds
            while len(self._ds_cache) > 4:
                self._ds_cache.popitem(last=False)
        return ds

    def show_tags(self, path: str, stored_frame: int = 0, dataset=None):
        """Show the header of ``path`` (``dataset`` when it is already parsed, e.g. DICOMweb metadata)."""
        try:
            ds = self._dataset(path, dataset)
        except Exception as exc:  # the header is unreadable now (moved, deleted): say so
            self.tree.clear()
            self.tree.addTopLevelItem(QTreeWidgetItem(["", "", "error", f"{type(exc).__name__}: {exc}"]))
            self.shown = (path, stored_frame)
            return
        if "PerFrameFunctionalGroupsSequence" in ds:
            ds = tagmod.frame_view(ds, stored_frame)
        self.fill_tree(ds)
        self.shown = (path, stored_frame)

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
        it.setToolTip(2, row.name or row.keyword)
        it.setToolTip(3, row.value if len(row.value) < 2000 else row.value[:2000] + "…")
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
        """Hide rows that do not match; a sequence with a match inside is opened to show it."""
        self.tree.setUpdatesEnabled(False)
        try:
            for i in range(self.tree.topLevelItemCount()):
                self._filter_item(self.tree.topLevelItem(i), text, tagmod.SEARCH_DEPTH)
        finally:
            self.tree.setUpdatesEnabled(True)

    def _filter_item(self, it: QTreeWidgetItem, text: str, depth: int) -> bool:
        data = it.data(0, Qt.ItemDataRole.UserRole)
        if not text:
            it.setHidden(False)
            for k in range(it.childCount()):
                self._filter_item(it.child(k), text, depth)
            return True
        if isinstance(data, tagmod.TagRow):
            if tagmod.matches(data, text):
                it.setHidden(False)
                for k in range(it.childCount()):  # a matching sequence shows all it holds
                    self._show_all(it.child(k))
                return True
            inside = data.is_sequence and depth > 0 and tagmod.deep_matches(data, text, depth)
        elif isinstance(data, tuple) and data[0] == "item":
            inside = depth > 0 and tagmod.item_matches(data[1], text, depth)
        else:
            inside = False
        if inside:
            self._expand(it)
            child_depth = depth - 1 if isinstance(data, tagmod.TagRow) else depth  # as deep_matches counts
            for k in range(it.childCount()):
                self._filter_item(it.child(k), text, child_depth)
            it.setExpanded(True)
        it.setHidden(not inside)
        return inside

    def _show_all(self, it: QTreeWidgetItem) -> None:
        it.setHidden(False)
        for k in range(it.childCount()):
            self._show_all(it.child(k))

    def visible_rows(self) -> list[tuple[int, str]]:
        """(depth, "tag keyword") of every row the filter leaves visible (tests, scripts)."""
        out: list[tuple[int, str]] = []

        def walk(it: QTreeWidgetItem, depth: int) -> None:
            if it.isHidden():
                return
            out.append((depth, f"{it.text(0)} {it.text(2)}".strip()))
            if it.isExpanded():
                for k in range(it.childCount()):
                    walk(it.child(k), depth + 1)

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i), 0)
        return out
