"""Importers: bring checkpoints from other stores into pgcheckpoint, verified and resumable.

* :func:`import_sqlite`: a ``langgraph-checkpoint-sqlite`` database file;
* :func:`import_official`: the official ``langgraph-checkpoint-postgres`` tables;
* :func:`import_saver`: any ``BaseCheckpointSaver`` through its public API.

All three stream one thread at a time, write each thread in one transaction,
skip threads already imported (so an interrupted import is finished by running
it again) and read every imported checkpoint back to compare it with the
source. See :mod:`pgcheckpoint.importers.common` and docs/migration-guide.md.
"""

from .common import ImportReport, SourceCheckpoint, SourceWrite, ThreadResult, run_import
from .official import import_official
from .saver import import_saver
from .sqlite import import_sqlite

__all__ = [
    "ImportReport",
    "SourceCheckpoint",
    "SourceWrite",
    "ThreadResult",
    "import_official",
    "import_saver",
    "import_sqlite",
    "run_import",
]
