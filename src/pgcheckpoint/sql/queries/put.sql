-- The write path of the savers: put (checkpoint, its chunks and blobs) and put_writes.
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: put_checkpoint
-- One statement, one round trip, atomic without BEGIN/COMMIT. The thread row
-- is upserted first (every later CTE reads from `t`), so a writer holds the
-- per-thread row lock before it relies on any chunk or blob already existing;
-- garbage collection takes the same lock (lock_threads) before it deletes.
-- `g` then runs the one-writer-per-thread check (pgcheckpoint_put_guard) under that
-- lock; `guard` says which check (concurrency.py: 'head', 'exists', or NULL for
-- none). Arrays are sent in
-- binary (%b): psycopg's text array dumper hex-encoded and regex-escaped every
-- element, 0.7 ms of a 100 KB put (bench profile).
-- `{put_chunks}` and `{put_blobs}` are the two blocks below, left out when the
-- put has no chunk or no blob to write (Queries.put_checkpoint): a data-modifying
-- CTE costs its executor set-up (opening the table, its indexes, the ON CONFLICT
-- arbiter) even for an empty array; leaving out the empty chunks CTE took 0.26
-- to 0.23 ms off a 1 KB put statement (synchronous_commit=off A/B, PostgreSQL 15).
WITH t AS (
    -- The time is computed in VALUES and taken from EXCLUDED: Citus accepts only
    -- IMMUTABLE functions in DO UPDATE SET (tests/test_citus_lint.py).
    INSERT INTO {schema}.threads AS th (thread_id, updated_at)
    VALUES (%(thread_id)s, pg_catalog.now())
    ON CONFLICT (thread_id) DO UPDATE SET updated_at = EXCLUDED.updated_at
    RETURNING th.thread_id
), g AS (
    SELECT {schema}.pgcheckpoint_put_guard(t.thread_id, %(checkpoint_ns)s,
               %(parent_checkpoint_id)s, %(checkpoint_id)s, %(guard)s::text) AS ok
    FROM t
){put_chunks}{put_blobs}
INSERT INTO {schema}.checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                                  type, checkpoint, metadata, created_at, channels, versions)
SELECT t.thread_id, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_checkpoint_id)s,
       %(type)s, %(checkpoint)b, %(metadata)s::jsonb,
       coalesce(%(created_at)s::timestamptz, pg_catalog.now()),
       %(channels)b::text[], %(versions)b::text[]
FROM t, g
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_checkpoint_id = EXCLUDED.parent_checkpoint_id,
    type = EXCLUDED.type,
    checkpoint = EXCLUDED.checkpoint,
    metadata = EXCLUDED.metadata,
    channels = EXCLUDED.channels,
    versions = EXCLUDED.versions;

-- name: put_chunks
-- put_checkpoint's new chunks (a fragment of it; see there).
, k AS (
    INSERT INTO {schema}.chunks (thread_id, hash, compressed, data)
    SELECT t.thread_id, u.hash, u.compressed, u.data
    FROM t, unnest(%(chunk_hashes)b::bytea[], %(chunk_compressed)b::boolean[],
                   %(chunk_data)b::bytea[]) AS u(hash, compressed, data)
    ON CONFLICT (thread_id, hash) DO NOTHING
)

-- name: put_blobs
-- put_checkpoint's new channel values (a fragment of it; see there).
, b AS (
    INSERT INTO {schema}.blobs (thread_id, checkpoint_ns, channel, version, type, value, chunk_refs)
    SELECT t.thread_id, %(checkpoint_ns)s, u.channel, u.version, u.type, u.value, u.chunk_refs
    FROM t, unnest(%(blob_channels)b::text[], %(blob_versions)b::text[], %(blob_types)b::text[],
                   %(blob_values)b::bytea[], %(blob_refs)b::bytea[])
         AS u(channel, version, type, value, chunk_refs)
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)

-- name: part_put_writes
-- A put_writes call's rows; each statement below adds what a conflict does.
INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                             type, value, task_path)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, u.idx, u.channel,
       u.type, u.value, %(task_path)s
FROM unnest(%(idx)b::integer[], %(channels)b::text[], %(types)b::text[], %(values)b::bytea[])
     AS u(idx, channel, type, value)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)

-- name: put_writes_upsert
-- Used when every write is a special channel (error, interrupt, resume...):
-- a retried task replaces its earlier outcome.
{part_put_writes} DO UPDATE SET
    channel = EXCLUDED.channel, type = EXCLUDED.type, value = EXCLUDED.value,
    task_path = EXCLUDED.task_path;

-- name: put_writes_insert
-- Regular writes are immutable once saved: a repeated call (a retry after an
-- in-doubt commit) changes nothing.
{part_put_writes} DO NOTHING;
