"""EMBED ROI CSV: validation, matching, display geometry, export (no viewer)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import napari_dcm
from napari_dcm.dicom.embed import EmbedCSVError, parse_embed_csv
from napari_dcm.layers import roi_export, rois
from synth import write_plain_image

H = "anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n"


@pytest.fixture
def study(tmp_path, monkeypatch):
    """a.dcm, b.dcm (2D 40x40) and dbt.dcm (6 frames, positions reversed) under tmp/study."""
    d = tmp_path / "study"
    write_plain_image(d / "a.dcm", patient="A")
    write_plain_image(d / "b.dcm", patient="B")
    write_plain_image(d / "dbt.dcm", rows=32, cols=24, frames=6, reverse_positions=True, patient="C")
    monkeypatch.chdir(tmp_path)
    return d


def write(tmp_path, text, name="rois.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode())
    return p


# ---------------------------------------------------------------- validation matrix

CASES = [
    ("missing column", "anon_dicom_path,num_ROI\nx.dcm,1\n", 1, "missing required column(s): ROI_coords"),
    ("field count", H + 'a.dcm,1,"[[1,2,3,4]]",[]\nb.dcm,1,"[[1,2,3,4]]"\n', 3, "row has 3 field(s), the header has 4"),
    ("empty path", H + ' ,1,"[[1,2,3,4]]",[]\n', 2, "empty anon_dicom_path"),
    ("coords not json", H + 'a.dcm,1,"[[1,2,3,4],[]",[]\n', 2, "ROI_coords is not valid JSON"),
    ("coords not list", H + 'a.dcm,1,"{""a"":1}",[]\n', 2, "ROI_coords is not a JSON list"),
    ("box of 3", H + 'a.dcm,1,"[[1,2,3]]",[]\n', 2, "box 0 is not a list of 4 integers"),
    ("float", H + 'a.dcm,1,"[[1.0,2,3,4]]",[]\n', 2, "box 0 has a float value 1.0"),
    ("negative", H + 'a.dcm,1,"[[-1,2,3,4]]",[]\n', 2, "box 0 has negative value -1"),
    ("bool", H + 'a.dcm,1,"[[true,2,3,4]]",[]\n', 2, "box 0 has bool value True"),
    ("empty box", H + 'a.dcm,1,"[[5,2,5,4]]",[]\n', 2, "box 0 [5, 2, 5, 4] is empty"),
    ("num_ROI not int", H + 'a.dcm,one,"[[1,2,3,4]]",[]\n', 2, "num_ROI 'one' is not an integer"),
    ("num_ROI float", H + 'a.dcm,1.0,"[[1,2,3,4]]",[]\n', 2, "num_ROI '1.0' is not an integer"),
    ("num_ROI mismatch", H + 'a.dcm,2,"[[1,2,3,4]]",[]\n', 2, "num_ROI is 2 but ROI_coords has 1 box(es)"),
    ("frames not lists", H + 'a.dcm,1,"[[1,2,3,4]]","[0,1]"\n', 2, "ROI_frames is not a JSON list of lists"),
    ("frames wrong length", H + 'a.dcm,1,"[[1,2,3,4]]","[[0],[1]]"\n', 2, "ROI_frames has 2 list(s) for 1 ROI(s)"),
    ("frame negative", H + 'a.dcm,1,"[[1,2,3,4]]",[[-1]]\n', 2, "ROI_frames list 0 has -1"),
    ("frame float", H + 'a.dcm,1,"[[1,2,3,4]]",[[1.5]]\n', 2, "ROI_frames list 0 has 1.5"),
    (
        "duplicate path",
        H + 'study/a.dcm,1,"[[1,2,3,4]]",[]\n./study/x/../a.dcm,1,"[[1,2,3,4]]",[]\n',
        3,
        "appears again (first on line 2)",
    ),
]


@pytest.mark.parametrize("name,text,line,reason", CASES, ids=[c[0] for c in CASES])
def test_validation_matrix(tmp_path, study, name, text, line, reason):
    csv = write(tmp_path, text)
    before = csv.read_bytes()
    with pytest.raises(EmbedCSVError) as ei:
        napari_dcm.read(study, annotations=csv)
    assert ei.value.line == line, ei.value.errors
    assert reason in ei.value.reason, ei.value.reason
    assert f"line {line}" in str(ei.value) and str(csv) in str(ei.value)
    assert csv.read_bytes() == before  # never modified


def test_frame_beyond_number_of_frames(tmp_path, study):
    csv = write(tmp_path, H + 'study/a.dcm,1,"[[1,2,3,4]]",[]\nstudy/dbt.dcm,1,"[[1,2,3,4]]",[[6]]\n')
    with pytest.raises(EmbedCSVError) as ei:
        napari_dcm.read(study, annotations=csv)
    assert ei.value.line == 3 and "frame 6 is beyond dbt.dcm (6 frame(s))" in ei.value.reason


def test_all_errors_reported_nothing_imported(tmp_path):
    with pytest.raises(EmbedCSVError) as ei:
        parse_embed_csv(H + 'a,1,"[[1,2,3]]",[]\nb,x,"[[1,2,3,4]]",[]\nc,1,"[[1,2,3,4]]",[]\n')
    assert [e[0] for e in ei.value.errors] == [2, 3]


# ---------------------------------------------------------------- matching and display


def roi_layers(layers):
    return {kw["metadata"][rois.META]["image"]: (d, kw) for d, kw, t in layers if t == "shapes"}


def test_matching_relative_absolute_normalised(tmp_path, study):
    a = os.path.join(str(tmp_path), "study", "a.dcm")  # absolute in the CSV, relative when loaded
    csv = write(
        tmp_path,
        H
        + f'{a},1,"[[1,2,3,4]]",[]\n  ./study/sub/../b.dcm ,1,"[[5,6,7,8]]",[]\nstudy/missing.dcm,1,"[[1,1,2,2]]",[]\n',
    )
    layers = napari_dcm.read(["study/a.dcm", "study/b.dcm"], annotations=csv)
    rl = roi_layers(layers)
    assert len(rl) == 2
    boxes = sorted(len(d) for d, kw in rl.values())
    assert boxes == [1, 1]
    md = next(iter(rl.values()))[1]["metadata"][rois.META]
    assert [u["path"] for u in md["unmatched"]] == ["study/missing.dcm"]


def test_rectangles_on_pixel_edges_and_frame_map(tmp_path, study):
    csv = write(
        tmp_path, H + 'study/a.dcm,1,"[[10,20,30,35]]",[]\nstudy/dbt.dcm,2,"[[1,2,3,4],[5,6,7,8]]","[[2],[0,5]]"\n'
    )
    layers = napari_dcm.read(study, annotations=csv)
    images = {kw["name"]: (d, kw) for d, kw, t in layers if t == "image"}
    rl = roi_layers(layers)
    # 2D: one rectangle, edges at napari coordinates edge - 0.5
    ((data, kw),) = [v for k, v in rl.items() if images[k][1]["metadata"]["patient_id"] == "A"]
    assert np.allclose(data[0], [[9.5, 19.5], [9.5, 34.5], [29.5, 34.5], [29.5, 19.5]])
    assert kw["scale"] == images[kw["metadata"][rois.META]["image"]][1]["scale"]
    # DBT with reversed positions: stored frame s is display frame 5 - s
    ((data, kw),) = [v for k, v in rl.items() if images[k][1]["metadata"]["patient_id"] == "C"]
    img_md = images[kw["metadata"][rois.META]["image"]][1]["metadata"]
    assert img_md["display_to_stored"] == [5, 4, 3, 2, 1, 0]
    frames_of_roi = {}
    for verts, roi in zip(data, kw["features"]["roi"]):
        frames_of_roi.setdefault(roi, []).append(int(verts[0, 0]))
    assert sorted(frames_of_roi[0]) == [3]  # stored 2
    assert sorted(frames_of_roi[1]) == [0, 5]  # stored 5 and 0
    assert list(kw["features"]["frames"]) == ["[2]", "[0,5]", "[0,5]"]


def test_files_without_rows_start_empty(tmp_path, study):
    csv = write(tmp_path, H + 'study/a.dcm,1,"[[1,2,3,4]]",[]\n')
    rl = roi_layers(napari_dcm.read(study, annotations=csv))
    assert sorted(len(d) for d, _ in rl.values()) == [0, 0, 1]


def test_all_frames_roi_on_every_frame(tmp_path, study):
    csv = write(tmp_path, H + 'study/dbt.dcm,1,"[[1,2,3,4]]",[]\n')
    rl = roi_layers(napari_dcm.read(study / "dbt.dcm", annotations=csv))
    ((data, kw),) = rl.values()
    assert sorted(int(v[0, 0]) for v in data) == [0, 1, 2, 3, 4, 5]


# ---------------------------------------------------------------- export

CANONICAL = (
    H
    + 'study/a.dcm,2,"[[120,340,220,430],[1,2,3,4]]",[]\n'
    + 'study/dbt.dcm,2,"[[1,2,3,4],[5,6,7,8]]","[[2],[0,5]]"\n'
    + 'study/nowhere.dcm,1,"[[1,1,2,2]]",[[0]]\n'
    + 'study/b.dcm,1,"[[0,0,40,40]]",[[0]]\n'
)


def test_round_trip_byte_identical(tmp_path, study):
    csv = write(tmp_path, CANONICAL)
    layers = napari_dcm.read(study, annotations=csv)
    out = tmp_path / "out.csv"
    napari_dcm.save_embed_csv(layers, out)
    assert out.read_bytes() == CANONICAL.encode()
    assert csv.read_bytes() == CANONICAL.encode()


def test_export_refuses_overwrite(tmp_path, study):
    csv = write(tmp_path, CANONICAL)
    layers = napari_dcm.read(study, annotations=csv)
    with pytest.raises(FileExistsError):
        napari_dcm.save_embed_csv(layers, csv)
    assert csv.read_bytes() == CANONICAL.encode()
    napari_dcm.save_embed_csv(layers, csv, overwrite=True)  # explicit: allowed
    assert csv.read_bytes() == CANONICAL.encode()


def test_export_drop_unmatched_and_quoting(tmp_path, study):
    csv = write(tmp_path, CANONICAL)
    layers = napari_dcm.read(study, annotations=csv)
    text = roi_export.export_text(layers, include_unmatched=False)
    assert "nowhere" not in text
    lines = text.split("\n")
    assert lines[0] == "anon_dicom_path,num_ROI,ROI_coords,ROI_frames"
    assert lines[1] == 'study/a.dcm,2,"[[120,340,220,430],[1,2,3,4]]",[]'
    assert text.endswith("\n") and "\r" not in text


def test_mixed_scope_expands_all_frames(tmp_path, study):
    from napari_dcm.dicom.embed import EmbedRow, Roi, format_embed_csv

    row = EmbedRow("x.dcm", [Roi((1, 2, 3, 4), None), Roi((1, 2, 3, 4), [2])], edited=True)
    assert format_embed_csv([(row, 3)]).split("\n")[1] == 'x.dcm,2,"[[1,2,3,4],[1,2,3,4]]","[[0,1,2],[2]]"'
    row = EmbedRow("x.dcm", [Roi((1, 2, 3, 4), None)], edited=True)
    assert format_embed_csv([(row, 3)]).split("\n")[1] == 'x.dcm,1,"[[1,2,3,4]]",[]'


def test_npe2_writer(tmp_path, study):
    from napari_dcm._writer import write_embed_rois

    csv = write(tmp_path, CANONICAL)
    layers = napari_dcm.read(study, annotations=csv)
    out = tmp_path / "w.csv"
    assert write_embed_rois(str(out), [l for l in layers if l[2] == "shapes"]) == [str(out)]
    assert out.read_bytes() == CANONICAL.encode()


def test_overlong_integer_is_a_csv_error(tmp_path):
    """json.loads raises a plain ValueError (no .msg) for integers of more than 4300 digits."""
    from napari_dcm.dicom.embed import parse_embed_csv
    from napari_dcm.errors import EmbedCSVError

    text = 'anon_dicom_path,ROI_coords\na.dcm,"[[' + "9" * 5000 + ',0,1,1]]"\n'
    with pytest.raises(EmbedCSVError) as info:
        parse_embed_csv(text, "x.csv")
    assert info.value.line == 2 and "not valid JSON" in info.value.reason
