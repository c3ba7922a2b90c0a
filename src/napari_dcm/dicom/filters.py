"""Header filters: ``FIELD=VALUE`` (case-insensitive substring; several must all match)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .scan import Header

# filter field -> Header.values key
FILTER_FIELDS = {
    "patient_id": "patient_id",
    "patient_name": "patient_name",
    "study_description": "study_description",
    "study_date": "study_date",
    "study_uid": "study_instance_uid",
    "series_description": "series_description",
    "series_number": "series_number",
    "series_uid": "series_instance_uid",
    "modality": "modality",
}

Filters = list[tuple[str, str]]


def parse_filters(filters: str | Mapping[str, Any] | Iterable[Any] | None) -> Filters:
    """Normalise filters: "FIELD=VALUE" strings, (field, value) pairs or a dict -> [(values key, value)]."""
    if not filters:
        return []
    items: list[tuple[Any, Any]]
    if isinstance(filters, Mapping):
        items = list(filters.items())
    else:
        items = []
        for f in [filters] if isinstance(filters, str) else filters:
            if isinstance(f, str):
                if "=" not in f:
                    raise ValueError(f"filter {f!r} is not FIELD=VALUE")
                k, v = f.split("=", 1)
                items.append((k, v))
            else:
                k, v = f
                items.append((k, v))
    out = []
    for k, v in items:
        key = str(k).strip().lower().replace("-", "_")
        if key not in FILTER_FIELDS:
            raise ValueError(f"unknown filter field {key!r}; choose from {', '.join(FILTER_FIELDS)}")
        out.append((FILTER_FIELDS[key], str(v)))
    return out


def matches(h: Header, filters: Filters) -> bool:
    """Does header ``h`` satisfy every filter?"""
    return matches_values(h.values, filters)


def matches_values(values: Mapping[str, Any], filters: Filters) -> bool:
    """Do header values (``Header.values`` keys) satisfy every filter?"""
    for attr, want in filters:
        have = values.get(attr)
        if have is None or want.lower() not in str(have).lower():
            return False
    return True
