"""The saved case index at scale: one record per folder in the cache, what invalidates what
(a changed, added or removed file: only it is read; an unreadable folder record: only that
folder), the scan workers' path (stat taken with the scan, cancel between chunks), and an
index of the first layout upgraded without losing the review."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

import napari_dcm
import test_cases  # noqa: E402
from napari_dcm.dicom import cases as casemod
from napari_dcm.dicom import discovery
from synth import write_small_files

# the case tree and a private cache directory, as for the other case tests
cache = test_cases.cache
tree = test_cases.tree


def _store(cache) -> sqlite3.Connection:
    (path,) = list((cache / "cases").glob("*.sqlite"))
    return sqlite3.connect(path)


def _summary(idx):
    return [(c.key, c.files, [e.values for e in c.entries], c.errors) for c in idx], idx.skipped


def test_one_record_per_folder_and_added_file(tree, cache):
    first = napari_dcm.cases(tree["root"])
    with _store(cache) as db:
        folders = sorted(r[0] for r in db.execute("SELECT folder FROM folders"))
    # every folder with files, once: the notes.txt entry (not DICOM) sits in the root's record
    assert folders == sorted(
        {str(tree["root"])} | {os.path.dirname(f) for c in first for f in c.files} | {str(tree["broken"].parent)}
    )
    # a file added beside others: only it is read; the folder's other entries are kept
    extra = tree["P002"]["RCC"].parent / "copy.dcm"
    shutil.copy(tree["P002"]["RCC"], extra)
    added = napari_dcm.cases(tree["root"])
    assert added.n_scanned == 1 and added.filter(["patient_id=P002"])[0].n_images == 5
    # ... and saved: the next reopen reads nothing
    again = napari_dcm.cases(tree["root"])
    assert again.n_scanned == 0 and _summary(again) == _summary(added)
    # removed again: nothing is read, the entry goes (and stays gone)
    extra.unlink()
    removed = napari_dcm.cases(tree["root"])
    assert removed.n_scanned == 0 and _summary(removed) == _summary(first)
    assert napari_dcm.cases(tree["root"]).n_scanned == 0


def test_unreadable_folder_record_reads_only_that_folder(tree, cache):
    first = napari_dcm.cases(tree["root"])
    folder = str(tree["P002"]["RCC"].parent)
    with _store(cache) as db:
        assert db.execute("UPDATE folders SET entries=? WHERE folder=?", (b"\x00garbage", folder)).rowcount == 1
    again = napari_dcm.cases(tree["root"])
    assert again.n_scanned == 4 and _summary(again) == _summary(first)
    assert napari_dcm.cases(tree["root"]).n_scanned == 0  # (rewritten)


def test_first_layout_is_upgraded_keeping_the_review(tree, cache):
    first = napari_dcm.cases(tree["root"])
    first.set_reviewed(first[2])
    with _store(cache) as db:  # what an index of the first layout held
        db.execute("UPDATE meta SET v='1' WHERE k='schema'")
        db.execute("DROP TABLE folders")
        db.execute("DROP TABLE listings")
        db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER, error TEXT)")
    upgraded = napari_dcm.cases(tree["root"])
    assert upgraded.n_scanned == 21 and [c.reviewed for c in upgraded] == [False, False, True, False, False, False]
    with _store(cache) as db:
        assert db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()[0] == str(casemod.SCHEMA)
    assert napari_dcm.cases(tree["root"]).n_scanned == 0


def test_scan_workers_path_cancel_and_resume(tmp_path, cache, monkeypatch):
    """Enough files for the scan workers: the entries equal the scan's headers, every stat is
    the file's, a cancel between chunks keeps what was read, and resuming reads only the rest."""
    n = discovery.PARALLEL_MIN_FILES + 200
    root = write_small_files(tmp_path / "many", n, per_series=100)
    monkeypatch.setattr(casemod, "BATCH", 100)
    seen = []

    def progress(done, total):
        seen.append((done, total))

    with pytest.raises(casemod.IndexCancelled) as ei:
        casemod.build_index(root, progress=progress, cancel=lambda: len(seen) > 3)
    assert ei.value.done == 300 and ei.value.total == n
    resumed = casemod.build_index(root, progress=progress)
    assert resumed.n_scanned == n - 300 and seen[-1] == (n, n)
    (case,) = resumed
    headers = {h.path: h for h in discovery.scan_paths([str(root)]).headers}
    assert case.files == sorted(headers)
    for e in case.entries:
        h = headers[e.path]
        st = os.stat(e.path)
        assert (e.mtime_ns, e.size) == (st.st_mtime_ns, st.st_size)
        assert e.values["series_instance_uid"] == h.values["series_instance_uid"]
        assert e.values["sop_class_uid"] == h.sop_class_uid and e.values["pixels"] == 1
    # a fresh build (no cache) gives the same cases
    fresh = casemod.build_index(root, cache=False)
    assert _summary(fresh) == _summary(resumed)
    # files of one series share one values dict (100,000 entries stay small)
    assert len({id(e.values) for e in fresh[0].entries}) == n // 100


