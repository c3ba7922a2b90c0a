"""Cases: the studies of a dataset, to review one after the other.

``build_index(source)`` lists the cases of a study folder tree, a DICOMDIR, a
list of files and folders, or an EMBED ROI CSV (its rows' studies: the rows'
files and the other files of their folders), with what a reviewer needs to
choose one: patient, study date, modalities, description, number of images
and ROIs, reviewed or not, errors, missing files.

Headers are read once, with the fast scan (:func:`.discovery.scan_values`, every
core), in batches so that indexing reports progress and can be cancelled.
What was read is kept in an index in the user's cache directory (never beside
the data): one SQLite file per dataset, keyed by the dataset's root path (the
folder, the DICOMDIR, the CSV, or the sorted list of paths).  Every file's
entry carries its modification time and size; indexing again reads only the
files that are new or changed, forgets removed ones, and keeps the rest, so
reopening a dataset costs a directory walk and a ``stat`` per file.

The same file keeps what a review produces across sessions: the reviewed flag
of each case, and the EMBED ROI rows edited in each case (with whether they
were exported).  ``CaseIndex.export`` writes every case's rows into one EMBED
CSV: the source CSV's rows in their order (untouched rows exactly as
imported, edited rows in the canonical form), then rows of files that had
none, in case order.

Pure: no napari, no Qt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import marshal
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DicomReadError
from .discovery import dicomdir_files, iter_files, list_folder, scan_values
from .embed import EmbedRow, EmbedTable, Roi, format_embed_csv, normalize, read_embed_csv, write_embed_csv
from .filters import Filters, matches_values, parse_filters
from .scan import sniff
from .series import paused_gc

log = logging.getLogger("napari_dcm")

SCHEMA = 2
BATCH = 500  # files per scan chunk: the progress and cancel granularity
WRITE = 20000  # scanned entries per index write


class IndexCancelled(Exception):
    """Indexing was cancelled; what was scanned so far is kept in the cache (indexing again resumes)."""

    def __init__(self, done: int, total: int):
        self.done, self.total = done, total
        super().__init__(f"indexing cancelled after {done} of {total} file(s)")


# --------------------------------------------------------------------------
# the cache directory


def cache_root() -> str:
    """``NAPARI_DCM_CACHE``, else ``$XDG_CACHE_HOME/napari-dcm`` (``~/.cache/napari-dcm``)."""
    return os.environ.get("NAPARI_DCM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "napari-dcm"
    )


def index_path(source_key: str) -> str:
    """The index file of a dataset (``<cache>/cases/<hash of the root path>.sqlite``)."""
    h = hashlib.sha1(source_key.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return os.path.join(cache_root(), "cases", f"{h}.sqlite")


# --------------------------------------------------------------------------
# what is known of one file


@dataclass(slots=True)
class FileEntry:
    """One indexed file: its stat and the header values cases and filters use (``Header.values`` keys)."""

    path: str
    mtime_ns: int = 0
    size: int = 0
    error: str = ""  # why it was skipped ("" = scanned fine)
    values: dict[str, Any] = field(default_factory=dict)
    # the values as saved (in _KEPT order; files with equal values share one tuple), when known
    kept: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    @property
    def has_pixels(self) -> bool:
        return bool(self.values.get("pixels"))


# Header.values keys an entry keeps (the CLI filter fields and what the case list shows);
# the last two are the header's own (its SOP class, whether it has pixel data)
_KEPT = (
    "study_instance_uid",
    "series_instance_uid",
    "patient_id",
    "patient_name",
    "study_date",
    "modality",
    "study_description",
    "series_description",
    "series_number",
    "number_of_frames",
    "image_laterality",
    "view_position",
    "sop_class_uid",
    "pixels",
)
_FROM_VALUES = _KEPT[:-2]


# --------------------------------------------------------------------------
# the on-disk index


class IndexStore:
    """The SQLite file of one dataset: file entries, reviewed flags, ROI edits.

    A connection is opened per operation, so the store may be used from an
    indexing thread and the GUI thread.
    """

    def __init__(self, path: str, source_key: str, *, keep_open: bool = False):
        self.path = path
        self.source_key = source_key
        self._conn: sqlite3.Connection | None = None
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if keep_open:  # (for the ``session`` that follows in this thread: one connection, one checkpoint)
            self._conn = self._connect()
        with self._db() as db:
            have = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            version = db.execute("SELECT v FROM meta WHERE k='schema'").fetchone() if have else None
            source = db.execute("SELECT v FROM meta WHERE k='source'").fetchone() if have else None
            if version is not None and version[0] == "1" and source is not None and source[0] == source_key:
                # an index of the first layout: its file entries are read again, the review is kept
                for t in ("files", "folders", "listings"):
                    db.execute(f"DROP TABLE IF EXISTS {t}")
                db.execute(f"CREATE TABLE folders ({_FOLDERS})")
                db.execute(f"CREATE TABLE listings ({_LISTINGS})")
                db.execute("UPDATE meta SET v=? WHERE k='schema'", (str(SCHEMA),))
            elif version is None or version[0] != str(SCHEMA) or source is None or source[0] != source_key:
                for t in ("meta", "folders", "listings", "files", "reviewed", "edits"):
                    db.execute(f"DROP TABLE IF EXISTS {t}")
                db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)")
                db.execute(f"CREATE TABLE folders ({_FOLDERS})")
                db.execute(f"CREATE TABLE listings ({_LISTINGS})")
                db.execute("CREATE TABLE reviewed (case_key TEXT PRIMARY KEY, at REAL)")
                db.execute(
                    "CREATE TABLE edits (path TEXT PRIMARY KEY, case_key TEXT, row TEXT, nframes INTEGER,"
                    " dirty INTEGER, saved_at REAL)"
                )
                db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", str(SCHEMA)), ("source", source_key)])

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _db(self) -> _Tx:
        if self._conn is not None:
            return _Tx(self._conn, close=False)
        return _Tx(self._connect())

    @contextlib.contextmanager
    def session(self) -> Iterator[IndexStore]:
        """One connection for a series of operations in this thread (indexing: closing a
        connection checkpoints the write-ahead log, which costs more than the writes)."""
        if self._conn is None:
            self._conn = self._connect()
        try:
            yield self
        finally:
            conn, self._conn = self._conn, None
            conn.close()

    # ---- meta
    def get_meta(self, k: str) -> str | None:
        with self._db() as db:
            r = db.execute("SELECT v FROM meta WHERE k=?", (k,)).fetchone()
        return None if r is None else str(r[0])

    def set_meta(self, k: str, v: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))

    # ---- files
    def load_files(self) -> dict[str, list[FileEntry]]:
        """Every saved entry, by folder; a folder whose record cannot be read is left out (read again)."""
        out: dict[str, list[FileEntry]] = {}
        loads = marshal.loads
        with self._db() as db:
            for folder, blob in db.execute("SELECT folder, entries FROM folders"):
                try:
                    shared: dict[int, dict[str, Any]] = {}  # (marshal keeps equal-values tuples one object)
                    mine = []
                    for rest, m, sz, err, vals in loads(blob):
                        values = shared.get(id(vals))
                        if values is None:
                            values = shared[id(vals)] = dict(zip(_KEPT, vals)) if vals else {}
                        mine.append(FileEntry(folder + rest, m, sz, err, values, vals))
                    out[folder] = mine
                except (ValueError, EOFError, TypeError):
                    log.info("case index %s: the entries of %s are unreadable; reading them again", self.path, folder)
        return out

    def put_folders(self, folders: dict[str, list[FileEntry]]) -> None:
        """Save the entries of these folders (each folder's whole list: it replaces what was
        saved; an empty list forgets the folder)."""
        rows = []
        gone = []
        memo: dict[int, tuple[Any, ...]] = {}  # (the entries keep their values dicts alive: ids are stable)
        for folder, entries in folders.items():
            if not entries:
                gone.append((folder,))
                continue
            n = len(folder)
            recs = [(e.path[n:], e.mtime_ns, e.size, e.error, e.kept or _vals(e, memo)) for e in entries]
            try:
                blob = marshal.dumps(recs)
            except ValueError:  # a value of an unusual type (from pydicom's fallback parse, say): as text
                blob = marshal.dumps([(*r[:4], tuple(_plain(v) for v in r[4])) for r in recs])
            rows.append((folder, blob))
        with self._db() as db:
            if gone:
                db.executemany("DELETE FROM folders WHERE folder=?", gone)
            if rows:
                db.executemany("INSERT OR REPLACE INTO folders VALUES (?, ?)", rows)

    # ---- folder listings (a folder source)
    def load_listings(self) -> dict[str, tuple[int, int, list[str], list[str]]]:
        """folder -> (its mtime_ns, when it was listed (ns), file names, subfolder names)."""
        out = {}
        loads = marshal.loads
        with self._db() as db:
            for folder, m, at, blob in db.execute("SELECT folder, mtime_ns, listed_ns, names FROM listings"):
                try:
                    files, dirs = loads(blob)
                    out[folder] = (m, at, files, dirs)
                except (ValueError, EOFError, TypeError):
                    pass  # listed again
        return out

    def put_listings(self, listings: dict[str, tuple[int, int, list[str], list[str]]], gone: Iterable[str]) -> None:
        rows = [(f, m, at, marshal.dumps((files, dirs))) for f, (m, at, files, dirs) in listings.items()]
        drop = [(f,) for f in gone]
        if rows or drop:
            with self._db() as db:
                db.executemany("DELETE FROM listings WHERE folder=?", drop)
                db.executemany("INSERT OR REPLACE INTO listings VALUES (?, ?, ?, ?)", rows)

    # ---- reviewed
    def reviewed(self) -> set[str]:
        with self._db() as db:
            return {r[0] for r in db.execute("SELECT case_key FROM reviewed")}

    def set_reviewed(self, case_key: str, flag: bool) -> None:
        with self._db() as db:
            if flag:
                db.execute("INSERT OR REPLACE INTO reviewed VALUES (?, ?)", (case_key, time.time()))
            else:
                db.execute("DELETE FROM reviewed WHERE case_key=?", (case_key,))

    # ---- ROI edits
    def load_edits(self) -> dict[str, Edit]:
        out: dict[str, Edit] = {}
        with self._db() as db:
            for path, case_key, row, nframes, dirty, saved_at in db.execute(
                "SELECT path, case_key, row, nframes, dirty, saved_at FROM edits"
            ):
                out[path] = Edit(row_from_json(json.loads(row)), nframes, bool(dirty), case_key, saved_at)
        return out

    def save_edits(self, case_key: str, edits: dict[str, Edit]) -> None:
        """Replace a case's edits."""
        with self._db() as db:
            db.execute("DELETE FROM edits WHERE case_key=?", (case_key,))
            db.executemany(
                "INSERT OR REPLACE INTO edits VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (p, case_key, json.dumps(row_to_json(e.row)), e.nframes, int(e.dirty), e.saved_at)
                    for p, e in edits.items()
                ],
            )

    def mark_clean(self) -> None:
        with self._db() as db:
            db.execute("UPDATE edits SET dirty=0")

    def drop_clean_edits(self) -> int:
        with self._db() as db:
            return db.execute("DELETE FROM edits WHERE dirty=0").rowcount


