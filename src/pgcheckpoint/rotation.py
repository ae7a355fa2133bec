"""Key status, rotation and encryption of existing rows (docs/encryption.md).

:func:`key_status` counts, per stored column, the rows under each key id and
the rows in clear. :func:`reencrypt` walks each table in primary-key order, in
batches, and re-seals under the keyring's primary key every value that is not
already under it (``include_plaintext``: also the values in clear, which is what
``pgcheckpoint encrypt`` does). Each batch is one statement per table that
replaces a value only if it is still the one that was read (compare and swap),
so agents can keep writing: a row they rewrote meanwhile is left as they wrote
it (already under the primary key). A stopped run resumes by running again:
rows already under the primary key are skipped. Chunk ids are kept (the values
that reference them bind them), so encrypting an existing database does not
re-key the ids of chunks written before (documented).

The statements below are this module's own; ``{schema}`` is filled in with
:func:`~pgcheckpoint._queries.quote_schema`, never by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from . import chunking, compression, encryption
from ._plans import Plan, PlanGen, Query, fetch_all
from ._queries import quote_schema
from .encryption import ENC_SUFFIX, META_KID, META_SEALED, Encryption
from .errors import ConfigurationError, IntegrityError

if TYPE_CHECKING:
    from ._core import SaverCore
    from .saver import PostgresSaver

DEFAULT_BATCH = 500

# The key id of a sealed bytea column (NULL when the value is in clear): byte 1 is
# the id's length, the id follows (keyring.py).
_KID = (
    "CASE WHEN {typed} length({col}) >= 30 AND get_byte({col}, 0) = 1 "
    "AND get_byte({col}, 1) BETWEEN 1 AND 32 "
    "THEN encode(substring({col} FROM 3 FOR get_byte({col}, 1)), 'escape') END"
)


def _kid(col: str, typed: bool) -> str:
    return _KID.format(col=col, typed="type LIKE '%%+enc' AND" if typed else "")


_CP_KID = _kid("checkpoint", True)
_BLOB_KID = _kid("value", True)
_WRITE_KID = _kid("value", True)
_CHUNK_KID = _kid("data", False)

STATUS = f"""
SELECT 'checkpoints.checkpoint', {_CP_KID}, count(*) FROM {{schema}}.checkpoints GROUP BY 2
UNION ALL
SELECT 'checkpoints.metadata', metadata ->> 'pgc:kid', count(*) FROM {{schema}}.checkpoints
GROUP BY 2
UNION ALL
SELECT 'blobs.value', {_BLOB_KID}, count(*) FROM {{schema}}.blobs GROUP BY 2
UNION ALL
SELECT 'writes.value', {_WRITE_KID}, count(*) FROM {{schema}}.writes GROUP BY 2
UNION ALL
SELECT 'chunks.data', {_CHUNK_KID}, count(*) FROM {{schema}}.chunks
WHERE octet_length(hash) = 16  -- not reference-tree nodes (17 bytes: kept in clear)
GROUP BY 2
"""

# Rows to re-seal: %(plain)s also takes the ones in clear; keyset paging on the key.
_TODO = "(({kid}) IS DISTINCT FROM %(kid)s AND (%(plain)s OR ({kid}) IS NOT NULL))"

SELECT_CHECKPOINTS = f"""
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
       metadata, channels, versions
FROM {{schema}}.checkpoints
WHERE (thread_id, checkpoint_ns, checkpoint_id) > (%(a0)s, %(a1)s, %(a2)s)
  AND ({_TODO.format(kid=_CP_KID)}
       OR ((metadata ->> 'pgc:kid') IS DISTINCT FROM %(kid)s
           AND (%(plain)s OR metadata ? 'pgc:kid')))
