"""The study search form shared by the DICOMweb (and PACS) browsers, built with magicgui.

Fields are those of a QIDO-RS / C-FIND study query: patient name and ID
(wildcards ``*`` and ``?``), a study date range, modality, accession number
and study description.  ``values()`` gives them as the keyword arguments of
:func:`napari_dcm.dicom.dicomweb.search_studies`.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, LineEdit

FIELDS = {
    "patient_name": ("Patient name", "e.g. DOE* (wildcards * and ?)"),
    "patient_id": ("Patient ID", ""),
    "date_from": ("Study date from", "YYYYMMDD"),
    "date_to": ("to", "YYYYMMDD"),
    "modality": ("Modality", "e.g. MG"),
    "accession_number": ("Accession", ""),
    "description": ("Description", ""),
}


class SearchForm(Container):
    """A labelled form of the query fields (a magicgui Container; ``.native`` is its QWidget)."""

    def __init__(self) -> None:
        widgets = {}
        for key, (label, hint) in FIELDS.items():
            w = LineEdit(name=key, label=label)
            if hint:
                w.native.setPlaceholderText(hint)
            widgets[key] = w
        super().__init__(widgets=list(widgets.values()), labels=True)
        self.inputs = widgets

    def values(self) -> dict[str, str | None]:
        """The query: each field's text, None when empty."""
        return {k: (w.value.strip() or None) for k, w in self.inputs.items()}

    def native_fields(self) -> dict:
        """The underlying QLineEdits (for keyboard focus and tests)."""
        return {k: w.native for k, w in self.inputs.items()}


def fill_studies(tree: Any, studies: list[dict[str, Any]], no_name: str = "") -> None:
    """Put study rows (the search result dicts of QIDO-RS and C-FIND alike) into a
    results tree: name, ID, date, description, series / instances; each row expands."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QTreeWidgetItem

    tree.clear()
    for s in studies:
        it = QTreeWidgetItem(
            [
                str(s["patient_name"] or no_name),
                str(s["patient_id"] or ""),
                str(s["study_date"] or ""),
                str(s["study_description"] or ""),
                f"{s['n_series'] or '?'} / {s['n_instances'] or '?'}",
            ]
        )
        it.setData(0, Qt.ItemDataRole.UserRole, ("study", s["study_uid"]))
        it.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
        tree.addTopLevelItem(it)
