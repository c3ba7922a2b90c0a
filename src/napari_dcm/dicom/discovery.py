"""Discovery: which files are DICOM, and what their headers say.

Folders are walked (recursively by default), every candidate file's header is
scanned (both cores for large folders), and what could not be read is
reported with its reason.  No pixel data is read here.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .limits import NotRegularFileError
from .scan import (
    Header,
    NoFallback,
    NotDicom,
    ScanError,
    layout_record,
    refuse_deflated,
    scan_header,
    sniff,
    value_cache,
)

if TYPE_CHECKING:
    from pydicom import Dataset

log = logging.getLogger("napari_dcm")

_SKIP_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
PARALLEL_MIN_FILES = 400
CHUNK = 500


@dataclass
class ScanResult:
    headers: list[Header] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    n_files: int = 0

    def extend(self, other: ScanResult) -> None:
        self.headers += other.headers
        self.skipped += other.skipped
        self.n_files += other.n_files


def looks_like_dicom(path: str) -> bool:
    """Cheap test used by the napari reader: DICM preamble, DICOM element at
    byte 0, or a DICOMDIR / folder holding such files."""
    if os.path.isdir(path):
        return folder_has_dicom(path)
    return sniff(path) is not None


def folder_has_dicom(path: str, max_files: int = 200) -> bool:
    """Does a folder (recursively) hold a DICOM file among its first files?"""
    for seen, f in enumerate(iter_files([path], recursive=True), 1):
        if sniff(f) is not None:
            return True
        if seen >= max_files:
            return False
    return False


def iter_files(paths: Iterable[str], recursive: bool = True) -> Iterator[str]:
    """Yield files under ``paths`` in a stable (sorted) order."""
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            yield from _walk_dir(p, recursive)
        else:
            yield p


def _walk_dir(root: str, recursive: bool) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", root, exc)
        return
    dirs = []
    for e in entries:
        if e.name.startswith(".") or e.name in _SKIP_NAMES:
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                dirs.append(e.path)
            elif e.is_file():
                yield e.path
        except OSError:
            continue
    if recursive:
        for d in dirs:
            yield from _walk_dir(d, recursive)


def dicomdir_files(path: str) -> list[str]:
    """Files referenced by a DICOMDIR (falls back to the folder it sits in)."""
    try:
        files = dicomdir_referenced(path)
        files = [f for f in files if os.path.isfile(f)]
        if files:
            return files
    except Exception as exc:  # damaged DICOMDIR: use the folder instead
        log.info("DICOMDIR %s unreadable (%s); scanning its folder", path, exc)
    root = os.path.dirname(os.path.abspath(path))
    return [f for f in iter_files([root]) if not _is_dicomdir_name(f)]


def dicomdir_referenced(path: str) -> list[str]:
    """Paths of every file a DICOMDIR's directory records reference (sorted).

    The records are read as one sequence, never by following their offsets,
    so a DICOMDIR whose offsets loop cannot make this loop: like pydicom's
    ``FileSet`` (which follows the offsets, with no guard against cycles),
    every record with a Referenced File ID counts, in the hierarchy or not.
    The hierarchy is still walked (each record at most once) to log damage.
    File IDs that leave the DICOMDIR's folder (``..``, absolute) are refused.
    """
    from .scan import read_dataset

    ds = read_dataset(path)
    records = list(ds.get("DirectoryRecordSequence") or [])
    root = os.path.dirname(os.path.abspath(path))
    damage = _dicomdir_damage(ds, records)
    if damage:
        log.info("DICOMDIR %s: %s; using every record's file ID", path, damage)
    files = set()
    for rec in records:
        fid = rec.get("ReferencedFileID")
        if fid is None or fid == "":
            continue
        parts = [str(fid)] if isinstance(fid, str) else [str(p) for p in fid]
        parts = [p.strip() for p in parts if p and p.strip()]
        if not parts or any(p in (".", "..") or "/" in p or "\\" in p or os.path.isabs(p) for p in parts):
            log.info("DICOMDIR %s: refused file ID %r (outside its folder)", path, fid)
            continue
        files.add(os.path.join(root, *parts))
    return sorted(files)


def _dicomdir_damage(ds: Dataset, records: list[Dataset]) -> str:
    """Walk the record hierarchy by its offsets, visiting each record once; say what is wrong ('' if nothing)."""
    by_offset = {getattr(r, "seq_item_tell", None): r for r in records}
    todo = [int(ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity", 0) or 0)]
    seen: set[int] = set()
    while todo:
        off = todo.pop()
        while off:
            if off in seen:
                return f"directory record offsets loop (offset {off} is reached twice)"
            rec = by_offset.get(off)
            if rec is None:
                return f"a record offset ({off}) points at no directory record"
            seen.add(off)
            lower = int(rec.get("OffsetOfReferencedLowerLevelDirectoryEntity", 0) or 0)
            if lower:
                todo.append(lower)
            off = int(rec.get("OffsetOfTheNextDirectoryRecord", 0) or 0)
    if records and len(seen) < len(records):
        return f"{len(records) - len(seen)} directory record(s) outside the hierarchy"
    return ""


def _is_dicomdir_name(f: str) -> bool:
    return os.path.basename(f).upper().startswith("DICOMDIR")


def header_from_dataset(path: str, ds: Dataset) -> Header:
    """A Header built with pydicom (fallback when the fast walk fails)."""
    from .scan import _WANTED

    h = Header(path=path)
    meta = getattr(ds, "file_meta", None)
    h.transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    h.sop_class_uid = str(ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", "") or "")
    h.sop_instance_uid = str(ds.get("SOPInstanceUID", "") or "")
    h.has_meta = meta is not None and len(meta) > 0
    for tag, (name, kind) in _WANTED.items():
        if tag in (0x00080016, 0x00080018) or kind == "raw":
            continue
        el = ds.get(tag)
        if el is None or el.value in (None, ""):
            continue
        v = el.value
        try:
            if kind == "s":
                h.values[name] = str(v)
            elif kind == "m":
                h.values[name] = [
                    str(x)
                    for x in (
                        v if isinstance(v, (list, tuple)) or hasattr(v, "__iter__") and not isinstance(v, str) else [v]
                    )
                ]
            elif kind == "i":
                h.values[name] = int(v)
            elif kind == "f":
                vals = v if hasattr(v, "__iter__") and not isinstance(v, str) else [v]
                h.values[name] = [float(x) for x in vals]
            elif kind == "u":
                h.values[name] = int(v)
        except (TypeError, ValueError) as exc:
            raise ScanError(f"invalid {el.keyword or name} value {v!r}") from exc
    for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if kw in ds:
            h.pixel_tag = {"PixelData": 0x7FE00010, "FloatPixelData": 0x7FE00008, "DoubleFloatPixelData": 0x7FE00009}[
                kw
            ]
            h.pixel_offset = 0
            break
    h.walked = False
    h.needs_dataset = True
    return h


def scan_one(path: str) -> Header | tuple[str, str]:
    """Scan one file: a Header, or (path, reason) when it is skipped."""
    try:
        return scan_header(path)
    except NotRegularFileError as exc:
        return (path, str(exc))
    except OSError as exc:
        return (path, f"cannot read: {exc.strerror or exc}")
    except NotDicom:
        return (path, "not DICOM")
    except NoFallback as exc:  # pydicom would not be bounded either (deflated datasets)
        return (path, str(exc))
    except ScanError as exc:
        reason = str(exc)
    except MemoryError:  # a size failure: pydicom would not do better
        return (path, "the header does not fit in memory")
    except Exception as exc:  # never let one file stop a folder
        reason = f"{type(exc).__name__}: {exc}"
    # last resort: pydicom (handles a few oddities the walk refuses)
    try:
        import warnings

        import pydicom

        refuse_deflated(path)  # pydicom would inflate the whole dataset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, defer_size=4096)
            if len(ds) == 0:
                return (path, reason)
            h = header_from_dataset(path, ds)
        if not h.values.get("rows") and h.has_pixels:
            return (path, reason)
        h.file_size = os.path.getsize(path)
        return h
    except Exception:
        return (path, reason)


def _scan_chunk(paths: list[str]) -> list[Header | tuple[str, str]]:
    """Scan files in a worker.  Equal values of different files become one
    object (``scan.value_cache``), so the pickled answer stores a series' shared
    UIDs, names and orientations once per chunk instead of once per file."""
    with value_cache():
        out = [scan_one(p) for p in paths]
    shared: dict[Hashable, Any] = {}
    for h in out:
        if isinstance(h, Header) and not h.walked:  # pydicom's values (the walk's are shared already)
            vals = h.values
            for k, v in vals.items():
                if type(v) is list and (not v or type(v[0]) is not dict):
                    t = tuple(v)
                    vals[k] = shared.setdefault((1, t), v)
                elif type(v) is str:
                    vals[k] = shared.setdefault(v, v)
    return out


# A scan worker's answer for a chunk: (bases, items).  An item is a Header, a (path,
# reason) pair, or, for a header that a layout described (scan._Layout), the tuple
# (base index, SOP class UID, SOP instance UID, file size, its varying values): the
# path is the chunk's, and the rest is the base's (scan._Layout.packed_base).  Fewer
# and smaller objects to pickle, send and unpickle than a Header with its values.
_Packed = tuple[list[tuple[Any, ...]], list[Any]]


def _scan_chunk_packed(paths: list[str]) -> _Packed:
    """``_scan_chunk`` for the worker pool, answered packed (see ``_Packed``)."""
    with layout_record(bare=True) as rec:
        out = _scan_chunk(paths)
        bases: list[tuple[Any, ...]] = []
        index: dict[tuple[int, tuple[int, ...]], int] = {}
        items: list[Any] = []
        for h in out:
            r = rec.get(id(h)) if isinstance(h, Header) else None
            if r is None or not isinstance(h, Header):
                items.append(h)
                continue
            lay, kept, varying = r
            bi = index.get((id(lay), kept))
            if bi is None:
                bi = index[(id(lay), kept)] = len(bases)
                bases.append(lay.packed_base(kept))
            items.append((bi, h.sop_class_uid, h.sop_instance_uid, h.file_size, varying))
    return bases, items


def _unpack(paths: list[str], packed: _Packed) -> list[Header | tuple[str, str]]:
    bases, items = packed
    out: list[Header | tuple[str, str]] = []
    append = out.append
    tup = tuple
    for path, it in zip(paths, items):
        if type(it) is tup and len(it) == 5:
            bi, sc, si, size, varying = it
            pb = bases[bi]
            ptag, poff, plen, needs, base, names, ts = pb
            values = base.copy()
            if varying:
                values.update(zip(names, varying))
            # (positional, in field order: walked, deflated_offset, source, dataset, packed)
            append(
                Header(path, ts, sc, si, True, True, ptag, poff, plen, size, needs, values, True, -1, None, None, pb)
            )
        else:
            append(it)
    return out


_pool: cf.ProcessPoolExecutor | None = None


def _get_pool(workers: int) -> cf.ProcessPoolExecutor:
    """Scan workers that live for the session.

    On Linux they are forked: they start in milliseconds and re-import
    nothing.  The children only run the header walk (no Qt, no logging, no
    imports: pydicom is imported first so a fallback never takes the import
    lock), so forking from napari's multi-threaded process is safe.
    Elsewhere the platform's default start method is used.  A worker first
    freezes what it inherited (``gc.freeze``): its collections walk only the
    objects of its own scans, and never touch (copy) the parent's pages.
    """
    global _pool
    if _pool is None:
        import pydicom  # noqa: F401  (imported before forking, see above)

        method = "fork" if sys.platform.startswith("linux") else None
        ctx = multiprocessing.get_context(method)
        _pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=gc.freeze)
    return _pool


def shutdown_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(cancel_futures=True)
        _pool = None


def _listed(paths: list[str], recursive: bool) -> Iterator[str]:
    """The files to scan under ``paths``, in order, each once (DICOMDIRs give the files they list)."""
    seen: set[str] = set()
    for p in paths:
        if os.path.isfile(p) and _is_dicomdir_name(p) and sniff(p) is not None:
            found: Iterable[str] = dicomdir_files(p)
        else:
            # (a DICOMDIR name has "DICOMDIR" in its upper-cased path: most paths are kept on that alone)
            found = (f for f in iter_files([p], recursive) if "DICOMDIR" not in f.upper() or not _is_dicomdir_name(f))
        for f in found:
            if f not in seen:
                seen.add(f)
                yield f


def scan_paths(
    paths: Iterable[str],
    recursive: bool = True,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> ScanResult:
    """Find and scan every file under ``paths``.

    ``progress(done, total)`` is called as chunks finish (once the listing is
    done).  Folders of more than ``PARALLEL_MIN_FILES`` files are scanned on
    every core, and the scan workers start on the first chunks while the
    folders are still being listed.
    """
    roots = [os.fspath(p) for p in paths]
    for p in roots:
        if not os.path.exists(p):
            raise FileNotFoundError(p)
    workers = workers or min(os.cpu_count() or 1, 8)
    files: list[str] = []
    result = ScanResult()

    def take(items: list[Header | tuple[str, str]]) -> None:
        hs = [it for it in items if type(it) is Header]
        if len(hs) == len(items):
            result.headers += hs
            return
        for it in items:
            if isinstance(it, Header):
                result.headers.append(it)
            else:
                result.skipped.append(it)

    pool = None
    pool_failed = workers <= 1
    submitted = 0  # files handed to the workers so far (the first chunks go while the listing goes on)
    futures: list[tuple[list[str], cf.Future[_Packed]]] = []
    # tens of thousands of small objects arrive at once: collecting garbage
    # while they do only re-walks a large heap (napari's) for nothing
    gc_was_enabled = gc.isenabled()
    try:
        listing = _listed(roots, recursive)
        for f in listing:
            files.append(f)
            n = len(files)
            if pool is None and not pool_failed and n >= PARALLEL_MIN_FILES:
                try:
                    pool = _get_pool(workers)  # (imports done and workers forked with the collector as it was)
                    gc.disable()
                except Exception as exc:  # e.g. no process support: scan serially
                    log.info("parallel scan unavailable (%s); scanning serially", exc)
                    pool_failed = True
            if pool is not None and n - submitted >= CHUNK:  # a full chunk: the workers start on it now
                chunk = files[submitted:n]
                try:
                    futures.append((chunk, pool.submit(_scan_chunk_packed, chunk)))
                except Exception as exc:  # a broken pool: scan serially once listed
                    log.info("parallel scan failed (%s); scanning serially", exc)
                    pool_failed = True
                submitted = n
    except BaseException:  # the listing failed (a DICOMDIR, say): nothing more to scan
        for _, fut in futures:
            fut.cancel()
        if pool is not None and gc_was_enabled:
            gc.enable()
        raise
    try:
        total = result.n_files = len(files)
        if pool is not None and not pool_failed:
            try:
                if submitted < total:
                    chunk = files[submitted:]
                    futures.append((chunk, pool.submit(_scan_chunk_packed, chunk)))
                done = 0
                for chunk, fut in futures:
                    items = _unpack(chunk, fut.result())
                    take(items)
                    done += len(items)
                    if progress:
                        progress(done, total)
                return result
            except Exception as exc:  # e.g. no process support: fall back to serial
                log.info("parallel scan failed (%s); scanning serially", exc)
                pool_failed = True
        if pool_failed and futures:
            for _, fut in futures:
                fut.cancel()
            shutdown_pool()
            result = ScanResult(n_files=total)
    finally:
        if pool is not None and gc_was_enabled:
            # the headers that arrived are not garbage: not walked (see series.promote_young)
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
    done = 0
    for i in range(0, total, CHUNK):
        items = _scan_chunk(files[i : i + CHUNK])
        take(items)
        done += len(items)
        if progress:
            progress(done, total)
    return result


# --------------------------------------------------------------------------
# scanning listed files chunk by chunk, with their stat (the case index, dicom/cases.py)


def _stats(paths: list[str]) -> list[tuple[int, int] | None]:
    """Every file's (mtime_ns, size) (None: it could not be stat-ed)."""
    out: list[tuple[int, int] | None] = []
    stat = os.stat
    for p in paths:
        try:
            st = stat(p)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return out


