"""Several files dropped at once (napari calls the reader once per file): every image read
is shown whole while the user has not moved the camera, and a camera the user moved is
left alone."""

from __future__ import annotations

import pytest

from test_journey_fixes import world_box_on_canvas


def _inside(viewer, layer) -> bool:
    h, w = viewer.canvas.size
    x0, y0, x1, y1 = world_box_on_canvas(viewer, layer)
    return x0 >= -0.5 and y0 >= -0.5 and x1 <= w + 0.5 and y1 <= h + 0.5


@pytest.mark.viewer
def test_files_dropped_together_are_all_shown_whole(make_napari_viewer, corpus, qtbot):
    viewer = make_napari_viewer(show=True)
    # a 512x512 MR slice first, then a 2294x1914 mammogram: napari fits the first read only
    small = corpus / "ct_mr_series" / "orthanc_Knee_T1" / "IM-0001-0001.dcm"
    big = corpus / "mammography" / "GH133.dcm"
    viewer.open([str(small), str(big)], plugin="napari-dcm")
    qtbot.wait(300)
    assert len(viewer.layers) == 2 and all(l.visible for l in viewer.layers)
    for layer in viewer.layers:
        assert _inside(viewer, layer), (layer.name, world_box_on_canvas(viewer, layer), viewer.canvas.size)
    # the user zooms in: a later drop adds its image without moving the camera
    viewer.camera.zoom = viewer.camera.zoom * 4
    camera = (tuple(viewer.camera.center), viewer.camera.zoom)
    viewer.open(str(corpus / "mammography" / "1-130.dcm"), plugin="napari-dcm")
    qtbot.wait(300)
    assert (tuple(viewer.camera.center), viewer.camera.zoom) == camera
