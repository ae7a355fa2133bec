"""An embedded PostgreSQL for development, tests and demos.

``start_embedded()`` runs a private PostgreSQL cluster from the ``pgserver``
wheel (``pip install 'pgcheckpoint[embedded]'``), listening only on a unix
socket inside its data directory, so nothing needs to be installed or
configured. ``resolve_dsn()`` picks the database an application or demo should
use: an explicit DSN, then ``DATABASE_URL``, then the embedded server.

Each project gets its own cluster, and each user their own: the default data
directory (:func:`default_data_dir`) is the user's data directory keyed by the
project, the nearest directory at or above the working directory that holds a
``pyproject.toml``, ``setup.py`` or ``.git`` (else the working directory).

Servers are shared: starting a data directory that a live process already
serves reuses that server, and it shuts down when the last process using it
calls :meth:`EmbeddedPostgres.stop` or exits.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import threading
import warnings
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import quote

from .errors import ConfigurationError, StorageError

__all__ = [
    "EmbeddedPostgres",
    "default_data_dir",
    "project_root",
    "resolve_dsn",
    "start_embedded",
]

_INSTALL_HINT = "pip install 'pgcheckpoint[embedded]'"

logger = logging.getLogger("pgcheckpoint")

# pgserver records, in this file of its data directory, the PIDs of the
# processes holding the server; it stops the server when the last one exits.
# A process killed with SIGKILL never removes its PID, which would keep the
# server running forever, so dead PIDs are pruned before each start.
_HANDLES_FILE = ".handle_pids.json"

# One claim per start_embedded() call in this process, so nested or repeated
# handles on the same data directory do not stop the server under each other.
_claims: dict[Path, int] = {}
_claims_lock = threading.Lock()


def _import_pgserver() -> ModuleType:
    try:
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI,
        # root shells), which pgserver triggers at import; it is harmless.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
            import pgserver
    except ImportError as exc:
        raise ConfigurationError(
            f"the embedded PostgreSQL needs the 'pgserver' package: {_INSTALL_HINT}, "
            "or set DATABASE_URL to use your own server"
        ) from exc
    return pgserver


_PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The project ``start`` (default: the working directory) belongs to: the nearest
    directory at or above it holding ``pyproject.toml``, ``setup.py``, ``setup.cfg``
    or ``.git``; ``start`` itself when there is none."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if any((candidate / marker).exists() for marker in _PROJECT_MARKERS):
            return candidate
    return here


def _project_key(project: Path) -> str:
    """``<name>-<hash>``: readable, and distinct for two checkouts with one name."""
    digest = hashlib.sha256(str(project).encode("utf-8")).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", project.name)[:24] or "root"
    return f"{name}-{digest}"


def default_data_dir(project: str | os.PathLike[str] | None = None) -> Path:
    """Where ``start_embedded()`` keeps its cluster when no path is given: one per
    user and per project (:func:`project_root` of ``project``, default the working
    directory).

    ``<platformdirs user data dir>/pgcheckpoint/projects/<name>-<hash>/pgdata``.
    For root it is ``/var/lib/pgcheckpoint/projects/<name>-<hash>/pgdata``: as
    root, pgserver runs PostgreSQL as an unprivileged ``pgserver`` user and opens
    every parent directory of the data directory to other users, which must not
    happen to ``/root``. The path stays short because the server's unix socket
    lives in it (socket paths are limited to about 100 bytes).
    """
    key = _project_key(project_root(project))
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/pgcheckpoint/projects") / key / "pgdata"
    try:
        import platformdirs
    except ImportError as exc:
        raise ConfigurationError(
            f"the embedded PostgreSQL needs the 'platformdirs' package: {_INSTALL_HINT}"
        ) from exc
    return Path(platformdirs.user_data_dir("pgcheckpoint")) / "projects" / key / "pgdata"


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): kill() is all we know
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _server_up(data_dir: Path, pid: int) -> bool:
    """Whether ``data_dir/postmaster.pid`` names ``pid`` and that process is alive."""
    # PostgreSQL removes postmaster.pid on shutdown, possibly before its process
    # is gone and reaped, so the file is checked as well as the PID.
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
    except OSError:
        return False
    return first.strip() == str(pid) and _pid_alive(pid)


def _prune_dead_handles(data_dir: Path) -> None:
    handles = data_dir / _HANDLES_FILE
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list) or not all(isinstance(p, int) for p in pids):
        return
    alive = [p for p in pids if p > 0 and _pid_alive(p)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """A handle on a running embedded PostgreSQL cluster.

    Use :func:`start_embedded` to get one. ``url`` connects to database
    ``postgres`` as superuser ``postgres`` over the cluster's unix socket.
    """

    def __init__(self, server: Any, data_dir: Path) -> None:
        self._server = server
        self._stopped = False
        self.data_dir = data_dir
        info = server.get_postmaster_info()
        self.pid: int = int(info.pid)
        self._socket_dir: Path | None = info.socket_dir
        self._host: str | None = info.hostname
        self._port: int = int(info.port or 5432)

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL for database ``postgres``."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """A ``postgresql://`` URL for ``database`` on this cluster."""
        db = quote(database, safe="")
        if self._socket_dir is not None:
            host = quote(str(self._socket_dir), safe="/")
            # The port is part of the socket file name (.s.PGSQL.<port>); giving
            # it keeps a PGPORT in the environment from redirecting libpq.
            return f"postgresql://postgres@/{db}?host={host}&port={self._port}"
        return f"postgresql://postgres@{self._host or '127.0.0.1'}:{self._port}/{db}"

    @property
    def running(self) -> bool:
        """Whether this server is still up."""
        return _server_up(self.data_dir, self.pid)

    def stop(self) -> None:
        """Release this handle; the server stops once no handle or process uses it.

        Calling it again does nothing.
        """
        if self._stopped:
            return
        self._stopped = True
        with _claims_lock:
            left = _claims.get(self.data_dir, 1) - 1
            if left > 0:
                _claims[self.data_dir] = left
                return
            _claims.pop(self.data_dir, None)
            self._server.cleanup()
            # Forget pgserver's cached handle and exit hook, so a later start in
            # this process registers afresh (the server may be gone by then).
            atexit.unregister(self._server._cleanup)
            instances: dict[Path, Any] = type(self._server)._instances
            if instances.get(self.data_dir) is self._server:
                del instances[self.data_dir]

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else f"pid={self.pid}"
        return f"<EmbeddedPostgres {self.data_dir} {state}>"


