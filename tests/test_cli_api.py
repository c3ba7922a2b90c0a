"""The napari-dcm command, the Python API, the packaged manifest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import napari_dcm
from napari_dcm.cli import build_parser
from napari_dcm.dicom.filters import parse_filters
from napari_dcm.dicom.report import ReadReport
from synth import write_ct_series

BIN = os.path.dirname(sys.executable)


def test_npe2_validate_manifest_packaged():
    exe = shutil.which("npe2", path=BIN) or "npe2"
    out = subprocess.run([exe, "validate", "napari-dcm"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    from importlib.resources import files

    assert files("napari_dcm").joinpath("napari.yaml").is_file()


@pytest.fixture
def two_patients(tmp_path):
    d = tmp_path / "study"
    write_ct_series(d / "a", n=4, patient="ALPHA7", series="ax", study="s1")
    write_ct_series(d / "b", n=3, patient="BETA9", series="cor", study="s2", modality="MR")
    return d


def test_filters_and(two_patients):
    assert len(napari_dcm.read(two_patients)) == 2
    layers = napari_dcm.read(two_patients, filters=["patient_id=alpha"])
    assert [l[0].shape[0] for l in layers] == [4]
    layers = napari_dcm.read(two_patients, filters=["modality=mr", "series_description=COR"])
    assert [l[1]["metadata"]["patient_id"] for l in layers] == ["BETA9"]
    with pytest.raises(napari_dcm.NoDicomFoundError):
        napari_dcm.read(two_patients, filters=["modality=mr", "patient_id=alpha"])
    with pytest.raises(ValueError):
        parse_filters(["colour=red"])


def test_no_recursive(two_patients):
    with pytest.raises(napari_dcm.NoDicomFoundError):
        napari_dcm.read(two_patients, recursive=False)
    assert len(napari_dcm.read(two_patients / "a", recursive=False)) == 1


def test_typed_errors_name_the_file(corpus, tmp_path):
    p = corpus / "broken" / "2026-05-26-oob-monochrome-65535.dcm"
    with pytest.raises(napari_dcm.DicomSizeError) as ei:
        napari_dcm.read(p)
    assert ei.value.path == str(p) and "too large" in ei.value.reason
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(napari_dcm.NotDicomError):
        napari_dcm.read(txt)


def test_inputs_never_written(corpus, tmp_path):
    src = corpus / "multiframe" / "emri_small_RLE.dcm"
    before = (src.stat().st_mtime_ns, src.read_bytes())
    data = napari_dcm.read(src)[0][0]
    data.compute()
    assert (src.stat().st_mtime_ns, src.read_bytes()) == before


def test_read_report_summary(two_patients):
    (two_patients / "readme.txt").write_text("not dicom")
    rep = ReadReport()
    napari_dcm.read(two_patients, report=rep)
    s = rep.summary()
    assert "8 file(s), 2 series, 2 layer(s)" in s and "1 skipped (1x not DICOM)" in s


def test_names_and_metadata(two_patients):
    layers = napari_dcm.read(two_patients)
    names = sorted(l[1]["name"] for l in layers)
    assert names == ["ALPHA7 · CT · 2023-04-05 · Series ax", "BETA9 · MR · 2023-04-05 · Series cor"]
    md = layers[0][1]["metadata"]
    for key in (
        "paths",
        "frame_paths",
        "display_to_stored",
        "sop_instance_uids",
        "study_instance_uid",
        "series_instance_uid",
    ):
        assert key in md


def test_cli_parser():
    a = build_parser().parse_args(["x", "y", "--filter", "modality=CT", "-f", "patient_id=1", "--no-recursive"])
    assert a.paths == ["x", "y"] and a.filter == ["modality=CT", "patient_id=1"] and a.no_recursive


@pytest.mark.viewer
def test_cli_screenshot_and_exit(sample_study, tmp_path):
    shot = tmp_path / "shot.png"
    env = dict(os.environ)
    assert env.get("DISPLAY"), "pytest-xvfb provides a display"
    out = subprocess.run(
        [os.path.join(BIN, "napari-dcm"), str(sample_study), "--screenshot", str(shot), "--exit"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "layer 'SAMPLE-001 · CT · 2024-01-02 · Axial 3mm' shape=(40, 128, 128)" in out.stdout
    from imageio.v3 import imread

    img = imread(shot)
    assert img.shape[0] > 300 and (img[..., :3].max(axis=-1) > 30).mean() > 0.05


def test_cli_bad_path_and_filter(tmp_path):
    exe = os.path.join(BIN, "napari-dcm")
    r = subprocess.run([exe, str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such file" in r.stderr
    r = subprocess.run([exe, str(tmp_path), "--filter", "bogus=1"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown filter field" in r.stderr


def test_view_api(make_napari_viewer, sample_study):
    viewer = make_napari_viewer(show=False)
    napari_dcm.view(str(sample_study), viewer=viewer, filters=["modality=CT"])
    assert viewer.layers[0].data.shape == (40, 128, 128)
    assert np.isfinite(viewer.layers[0].contrast_limits).all()


@pytest.mark.viewer
def test_cli_annotations(tmp_path):
    from synth import write_plain_image

    a = write_plain_image(tmp_path / "a.dcm")
    csv = tmp_path / "r.csv"
    csv.write_text(f'anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n{a},1,"[[1,2,3,4]]",[]\n')
    out = subprocess.run(
        [os.path.join(BIN, "napari-dcm"), str(a), "--annotations", str(csv), "--exit"],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, NAPARI_DCM_CACHE=str(tmp_path / "c")),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ROI1 · MG · 2024-01-01 · ROIs' with 1 rectangle(s)" in out.stdout