ORDER BY thread_id, checkpoint_ns, checkpoint_id
LIMIT %(batch)s
"""
UPDATE_CHECKPOINTS = """
UPDATE {schema}.checkpoints c
SET type = u.new_type, checkpoint = u.new_value, metadata = u.new_meta::jsonb
FROM unnest(%(k0)s::text[], %(k1)s::text[], %(k2)s::text[], %(old)s::bytea[],
            %(new_type)s::text[], %(new_value)s::bytea[], %(new_meta)s::text[])
     AS u(k0, k1, k2, old, new_type, new_value, new_meta)
WHERE c.thread_id = u.k0 AND c.checkpoint_ns = u.k1 AND c.checkpoint_id = u.k2
  AND c.checkpoint = u.old
"""
SELECT_BLOBS = f"""
SELECT thread_id, checkpoint_ns, channel, version, type, value, chunk_refs
FROM {{schema}}.blobs
WHERE (thread_id, checkpoint_ns, channel, version) > (%(a0)s, %(a1)s, %(a2)s, %(a3)s)
  AND {_TODO.format(kid=_BLOB_KID)}
ORDER BY thread_id, checkpoint_ns, channel, version
LIMIT %(batch)s
"""
UPDATE_BLOBS = """
UPDATE {schema}.blobs b SET type = u.new_type, value = u.new_value
FROM unnest(%(k0)s::text[], %(k1)s::text[], %(k2)s::text[], %(k3)s::text[], %(old)s::bytea[],
            %(new_type)s::text[], %(new_value)s::bytea[])
     AS u(k0, k1, k2, k3, old, new_type, new_value)
WHERE b.thread_id = u.k0 AND b.checkpoint_ns = u.k1 AND b.channel = u.k2 AND b.version = u.k3
  AND b.value IS NOT DISTINCT FROM u.old
