"""The I/O-free half of both savers: validation, settings and operation plans.

:class:`SaverCore` turns each ``BaseCheckpointSaver`` call into a
:class:`~pgcheckpoint._plans.Plan`. ``PostgresSaver`` runs plans on a sync
connection, ``AsyncPostgresSaver`` on an async one; neither holds logic of its
own, so the two cannot drift apart.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from typing_extensions import Unpack

from . import codec
from ._guard import HEAD, GuardMemory, guard_put, tag_read
from ._plans import Plan, PlanGen, Query
from ._queries import Queries
from .allowlist import AllowEntry, PlainDataSerializer, parse_allow
from .chunking import ChunkingPolicy
from .compression import CompressionPolicy
from .distribution import HAS_CITUS
from .encryption import Encryption
from .errors import ConfigurationError, InvalidInputError
from .keyring import Keyring
from .listing import Lister
from .options import SaverOptions, check_options
from .retention import DEFAULT_CLEANUP_INTERVAL, RetentionPolicy, check_interval
from .retry import RetryPolicy

PRUNE_STRATEGIES = ("keep_latest", "delete")

# Writes carrying at most this many bytes of values may run on the connection's
# kept cursor, which holds them until its next statement (_runner_base.py,
# _WRITE_CURSORS); larger ones get a cursor of their own.
SMALL_WRITE_BYTES = 64 * 1024


# put_writes sends up to this many writes as a VALUES list, one row of
# parameters per write (Queries.put_writes): routed to one shard on Citus, where
# the unnest form is pulled to the coordinator. More writes (rare: a task writes
# a few channels) use the array form. Client CPU per call on PostgreSQL 15,
# VALUES against arrays, interleaved in one process (2,000 calls each):
# 1 write 340 against 366 us, 3 writes 433 / 446, 8 writes 367 / 368, 16 writes
# 872 / 369, 30 writes 1580 / 550: past ~10 rows the statement text is longer
# than psycopg caches its parsed form for (4 KB), and every call parses it again.
PUT_WRITES_ROWS = 8

# On Citus (has_citus) put_writes of more writes calls pgcheckpoint_put_writes:
# the array form inside a function delegated to the thread's node (one task),
# where as a statement Citus pulls its INSERT ... SELECT to the coordinator; as
# one VALUES statement it is routed too, but past ~10 rows the client parses
# the text again every call. Per call on the test cluster (Citus 13.2, 2 shared
# cores, load 3-5), 20 rounds of 20 calls each, interleaved, medians of wall /
# client CPU: 20 writes arrays 6.40 ms / 361 us, function 4.87 / 351, VALUES
# 3.10 / 819; 130 writes arrays 10.81 / 1005, function 9.94 / 1007, VALUES
# 16.64 / 5161 (docs/scaling.md, "Figures measured"; python -m bench.citus_writes).


def put_writes_params(params: dict[str, Any]) -> dict[str, Any]:
    """encode_writes' array parameters as the per-row ones of Queries.put_writes."""
    out = {k: params[k] for k in ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id",
                                  "task_path")}  # fmt: skip
    for n, row in enumerate(
        zip(params["idx"], params["channels"], params["types"], params["values"], strict=True)
    ):
        out[f"idx{n}"], out[f"channel{n}"], out[f"type{n}"], out[f"value{n}"] = row
    return out


def _payload(*groups: Sequence[bytes | None]) -> int:
    return sum(len(b) for group in groups for b in group if b is not None)


def default_serde(allow: Iterable[AllowEntry] = ()) -> SerializerProtocol:
    """LangGraph's serializer with pgcheckpoint's type rule on read and write
    (``allowlist.py``): plain data classes of imported modules, plus ``allow``."""
    return PlainDataSerializer(allow=allow)


