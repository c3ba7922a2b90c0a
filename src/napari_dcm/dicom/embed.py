"""EMBED rectangular ROI annotations (the EMBED mammography dataset's CSV format).

Columns: ``anon_dicom_path`` (required), ``ROI_coords`` (required: JSON list of
``[ymin, xmin, ymax, xmax]`` boxes, non-negative integer pixel edges, end
exclusive), ``num_ROI`` (optional, must equal the box count), ``ROI_frames``
(optional: one list of zero-based *stored* frame indices per ROI; missing,
empty or ``[]`` means every frame).

Export writes the canonical form dcmview writes: header
``anon_dicom_path,num_ROI,ROI_coords,ROI_frames``, compact JSON, minimal CSV
quoting, ``\\n`` line ends, one row per file, ROIs in file order.

Pure Python: no napari, no Qt.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any, cast

from ..errors import EmbedCSVError

REQUIRED = ("anon_dicom_path", "ROI_coords")
HEADER = ("anon_dicom_path", "num_ROI", "ROI_coords", "ROI_frames")


@dataclass
class Roi:
    """One box in EMBED edge coordinates; ``frames`` None means every frame."""

    box: tuple[int, int, int, int]  # ymin, xmin, ymax, xmax
    frames: list[int] | None = None


@dataclass
class EmbedRow:
    """One CSV row: a file's ROIs, plus what is needed to write it back unchanged."""

    path: str  # exactly as written in the CSV (or as loaded, for new rows)
    rois: list[Roi] = field(default_factory=list)
    line: int = 0  # 0 for rows that did not come from a CSV
    frames_cell: str = ""  # the ROI_frames cell as read ("" / "[]" / JSON)
    edited: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # the row's other columns (kept for DICOM SR write-back)

    @property
    def key(self) -> str:
        return normalize(self.path)


@dataclass
class EmbedTable:
    rows: list[EmbedRow]
    source: str | None = None  # the CSV it came from


# --------------------------------------------------------------------------
# paths


def normalize(path: str) -> str:
    """Trim and lexically normalise (``.``/``..``, duplicate separators)."""
    p = path.strip()
    return os.path.normpath(p) if p else p


def match_keys(path: str, cwd: str | None = None) -> set[str]:
    """Keys under which a path matches: as normalised, and absolute against ``cwd``."""
    n = normalize(path)
    cwd = cwd or os.getcwd()
    keys = {n}
    keys.add(os.path.normpath(n if os.path.isabs(n) else os.path.join(cwd, n)))
    return keys


