"""The case index without a viewer: cases of a folder tree, a DICOMDIR and an EMBED CSV, the
persistent index in the cache directory, cancel, filters, ROI rows across cases, the export,
and the cine rate of a file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import napari_dcm
from case_tree import make_case_tree, write_cine
from napari_dcm.dicom import cases as casemod
from napari_dcm.dicom.cine import DEFAULT_FPS, frame_rate, rate_from_values
from napari_dcm.dicom.embed import EmbedRow, Roi


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("NAPARI_DCM_CACHE", str(d))
    return d


@pytest.fixture
def tree(corpus, tmp_path, cache):
    return make_case_tree(corpus, tmp_path / "root")


def test_folder_tree_cases(tree):
    idx = napari_dcm.cases(tree["root"])
    assert idx.kind == "folder" and idx.n_files == 21 and idx.n_scanned == 21
    assert idx.skipped == [(str(tree["root"] / "notes.txt"), "not DICOM")]
    got = [(c.number, c.patient_id, c.study_date, c.modalities, c.n_images, c.n_frames) for c in idx]
    assert got == [
        (1, "P001", "20220101", ["MG"], 4, 4),  # S20220101 sorts before S20240101
        (2, "P001", "20240101", ["MG"], 4, 4),
        (3, "P002", "20240301", ["MG"], 4, 4),
        (4, "P003", "20230505", ["MR"], 1, 10),
        (5, "887", "20080819", ["MR"], 6, 6),
        (6, "4MR1", "20040826", ["MR"], 1, 1),
    ]
    c = idx[1]
    assert c.description == "MAMMO SCREENING" and c.patient_name == "Test P001" and c.is_mammography
    assert sorted(c.views) == ["LCC", "LMLO", "RCC", "RMLO"]
    assert c.files == sorted(str(p) for p in tree["P001_current"].values())
    assert all(not c.reviewed and c.status == "" for c in idx)


def test_filters_are_the_cli_fields(tree):
    idx = napari_dcm.cases(tree["root"])
    assert [c.number for c in idx.filter(["modality=MG"])] == [1, 2, 3]
    assert [c.number for c in idx.filter({"patient_id": "p001", "study_date": "2024"})] == [2]
    assert [c.number for c in idx.filter(["series_description=genou"])] == []
    assert [c.number for c in idx.filter(["study_description=GENOU"])] == [5]
    idx.set_reviewed(idx[0])
    assert [c.number for c in idx.filter(["modality=MG"], reviewed=False)] == [2, 3]
    with pytest.raises(ValueError, match="unknown filter field 'laterality'"):
        idx.filter(["laterality=R"])


def test_index_is_kept_and_invalidated_per_file(tree, cache):
    first = napari_dcm.cases(tree["root"])
    assert first.n_scanned == 21
    (store,) = list((cache / "cases").glob("*.sqlite"))
    again = napari_dcm.cases(tree["root"])
    assert again.n_scanned == 0 and [c.key for c in again] == [c.key for c in first]
    # a changed file: only it is read again (and its new values are seen)
    import pydicom

    p = tree["P002"]["RCC"]
    ds = pydicom.dcmread(p)
    ds.StudyDescription = "RECALL"
    ds.save_as(p)
    changed = napari_dcm.cases(tree["root"])
    assert changed.n_scanned == 1
    # the study's first file (lcc) still says MAMMO SCREENING; the changed file's value is in its entry
    p002 = changed.filter(["patient_id=P002"])[0]
    assert {e.values["study_description"] for e in p002.entries} == {"MAMMO SCREENING", "RECALL"}
    # a removed file: its entry goes, nothing else is read
    os.remove(tree["P002"]["LMLO"])
    removed = napari_dcm.cases(tree["root"])
    assert removed.n_scanned == 0 and removed.filter(["patient_id=P002"])[0].n_images == 3
    # the reviewed flag lives in the same index
    removed.set_reviewed(removed[0])
    assert napari_dcm.cases(tree["root"])[0].reviewed
    # the index is in the cache directory, nothing was written beside the data
    assert store.parent.parent == cache
    assert not [f for f in os.listdir(tree["root"]) if f not in ("P001", "P002", "P003", "P004", "P005", "notes.txt")]


def test_cancel_keeps_what_was_read(tree, monkeypatch):
    monkeypatch.setattr(casemod, "BATCH", 5)
    seen = []

    def progress(done, total):
        seen.append((done, total))

    with pytest.raises(casemod.IndexCancelled) as ei:
        casemod.build_index(tree["root"], progress=progress, cancel=lambda: len(seen) > 3)
    assert 0 < ei.value.done < ei.value.total == 21
    resumed = casemod.build_index(tree["root"], progress=progress)
    assert resumed.n_scanned == 21 - ei.value.done and len(resumed) == 6
    assert seen[-1] == (21, 21)


def test_dicomdir_source(corpus, cache):
    idx = napari_dcm.cases(corpus / "dicomdir" / "pydicom" / "dicomdirtests" / "DICOMDIR")
    assert idx.kind == "dicomdir" and idx.n_files == 31
    assert [(c.patient_id, c.study_date, c.modalities, c.n_images) for c in idx] == [
        ("77654033", "20010101", ["CR"], 3),
        ("77654033", "19950903", ["CT"], 4),
        ("98890234", "20010101", ["CT"], 7),
        ("98890234", "20030505", ["MR"], 2),
        ("98890234", "20030505", ["MR"], 4),
        ("98890234", "20030505", ["MR"], 11),
    ]


def test_missing_source_is_a_typed_error(tmp_path, cache):
    with pytest.raises(napari_dcm.DicomReadError, match="no such file or folder") as ei:
        napari_dcm.cases(tmp_path / "nope")
    assert ei.value.path == str(tmp_path / "nope")


CSV_HEADER = "anon_dicom_path,num_ROI,ROI_coords,ROI_frames\n"


def write_csv(path, rows):
    path.write_text(CSV_HEADER + "".join(r + "\n" for r in rows))
    return path


def test_csv_source_cases_are_the_rows_studies(tree, tmp_path, cache):
    root = tree["root"]
    rows = [
        'P002/S20240301/lcc.dcm,1,"[[10,20,30,40]]",[]',
        'P001/S20240101/rmlo.dcm,2,"[[1,2,3,4],[5,6,7,8]]",[]',
        'P009/S1/gone.dcm,1,"[[1,1,2,2]]",[]',  # missing: listed, never dropped
        'P003/CINE/cine.dcm,1,"[[3,3,9,9]]","[[2,4]]"',
        'P001/S20240101/lcc.dcm,1,"[[50,60,70,80]]",[]',
    ]
    csv = write_csv(tmp_path / "rois.csv", rows)
    idx = napari_dcm.cases(csv, root=root)
    assert idx.kind == "csv" and idx.base == str(root)
    # cases in row order; the 4-view study includes its files without rows (siblings)
    got = [(c.patient_id or c.key.split("/")[-2], c.n_images, c.rows, c.missing, idx.n_rois(c)) for c in idx]
    assert got == [
        ("P002", 4, [0], [], 1),
        ("P001", 4, [1, 4], [], 3),
        ("P009", 0, [2], ["P009/S1/gone.dcm"], 1),
        ("P003", 1, [3], [], 1),
    ]
    assert idx[2].status == "1 missing: P009/S1/gone.dcm; no readable file"
    # relative paths resolve against the working directory or the CSV's folder without root=
    old = os.getcwd()
    os.chdir(root)
    try:
        assert napari_dcm.cases(csv).base == str(root)
    finally:
        os.chdir(old)
    # nothing edited: the export is the CSV itself, byte for byte
    assert idx.export_text() == csv.read_text()


def test_rows_across_cases_and_one_export(tree, tmp_path, cache):
    root = tree["root"]
    rows = [
        'P002/S20240301/lcc.dcm,1,"[[10,20,30,40]]",[]',
        'P001/S20240101/rmlo.dcm,2,"[[1,2,3,4],[5,6,7,8]]",[]',
        'P009/S1/gone.dcm,1,"[[1,1,2,2]]",[]',
        'P003/CINE/cine.dcm,1,"[[3,3,9,9]]","[[2,4]]"',
    ]
    csv = write_csv(tmp_path / "rois.csv", rows)
    idx = napari_dcm.cases(csv, root=root)
    p001 = idx[1]
    rmlo = str(root / "P001/S20240101/rmlo.dcm")
    rcc = str(root / "P001/S20240101/rcc.dcm")
    # what the ROI layers of case P001 export after an edit: the rmlo row edited, a new box on rcc
    edited = EmbedRow("P001/S20240101/rmlo.dcm", [Roi((1, 2, 3, 4))], line=3, frames_cell="[]", edited=True)
    new = EmbedRow(rcc, [Roi((100, 200, 300, 400))], line=0, edited=True)
    idx.record(p001, [(edited, 1), (new, 1)], dirty=True)
    assert idx.dirty(p001) and not idx.dirty(idx[0]) and idx.n_rois(p001) == 2
    assert idx.rows_of(p001)[rmlo].rois == [Roi((1, 2, 3, 4))]
    expected = CSV_HEADER + "".join(
        r + "\n"
        for r in [
            rows[0],
            'P001/S20240101/rmlo.dcm,1,"[[1,2,3,4]]",[]',
            rows[2],
            rows[3],
            'P001/S20240101/rcc.dcm,1,"[[100,200,300,400]]",[]',
        ]
    )
    out = idx.export(tmp_path / "out.csv")
    assert Path(out).read_bytes().decode() == expected
    assert not idx.dirty(p001)
    with pytest.raises(FileExistsError):
        idx.export(csv, overwrite=True)  # never the source CSV
    # the edits are kept in the index: a new session sees them (exported, so not dirty)
    again = napari_dcm.cases(csv, root=root)
    assert again.export_text() == expected and not again.dirty(again[1])


def test_unexported_edits_survive_a_changed_csv(tree, tmp_path, cache):
    root = tree["root"]
    csv = write_csv(tmp_path / "rois.csv", ['P001/S20240101/rmlo.dcm,1,"[[1,2,3,4]]",[]'])
    idx = napari_dcm.cases(csv, root=root)
    idx.record(idx[0], [(EmbedRow("P001/S20240101/rmlo.dcm", [Roi((9, 9, 19, 19))], line=2, edited=True), 1)], True)
    # the CSV gets a row in front: the edit follows its file, and is still unexported
    write_csv(csv, ['P002/S20240301/lcc.dcm,1,"[[10,20,30,40]]",[]', 'P001/S20240101/rmlo.dcm,1,"[[1,2,3,4]]",[]'])
    again = napari_dcm.cases(csv, root=root)
    assert any("not exported" in n for n in again.notes)
    assert again.export_text().splitlines()[2] == 'P001/S20240101/rmlo.dcm,1,"[[9,9,19,19]]",[]'


def test_folder_export_writes_absolute_paths_in_case_order(tree, cache):
    idx = napari_dcm.cases(tree["root"])
    lcc2 = str(tree["P002"]["LCC"])
    rcc1 = str(tree["P001_prior"]["RCC"])
    idx.record(idx[2], [(EmbedRow(lcc2, [Roi((1, 2, 3, 4))]), 1)], True)
    idx.record(idx[0], [(EmbedRow(rcc1, [Roi((5, 6, 7, 8))]), 1)], True)
    assert idx.export_text() == CSV_HEADER + f'{rcc1},1,"[[5,6,7,8]]",[]\n{lcc2},1,"[[1,2,3,4]]",[]\n'


# ---------------------------------------------------------------- cine rate


def test_cine_rate_from_the_header(corpus, tmp_path):
    p = write_cine(corpus, tmp_path / "a.dcm", frame_time=50.0, cine_rate=12, recommended=15)
    r = frame_rate(p)
    assert (r.fps, r.source, r.interval_ms) == (20.0, "FrameTime", 50.0)
    assert frame_rate(write_cine(corpus, tmp_path / "b.dcm", frame_time=None)).source == "CineRate"
    r = frame_rate(write_cine(corpus, tmp_path / "c.dcm", frame_time=None, cine_rate=None))
    assert (r.fps, r.source) == (15.0, "RecommendedDisplayFrameRate")
    r = frame_rate(write_cine(corpus, tmp_path / "d.dcm", frame_time=None, cine_rate=None, recommended=None))
    assert (r.fps, r.source) == (DEFAULT_FPS, "default")
    # the corpus' own cines
    assert frame_rate(corpus / "multiframe" / "GREYSCALE_CINE.dcm").fps == pytest.approx(1000 / 33.333)
    r = frame_rate(corpus / "multiframe" / "IM00001.implicit_little_endian.dcm")
    assert r.source == "FrameTimeVector" and r.fps > 0
    assert rate_from_values({"FrameTime": "0", "CineRate": "25"}).source == "CineRate"  # 0 ms is no rate
    (tmp_path / "text.dcm").write_text("not DICOM")
    assert frame_rate(tmp_path / "text.dcm") == frame_rate(tmp_path / "absent.dcm")
    assert frame_rate(tmp_path / "absent.dcm").source == "default"


def test_source_files_are_never_modified(tree, tmp_path, cache):
    csv = write_csv(tmp_path / "rois.csv", ['P001/S20240101/rmlo.dcm,1,"[[1,2,3,4]]",[]'])
    before = {p: os.stat(p).st_mtime_ns for p in [csv, *map(str, tree["P001_current"].values())]}
    idx = napari_dcm.cases(csv, root=tree["root"])
    idx.record(idx[0], [(EmbedRow("P001/S20240101/rmlo.dcm", [Roi((2, 2, 4, 4))], line=2, edited=True), 1)], True)
    idx.export(tmp_path / "out.csv")
    assert {p: os.stat(p).st_mtime_ns for p in before} == before
    shutil.rmtree(tree["root"] / "P003")  # a removed folder: its case goes
    assert len(napari_dcm.cases(tree["root"])) == 5
