"""Importers: bring checkpoints from other stores into pgcheckpoint, verified and resumable.

* :func:`import_sqlite`: a ``langgraph-checkpoint-sqlite`` database file;
* :func:`import_official`: the official ``langgraph-checkpoint-postgres`` tables;
* :func:`import_saver`: any ``BaseCheckpointSaver`` through its public API;

each into a ``PostgresSaver``, and with the ``a`` prefix (:func:`aimport_sqlite`, ...)
into an ``AsyncPostgresSaver``: one job (``jobs.py``) serves both.

All three (and :func:`pgcheckpoint.transfer.import_ndjson`) stream one thread
at a time through one guarded write (``write.py``): a stored row is never
replaced (identical rows are skipped, different ones refused with
:class:`~pgcheckpoint.errors.ImportConflictError`), each thread is written in
one transaction and verified before it commits, and an interrupted import is
finished by running it again. See :mod:`pgcheckpoint.importers.common` and
docs/migration-guide.md.
"""

from .common import (
    ImportOptions,
    ImportReport,
    SourceCheckpoint,
    SourceWrite,
    ThreadResult,
    arun_import,
    run_import,
)
from .official import aimport_official, import_official
from .saver import aimport_saver, import_saver
from .sqlite import aimport_sqlite, import_sqlite

__all__ = [
    "ImportOptions",
    "ImportReport",
    "SourceCheckpoint",
    "SourceWrite",
    "ThreadResult",
    "aimport_official",
    "aimport_saver",
    "aimport_sqlite",
    "arun_import",
    "import_official",
    "import_saver",
    "import_sqlite",
    "run_import",
]