class _Tx:
    """A connection used as ``with store._db() as db``: one transaction, then closed."""

    def __init__(self, db: sqlite3.Connection, close: bool = True):
        self.db = db
        self.close = close

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN")
        return self.db

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            if self.close:
                self.db.close()


# one row per folder: its entries, marshalled as [(path after the folder, mtime_ns, size,
# error, kept values in _KEPT order or ())]: one row per folder is far fewer rows to write
# and read than one per file, and a changed file rewrites only its folder's row
_FOLDERS = "folder TEXT PRIMARY KEY, entries BLOB"
# a folder source's listing, folder by folder: reused while the folder's mtime is unchanged
_LISTINGS = "folder TEXT PRIMARY KEY, mtime_ns INTEGER, listed_ns INTEGER, names BLOB"


def _vals(e: FileEntry, memo: dict[int, tuple[Any, ...]]) -> tuple[Any, ...]:
    """An entry's kept values as a tuple (one tuple for the entries sharing a values dict)."""
    v = e.values
    t = memo.get(id(v))
    if t is None:
        t = memo[id(v)] = tuple(map(v.get, _KEPT)) if v else ()
    return t


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, (int, float, str)):
        return v
    return str(v)


# --------------------------------------------------------------------------
# ROI edits


@dataclass
class Edit:
    """The ROI row of one file as a review left it."""

    row: EmbedRow
    nframes: int | None = None
    dirty: bool = True  # not exported yet
    case_key: str = ""
    saved_at: float = 0.0


