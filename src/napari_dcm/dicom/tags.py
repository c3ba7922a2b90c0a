"""The header as rows for a tag browser (tag, VR, keyword, value).

Reads with ``stop_before_pixels`` (no pixel data); values are rendered
lazily: sequences report their item count and expand on demand, binary values
show their byte length, long values are truncated with their total length,
private tags show their creator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from pydicom import Dataset
    from pydicom.dataelem import DataElement
    from pydicom.tag import BaseTag

MAX_VALUE_CHARS = 120
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


@dataclass
class TagRow:
    tag: str  # "(0010,0010)"
    vr: str
    keyword: str
    value: str  # display text
    full_value: str  # what a click copies
    is_sequence: bool = False
    n_items: int = 0
    element: object = None  # the pydicom DataElement (for lazy expansion)


# files whose headers are read elsewhere (e.g. on dask workers): path -> reader(path)
_header_sources: dict[str, Callable[[str], Dataset]] = {}


def add_header_source(paths: Iterable[str], reader: Callable[[str], Dataset]) -> None:
    """Read the headers of ``paths`` with ``reader`` (files that live on another machine)."""
    for p in paths:
        _header_sources[p] = reader


def remove_header_source(reader: Callable[[str], Dataset]) -> None:
    """Forget every path read by ``reader`` (compared with ==)."""
    for p in [p for p, r in _header_sources.items() if r == reader]:
        del _header_sources[p]


def header_source(path: str) -> Callable[[str], Dataset] | None:
    """The reader registered for ``path``, or None (a local file or a DICOMweb key)."""
    return _header_sources.get(path)


def read_header(path: str) -> Dataset:
    """The header of a file (no pixel data), of a DICOMweb instance given by its frame key,
    or of a file on another machine registered with :func:`add_header_source`."""
    import warnings

    import pydicom

    remote = _header_sources.get(path)
    if remote is not None:
        return remote(path)
    if "://" in path:
        from .dicomweb import instance_dataset

        return instance_dataset(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _private_creator(ds: Dataset, tag: BaseTag) -> str:
    if not tag.is_private or tag.is_private_creator:
        return ""
    try:
        return str(ds[(tag.group << 16) | (tag.element >> 8)].value)
    except (KeyError, AttributeError):
        return ""


def element_row(ds: Dataset, el: DataElement) -> TagRow:
    tag = el.tag
    tag_s = f"({tag.group:04X},{tag.element:04X})"
    vr = str(el.VR)
    kw = el.keyword or ""
    if tag.is_private and not tag.is_private_creator:
        creator = _private_creator(ds, tag)
        kw = f"[{creator}] {el.name}" if creator else (el.name or "Private tag")
    elif tag.is_private_creator:
        kw = "Private Creator"
    if vr == "SQ":
        n = len(el.value) if el.value is not None else 0
        return TagRow(tag_s, vr, kw, f"<sequence of {n} item(s)>", "", True, n, el)
    raw = el.value
    if vr in BINARY_VRS or isinstance(raw, (bytes, bytearray)):
        n = len(raw) if raw is not None else 0
        shown = f"<{n} bytes>"
        return TagRow(
            tag_s, vr, kw, shown, raw.hex() if isinstance(raw, (bytes, bytearray)) and n <= 4096 else shown, element=el
        )
    text = _text(raw)
    shown = text if len(text) <= MAX_VALUE_CHARS else f"{text[:MAX_VALUE_CHARS]}… ({len(text)} chars)"
    return TagRow(tag_s, vr, kw, shown, text, element=el)


def _text(v: Any) -> str:
    if v is None:
        return ""
    from pydicom.multival import MultiValue

    if isinstance(v, (list, tuple, MultiValue)):
        return "\\".join(str(x) for x in v)
    return str(v)


def dataset_rows(ds: Dataset) -> list[TagRow]:
    """Rows of a dataset's top-level elements (file meta first)."""
    rows = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        rows += [element_row(meta, el) for el in meta]
    rows += [element_row(ds, el) for el in ds]
    return rows


def frame_view(ds: Dataset, stored_frame: int) -> Dataset:
    """For Enhanced objects: the dataset with only ``stored_frame``'s per-frame group item."""
    pf = ds.get("PerFrameFunctionalGroupsSequence")
    if not pf or stored_frame >= len(pf):
        return ds
    import copy

    from pydicom.sequence import Sequence

    view = copy.copy(ds)  # shallow: the elements are shared, only this one is replaced
    view.PerFrameFunctionalGroupsSequence = Sequence([pf[stored_frame]])
    return view


def matches(row: TagRow, text: str) -> bool:
    t = text.lower()
    return (
        t in row.tag.lower()
        or t in row.keyword.lower()
        or t in row.value.lower()
        or t in row.tag.replace("(", "").replace(")", "").replace(",", "").lower()
    )
