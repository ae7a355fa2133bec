"""One writer per thread, and batched saves: the public names of both.

The fork guard lives in :mod:`pgcheckpoint._guard` (read its module docstring
and docs/concurrency.md for the rule) and batched saves in
:mod:`pgcheckpoint.batch`; this module keeps the names importable from where
they always were.
"""

from __future__ import annotations

from ._guard import (
    EXISTS,
    HEAD,
    MEMORY_SIZE,
    AddressedId,
    GuardMemory,
    HeadId,
    ReadId,
    guard_put,
    tag_read,
)
from .batch import BatchItem, batch_plan

__all__ = [
    "EXISTS",
    "HEAD",
    "MEMORY_SIZE",
    "AddressedId",
    "BatchItem",
    "GuardMemory",
    "HeadId",
    "ReadId",
    "batch_plan",
    "guard_put",
    "tag_read",
]