def row_to_json(row: EmbedRow) -> dict[str, Any]:
    return {
        "path": row.path,
        "line": row.line,
        "frames_cell": row.frames_cell,
        "edited": row.edited,
        "rois": [[list(r.box), r.frames] for r in row.rois],
    }


def row_from_json(d: dict[str, Any]) -> EmbedRow:
    return EmbedRow(
        path=str(d["path"]),
        rois=[
            Roi((int(b[0]), int(b[1]), int(b[2]), int(b[3])), None if f is None else [int(x) for x in f])
            for b, f in d["rois"]
        ],
        line=int(d.get("line", 0)),
        frames_cell=str(d.get("frames_cell", "")),
        edited=bool(d.get("edited", True)),
    )


# --------------------------------------------------------------------------
# cases


@dataclass
class Case:
    """One study to review."""

    key: str  # "study:<StudyInstanceUID>", "patient:<id>|<date>" or "dir:<folder>"
    number: int = 0  # position in the index, from 1
    files: list[str] = field(default_factory=list)  # readable files (images and objects), absolute
    entries: list[FileEntry] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # indices of the source CSV's rows
    missing: list[str] = field(default_factory=list)  # CSV row paths whose file does not exist
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of files that could not be read
    reviewed: bool = False
    open_error: str = ""  # set by a viewer when the case failed to open

    def _first(self, key: str) -> str:
        for e in self.entries:
            v = e.values.get(key)
            if v not in (None, ""):
                return str(v)
        return ""

    @property
    def patient_id(self) -> str:
        return self._first("patient_id")

    @property
    def patient_name(self) -> str:
        return self._first("patient_name").replace("^", " ").strip()

    @property
    def study_date(self) -> str:
        return self._first("study_date")

    @property
    def study_uid(self) -> str:
        return self._first("study_instance_uid")

    @property
    def modalities(self) -> list[str]:
        return list(dict.fromkeys(str(e.values["modality"]) for e in self.entries if e.values.get("modality")))

    @property
    def description(self) -> str:
        d = self._first("study_description")
        if d:
            return d
        series = dict.fromkeys(
            str(e.values["series_description"]) for e in self.entries if e.values.get("series_description")
        )
        return ", ".join(list(series)[:3]) + (" ..." if len(series) > 3 else "")

    @property
    def views(self) -> list[str]:
        """Mammography views of its images ("RCC", "LMLO", ...), in file order."""
        out = []
        for e in self.entries:
            v = e.values.get("view_position")
            if e.has_pixels and v:
                out.append(f"{e.values.get('image_laterality') or ''}{v}")
        return out

    @property
    def n_images(self) -> int:
        return sum(1 for e in self.entries if e.has_pixels)

    @property
    def n_frames(self) -> int:
        return sum(int(e.values.get("number_of_frames") or 1) for e in self.entries if e.has_pixels)

    @property
    def is_mammography(self) -> bool:
        return "MG" in self.modalities

    @property
    def status(self) -> str:
        """ "" when fine; else what is wrong (errors, missing files, the open error)."""
        parts = []
        if self.open_error:
            parts.append(self.open_error)
        if self.errors:
            parts.append(
                f"{len(self.errors)} unreadable: "
                + "; ".join(f"{os.path.basename(p)}: {r}" for p, r in self.errors[:2])
            )
        if self.missing:
            parts.append(f"{len(self.missing)} missing: " + ", ".join(self.missing[:2]))
        if not self.files:
            parts.append("no readable file")
        return "; ".join(parts)

    def matches(self, filters: Filters) -> bool:
        """Does any of its files satisfy every filter (the CLI's ``--filter`` rule)?"""
        return not filters or any(matches_values(e.values, filters) for e in self.entries)

    def label(self) -> str:
        parts = [self.patient_id or self.patient_name, _fmt_date(self.study_date), "/".join(self.modalities)]
        parts = [p for p in parts if p]
        if self.description:
            parts.append(self.description)
        return " · ".join(parts) or self.key