"""
SELECT_WRITES = f"""
SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value
FROM {{schema}}.writes
WHERE (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
      > (%(a0)s, %(a1)s, %(a2)s, %(a3)s, %(a4)s::integer)
  AND {_TODO.format(kid=_WRITE_KID)}
ORDER BY thread_id, checkpoint_ns, checkpoint_id, task_id, idx
LIMIT %(batch)s
"""
UPDATE_WRITES = """
UPDATE {schema}.writes w SET type = u.new_type, value = u.new_value
FROM unnest(%(k0)s::text[], %(k1)s::text[], %(k2)s::text[], %(k3)s::text[], %(k4)s::integer[],
            %(old)s::bytea[], %(new_type)s::text[], %(new_value)s::bytea[])
     AS u(k0, k1, k2, k3, k4, old, new_type, new_value)
WHERE w.thread_id = u.k0 AND w.checkpoint_ns = u.k1 AND w.checkpoint_id = u.k2
  AND w.task_id = u.k3 AND w.idx = u.k4 AND w.value IS NOT DISTINCT FROM u.old
"""
SELECT_CHUNKS = f"""
SELECT thread_id, hash, compressed, data
FROM {{schema}}.chunks
WHERE (thread_id, hash) > (%(a0)s, %(a1)s::bytea)
  AND octet_length(hash) = 16  -- reference-tree nodes stay in clear (chunking.py)
  AND {_TODO.format(kid=_CHUNK_KID)}
ORDER BY thread_id, hash
LIMIT %(batch)s
"""
UPDATE_CHUNKS = """
UPDATE {schema}.chunks k SET data = u.new_value
FROM unnest(%(k0)s::text[], %(k1)s::bytea[], %(old)s::bytea[], %(new_value)s::bytea[])
     AS u(k0, k1, old, new_value)
WHERE k.thread_id = u.k0 AND k.hash = u.k1 AND k.data = u.old
"""


@dataclass
class RotationReport:
    """What :func:`reencrypt` did (or, with ``dry_run``, would do), per table."""

    primary: str
    dry_run: bool
    resealed: dict[str, int] = field(default_factory=dict)
    # Rows a writer replaced between our read and our update (left as it wrote them).
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.resealed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "dry_run": self.dry_run,
            "resealed": dict(self.resealed),
            "skipped": dict(self.skipped),
        }


def sql_for(saver: PostgresSaver | SaverCore, text: str) -> str:
    """``text`` with ``{schema}`` filled in, quoted (also for sealed_rows.py)."""
    return text.replace("{schema}", quote_schema(saver.schema))


def _encryption(saver: PostgresSaver) -> Encryption:
    enc = saver.encryption
    if enc is None:
        raise ConfigurationError(
            "this needs a keyring: set $PGCHECKPOINT_KEYS (or pass encryption=Keyring(...))"
        )
    return enc


def key_status(saver: PostgresSaver) -> dict[str, dict[str, int]]:
    """Rows per key id of each stored column; rows in clear are counted under
    ``"plaintext"``. Example: ``{"blobs.value": {"k2": 40, "plaintext": 3}}``."""
    rows = saver.runner.run(fetch_all("key_status", sql_for(saver, STATUS), {}))
    out: dict[str, dict[str, int]] = {}
    for column, kid, n in rows:
        out.setdefault(str(column), {})[str(kid) if kid is not None else "plaintext"] = int(n)
    return out


# --- re-sealing one value of each kind (pure) --------------------------------------


def _reseal(
    enc: Encryption, type_: str, data: bytes | None, aad_of: Callable[[str], bytes], where: str
) -> tuple[str, bytes]:
    if type_.endswith(ENC_SUFFIX):
        inner = type_[: -len(ENC_SUFFIX)]
        plain = enc.keyring.open(data or b"", aad_of(inner), where)
    else:
        inner, plain = type_, data or b""
    return enc.seal(inner, plain, aad_of(inner))


def _reseal_metadata(
    enc: Encryption, stored: Any, thread: str, ns: str, cid: str, parent: str | None
) -> str:
    where = f"checkpoint {cid!r} of thread {thread!r}"
    if isinstance(stored, dict) and META_SEALED in stored:
        if stored.get(META_KID) == enc.keyring.primary:
            return json.dumps(stored, separators=(",", ":"))
        meta = enc.open_metadata(stored, thread, ns, cid, parent, where)
    else:
        meta = dict(stored or {})
    return json.dumps(enc.seal_metadata(meta, thread, ns, cid, parent), separators=(",", ":"))


def _reseal_chunk(
    enc: Encryption, thread: str, h: bytes, flag: bool, data: bytes, limit: int
) -> bytes:
    aad_ = encryption.chunk_aad(thread, h, flag)
    where = f"chunk {h.hex()} of thread {thread!r}"
    try:
        plain = enc.keyring.open(data, aad_, where)
    except IntegrityError:
        # In clear (written before encryption)? Then it still matches its unkeyed id.
        piece = compression.decompress(data, limit, where) if flag else data
        if chunking.digest(piece) != h:
            raise
        plain = data
    return enc.keyring.seal(plain, aad_)


# --- the batches ---------------------------------------------------------------------


def _batch_plan(
    saver: PostgresSaver, table: str, after: tuple[Any, ...], params: dict[str, Any]
) -> Plan[tuple[int, int, tuple[Any, ...] | None]]:
    """One batch of one table: read, re-seal in Python, compare-and-swap update.
    Returns (re-sealed, skipped, last key read or None when the table is done)."""
    enc = _encryption(saver)
    select, update = {
        "checkpoints": (SELECT_CHECKPOINTS, UPDATE_CHECKPOINTS),
        "blobs": (SELECT_BLOBS, UPDATE_BLOBS),
        "writes": (SELECT_WRITES, UPDATE_WRITES),
        "chunks": (SELECT_CHUNKS, UPDATE_CHUNKS),
    }[table]
    args = dict(params, **{f"a{i}": v for i, v in enumerate(after)})
    limit = saver.compression.max_value_size
    dry_run = bool(params.get("dry_run"))

    def make() -> PlanGen[tuple[int, int, tuple[Any, ...] | None]]:
        rows = (yield Query(sql_for(saver, select), args, fetch="all", prepare=False)) or []
        if not rows:
            return 0, 0, None
        nkeys = {"checkpoints": 3, "blobs": 4, "writes": 5, "chunks": 2}[table]
        last = tuple(rows[-1][:nkeys])
        if dry_run:
            return len(rows), 0, last
        cols: dict[str, list[Any]] = {}

        def add(**values: Any) -> None:
            for k, v in values.items():
                cols.setdefault(k, []).append(v)

        for r in rows:
            if table == "checkpoints":
                thread, ns, cid, parent, type_, data, meta, channels, versions = r
                aad_of = partial(encryption.checkpoint_aad, thread, ns, cid, channels, versions)
                new_type, new_value = _reseal(enc, type_, data, aad_of, f"checkpoint {cid}")
                new_meta = _reseal_metadata(enc, meta, thread, ns, cid, parent)
                add(k0=thread, k1=ns, k2=cid, old=data, new_type=new_type,
                    new_value=new_value, new_meta=new_meta)
            elif table == "blobs":
                thread, ns, channel, version, type_, data, refs = r
                aad_of = partial(encryption.blob_aad, thread, ns, channel, version, refs)
                new_type, new_value = _reseal(
                    enc, type_, data, aad_of, f"channel {channel!r} version {version!r}"
                )
                add(k0=thread, k1=ns, k2=channel, k3=version, old=data, new_type=new_type,
                    new_value=new_value)
            elif table == "writes":
                thread, ns, cid, task, idx, channel, type_, data = r
                aad_of = partial(encryption.write_aad, thread, ns, cid, task, channel)
                new_type, new_value = _reseal(
                    enc, type_, data, aad_of, f"write to {channel!r} of {cid}"
                )
                add(k0=thread, k1=ns, k2=cid, k3=task, k4=idx, old=data, new_type=new_type,
                    new_value=new_value)
            else:
                thread, h, flag, data = r
                add(k0=thread, k1=bytes(h), old=data,
                    new_value=_reseal_chunk(enc, thread, bytes(h), flag, bytes(data), limit))
        cursor_rows = yield Query(
            sql_for(saver, update + " RETURNING 1"), cols, fetch="all", prepare=False
        )
        done = len(cursor_rows or [])
        return done, len(rows) - done, last

    return Plan(f"reencrypt_{table}", make, transaction=True)


_START: dict[str, tuple[Any, ...]] = {
    "checkpoints": ("", "", ""),
    "blobs": ("", "", "", ""),
    "writes": ("", "", "", "", -(2**31)),
    "chunks": ("", b""),
}


def reencrypt(
    saver: PostgresSaver,
    *,
    include_plaintext: bool = False,
    batch_size: int = DEFAULT_BATCH,
    dry_run: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> RotationReport:
    """Re-seal under the primary key every value under another key (and, with
    ``include_plaintext``, every value in clear). Safe while agents write;
    resumable (run it again). ``progress(table, rows)`` is called after each batch."""
    enc = _encryption(saver)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be a positive int, got {batch_size!r}")
    report = RotationReport(enc.keyring.primary, dry_run)
    params = {
        "kid": enc.keyring.primary, "plain": include_plaintext, "batch": batch_size,
        "dry_run": dry_run,
    }
    # Chunks before the values that reference them, so a reader with the new
    # keyring meets sealed chunks from sealed values.
    for table in ("chunks", "blobs", "writes", "checkpoints"):
        after: tuple[Any, ...] | None = _START[table]
        report.resealed[table] = report.skipped[table] = 0
        while after is not None:
            done, skipped, after = saver.runner.run(_batch_plan(saver, table, after, params))
            report.resealed[table] += done
            report.skipped[table] += skipped
            if progress is not None and (done or skipped):
                progress(table, done + skipped)
    return report
