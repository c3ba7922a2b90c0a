"""Take the user guide's screenshots (docs/images/*.png) with a real napari viewer.

xvfb-run -a .venv/bin/python scripts/docs_screenshots.py [CORPUS_DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"
CORPUS = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "dicom-corpus"


def main():
    import napari

    from napari_dcm._sample import SAMPLE_STUDY

    OUT.mkdir(parents=True, exist_ok=True)
    from napari.settings import get_settings

    get_settings().application.gui_notification_level = "error"  # no toasts over the pictures
    viewer = napari.Viewer(title="napari-dcm")
    viewer.window.resize(1200, 800)

    def shot(name):
        napari.qt.get_qapp().processEvents()
        viewer.screenshot(str(OUT / name), canvas_only=False, flash=False)
        print("saved", OUT / name)

    viewer.open(SAMPLE_STUDY, plugin="napari-dcm")
    shot("sample_study_2d.png")
    layer = viewer.layers[0]
    viewer.dims.ndisplay = 3
    layer.contrast_limits = (-200, 1500)
    layer.colormap = "bone"
    layer.rendering = "iso"
    layer.iso_threshold = 400
    viewer.scene.camera.angles = (0, 35, 55)
    shot("sample_study_3d.png")
    viewer.dims.ndisplay = 2
    viewer.layers.clear()
    if CORPUS.is_dir():
        viewer.open(str(CORPUS / "mammography" / "GH133.dcm"), plugin="napari-dcm")
        viewer.reset_view()
        shot("mammogram.png")
        viewer.layers.clear()
        viewer.open(str(CORPUS / "multiframe" / "examples_ybr_color.dcm"), plugin="napari-dcm")
        viewer.reset_view()
        shot("us_cine_rgb.png")
        viewer.layers.clear()
        viewer.open(str(CORPUS / "ct_mr_series" / "orthanc_Knee_T1"), plugin="napari-dcm")
        viewer.reset_view()
        shot("knee_mr_series.png")
        viewer.layers.clear()
        # EMBED ROIs on a mammogram, with the ROI dock
        import tempfile

        from napari_dcm._qt.roi_dock import roi_dock

        mg = str(CORPUS / "mammography" / "GH133.dcm")
        csv = os.path.join(tempfile.mkdtemp(), "rois.csv")
        with open(csv, "w") as fh:
            fh.write("anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n")
            fh.write(f'{mg},2,"[[1150,1150,1600,1650],[2050,1300,2350,1650]]",[]\n')
        viewer.open(mg, plugin="napari-dcm")
        dock = roi_dock(viewer)
        (layer,) = dock.import_csv(csv)
        layer.edge_width = 12
        viewer.reset_view()
        shot("rois.png")
        viewer.window.remove_dock_widget("all")
        viewer.layers.clear()
        # the DICOM dock: tags, then a 2x2 hanging of a synthetic four-view set
        import pydicom

        from napari_dcm._qt.dicom_dock import DicomDock

        viewer.open(SAMPLE_STUDY, plugin="napari-dcm")
        dock = DicomDock(viewer)
        viewer.window.add_dock_widget(dock, name="DICOM", area="right")
        dock.filter.setText("Window")
        shot("dock_tags.png")
        dock.filter.setText("")
        dock.tabs.setCurrentIndex(1)
        dock.choose_preset("Bone")
        shot("dock_window.png")
        viewer.layers.clear()
        # the Skipped tab after opening the corpus's folder of broken files
        viewer.open(str(CORPUS / "broken"), plugin="napari-dcm")
        dock.tabs.setCurrentWidget(dock.skipped_tab)
        shot("dock_skipped.png")
        dock.skipped_tab.clear()
        dock.tabs.setCurrentIndex(0)
        viewer.layers.clear()
        viewer.layers.clear()
        mammo_screenshots(viewer, dock, shot)
        # a Mammography CAD SR (TID 4000, built like the test suite's) on a real mammogram
        import sys as _sys

        _sys.path.insert(0, str(ROOT / "tests"))
        from test_overlays import write_cad_sr

        cad_dir = tempfile.mkdtemp()
        mg = str(CORPUS / "mammography" / "GH133.dcm")
        import shutil

        shutil.copy(mg, os.path.join(cad_dir, "GH133.dcm"))
        write_cad_sr(
            os.path.join(cad_dir, "cad.dcm"),
            str(pydicom.dcmread(mg, stop_before_pixels=True).SOPInstanceUID),
            [
                ("Mass", "POLYLINE", [1150, 1150, 1650, 1150, 1650, 1600, 1150, 1600, 1150, 1150], 87, True),
                ("Calcification Cluster", "POINT", [1480, 2200], 62, True),
                ("Architectural distortion", "POINT", [1700, 900], 20, False),
            ],
        )
        viewer.open(cad_dir, plugin="napari-dcm")
        viewer.reset_view()
        shot("cad_sr.png")
        viewer.layers.clear()
        pacs_shots(viewer, shot)
        cases_shots(viewer, shot)
    viewer.close()


def cases_shots(viewer, shot):
    """The case navigator (docs/cases.md): three studies of corpus mammograms relabelled as
    4-view sets (tests/mammo_sets.py) and a corpus ultrasound cine, opened from an EMBED CSV;
    the first case reviewed, the second on screen with its ROIs, an edit not yet exported."""
    import tempfile

    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    sys.path.insert(0, str(ROOT / "tests"))
    from mammo_sets import FFDM, FFDM_L, FILM, relabel
    from napari_dcm._qt.case_dock import cases_dock
    from napari_dcm._qt.viewer import dicom_images, roi_layer_for

    def in_loop(fn, *args):
        """As a click or a key runs it (napari deletes replaced widgets once back in the loop)."""
        loop = QEventLoop()
        out = []
        QTimer.singleShot(0, lambda: (out.append(fn(*args)), loop.quit()))
        loop.exec()
        return out[0]

    tmp = Path(tempfile.mkdtemp())
    os.environ["NAPARI_DCM_CACHE"] = str(tmp / "cache")  # a private index, not the user's
    spec = {
        "RCC": (FILM, ("A", "L")),
        "LCC": (FILM, ("A", "R")),
        "RMLO": (FFDM, ("P", "F")),
        "LMLO": (FFDM_L, ("A", "F")),
    }
    for patient, date in (("EMB-0107", "20230412"), ("EMB-0213", "20230502"), ("EMB-0288", "20230519")):
        for i, (name, (src, po)) in enumerate(spec.items()):
            d = tmp / "data" / patient / date
            d.mkdir(parents=True, exist_ok=True)
            relabel(
                CORPUS, src, d / f"{name.lower()}.dcm", name[1:], name[0], date=date, po=po, inst=i + 1, patient=patient
            )
    import shutil

    (tmp / "data" / "EMB-0311" / "US").mkdir(parents=True)
    shutil.copy(CORPUS / "multiframe" / "GREYSCALE_CINE.dcm", tmp / "data" / "EMB-0311" / "US" / "cine.dcm")
    csv = tmp / "rois.csv"
    csv.write_text(
        "anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n"
        'EMB-0107/20230412/rmlo.dcm,1,"[[1150,1150,1600,1650]]",[]\n'
        'EMB-0213/20230502/rmlo.dcm,2,"[[1150,1150,1600,1650],[2050,1300,2350,1650]]",[]\n'
        'EMB-0213/20230502/lmlo.dcm,1,"[[2300,900,2900,1500]]",[]\n'
        'EMB-0288/20230519/rmlo.dcm,1,"[[1700,700,2000,1000]]",[]\n'
        'EMB-0311/US/cine.dcm,1,"[[200,300,320,460]]",[]\n'
        'EMB-0390/20230611/lcc.dcm,1,"[[10,10,50,50]]",[]\n'
    )
    viewer.window.resize(1600, 1000)
    dock = cases_dock(viewer)
    idx = dock.load(csv, root=tmp / "data", background=False)
    dock.set_reviewed(True)
    in_loop(dock.next_case)
    lmlo = next(
        i
        for i in dicom_images(viewer)
        if i.metadata.get("image_laterality") == "L" and i.metadata.get("view_position") == "MLO"
    )
    roi = roi_layer_for(viewer, lmlo)
    roi.add_rectangles([[[1999.5, 399.5], [1999.5, 899.5], [2399.5, 899.5], [2399.5, 399.5]]])
    in_loop(dock.next_case)
    in_loop(dock.previous_case)
    viewer.layers.selection.active = dicom_images(viewer)[0]
    loop = QEventLoop()
    QTimer.singleShot(1500, loop.quit)
    loop.exec()
    napari.qt.get_qapp().processEvents()
    print(f"cases: {len(idx)}; current {dock.current.number}")
    shot("cases.png")
    viewer.window.remove_dock_widget("all")
    viewer.layers.clear()
    os.environ.pop("NAPARI_DCM_CACHE", None)


def mammo_screenshots(viewer, dock, shot):
    """Hangings of corpus mammograms relabelled as one patient's views (tests/mammo_sets.py):
    GH133 (FFDM, a right MLO), MG1 (a left MLO film scan without spacing) and the CBIS-DDSM
    film 1-130 (a left CC without spacing; as the RCC it is mirrored); and overlay planes."""
    import tempfile

    import napari

    sys.path.insert(0, str(ROOT / "tests"))
    from mammo_sets import FFDM, FFDM_L, FILM, relabel

    tmp = Path(tempfile.mkdtemp())
    spec = {
        "RCC": (FILM, ("A", "L")),
        "LCC": (FILM, ("A", "R")),
        "RMLO": (FFDM, ("P", "F")),
        "LMLO": (FFDM_L, ("A", "F")),
    }

    def study(date, skip=()):
        return [
            str(relabel(CORPUS, src, tmp / f"{date}_{name}.dcm", name[1:], name[0], date=date, po=po, inst=i + 1))
            for i, (name, (src, po)) in enumerate(spec.items())
            if name not in skip
        ]

    viewer.window.resize(1600, 1000)
    dock.tabs.setCurrentIndex(2)
    # a 2x2 with a missing view: RCC not in the study
    for p in study("20240101", skip=("RCC",)):
        viewer.open(p, plugin="napari-dcm")
    napari.qt.get_qapp().processEvents()
    dock.hang("2x2")
    shot("mammo_2x2_missing.png")
    dock.layout_tab.single_view()
    viewer.layers.clear()
    # current over prior
    for p in study("20240101") + study("20220310"):
        viewer.open(p, plugin="napari-dcm")
    napari.qt.get_qapp().processEvents()
    dock.hang("2x4")
    shot("mammo_2x4.png")
    dock.layout_tab.single_view()
    viewer.layers.clear()
    # the corpus mammography folder as it is: four patients, one hangs, the others off the grid
    viewer.open(str(CORPUS / "mammography"), plugin="napari-dcm")
    napari.qt.get_qapp().processEvents()
    dock.hang("2x2")
    shot("mammo_folder_patients.png")
    dock.layout_tab.single_view()
    viewer.layers.clear()
    viewer.window.resize(1200, 800)
    # 60xx overlay planes: David Clunie's test image and presentation state ("you should see 6 lines")
    import shutil

    ps = CORPUS / "presentation_state"
    ov_dir = tmp / "overlay_study"
    ov_dir.mkdir()
    for name in ("overlay.dcm", "prOverlay.dcm"):
        shutil.copy(ps / name, ov_dir / name)
    viewer.open(str(ov_dir), plugin="napari-dcm")
    dock.tabs.setCurrentIndex(0)
    dock.filter.setText("60")  # the overlay plane groups in the tag browser
    napari.qt.get_qapp().processEvents()
    viewer.reset_view()
    viewer.scene.camera.center = (200.0, 256.0)
    viewer.scene.camera.zoom *= 1.4
    shot("overlay_planes.png")
    dock.filter.setText("")
    viewer.layers.clear()


def pacs_shots(viewer, shot):
    """The PACS panel (docs/pacs.md): a private Orthanc with DIMSE on loopback (as the
    tests start it), searched with a wildcard; a series opened while it arrives, then whole."""
    import tempfile
    import threading
    import time

    sys.path.insert(0, str(ROOT / "tests"))
    from orthanc import Orthanc, available

    if not available():
        print("skipped pacs.png: Orthanc is not installed")
        return
    import napari

    from napari_dcm._qt.pacs_dock import pacs_dock
    from napari_dcm.dicom import dimse

    os.environ["NAPARI_DCM_CACHE"] = tempfile.mkdtemp(prefix="napari-dcm-docs-cache-")  # never the user's cache
    os.environ["NAPARI_DCM_CONFIG"] = tempfile.mkdtemp(prefix="napari-dcm-docs-config-")
    server = Orthanc(dimse=True)
    app = napari.qt.get_qapp()

    def wait(cond, timeout=60.0):
        t0 = time.time()
        while not cond() and time.time() - t0 < timeout:
            app.processEvents()
            time.sleep(0.02)

    try:
        for f in sorted((CORPUS / "ct_mr_series" / "orthanc_Knee_T1").iterdir()):
            server.upload(f)
        for rel in ("transfer_syntax/CT_small.dcm", "multiframe/emri_small_jpeg_2k_lossless.dcm"):
            server.upload(CORPUS / rel)
        viewer.window.remove_dock_widget("all")
        dock = pacs_dock(viewer, dimse.Node("ORTHANC", "127.0.0.1", server.dicom_port, name="Research PACS"))
        dock.fields["patient_name"].setText("*")
        dock.search()
        wait(lambda: dock.results.topLevelItemCount() > 0)
        knee = next(
            dock.results.topLevelItem(i)
            for i in range(dock.results.topLevelItemCount())
            if dock.results.topLevelItem(i).text(0) == "KNEE"
        )
        knee.setExpanded(True)
        wait(lambda: knee.childCount() > 0)
        # a slow network: the transfer waits after 10 files, so the picture shows the series
        # open and growing (10 of 24 slices there, the rest arriving)
        gate, arrived = threading.Event(), []

        def slow(path):
            arrived.append(path)
            if len(arrived) == 10:
                gate.wait(30)

        dock.job_hooks.append(lambda job: job.on_file.append(slow))
        opener = dock._open(knee.child(0))
        wait(lambda: len(viewer.layers) == 1 and len(arrived) >= 10)
        wait(lambda: viewer.layers[0].data.shape[0] >= 10, 5)
        viewer.reset_view()
        wait(lambda: False, 0.5)  # let the slider labels repaint at their new width
        shot("pacs_arriving.png")
        gate.set()
        wait(lambda: opener.finished)
        dock.job_hooks.clear()
        viewer.reset_view()
        wait(lambda: False, 0.5)
        shot("pacs.png")
        viewer.window.remove_dock_widget("all")
        viewer.layers.clear()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