def _fmt_date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:]}" if len(d) == 8 and d.isdigit() else d


def case_key(e: FileEntry) -> str:
    v = e.values
    if v.get("study_instance_uid"):
        return f"study:{v['study_instance_uid']}"
    if v.get("patient_id") and v.get("study_date"):
        return f"patient:{v['patient_id']}|{v['study_date']}"
    return f"dir:{os.path.dirname(e.path)}"


# --------------------------------------------------------------------------
# the index


@dataclass
class CaseIndex:
    """The cases of a dataset (``napari_dcm.cases(...)`` returns one; no viewer needed)."""

    source: str  # the folder, DICOMDIR or CSV (absolute), or the paths joined by ", "
    kind: str  # "folder", "dicomdir", "csv", "paths"
    cases: list[Case] = field(default_factory=list)
    table: EmbedTable | None = None  # the source CSV
    row_files: list[str] = field(default_factory=list)  # absolute file of each CSV row
    base: str = ""  # the folder relative CSV paths are taken from
    n_files: int = 0
    n_scanned: int = 0  # read this time (the rest came from the cached index)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files that are not DICOM
    store: IndexStore | None = None
    edits: dict[str, Edit] = field(default_factory=dict)  # absolute file -> its ROI row as edited
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    _entries: dict[str, FileEntry] = field(default_factory=dict, repr=False)

    # ---- the list
    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __getitem__(self, i: int) -> Case:
        return self.cases[i]

    def filter(self, filters: Any = None, reviewed: bool | None = None) -> list[Case]:
        """Cases with a file matching every filter ("FIELD=VALUE" strings, pairs or a dict; the CLI's
        fields), and (when ``reviewed`` is given) with that reviewed flag."""
        flt = parse_filters(filters)
        return [c for c in self.cases if c.matches(flt) and (reviewed is None or c.reviewed == reviewed)]

    def case_of(self, path: str) -> Case | None:
        p = os.path.abspath(path)
        for c in self.cases:
            if p in c.files or any(self.row_files[i] == p for i in c.rows):
                return c
        return None

    def set_reviewed(self, case: Case, flag: bool = True) -> None:
        case.reviewed = flag
        if self.store is not None:
            self.store.set_reviewed(case.key, flag)

    # ---- ROI rows
    def _row_index(self) -> dict[str, int]:
        return {p: i for i, p in reversed(list(enumerate(self.row_files)))}

    def rows_of(self, case: Case) -> dict[str, EmbedRow]:
        """The ROI row of every file of a case as it stands now (edited, or as in the CSV), by absolute path."""
        out: dict[str, EmbedRow] = {}
        table_rows = self.table.rows if self.table is not None else []
        for i in case.rows:
            out[self.row_files[i]] = table_rows[i]
        for p in case.files:
            e = self.edits.get(p)
            if e is not None:
                out[p] = self._with_table_identity(p, e.row)
        return out

    def _with_table_identity(self, path: str, row: EmbedRow) -> EmbedRow:
        """An edited row carries its CSV row's path text and line (the CSV may have changed since);
        a row of a file the CSV has no row for carries the file's absolute path."""
        i = self._row_index().get(path) if self.table is not None else None
        if i is None or self.table is None:
            return EmbedRow(path, list(row.rois), 0, row.frames_cell, True)
        t = self.table.rows[i]
        return EmbedRow(
            t.path,
            list(row.rois),
            t.line,
            t.frames_cell if not row.edited else row.frames_cell,
            row.edited,
            extra=dict(t.extra),  # the row's other columns (DICOM SR write-back reads them)
        )

    def n_rois(self, case: Case) -> int:
        return sum(len(r.rois) for r in self.rows_of(case).values())

    def dirty(self, case: Case) -> bool:
        """Has the case ROI edits that were not exported?"""
        return any(self.edits[p].dirty for p in case.files if p in self.edits)

    def path_text(self, path: str) -> str:
        """How a file without a CSV row is written in an export: relative to the CSV's base folder when
        the CSV's paths are relative and the file is under it, else absolute."""
        if self.table is not None and self.base and not all(os.path.isabs(r.path.strip()) for r in self.table.rows):
            rel = os.path.relpath(path, self.base)
            if not rel.startswith(".."):
                return rel
        return path

    def record(self, case: Case, rows: Sequence[tuple[EmbedRow, int | None]], dirty: bool) -> None:
        """Keep a case's ROI rows as a review left them.

        ``rows``: (row, frame count) of the case's files that have ROIs or a CSV row, as
        the ROI layers export them (a CSV row keeps its line; a file without one has line
        0 and its absolute path).  Unchanged CSV rows are not stored.  ``dirty``: the
        rows were edited since the last export.
        """
        now = time.time()
        by_line = {r.line: i for i, r in enumerate(self.table.rows)} if self.table is not None else {}
        mine: dict[str, Edit] = {}
        for row, n in rows:
            i = by_line.get(row.line) if row.line else None
            p = self.row_files[i] if i is not None else os.path.abspath(row.path)
            if p not in case.files:
                continue
            if not row.edited and row.line:
                continue  # as imported
            if not row.line and not row.rois:
                continue  # a file that never had a row and has no ROI now
            old = self.edits.get(p)
            new_row = EmbedRow(row.path if row.line else p, list(row.rois), row.line, row.frames_cell, True)
            was_dirty = old is not None and old.dirty
            mine[p] = Edit(new_row, n, dirty or was_dirty, case.key, now)
        for p in [p for p, e in self.edits.items() if e.case_key == case.key or p in case.files]:
            del self.edits[p]
        self.edits.update(mine)
        if self.store is not None:
            self.store.save_edits(case.key, mine)

    # ---- export
    def export_rows(self) -> list[tuple[EmbedRow, int | None]]:
        """Every case's rows: the CSV's rows in their order (untouched rows as imported), then
        rows of files that had none, in case order."""
        out: list[tuple[EmbedRow, int | None]] = []
        in_table: set[str] = set()
        if self.table is not None:
            for i, row in enumerate(self.table.rows):
                p = self.row_files[i]
                in_table.add(p)
                e = self.edits.get(p)
                if e is None:
                    out.append((row, None))
                else:
                    out.append((self._with_table_identity(p, e.row), e.nframes))
        for c in self.cases:
            for p in c.files:
                e = self.edits.get(p)
                if e is not None and p not in in_table:
                    out.append((EmbedRow(self.path_text(p), list(e.row.rois), 0, e.row.frames_cell, True), e.nframes))
        return out

    def export_text(self) -> str:
        return format_embed_csv(self.export_rows())

    def export(self, csv_path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
        """Write one EMBED CSV of every case (refuses to replace a file unless ``overwrite``,
        and never replaces the source CSV).  Marks every edit exported; returns the path."""
        protect = (self.source,) if self.kind == "csv" else ()
        out = write_embed_csv(self.export_rows(), csv_path, overwrite=overwrite, protect=protect)
        for e in self.edits.values():
            e.dirty = False
        if self.store is not None:
            self.store.mark_clean()
        return out


# --------------------------------------------------------------------------
# building


def _source_of(source: Any) -> tuple[str, str, list[str]]:
    """(kind, source, listed inputs) of what ``build_index`` was given."""
    if isinstance(source, (str, os.PathLike)):
        src = os.path.abspath(os.fspath(source))
        if not os.path.exists(src):
            raise DicomReadError(src, "no such file or folder")
        if os.path.isdir(src):
            return "folder", src, [src]
        if os.path.basename(src).upper().startswith("DICOMDIR") and sniff(src) is not None:
            return "dicomdir", src, [src]
        if src.lower().endswith(".csv") or sniff(src) is None:
            return "csv", src, [src]
        return "paths", src, [src]
    paths = [os.path.abspath(os.fspath(p)) for p in source]
    for p in paths:
        if not os.path.exists(p):
            raise DicomReadError(p, "no such file or folder")
    if len(paths) == 1 and os.path.isdir(paths[0]):
        return "folder", paths[0], paths
    return "paths", ", ".join(paths), paths


def _resolve_rows(table: EmbedTable, csv_path: str, root: str | None) -> tuple[list[str], str]:
    """Absolute file of every row, and the base folder of relative paths: ``root`` when given,
    else the working directory or the CSV's folder, whichever more relative rows exist under."""
    rel = [r.path.strip() for r in table.rows if not os.path.isabs(r.path.strip())]
    if root:
        base = os.path.abspath(root)
    else:
        cands = [os.getcwd(), os.path.dirname(csv_path)]
        sample = rel[:50]
        hits = [sum(os.path.exists(os.path.join(c, p)) for p in sample) for c in cands]
        base = cands[1] if hits[1] > hits[0] else cands[0]
    out = []
    for r in table.rows:
        p = normalize(r.path)
        out.append(os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p)))
    return out, base


