"""The DICOM dock's Skipped tab keeps every skipped file and its reason after the toasts
are gone: reads into the viewer add to it (also while the dock is closed), Clear empties it."""

from __future__ import annotations

import os

import pytest
from qtpy.QtWidgets import QApplication

import napari_dcm
from napari_dcm.dicom.report import ReadReport


def _rows(dock):
    lst = dock.skipped_tab.list
    return [lst.item(i).text() for i in range(lst.count())]


@pytest.mark.viewer
def test_skipped_files_listed_in_the_dock(make_napari_viewer, corpus, tmp_path):
    from napari_dcm._qt.dicom_dock import dicom_dock

    report = ReadReport()
    napari_dcm.read(corpus / "broken", report=report)
    assert len(report.skipped) >= 10
    viewer = make_napari_viewer(show=True)
    # File > Open of the broken folder before the dock is open: the dock shows them when opened
    viewer.open(str(corpus / "broken"), plugin="napari-dcm")
    dock = dicom_dock(viewer)
    tabs = dock.tabs
    index = tabs.indexOf(dock.skipped_tab)
    assert tabs.tabText(index) == f"Skipped ({len(report.skipped)})"
    rows = _rows(dock)
    assert rows == [f"{os.path.basename(p)}: {r}" for p, r in report.skipped]
    assert dock.skipped_tab.list.item(0).toolTip() == report.skipped[0][0]
    assert f"{len(report.skipped)} file(s) skipped" in dock.skipped_tab.summary.text()
    copied = dock.skipped_tab.copy()
    assert QApplication.clipboard().text() == copied
    assert copied.splitlines()[0] == f"skipped\t{report.skipped[0][0]}\t{report.skipped[0][1]}"
    # a second read with the dock open adds its own: a file that is not DICOM
    junk = tmp_path / "notes.dcm"
    junk.write_bytes(b"not a dicom file at all" * 10)
    napari_dcm.view([str(corpus / "mammography" / "GH133.dcm"), str(junk)], viewer=viewer)
    rows = _rows(dock)
    assert len(rows) == len(report.skipped) + 1 and rows[-1].startswith("notes.dcm: ")
    assert tabs.tabText(index) == f"Skipped ({len(rows)})"
    # Clear empties the list and the count
    dock.skipped_tab.clear_button.click()
    assert _rows(dock) == [] and tabs.tabText(index) == "Skipped"
    assert dock.skipped_tab.summary.text() == "No file skipped"
