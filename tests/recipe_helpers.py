"""Helpers shared by the recipe tests."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.record import Record, Reject


def split_items(items: Iterable[Record | Reject]) -> tuple[list[Record], list[Reject]]:
    """A recipe's output as (records, rejects), each in the order the recipe yielded them."""
    records: list[Record] = []
    rejects: list[Reject] = []
    for item in items:
        (records if isinstance(item, Record) else rejects).append(item)
    return records, rejects