def _age_folders(root, seconds=60):
    """Set every folder's mtime ``seconds`` back (as a dataset that was written a while ago)."""
    t = os.stat(root).st_mtime_ns - seconds * 1_000_000_000
    for d, _, _ in os.walk(root):
        os.utime(d, ns=(t, t))


@pytest.fixture
def listed(monkeypatch):
    """The folders ``list_folder`` lists (the real function, counted)."""
    calls = []
    real = casemod.list_folder

    def counted(folder):
        calls.append(folder)
        return real(folder)

    monkeypatch.setattr(casemod, "list_folder", counted)
    return calls


def test_saved_listing_is_the_walks_and_reused_while_folders_are_unchanged(tree, cache, listed):
    root = tree["root"]
    # what the walk skips or follows: hidden files, Thumbs.db, a link to a folder (not followed),
    # a link to a file (listed), a hidden folder
    (root / ".hidden.dcm").write_bytes(tree["P002"]["RCC"].read_bytes())
    (root / "Thumbs.db").write_bytes(b"x")
    (root / ".git").mkdir()
    os.symlink(tree["P002"]["RCC"].parent, root / "P002link")
    os.symlink(tree["P001_prior"]["RCC"], root / "P004" / "KNEE" / "link.dcm")
    first = napari_dcm.cases(root)
    assert sorted(set(listed)) == sorted(listed) and len(listed) == 12  # every folder listed once
    walk = list(discovery.iter_files([str(root)]))
    assert _listed_files(first) == set(walk) and str(root / "P004" / "KNEE" / "link.dcm") in walk
    assert first.n_files == len(walk)
    # just written: the listings were taken too soon after the folders' last change to be trusted
    listed.clear()
    assert napari_dcm.cases(root).n_scanned == 0 and len(listed) == 12
    # a dataset written a while ago: listed once more (the saved listings predate the new mtimes), then reused
    _age_folders(root)
    napari_dcm.cases(root)
    listed.clear()
    again = napari_dcm.cases(root)
    assert listed == [] and again.n_scanned == 0 and _summary(again) == _summary(first)
    assert casemod._walk_kept(str(root), True, again.store) == walk and listed == []  # (the walk's order)
    # a file rewritten in place (its folder's mtime unchanged): seen by its own stat
    import pydicom

    p = tree["P002"]["RCC"]
    folder_m = os.stat(p.parent).st_mtime_ns
    ds = pydicom.dcmread(p)
    ds.StudyDescription = "RECALL"
    with open(p, "r+b") as fh:  # in place: the folder is not touched
        ds.save_as(fh)
    assert os.stat(p.parent).st_mtime_ns == folder_m
    changed = napari_dcm.cases(root)
    assert listed == [] and changed.n_scanned == 1
    assert "RECALL" in {e.values["study_description"] for e in changed.filter(["patient_id=P002"])[0].entries}
    # a file added: its folder (only) is listed again and the file read
    shutil.copy(p, p.parent / "added.dcm")
    added = napari_dcm.cases(root)
    assert listed == [str(p.parent)] and added.n_scanned == 1
    assert added.filter(["patient_id=P002"])[0].n_images == 5
    # a file removed, and a folder removed: seen through their folders' mtimes
    listed.clear()
    (p.parent / "added.dcm").unlink()
    shutil.rmtree(tree["knee"][0].parent)
    removed = napari_dcm.cases(root)
    assert sorted(listed) == sorted([str(p.parent), str(tree["knee"][0].parent.parent)])
    assert removed.n_scanned == 0 and removed.filter(["patient_id=P002"])[0].n_images == 4
    assert "887" not in [c.patient_id for c in removed]
    assert _listed_files(removed) == set(discovery.iter_files([str(root)]))


def _listed_files(idx):
    return {f for c in idx for f in c.files} | {p for c in idx for p, _ in c.errors} | {p for p, _ in idx.skipped}


def test_listing_taken_within_the_margin_is_not_trusted(tree, cache, listed):
    """A file added in the same timestamp tick as the change the saved listing saw (simulated:
    the folder's mtime put back) is still found: a listing taken less than LISTING_MARGIN_NS
    after the folder's mtime is not reused."""
    root = tree["root"]
    folder = tree["P002"]["RCC"].parent
    napari_dcm.cases(root)
    m = os.stat(folder).st_mtime_ns
    shutil.copy(tree["P002"]["RCC"], folder / "same_tick.dcm")
    os.utime(folder, ns=(m, m))
    idx = napari_dcm.cases(root)
    assert idx.n_scanned == 1 and idx.filter(["patient_id=P002"])[0].n_images == 5