def with_allow(serde: SerializerProtocol, allow: Iterable[AllowEntry]) -> SerializerProtocol:
    """``serde`` with ``allow`` added to its msgpack allowlist (as ``with_allowlist``)."""
    entries = parse_allow(allow)
    if not entries:
        return serde
    if isinstance(serde, JsonPlusSerializer):
        return serde.with_msgpack_allowlist(entries)
    if isinstance(serde, EncryptedSerializer) and isinstance(serde.serde, JsonPlusSerializer):
        return EncryptedSerializer(serde.cipher, serde.serde.with_msgpack_allowlist(entries))
    raise ConfigurationError(
        f"allow= needs a JsonPlusSerializer-based serde; {type(serde).__name__} has no allowlist"
    )


def encryption_policy(keyring: Any, allow_plaintext: Any) -> Encryption | None:
    """The codec's encryption for the ``encryption=`` and ``allow_plaintext=`` options."""
    if keyring is None:
        if allow_plaintext:
            raise ConfigurationError("allow_plaintext=True only applies with encryption=Keyring")
        return None
    if not isinstance(keyring, Keyring):
        raise ConfigurationError(
            f"encryption must be a pgcheckpoint.Keyring, got {type(keyring).__name__}"
        )
    if allow_plaintext:
        # Loud on purpose: this weakens the fail-closed rule (docs/encryption.md).
        warnings.warn(
            "allow_plaintext=True: this saver reads unencrypted rows as state; use it only "
            "while `pgcheckpoint encrypt` runs",
            stacklevel=4,
        )
    return Encryption(keyring, allow_plaintext=bool(allow_plaintext))


def check_schema_name(schema: Any) -> str:
    if not isinstance(schema, str) or not schema or "\x00" in schema:
        raise ConfigurationError(f"schema must be a non-empty string without NUL, got {schema!r}")
    if len(schema.encode("utf-8")) > 63:
        raise ConfigurationError(f"schema name {schema!r} is longer than PostgreSQL's 63 bytes")
    return schema


def _string_list(values: Any, what: str) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{what} must be a list of strings, got {type(values).__name__}")
    return [codec.text_id(v, f"each of {what}") for v in values]