def _scan_values_chunk(paths: list[str], names: tuple[str, ...]) -> tuple[list[tuple[int, int] | None], list[Any]]:
    """Every file's stat (taken before it is read) and either its named header values, then
    its SOP class UID and 1/0 for pixel data, as one tuple (files with equal values share one
    tuple: pickled once), or why it was skipped (a str)."""
    stats = _stats(paths)
    out: list[Any] = []
    shared: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for h in _scan_chunk(paths):
        if isinstance(h, Header):
            t = (*map(h.values.get, names), h.sop_class_uid or None, 1 if h.has_pixels else 0)
            try:
                out.append(shared.setdefault(t, t))
            except TypeError:  # an unhashable value (from pydicom's fallback parse): not shared
                out.append(t)
        else:
            out.append(h[1])
    return stats, out


def scan_values(
    files: list[str], names: tuple[str, ...], chunk: int = CHUNK, workers: int | None = None
) -> Generator[tuple[list[str], list[tuple[int, int] | None], list[Any]], None, None]:
    """Scan files already listed (no walking, no per-path checks), in order, chunk by chunk,
    for a few header values: yields (the chunk's paths, their (mtime_ns, size) taken before
    they were read or None, for each file either the tuple of its ``Header.values`` named by
    ``names`` followed by its SOP class UID and 1/0 for pixel data, or why it was skipped).

    On every core (the session's scan workers) when there are ``PARALLEL_MIN_FILES`` or more:
    the consumer works on one chunk while the next are scanned; closing the iterator early
    cancels the chunks not started.  Only the values asked for cross from the workers.
    Added for the case index (dicom/cases.py)."""
    chunks = [files[i : i + chunk] for i in range(0, len(files), chunk)]
    workers = workers or min(os.cpu_count() or 1, 8)
    pool = None
    if len(files) >= PARALLEL_MIN_FILES and workers > 1:
        try:
            pool = _get_pool(workers)
        except Exception as exc:
            log.info("parallel scan unavailable (%s); scanning serially", exc)
    k = 0  # chunks yielded
    if pool is not None:
        futures: list[cf.Future[tuple[list[tuple[int, int] | None], list[Any]]]] = []
        try:
            # (all submitted at once, as ``pool.map`` does: while the consumer works, the
            # executor's threads then have no submission to take the interpreter for)
            futures = [pool.submit(_scan_values_chunk, c, names) for c in chunks]
            while k < len(chunks):
                stats, items = futures[k].result()
                k += 1
                yield chunks[k - 1], stats, items
        except GeneratorExit:
            raise
        except Exception as exc:  # e.g. no process support: the rest serially
            log.info("parallel scan failed (%s); scanning serially", exc)
            shutdown_pool()
        finally:
            for f in futures[k:]:
                f.cancel()
    for c in chunks[k:]:
        yield (c, *_scan_values_chunk(c, names))


def list_folder(folder: str) -> tuple[list[str], list[str]] | None:
    """The names of a folder's files and of its subfolders, sorted, as the listing of
    ``iter_files`` takes them (hidden names and ``_SKIP_NAMES`` left out, symbolic links
    to folders not followed); None when it cannot be listed.  Added for the case index,
    which keeps a folder's listing while its modification time does not change."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc)
        return None
    files: list[str] = []
    dirs: list[str] = []
    for e in entries:
        if e.name.startswith(".") or e.name in _SKIP_NAMES:
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                dirs.append(e.name)
            elif e.is_file():
                files.append(e.name)
        except OSError:
            continue
    return files, dirs
