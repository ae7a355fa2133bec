"""Connection strings without their secrets, and why a connection attempt failed (no I/O).

* :func:`secrets_of` finds the password(s) in a connection string, also when
  libpq cannot parse it (libpq's parse errors quote the offending token, which
  is often the password: ``invalid percent-encoded token: "pa%zz"``).
* :func:`mask` replaces those secrets, and any quoted fragment of one, by ``***``.
* :func:`describe` names the target (user, hosts, ports, database) for
  messages and the CLI, never the password.
* :func:`connect_failure_kind` sorts a failed connection attempt into
  ``config`` (retrying cannot help: bad DSN, authentication, missing database,
  TLS refused), ``busy`` (a live server that cannot take us now: starting up,
  shutting down, too many clients) and ``unreachable`` (no answer: refused,
  timed out, name not resolved). libpq gives connection failures no SQLSTATE,
  so the server's (English) message text decides; docs/resilience.md has the rules.
* :class:`SecretFilter` masks registered secrets in log records of the
  ``psycopg`` and ``pgcheckpoint`` loggers (psycopg_pool logs every failed
  attempt with libpq's message).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Literal
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .errors import ConfigurationError

MASK = "***"

_SECRET_KEYS = r"(?:password|sslpassword|oauth_client_secret)"
# key=value form: a quoted value, or words up to the next "key=" (an unquoted
# password with spaces is a parse error whose message quotes one of the words).
_KEYWORD_SECRET = re.compile(
    r"(?:^|\s)" + _SECRET_KEYS + r"\s*=\s*('(?:[^'\\]|\\.)*'?|\S+(?:\s+(?![A-Za-z_]+\s*=)\S+)*)"
)
_QUERY_SECRET = re.compile(r"[?&]" + _SECRET_KEYS + r"=([^&#]*)")
_URI = re.compile(r"^\s*postgres(?:ql)?://", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]*)"|\'([^\']*)\'')


def secrets_of(conninfo: str) -> tuple[str, ...]:
    """Every secret ``conninfo`` may carry (raw and decoded), longest first."""
    found: set[str] = set()
    uri = _URI.match(conninfo)
    if uri:
        rest = conninfo[uri.end() :]
        query = rest.find("?")
        authority = rest if query < 0 else rest[:query]
        at = authority.rfind("@")
        if at >= 0 and ":" in authority[:at]:
            # Everything between the user's ':' and the last '@': generous on
            # purpose, since libpq itself splits at the first '@'.
            found.add(authority[:at].split(":", 1)[1])
        for match in _QUERY_SECRET.finditer(rest):
            found.add(match[1])
    else:
        for match in _KEYWORD_SECRET.finditer(conninfo):
            value = match[1]
            found.add(value)
            if value.startswith("'"):
                found.add(value.strip("'").replace("\\'", "'").replace("\\\\", "\\"))
    try:
        parsed = conninfo_to_dict(conninfo)
    except psycopg.Error:
        parsed = {}
    for key in ("password", "sslpassword", "oauth_client_secret"):
        value = parsed.get(key)
        if value:
            found.add(str(value))
    decoded = {unquote(s) for s in found}
    return tuple(sorted((s for s in found | decoded if s), key=len, reverse=True))


def mask(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """``text`` with each secret, and each double-quoted fragment of one, shown as ``***``."""
    if not secrets:
        return text
    for secret in secrets:
        text = text.replace(secret, MASK)

    def quoted(match: re.Match[str]) -> str:
        inner = match[1] if match[1] is not None else match[2]
        if inner and inner != MASK and any(inner in s for s in secrets):
            quote = match[0][0]
            return f"{quote}{MASK}{quote}"
        return match[0]

    return _QUOTED.sub(quoted, text)


def check(conninfo: str) -> dict[str, str]:
    """``conninfo`` parsed by libpq, or :class:`ConfigurationError` saying why not (masked)."""
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    except psycopg.Error as exc:
        reason = mask(str(exc).strip(), secrets_of(conninfo))
        # Not chained: the driver's message quotes the connection string.
        raise ConfigurationError(f"invalid connection string: {reason}") from None
    if "@" in params.get("host", ""):
        # libpq ends the password at its first '@': the rest of it became the host.
        raise ConfigurationError(
            "invalid connection string: its host contains '@'; percent-encode an '@' "
            "in the password as %40"
        )
    return params


def describe(conninfo: str) -> str:
    """``database "app" on db1:5432 as user "app"`` (never the password, even when a
    name equals it)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "an invalid connection string"
    hosts = str(params.get("host") or params.get("hostaddr") or "local socket").split(",")
    ports = str(params.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    where = ",".join(f"{h}:{p or 5432}" for h, p in zip(hosts, ports, strict=False))
    user = params.get("user")
    db = params.get("dbname") or user or "(default)"
    text = f'database "{db}" on {where}'
    text = f'{text} as user "{user}"' if user else text
    # A password equal to a name shown here (postgres:postgres) is masked there too.
    return mask(text, secrets_of(conninfo))


FailureKind = Literal["config", "busy", "unreachable"]

# Server and libpq messages of failures that retrying cannot fix.
_CONFIG = re.compile(
    "|".join(
        [
            r"password authentication failed",
            r"authentication failed for user",
            r'role ".*" does not exist',
            r'database ".*" does not exist',
            r"no pg_hba\.conf entry",
            r"pg_hba\.conf rejects",
            r"is not permitted to log in",
            r"permission denied for database",
            r"no password supplied",
            r"password is required",
            r"server does not support SSL",
            r"SSL error",
            r"certificate",
            r"channel binding",
            r"server requested .* authentication",
            r"authentication method requirement",
            r"invalid \w+ value",
            r"invalid port number",
            r"invalid connection option",
            r"invalid integer value",
        ]
    ),
    re.IGNORECASE,
)
# A live server that cannot take a connection now (57P03, 53300, a backend
# that died during the handshake).
_BUSY = re.compile(
    "|".join(
        [
            r"the database system is (?:starting up|shutting down|in recovery mode|"
            r"not yet accepting connections|not accepting connections)",
            r"too many (?:clients|connections)",
            r"remaining connection slots are reserved",
            r"server closed the connection unexpectedly",
            r"terminating connection",
            r"out of memory",
        ]
    ),
    re.IGNORECASE,
)
_TRANSIENT_CONNECT_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "53200"})