class SaverCore(BaseCheckpointSaver[str]):
    """Settings and plans shared by :class:`PostgresSaver` and :class:`AsyncPostgresSaver`."""

    def __init__(self, **options: Unpack[SaverOptions]) -> None:
        """Apply the keyword options both savers take
        (:class:`~pgcheckpoint.options.SaverOptions`)."""
        opts = check_options(options)
        serde: SerializerProtocol | None = opts.get("serde")
        allow: Iterable[AllowEntry] = opts.get("allow", ())
        super().__init__(serde=with_allow(serde, allow) if serde else default_serde(allow))
        self.schema = check_schema_name(opts.get("schema", "public"))
        self.queries = Queries(self.schema)
        self.compression = opts.get("compression") or CompressionPolicy()
        self.chunking = opts.get("chunking") or ChunkingPolicy()
        self.encryption = encryption_policy(
            opts.get("encryption"), opts.get("allow_plaintext", False)
        )
        self._codec = codec.Codec(self.serde, self.compression, self.chunking, self.encryption)
        # What this saver read and wrote, for the one-writer rule (_guard.py).
        # Shared by with_allowlist clones (a shallow copy), as it should be.
        self.guard_memory = GuardMemory()
        # Whether the database has the citus extension (a list of every thread then
        # reads keys first, listing.py; put and the batch put call pgcheckpoint_put
        # instead of the put_checkpoint statement, put_writes of more than
        # PUT_WRITES_ROWS writes pgcheckpoint_put_writes, docs/scaling.md): asked by
        # the first such list(), put, batch or put_writes and kept,
        # so later ones cost no extra round trip; None again after setup(), which
        # may have distributed the schema.
        self.has_citus: bool | None = None
        # What the runner needs; the savers build theirs from these.
        self.retry_policy: RetryPolicy = opts.get("retry") or RetryPolicy()
        self.transaction_pooler = bool(opts.get("transaction_pooler", False))
        # Retention (docs/retention.md): the saver's default policy and its sweeper.
        self.retention = RetentionPolicy.from_settings(
            retention=opts.get("retention"),
            max_versions=opts.get("max_versions"),
            max_age=opts.get("max_age"),
            retention_days=opts.get("retention_days"),
        )
        self.auto_cleanup = bool(opts.get("auto_cleanup", False))
        self.cleanup_interval = check_interval(
            opts.get("cleanup_interval", DEFAULT_CLEANUP_INTERVAL)
        )

    @property
    def codec(self) -> codec.Codec:
        """The codec for the current serde (``with_allowlist`` clones swap the serde)."""
        if self._codec.serde is not self.serde:
            self._codec = codec.Codec(
                self.serde, self.compression, self.chunking, self.encryption
            )
        return self._codec

    # --- writes -------------------------------------------------------------
    def encode_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[dict[str, Any], RunnableConfig, CheckpointMetadata]:
        """Validate and encode ``put``'s arguments: (statement parameters, returned config,
        stored metadata)."""
        where = codec.target(config)
        if not isinstance(new_versions, Mapping):
            raise InvalidInputError(
                f"new_versions must be a dict, got {type(new_versions).__name__}"
            )
        if not isinstance(metadata, Mapping):
            raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
        meta = get_serializable_checkpoint_metadata(config, metadata)
        encoded = codec.encode_put(self.codec, where, checkpoint, meta, new_versions)
        return encoded.params, encoded.config, meta

    def put_plan(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Plan[RunnableConfig]:
        params, out, meta = self.encode_put(config, checkpoint, metadata, new_versions)
        guard_put(self.guard_memory, config, params, meta)  # one writer: _guard.py
        memory = self.guard_memory
        parts = {"chunks": bool(params["chunk_hashes"]), "blobs": bool(params["blob_channels"])}
        sql = self.queries.put_checkpoint(**parts)
        # A run's next root checkpoint: the compare-and-set on threads.head
        # (put_head); any other put, or one put_head refused, is checked by
        # put_checkpoint, which raises the precise error or writes (issue 16).
        cas = (
            (
                self.queries.put_head(**parts)
                if params["parent_checkpoint_id"] is not None
                else self.queries.put_head_new(**parts)
            )
            if params["guard"] == HEAD and params["checkpoint_ns"] == ""
            else None
        )
        small = (
            _payload((params["checkpoint"],), params["blob_values"], params["chunk_data"])
            <= SMALL_WRITE_BYTES
        )

        def make() -> PlanGen[RunnableConfig]:
            if (yield from self.citus()):
                yield Query(self.queries["put_function"], params, fetch="all", reuse_cursor=small)
            elif cas is None or not (yield Query(cas, params, fetch="all", reuse_cursor=small)):
                yield Query(sql, params, reuse_cursor=small)
            memory.saved(params)
            return out

        return Plan("put", make)

    def _put_writes_plan(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Plan[None] | None:
        where = codec.target(config)
        if isinstance(writes, str | bytes) or not isinstance(writes, Sequence):
            raise InvalidInputError(f"writes must be a list of pairs, got {type(writes).__name__}")
        upsert, params = codec.encode_writes(self.codec, where, writes, task_id, task_path)
        if not params["channels"]:
            return None
        small = _payload(params["values"]) <= SMALL_WRITE_BYTES
        rows = len(params["channels"])
        if rows <= PUT_WRITES_ROWS:
            sql = self.queries.put_writes(upsert=upsert, rows=rows)
            params = put_writes_params(params)
        else:
            sql = self.queries["put_writes_upsert_arrays" if upsert else "put_writes_insert_arrays"]

        def make() -> PlanGen[None]:
            if rows > PUT_WRITES_ROWS and (yield from self.citus()):
                yield Query(self.queries["put_writes_function"], {**params, "upsert": upsert},
                            reuse_cursor=small)
            else:
                yield Query(sql, params, reuse_cursor=small)

        return Plan("put_writes", make)

    def citus(self) -> PlanGen[bool]:
        """Whether the database has the citus extension, for a plan to ``yield from``:
        asked by the first plan that needs it (one round trip) and kept in
        ``has_citus`` (put, put_writes of more than PUT_WRITES_ROWS writes, the
        batch put, a list of every thread)."""
        if self.has_citus is None:
            found = yield Query(HAS_CITUS, None, fetch="all", prepare=False)
            self.has_citus = bool(found and found[0][0])
        return self.has_citus

    # --- reads --------------------------------------------------------------
    def _get_plan(self, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
        where = codec.target(config)
        params: dict[str, Any] = {
            "thread_id": where.thread_id,
            "checkpoint_ns": where.checkpoint_ns,
        }
        names = ["where_thread", "where_ns"]
        if where.checkpoint_id is not None:
            params["checkpoint_id"] = where.checkpoint_id
            names.append("where_id")
        sql = self.queries.read_checkpoints(names, single=True)

        head = where.checkpoint_id is None
        memory = self.guard_memory

        def make() -> PlanGen[CheckpointTuple | None]:
            rows = yield Query(sql, params, fetch="all")
            found = codec.decode_rows(self.codec, rows or [])
            memory.read(where.thread_id, where.checkpoint_ns, head=head, found=bool(found))
            # The ids keep what kind of read found them, for a put naming one as
            # parent (_guard.py); they are still plain strs to everyone else.
            return tag_read(found[0], head) if found else None

        return Plan("get_tuple", make)

    def _lister(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Lister:
        params: dict[str, Any] = {}
        names: list[str] = []
        in_ns = False
        if config is not None:
            where = codec.target(config)
            names.append("where_thread")
            params["thread_id"] = where.thread_id
            conf = config["configurable"]
            if conf.get("checkpoint_ns") is not None:
                names.append("where_ns")
                params["checkpoint_ns"] = where.checkpoint_ns
                in_ns = True
            if where.checkpoint_id is not None:
                names.append("where_id")
                params["checkpoint_id"] = where.checkpoint_id
        if filter:
            params["filter"] = codec.metadata_json(filter, "filter")
            if self.encryption is not None:
                # One containment per key id (encryption.py): a row matches under its key.
                names.append("where_filter_any")
                params["filters"] = self.encryption.filters(filter)
            else:
                names.append("where_filter")
        if before is not None:
            b_conf = before.get("configurable") if isinstance(before, Mapping) else None
            before_id = b_conf.get("checkpoint_id") if isinstance(b_conf, Mapping) else None
            if before_id is None:
                raise InvalidInputError('before must be a config with a "checkpoint_id"')
            names.append("where_before")
            params["before"] = codec.text_id(before_id, "before checkpoint_id")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidInputError(f"limit must be a non-negative int or None, got {limit!r}")
        return Lister(self, params, names, limit, in_ns)

    def _delta_plan(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Plan[dict[str, DeltaChannelHistory]]:
        where = codec.target(config)
        wanted = _string_list(channels, "channels")
        queries = self.queries

        def make() -> PlanGen[dict[str, DeltaChannelHistory]]:
            if not wanted:
                return {}
            checkpoint_id = where.checkpoint_id
            base = {"thread_id": where.thread_id, "checkpoint_ns": where.checkpoint_ns}
            if checkpoint_id is None:
                rows = yield Query(queries["latest_id"], base, fetch="all")
                if not rows:
                    return {c: {"writes": []} for c in wanted}
                checkpoint_id = rows[0][0]
            params = dict(base, checkpoint_id=checkpoint_id, channels=wanted)
            # Unprepared: the walk's best plan depends on the channel array.
            rows = yield Query(queries["delta_history"], params, fetch="all", prepare=False)
            delta = codec.split_delta(rows or [])
            chunks: dict[bytes, tuple[bool, bytes]] = {}
            refs = delta.chunk_refs()
            if refs:
                found = yield Query(
                    queries["fetch_value_chunks"],
                    {"thread_id": where.thread_id, "refs": refs},
                    fetch="all",
                )
                chunks = {bytes(h): (z, bytes(d)) for h, z, d in found or []}
            return codec.decode_delta(
                self.codec, delta, wanted, chunks,
                thread_id=where.thread_id, ns=where.checkpoint_ns,
            )

        return Plan("get_delta_channel_history", make)

    # --- deletes and copies -------------------------------------------------
    def _delete_thread_plan(self, thread_id: Any) -> Plan[None]:
        tid = codec.text_id(thread_id, "thread_id")
        sql = self.queries["delete_thread"]

        def make() -> PlanGen[None]:
            yield Query(sql, {"thread_id": tid}, reuse_cursor=True)

        return Plan("delete_thread", make)

    def gc_statements(self, thread_ids: list[str]) -> PlanGen[None]:
        """Drop blobs and chunks no checkpoint of these threads needs (inside a transaction)."""
        yield Query(self.queries["gc"], {"thread_ids": thread_ids})

    def _delete_for_runs_plan(self, run_ids: Sequence[str]) -> Plan[None]:
        runs = _string_list(run_ids, "run_ids")
        q = self.queries

        def make() -> PlanGen[None]:
            if not runs:
                return
            # Under a keyring, run_id is stored as its blind-index token.
            keys = runs if self.encryption is None else self.encryption.run_tokens(runs)
            rows = yield Query(q["threads_of_runs"], {"run_ids": keys}, fetch="all")
            threads = sorted(r[0] for r in rows or [])
            if not threads:
                return
            yield Query(q["lock_threads"], {"thread_ids": threads}, fetch="all")
            yield Query(q["delete_runs"], {"run_ids": keys, "thread_ids": threads})
            yield from self.gc_statements(threads)

        return Plan("delete_for_runs", make, transaction=True)

    def _copy_thread_plan(self, source: Any, target: Any) -> Plan[None]:
        src = codec.text_id(source, "source_thread_id")
        dst = codec.text_id(target, "target_thread_id")
        if src == dst:
            raise InvalidInputError(f"cannot copy thread {src!r} onto itself")
        q = self.queries

        def make() -> PlanGen[None]:
            rows = yield Query(q["thread_exists"], {"thread_id": src}, fetch="all")
            if not rows or not rows[0][0]:
                raise InvalidInputError(f"source thread {src!r} has no checkpoints to copy")
            rows = yield Query(q["thread_exists"], {"thread_id": dst}, fetch="all")
            if rows and rows[0][0]:
                raise InvalidInputError(
                    f"target thread {dst!r} already has checkpoints; delete it first"
                )
            yield Query(q["copy_thread"], {"source": src, "target": dst})
            if self.encryption is not None:
                # Each value is bound to its thread: seal the copies for the new one.
                from .sealed_rows import reseal_copy

                yield from reseal_copy(self, self.encryption, src, dst)

        return Plan("copy_thread", make, transaction=True)

    def _prune_plan(self, thread_ids: Sequence[str], strategy: str) -> Plan[None]:
        threads = sorted(set(_string_list(thread_ids, "thread_ids")))
        if strategy not in PRUNE_STRATEGIES:
            raise InvalidInputError(
                f"unknown prune strategy {strategy!r}; "
                f"expected one of {', '.join(PRUNE_STRATEGIES)}"
            )
        q = self.queries

        def make() -> PlanGen[None]:
            if not threads:
                return
            params = {"thread_ids": threads}
            if strategy == "delete":
                yield Query(q["delete_threads"], params)
                return
            # One call per thread, in id order (the lock order of lock_threads): each
            # runs whole on the thread's node on Citus (pgcheckpoint_prune_thread).
            for thread in threads:
                yield Query(q["prune_thread"], {"thread_id": thread}, fetch="all")

        return Plan("prune", make, transaction=True)

    # --- versions -----------------------------------------------------------
    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """The next channel version: ``<counter, 32 digits>.<random>``.

        The same format as the official saver's, so imported threads keep
        working; the random part keeps versions made on two forks of one
        checkpoint distinct, since a version names one stored value.
        """
        if current is None:
            counter = 0
        elif isinstance(current, int):
            counter = current
        else:
            try:
                counter = int(str(current).split(".")[0])
            except ValueError as exc:
                raise InvalidInputError(f"cannot read channel version {current!r}") from exc
        return f"{counter + 1:032}.{random.random():016}"