# --------------------------------------------------------------------------
# parsing


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_coords(cell: str) -> list[tuple[int, int, int, int]]:
    try:
        v = json.loads(cell)
    except (json.JSONDecodeError, ValueError) as exc:
        # a plain ValueError (e.g. an integer of more than 4300 digits) has no .msg
        raise ValueError(f"ROI_coords is not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(v, list):
        raise ValueError("ROI_coords is not a JSON list of [ymin, xmin, ymax, xmax] boxes")
    boxes: list[tuple[int, int, int, int]] = []
    for i, b in enumerate(v):
        if not isinstance(b, list) or len(b) != 4:
            raise ValueError(f"ROI_coords box {i} is not a list of 4 integers")
        for x in b:
            if not _is_int(x):
                kind = "a float" if isinstance(x, float) else type(x).__name__
                raise ValueError(f"ROI_coords box {i} has {kind} value {x!r}; coordinates are integers")
            if x < 0:
                raise ValueError(f"ROI_coords box {i} has negative value {x}")
        y0, x0, y1, x1 = b
        if y1 <= y0 or x1 <= x0:
            raise ValueError(f"ROI_coords box {i} {b} is empty (ymax <= ymin or xmax <= xmin)")
        boxes.append((y0, x0, y1, x1))
    return boxes


def _parse_frames(cell: str, n_rois: int) -> list[list[int]] | None:
    s = cell.strip()
    if s == "" or s == "[]":
        return None
    try:
        v = json.loads(s)
    except (json.JSONDecodeError, ValueError) as exc:
        # a plain ValueError (e.g. an integer of more than 4300 digits) has no .msg
        raise ValueError(f"ROI_frames is not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(v, list) or not all(isinstance(f, list) for f in v):
        raise ValueError("ROI_frames is not a JSON list of lists of frame indices")
    for i, f in enumerate(v):
        for x in f:
            if not _is_int(x) or x < 0:
                raise ValueError(f"ROI_frames list {i} has {x!r}; frame indices are non-negative integers")
    if len(v) != n_rois:
        raise ValueError(f"ROI_frames has {len(v)} list(s) for {n_rois} ROI(s)")
    return cast("list[list[int]]", v)  # validated above


def parse_embed_csv(text: str, source: str = "<csv>") -> EmbedTable:
    """Parse and validate EMBED CSV text; raise EmbedCSVError listing every error."""
    errors: list[tuple[int, str]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise EmbedCSVError(source, [(1, "the file is empty (no header)")]) from None
    except csv.Error as exc:
        raise EmbedCSVError(source, [(1, f"unreadable CSV header ({exc})")]) from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise EmbedCSVError(source, [(1, f"missing required column(s): {', '.join(missing)}")])
    idx = {h: i for i, h in enumerate(header)}
    rows: list[EmbedRow] = []
    seen: dict[str, int] = {}
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append((reader.line_num, f"unreadable CSV ({exc})"))
            break
        line = reader.line_num
        if not cells or cells == [""]:
            continue  # blank line
        if len(cells) != len(header):
            errors.append((line, f"row has {len(cells)} field(s), the header has {len(header)}"))
            continue
        path = cells[idx["anon_dicom_path"]]
        if not path.strip():
            errors.append((line, "empty anon_dicom_path"))
            continue
        try:
            boxes = _parse_coords(cells[idx["ROI_coords"]])
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        if "num_ROI" in idx:
            n = cells[idx["num_ROI"]].strip()
            if n != "":
                if not (n.isdigit() or (n.startswith("+") and n[1:].isdigit())):
                    errors.append((line, f"num_ROI {n!r} is not an integer"))
                    continue
                if int(n) != len(boxes):
                    errors.append((line, f"num_ROI is {int(n)} but ROI_coords has {len(boxes)} box(es)"))
                    continue
        frames_cell = cells[idx["ROI_frames"]] if "ROI_frames" in idx else ""
        try:
            frames = _parse_frames(frames_cell, len(boxes))
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        key = normalize(path)
        if key in seen:
            errors.append((line, f"path {path.strip()!r} appears again (first on line {seen[key]})"))
            continue
        seen[key] = line
        rois = [Roi(b, None if frames is None else list(frames[i])) for i, b in enumerate(boxes)]
        extra = {h: cells[i] for h, i in idx.items() if h not in HEADER and h and cells[i].strip()}
        rows.append(EmbedRow(path=path, rois=rois, line=line, frames_cell=frames_cell, extra=extra))
    if errors:
        raise EmbedCSVError(source, errors)
    return EmbedTable(rows, source=source)


def read_embed_csv(csv_path: str | os.PathLike[str]) -> EmbedTable:
    """Read (never modify) an EMBED CSV."""
    csv_path = os.fspath(csv_path)
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise EmbedCSVError(csv_path, [(1, f"not UTF-8 text ({exc.reason})")]) from None
    t = parse_embed_csv(text, csv_path)
    t.source = os.path.abspath(csv_path)
    return t


# --------------------------------------------------------------------------
# matching rows to loaded files


@dataclass
class LoadedFile:
    """What matching needs to know about a loaded DICOM file."""

    path: str  # as loaded
    nframes: int = 1


def match_rows(
    table: EmbedTable, files: list[LoadedFile], cwd: str | None = None
) -> tuple[dict[str, EmbedRow], list[EmbedRow]]:
    """Match rows to loaded files.

    Returns ``(matched, unmatched)``: ``matched`` maps the loaded path to its
    row; ``unmatched`` lists rows of no loaded file (kept for export).
    Raises EmbedCSVError when a row's frame index is beyond its file.
    """
    index: dict[str, LoadedFile] = {}
    f: LoadedFile | None
    for f in files:
        for k in match_keys(f.path, cwd):
            index.setdefault(k, f)
    matched: dict[str, EmbedRow] = {}
    unmatched: list[EmbedRow] = []
    errors: list[tuple[int, str]] = []
    for row in table.rows:
        f = None
        for k in match_keys(row.path, cwd):
            f = index.get(k)
            if f is not None:
                break
        if f is None:
            unmatched.append(row)
            continue
        for i, roi in enumerate(row.rois):
            for fr in roi.frames or []:
                if fr >= f.nframes:
                    errors.append(
                        (row.line, f"ROI {i} frame {fr} is beyond {os.path.basename(f.path)} ({f.nframes} frame(s))")
                    )
                    break
        matched[f.path] = row
    if errors:
        raise EmbedCSVError(table.source or "<csv>", errors)
    return matched, unmatched


# --------------------------------------------------------------------------
# writing


def _json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"))


def frames_cell(row: EmbedRow, nframes: int | None) -> str:
    """The ROI_frames cell: ``[]`` when every ROI covers every frame (kept as
    imported when unedited); otherwise one list per ROI, all-frames ROIs
    spelled out (that needs the file's frame count)."""
    if not row.edited and row.line:
        s = row.frames_cell.strip()
        return "[]" if s == "" else row.frames_cell
    if all(r.frames is None for r in row.rois):
        return "[]"
    out = []
    for r in row.rois:
        if r.frames is None:
            if nframes is None:
                raise ValueError(
                    f"{row.path}: frame count unknown, cannot write an all-frames ROI beside frame-scoped ones"
                )
            out.append(list(range(nframes)))
        else:
            out.append(sorted(set(r.frames)))
    return _json(out)


def row_cells(row: EmbedRow, nframes: int | None = None) -> list[str]:
    return [row.path, str(len(row.rois)), _json([list(r.box) for r in row.rois]), frames_cell(row, nframes)]


def format_embed_csv(rows: list[tuple[EmbedRow, int | None]]) -> str:
    """CSV text for ``[(row, nframes), ...]`` in the canonical (dcmview) form."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(HEADER)
    for row, n in rows:
        w.writerow(row_cells(row, n))
    return buf.getvalue()


def write_embed_csv(
    rows: list[tuple[EmbedRow, int | None]],
    csv_path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    protect: tuple[str | os.PathLike[str] | None, ...] = (),
) -> str:
    """Write rows atomically.  Refuses to replace an existing file unless
    ``overwrite``; never replaces a path in ``protect`` (e.g. the imported CSV)."""
    csv_path = os.path.abspath(os.fspath(csv_path))
    if any(os.path.abspath(p) == csv_path for p in protect if p):
        raise FileExistsError(f"{csv_path} is the CSV the ROIs were imported from; choose another file")
    if os.path.exists(csv_path) and not overwrite:
        raise FileExistsError(f"{csv_path} exists (pass overwrite=True to replace it)")
    text = format_embed_csv(rows)
    tmp = csv_path + ".napari-dcm-tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, csv_path)
    return csv_path


def unmatched_message(csv_path: str | os.PathLike[str] | None, paths: list[str]) -> str:
    """The notification for EMBED rows that match no loaded file (they are kept, never dropped)."""
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    name = os.path.basename(os.fspath(csv_path)) if csv_path else "the CSV"
    return (
        f"napari-dcm: {len(paths)} row(s) of {name} match no loaded file "
        f"({shown}); they are kept and exported again unchanged"
    )