def start_embedded(path: str | os.PathLike[str] | None = None) -> EmbeddedPostgres:
    """Start, or reuse if already running, the embedded cluster in ``path``.

    ``path`` defaults to :func:`default_data_dir`; it is created if missing.
    The server stays up until :meth:`EmbeddedPostgres.stop` or interpreter
    exit, and longer if another process still uses it.

    Raises :class:`~pgcheckpoint.errors.ConfigurationError` if the
    ``embedded`` extra is not installed, and
    :class:`~pgcheckpoint.errors.StorageError` if PostgreSQL fails to start.
    """
    pgserver = _import_pgserver()
    data_dir = Path(path).expanduser() if path is not None else default_data_dir()
    data_dir = data_dir.resolve()
    with _claims_lock:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            with pgserver.PostgresServer._lock:
                _prune_dead_handles(data_dir)
            # pgserver caches one handle per data directory; if that server has
            # died since (crash, OOM kill), drop the handle so it starts anew.
            cached = pgserver.PostgresServer._instances.get(data_dir)
            if cached is not None and not _server_up(data_dir, cached.get_pid()):
                del pgserver.PostgresServer._instances[data_dir]
            server = pgserver.get_server(data_dir, cleanup_mode="stop")
        except Exception as exc:
            raise StorageError(
                f"could not start the embedded PostgreSQL in {data_dir}: {exc} "
                f"(server log: {data_dir / 'log'})"
            ) from exc
        _claims[data_dir] = _claims.get(data_dir, 0) + 1
    return EmbeddedPostgres(server, data_dir)


def resolve_dsn(
    dsn: str | None = None, *, embedded_path: str | os.PathLike[str] | None = None
) -> str:
    """Pick a connection string: ``dsn`` if given, else ``$DATABASE_URL``, else embedded.

    The embedded server (started in ``embedded_path`` or :func:`default_data_dir`)
    runs until this process exits; choosing it is logged (WARNING), so that an
    application never writes to it without saying so.
    """
    if dsn:
        return dsn
    env = os.environ.get("DATABASE_URL")
    if env:
        return env
    path = Path(embedded_path) if embedded_path is not None else default_data_dir()
    logger.warning(
        "pgcheckpoint: no connection string and no DATABASE_URL: using the embedded "
        "PostgreSQL in %s",
        path,
    )
    return start_embedded(path).url