def connect_failure_kind(exc: BaseException) -> FailureKind:
    """Why a connection attempt failed (see the module doc)."""
    if isinstance(exc, psycopg.ProgrammingError):
        return "config"  # libpq could not parse the connection string
    state = getattr(exc, "sqlstate", None)
    if state:
        if state.startswith("28") or state in ("3D000", "42501"):
            return "config"
        if state in _TRANSIENT_CONNECT_STATES or state.startswith("08"):
            return "busy"
    text = str(exc)
    if _BUSY.search(text):
        return "busy"
    if _CONFIG.search(text):
        return "config"
    return "unreachable"


class SecretFilter(logging.Filter):
    """Masks the secrets of every connection string pgcheckpoint has seen in log records."""

    def __init__(self) -> None:
        super().__init__("pgcheckpoint-secrets")
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secrets: tuple[str, ...]) -> None:
        with self._lock:
            merged = set(self._secrets) | set(secrets)
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if not secrets:
            return True
        message = record.getMessage()
        masked = mask(message, secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = str(record.exc_info[1])
            if mask(text, secrets) != text:
                # The traceback would print the secret: keep the masked message only.
                record.exc_info = None
                record.exc_text = None
        return True


_FILTER = SecretFilter()
_FILTERED_LOGGERS = ("psycopg", "psycopg.pool", "pgcheckpoint")
_installed = False


def guard_logs(conninfo: str) -> tuple[str, ...]:
    """Register ``conninfo``'s secrets with the log filter (installed on first use);
    returns them."""
    global _installed
    secrets = secrets_of(conninfo)
    if secrets:
        _FILTER.add(secrets)
        if not _installed:
            for name in _FILTERED_LOGGERS:
                logging.getLogger(name).addFilter(_FILTER)
            _installed = True
    return secrets
