"""Importers: bring checkpoints from other stores into pgcheckpoint, verified and resumable.

* :func:`import_sqlite`: a ``langgraph-checkpoint-sqlite`` database file;
* :func:`import_official`: the official ``langgraph-checkpoint-postgres`` tables;
* :func:`import_saver`: any ``BaseCheckpointSaver`` through its public API.

All three (and :func:`pgcheckpoint.transfer.import_ndjson`) stream one thread
at a time through one guarded write (``write.py``): a stored row is never
replaced (identical rows are skipped, different ones refused with
:class:`~pgcheckpoint.errors.ImportConflictError`), each thread is written in
one transaction and verified before it commits, and an interrupted import is
finished by running it again. See :mod:`pgcheckpoint.importers.common` and
docs/migration-guide.md.
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
