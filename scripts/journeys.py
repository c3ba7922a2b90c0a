"""The first five minutes, replayed: a new user's journeys on corpus data, one screenshot per step.

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/journeys.py [--corpus DIR] [--out DIR]

Writes ``docs/images/journeys/NN_<journey>_<step>.png`` (the whole napari window,
1280 x 800, as a user sees it, notifications included) and prints one line per
step with what can be measured on it (slider steps, whether the image is whole
on the canvas, the status text, the window, ...).  Everything is driven the way
a user drives it: ``napari_dcm.view`` (what ``napari-dcm PATH`` does), napari's
``viewer.open`` (File > Open, drag and drop), the docks' own buttons and real
Qt mouse events on the canvas (``tests/qtevents.py``).  napari's settings are a
throw-away copy, so the user's own are never touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

W, H = 1280, 800


class Journeys:
    def __init__(self, corpus: Path, out: Path):
        self.corpus = corpus
        self.out = out
        self.n = 0
        self.log: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="napari-dcm-journeys-"))
        self.viewer = None

    # ---- plumbing
    def settle(self, seconds: float = 0.6) -> None:
        from qtpy.QtWidgets import QApplication

        t0 = time.time()
        while time.time() - t0 < seconds:
            QApplication.processEvents()
            time.sleep(0.01)

    def new_viewer(self):
        import napari

        if self.viewer is not None:
            self.viewer.close()
            self.settle(0.3)
        self.viewer = napari.Viewer(title="napari-dcm")
        self.viewer.window.resize(W, H)
        self.settle(0.8)
        return self.viewer

    def shot(self, journey: str, step: str, note=lambda: "") -> None:
        """Let the window settle, save it, and log ``note()`` (measured after the settling)."""
        self.settle()
        note = note() if callable(note) else note
        # the note may change the window (the status bar after a mouse move): napari's status
        # bar lays its labels out on a posted LayoutRequest, so a grab right after the text
        # changed drew the new texts at the old places, on top of each other
        self.settle(0.3)
        self.n += 1
        path = self.out / f"{self.n:02d}_{journey}_{step}.png"
        self.viewer.screenshot(str(path), canvas_only=False, flash=False)
        line = f"{path.name}: {note}"
        self.log.append(line)
        print(line, flush=True)

    def whole(self, layer) -> str:
        """Whether the image's pixel edges all lie on the canvas (the first view is not cropped)."""
        import numpy as np

        from qtevents import world_to_canvas

        v = self.viewer
        if v.canvas.grid.enabled:
            return "grid"
        ext = layer.extent.world[:, -2:]
        step = np.abs(np.asarray(layer.scale[-2:], float))
        (y0, x0), (y1, x1) = ext[0] - step / 2, ext[1] + step / 2
        a, b = world_to_canvas(v, y0, x0), world_to_canvas(v, y1, x1)
        h, w = v.canvas.size
        ok = min(a[0], b[0]) >= -0.5 and min(a[1], b[1]) >= -0.5 and max(a[0], b[0]) <= w + 0.5
        ok = ok and max(a[1], b[1]) <= h + 0.5
        return f"image {'whole' if ok else 'CROPPED'} on a {w}x{h} canvas"

    def status_at(self, y: float, x: float) -> str:
        """Move the mouse to world (y, x) and return the status bar's text."""
        from qtevents import mouse_move, world_to_canvas

        v = self.viewer
        mouse_move(v, world_to_canvas(v, y, x))
        v.update_status_from_cursor()  # napari's status thread runs only inside napari.run()
        st = v.status
        return st.get("coordinates", "") if isinstance(st, dict) else str(st)

    def dicom_dock(self):
        from napari_dcm._qt.dicom_dock import dicom_dock

        return dicom_dock(self.viewer)

    # ---- the journeys
    def series_folder(self) -> None:
        import napari_dcm

        v = self.new_viewer()
        napari_dcm.view(self.corpus / "ct_mr_series" / "orthanc_Knee_T1", viewer=v)
        self.dicom_dock()  # what `napari-dcm FOLDER` opens
        layer = v.layers[0]
        self.shot(
            "series",
            "first_view",
            lambda: f"{layer.data.shape[0]} slices, {v.dims.nsteps[0]} slider steps; {self.whole(layer)}",
        )
        v.dims.set_current_step(0, v.dims.nsteps[0] - 1)
        last = layer.metadata["frame_paths"][v.dims.current_step[0]]
        self.shot("series", "last_slice", lambda: f"slider at {v.dims.current_step[0]} shows {os.path.basename(last)}")
        y = layer.translate[1] + 250 * layer.scale[1]
        x = layer.translate[2] + 300 * layer.scale[2]
        self.shot("series", "status_bar", lambda: f"status: {self.status_at(y, x)}")

    def large_multiframe(self) -> None:
        import napari_dcm

        v = self.new_viewer()
        napari_dcm.view(self.corpus / "multiframe" / "HasFragmentSequence.dcm", viewer=v)
        dock = self.dicom_dock()
        layer = v.layers[0]
        self.shot(
            "multiframe",
            "first_view",
            lambda: f"{layer.data.shape} frames, {v.dims.nsteps[0]} steps; {self.whole(layer)}",
        )
        v.dims.set_current_step(0, 90)
        dock.tabs.setCurrentWidget(dock.tags_tab)
        self.shot(
            "multiframe",
            "frame_90_tags",
            lambda: f"tags show stored frame {dock._shown[1]} of {os.path.basename(dock._shown[0])}",
        )

    def mammography_hanging(self) -> None:
        v = self.new_viewer()
        v.open(str(self.corpus / "mammography"), plugin="napari-dcm")  # the folder, as dropped
        self.settle(1.0)
        dock = self.dicom_dock()  # Plugins > napari-dcm > DICOM
        self.shot("mammo", "folder_opened", lambda: f"{len(v.layers)} layer(s): {', '.join(l.name for l in v.layers)}")
        dock.tabs.setCurrentWidget(dock.layout_tab)
        lay = dock.hang()
        self.settle(1.0)
        self.shot("mammo", "hung", lambda: f"layout {lay.name}, grid {tuple(v.canvas.grid.shape)}")
        dock.hang("1x1")

    def rois(self) -> None:
        import napari_dcm
        from napari_dcm._qt import roi_dock
        from qtevents import mouse_drag, world_to_canvas

        v = self.new_viewer()
        mg = self.corpus / "mammography" / "GH133.dcm"
        csv = self.tmp / "rois.csv"
        # GH133 is a right MLO: the breast fills the right half of the image
        csv.write_text(
            f'anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n{mg},2,"[[1000,1600,1400,2000],[2100,1800,2400,2150]]",[]\n'
        )
        napari_dcm.view(str(mg), viewer=v)
        dock = roi_dock.roi_dock(v)
        dock.import_csv(csv)
        layer = [l for l in v.layers if "napari_dcm_roi" in l.metadata][0]
        self.shot("rois", "imported", lambda: f"{dock.status.text()} edge width {layer.edge_width[0]:.1f} data px")
        roi_dock.draw_roi(v)  # key R
        img = v.layers[0]
        sy, sx = img.scale[-2:]
        mouse_drag(v, world_to_canvas(v, 1500 * sy, 1750 * sx), world_to_canvas(v, 1900 * sy, 2200 * sx), steps=8)
        self.settle(0.3)
        c = roi_dock.controller(layer)
        self.shot("rois", "drawn", lambda: f"ROIs now {[r['box'] for r in c.rs.rois]}")
        out = self.tmp / "exported.csv"
        dock.export_csv(out, overwrite=True)
        layer.mode = "pan_zoom"
        self.shot("rois", "exported", lambda: out.read_text().strip().replace("\n", " | "))

    def tags_filter(self) -> None:
        import napari_dcm

        v = self.new_viewer()
        napari_dcm.view(self.corpus / "multiframe" / "MOVEKNEE.dcm", viewer=v)
        dock = self.dicom_dock()
        dock.filter.setText("pixel spacing")
        self.settle(0.3)
        rows = dock.tags_tab.visible_rows()
        self.shot("tags", "filter_pixel_spacing", lambda: f"{len(rows)} rows shown: {[r for _, r in rows][:8]}")

    def ct_window(self) -> None:
        import napari_dcm
        from qtevents import mouse_drag

        v = self.new_viewer()
        napari_dcm.view(self.corpus / "transfer_syntax" / "CT1_RLE", viewer=v)
        dock = self.dicom_dock()
        layer = v.layers[0]
        dock.tabs.setCurrentWidget(dock.window_tab)
        self.shot(
            "ct",
            "first_view",
            lambda: (
                f"no header window: limits {tuple(round(x) for x in layer.contrast_limits)} "
                f"(padding {layer.metadata.get('padding')} left out); {self.whole(layer)}"
            ),
        )
        dock.choose_preset("Lung")
        self.shot(
            "ct",
            "preset_lung",
            lambda: f"boxes C {dock.center.value():g} W {dock.width.value():g}, limits {layer.contrast_limits}",
        )
        dock.wl_button.setChecked(True)
        h, w = v.canvas.size
        mouse_drag(v, (w / 2 - 50, h / 2), (w / 2 + 50, h / 2), steps=10)  # 100 px to the right
        self.shot(
            "ct",
            "wl_drag_100px",
            lambda: (
                f"readout '{v.canvas.overlays['text'].text}', boxes C {dock.center.value():g} W {dock.width.value():g}"
            ),
        )
        dock.wl_button.setChecked(False)

    def gsps(self) -> None:
        """A CR and its presentation state (an ellipse and a text, Softneta): the corpus has the
        CR's header only (pixels stripped), so it gets pixels here, as the test suite does."""
        import numpy as np
        import pydicom
        from pydicom.uid import ExplicitVRLittleEndian

        ps = self.corpus / "presentation_state"
        ds = pydicom.dcmread(ps / "CR000000.dcm")
        yy, xx = np.mgrid[0 : ds.Rows, 0 : ds.Columns]
        pix = (2048 + 1500 * np.sin(xx / 180.0) * np.cos(yy / 240.0)).astype(np.uint16)
        ds.PixelData = pix.tobytes()
        ds["PixelData"].VR = "OW"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 12, 11, 0, 1
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        d = self.tmp / "gsps"
        d.mkdir(exist_ok=True)
        ds.save_as(d / "cr.dcm", enforce_file_format=True)
        (d / "pr.dcm").write_bytes((ps / "PR000000.dcm").read_bytes())
        v = self.new_viewer()
        # the image, then its presentation state, as napari reads two dropped files: one by one
        v.open(str(d / "cr.dcm"), plugin="napari-dcm")
        v.open(str(d / "pr.dcm"), plugin="napari-dcm")
        self.settle(1.0)
        dock = self.dicom_dock()
        dock.tabs.setCurrentWidget(dock.window_tab)
        self.shot(
            "gsps",
            "graphics_and_voi",
            lambda: f"layers: {[l.name for l in v.layers]}; presets {[p[0] for p in dock._presets][:3]}",
        )

    def sr_report(self) -> None:
        v = self.new_viewer()
        v.open(str(self.corpus / "sr" / "sr_document_with_multiple_groups.dcm"), plugin="napari-dcm")
        self.settle(1.0)
        from napari_dcm._qt import sr_dock

        dock = sr_dock.sr_dock(v)
        text = dock.text().splitlines()
        self.shot(
            "sr", "report", lambda: f"layers {len(v.layers)}; dock {dock.width()} px wide; text starts {text[:6]}"
        )

    def bad_input(self) -> None:
        v = self.new_viewer()
        v.open(str(self.corpus / "broken"), plugin="napari-dcm")
        self.settle(1.5)
        shown = [l for l in v.layers if l.visible]
        self.shot(
            "bad_input",
            "broken_folder",
            lambda: (
                f"{len(v.layers)} layer(s) opened from broken/, {len(shown)} shown; "
                + "; ".join(f"{l.name}: {self.whole(l)}" for l in shown)
            ),
        )

    def mixed_open(self) -> None:
        """A mammogram, a knee MR series and the broken folder in one ``napari_dcm.view``."""
        import glob

        import napari_dcm

        v = self.new_viewer()
        c = self.corpus
        paths = [str(c / "mammography" / "GH133.dcm"), str(c / "ct_mr_series" / "orthanc_Knee_T1")]
        napari_dcm.view(paths + sorted(glob.glob(str(c / "broken" / "*"))), viewer=v)
        self.settle(1.5)
        shown = [l for l in v.layers if l.visible]
        self.shot(
            "mixed",
            "first_view",
            lambda: (
                f"{len(v.layers)} layer(s), {len(shown)} shown ("
                + "; ".join(f"{l.name}: {self.whole(l)}" for l in shown)
                + f"); slider label {v.dims.axis_labels[0]!r}"
            ),
        )

    def run(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for old in self.out.glob("*.png"):
            old.unlink()
        for journey in (
            self.series_folder,
            self.large_multiframe,
            self.mammography_hanging,
            self.rois,
            self.tags_filter,
            self.ct_window,
            self.gsps,
            self.sr_report,
            self.bad_input,
            self.mixed_open,
        ):
            try:
                journey()
            except Exception as exc:  # a journey that breaks is a finding: say so, go on
                import traceback

                traceback.print_exc()
                line = f"{journey.__name__}: FAILED {type(exc).__name__}: {exc}"
                self.log.append(line)
                print(line, flush=True)
        if self.viewer is not None:
            self.viewer.close()
        (self.out / "journeys.txt").write_text("\n".join(self.log) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "dicom-corpus"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "journeys"))
    args = ap.parse_args()
    # a throw-away napari settings file: the user's settings are never read or changed
    os.environ.setdefault("NAPARI_CONFIG", str(Path(tempfile.mkdtemp(prefix="napari-dcm-settings-")) / "s.yaml"))
    os.environ.setdefault("NAPARI_DCM_CACHE", tempfile.mkdtemp(prefix="napari-dcm-journeys-cache-"))
    corpus = Path(args.corpus)
    if not (corpus / "MANIFEST.tsv").is_file():
        sys.exit(f"journeys: no corpus at {corpus} (give --corpus)")
    Journeys(corpus, Path(args.out)).run()


if __name__ == "__main__":
    main()