def build_index(
    source: Any,
    *,
    root: str | os.PathLike[str] | None = None,
    recursive: bool = True,
    cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> CaseIndex:
    """Index the cases of ``source``: a folder (tree), a DICOMDIR, an EMBED CSV, or a list of
    files and folders.

    ``root``: the folder relative paths of an EMBED CSV are relative to (default: the working
    directory or the CSV's folder, whichever holds more of them).  ``cache``: keep the index in
    the user's cache directory and reuse it (only new and changed files are read).
    ``progress(done, total)`` is called as files are indexed; ``cancel()`` returning True stops
    indexing between batches with :class:`IndexCancelled` (what was read is kept).

    Raises ``DicomReadError`` for a source that does not exist and ``EmbedCSVError`` for an
    invalid CSV.
    """
    t0 = time.perf_counter()
    kind, src, inputs = _source_of(source)
    index = CaseIndex(source=src, kind=kind)
    row_set: set[str] = set()
    files: list[str] = []
    if kind == "csv":
        index.table = read_embed_csv(src)
        index.row_files, index.base = _resolve_rows(index.table, src, os.fspath(root) if root else None)
        row_set = set(index.row_files)
        dirs = list(dict.fromkeys(os.path.dirname(p) for p in index.row_files if os.path.isfile(p)))
        files = [*iter_files(dirs, recursive=False), *(p for p in index.row_files if os.path.isfile(p))]
    elif kind == "dicomdir":
        files = [os.path.abspath(p) for p in dicomdir_files(src)]
    source_key = f"{kind}:{src}" if kind != "paths" else "paths:" + "\n".join(sorted(inputs))
    store = IndexStore(index_path(source_key), source_key, keep_open=True) if cache else None
    index.store = store
    with paused_gc(), store.session() if store is not None else contextlib.nullcontext():
        if kind == "folder" and store is not None:
            files = _walk_kept(src, recursive, store)
        elif kind in ("folder", "paths"):
            files = list(iter_files(inputs, recursive))  # absolute: the inputs are
        files = list(dict.fromkeys(files))
        if "DICOMDIR" in "\n".join(files).upper():  # (rare: the per-file test only then)
            files = [f for f in files if not os.path.basename(f).upper().startswith("DICOMDIR")]
        index.n_files = len(files)
        _index_files(index, files, store, progress, cancel)
        _group(index, files, index._entries, row_set)
        if store is not None:
            _load_review(index, store)
    index._entries = {}
    index.seconds = time.perf_counter() - t0
    return index


# a saved listing is trusted only when it was taken this long after the folder's last change:
# a change in the same timestamp tick (2 s on FAT) as the one seen would not change the mtime
LISTING_MARGIN_NS = 2_000_000_000


def _walk_kept(root: str, recursive: bool, store: IndexStore) -> list[str]:
    """The files under ``root`` as ``iter_files`` lists them, reusing the saved listing of every
    folder whose modification time is unchanged (a file or folder added, removed or renamed in
    a folder changes its mtime; a file rewritten in place does not, which the per-file stat of
    ``_index_files`` sees).  A folder is ``stat``-ed instead of listed, and listed again when
    its mtime differs from the saved one, or the saved listing was taken less than
    ``LISTING_MARGIN_NS`` after that mtime.  New listings are saved; folders no longer reached
    are forgotten."""
    saved = store.load_listings()
    fresh: dict[str, tuple[int, int, list[str], list[str]]] = {}
    seen: set[str] = set()
    out: list[str] = []
    join = os.path.join
    stat = os.stat

    def walk(folder: str) -> None:
        try:
            m = stat(folder).st_mtime_ns
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            return
        seen.add(folder)
        s = saved.get(folder)
        if s is not None and s[0] == m and s[1] - m >= LISTING_MARGIN_NS:
            names, dirs = s[2], s[3]
        else:
            at = time.time_ns()  # (before listing: a change after it shows as a new mtime)
            listed = list_folder(folder)
            if listed is None:
                return
            names, dirs = listed
            fresh[folder] = (m, at, names, dirs)
        prefix = folder if folder.endswith(os.sep) else folder + os.sep  # (os.path.join's result)
        out.extend([prefix + n for n in names])
        if recursive:
            for d in dirs:
                walk(join(folder, d))

    walk(root)
    store.put_listings(fresh, [f for f in saved if f not in seen])
    return out


def _index_files(
    index: CaseIndex,
    files: list[str],
    store: IndexStore | None,
    progress: Callable[[int, int], None] | None,
    cancel: Callable[[], bool] | None,
) -> None:
    """Entries of every file: from the saved index when its stat is unchanged, else scanned.

    The files are the scan's own listing; a file to read is scanned together with its
    ``stat`` in the scan workers (taken before it is read: a file changed while it is read
    is read again next time), so an empty cache costs the scan plus what is kept of it.
    The saved index is written a folder at a time, the folders of new, changed and removed
    files: every ``WRITE`` files read and at the end (also when cancelled).
    """
    total = len(files)
    cached = store.load_files() if store is not None else {}
    entries: dict[str, FileEntry] = {}
    dirty: set[str] = set()  # folders whose saved entries are to be rewritten
    if cached:
        known = {e.path: e for mine in cached.values() for e in mine}
        to_scan: list[str] = []
        stat = os.stat
        get = known.get
        for p in files:
            try:
                st = stat(p)
            except OSError as exc:
                entries[p] = FileEntry(p, 0, 0, f"cannot read: {exc.strerror or exc}")
                continue
            c = get(p)
            if c is not None and c.mtime_ns == st.st_mtime_ns and c.size == st.st_size:
                entries[p] = c
            else:
                to_scan.append(p)
        if len(known) > len(entries):  # removed files: forgotten with their folder's rewrite
            dirty.update(f for f, p in _with_folders(p for p in known if p not in entries))
        del known
    else:
        to_scan = files
    done = total - len(to_scan)
    if progress:
        progress(done, total)
    new: dict[str, list[FileEntry]] = {}  # by folder
    n_new = 0

    def save() -> None:
        if store is not None and dirty:
            out = {}
            for d in dirty:
                kept = [e for e in cached.get(d, ()) if entries.get(e.path) is e]
                out[d] = kept + new.get(d, [])
            store.put_folders(out)
            dirty.clear()

    chunks = scan_values(to_scan, _FROM_VALUES, chunk=BATCH)
    try:
        while True:
            if cancel is not None and cancel():
                raise IndexCancelled(done, total)
            got = next(chunks, None)
            if got is None:
                break
            cur = None
            mine: list[FileEntry] = []
            # a values dict per values tuple: the scan sends files with equal values as one tuple
            # (keyed by id: the chunk's tuples stay alive while it is read)
            shared: dict[int, dict[str, Any]] = {}
            for (folder, p), ms, it in zip(_with_folders(got[0]), got[1], got[2]):
                if type(it) is str:
                    e = FileEntry(p, *(ms or (0, 0)), it)
                elif ms is None:
                    e = FileEntry(p, 0, 0, _VANISHED)
                else:
                    values = shared.get(id(it))
                    if values is None:
                        values = shared[id(it)] = dict(zip(_KEPT, it))
                    e = FileEntry(p, *ms, "", values, it)
                entries[p] = e
                if folder is not cur:
                    cur = folder
                    dirty.add(folder)
                    mine = new.setdefault(folder, [])
                mine.append(e)
            done += len(got[0])
            n_new += len(got[0])
            index.n_scanned += len(got[0])
            if n_new >= WRITE:
                save()
                n_new = 0
            if progress:
                progress(done, total)
    finally:
        chunks.close()
        save()  # (cancelled: what was read is kept)
        index._entries = entries


def _with_folders(files: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(``os.path.dirname(p)``, p) of every file; the files of a folder come one after the other
    in a listing, so a folder is computed once per run of its files."""
    sep = os.sep
    folder = ""
    n = -1
    for p in files:
        if p.rfind(sep) != n or not p.startswith(folder):
            folder = os.path.dirname(p)
            n = len(folder)
        yield folder, p


_VANISHED = "cannot read: vanished while indexing"


def _group(index: CaseIndex, files: list[str], entries: dict[str, FileEntry], row_set: set[str]) -> None:
    cases: dict[str, Case] = {}
    order: dict[str, int] = {}
    dir_case: dict[str, str] = {}
    dirname = os.path.dirname

    def case(key: str, at: int) -> Case:
        c = cases.get(key)
        if c is None:
            c = cases[key] = Case(key)
            order[key] = at
        return c

    errors: list[tuple[int, str, FileEntry]] = []
    get = entries.get
    key_of: dict[int, str] = {}  # by values dict (entries share them): the key of its files
    for n, p in enumerate(files):
        e = get(p)
        if e is None:
            continue
        if e.error:
            errors.append((n, p, e))
            continue
        k = key_of.get(id(e.values))  # (the values dicts live as long as the entries: ids are stable)
        if k is None:
            k = case_key(e)
            if not k.startswith("dir:"):
                key_of[id(e.values)] = k
        c = cases.get(k)
        if c is None:
            c = cases[k] = Case(k)
            order[k] = n
        c.files.append(p)
        c.entries.append(e)
    if errors or index.table is not None:  # the case of a folder's first readable file
        for d, p in _with_folders(files):
            if d not in dir_case:
                e = get(p)
                if e is not None and not e.error:
                    dir_case[d] = key_of.get(id(e.values)) or case_key(e)
    for n, p, e in errors:
        if e.error == "not DICOM" and p not in row_set:
            index.skipped.append((p, e.error))
            continue
        d = dirname(p)
        case(dir_case.get(d) or f"dir:{d}", n).errors.append((p, e.error))
    if index.table is not None:
        first_row: dict[str, int] = {}
        for i, p in enumerate(index.row_files):
            e = entries.get(p)
            if e is not None and not e.error:
                k = case_key(e)
            else:
                d = dirname(p)
                k = dir_case.get(d) or f"dir:{d}"
            c = case(k, len(files) + i)
            c.rows.append(i)
            first_row.setdefault(k, i)
            if e is None and not os.path.exists(p):
                c.missing.append(index.table.rows[i].path)
        keys = sorted(first_row, key=lambda k: first_row[k])  # cases are the rows' studies, in row order
    else:
        keys = sorted(cases, key=lambda k: order[k])
    index.cases = [cases[k] for k in keys]
    for i, c in enumerate(index.cases, 1):
        c.number = i


def _load_review(index: CaseIndex, store: IndexStore) -> None:
    reviewed = store.reviewed()
    for c in index.cases:
        c.reviewed = c.key in reviewed
    if index.kind == "csv":
        st = os.stat(index.source)
        sig = f"{st.st_mtime_ns}:{st.st_size}"
        old = store.get_meta("csv")
        if old is not None and old != sig:
            n = store.drop_clean_edits()
            if n:
                index.notes.append(
                    f"{os.path.basename(index.source)} changed since the last session: "
                    f"{n} exported ROI row(s) are taken from it again"
                )
        store.set_meta("csv", sig)
    index.edits = store.load_edits()
    dirty = {e.case_key for e in index.edits.values() if e.dirty}
    if dirty:
        index.notes.append(f"{len(dirty)} case(s) have ROI edits from an earlier session that were not exported")
