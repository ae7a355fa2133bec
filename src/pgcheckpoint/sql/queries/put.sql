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
-- KEEP IN STEP WITH sql/functions/pgcheckpoint_put.sql, the same put as a
-- function of one thread that the saver calls instead when the citus extension
-- is installed (put_function below): a change to one is a change to both.
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

-- name: put_function
-- put_checkpoint on Citus: pgcheckpoint_put, distributed by its thread id with
-- force_delegation, is sent whole to the thread's node (one hop), where
-- put_checkpoint's data-modifying CTEs went through the coordinator as
-- subplans. Same parameters as put_checkpoint.
SELECT {schema}.pgcheckpoint_put(
    %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_checkpoint_id)s,
    %(guard)s::text, %(type)s, %(checkpoint)b::bytea, %(metadata)s::jsonb,
    %(created_at)s::timestamptz, %(channels)b::text[], %(versions)b::text[],
    %(chunk_hashes)b::bytea[], %(chunk_compressed)b::boolean[], %(chunk_data)b::bytea[],
    %(blob_channels)b::text[], %(blob_versions)b::text[], %(blob_types)b::text[],
    %(blob_values)b::bytea[], %(blob_refs)b::bytea[]);

-- name: part_put_writes_rows
-- A put_writes call's rows as a VALUES list, `{rows}` being one put_writes_row
-- per write (Queries.put_writes): with the thread id parameter in every row,
-- Citus routes it to the thread's shard, where INSERT ... SELECT FROM unnest(...)
-- was pulled to the coordinator (docs/scaling.md). Calls with more than
-- PUT_WRITES_ROWS writes use the unnest form (put_writes_*_arrays).
INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                             type, value, task_path)
VALUES {rows}
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)

-- name: put_writes_upsert
-- Used when every write is a special channel (error, interrupt, resume...):
-- a retried task replaces its earlier outcome.
{part_put_writes_rows} DO UPDATE SET
    channel = EXCLUDED.channel, type = EXCLUDED.type, value = EXCLUDED.value,
    task_path = EXCLUDED.task_path;

-- name: put_writes_insert
-- Regular writes are immutable once saved: a repeated call (a retry after an
-- in-doubt commit) changes nothing.
{part_put_writes_rows} DO NOTHING;

-- name: put_writes_row
-- One row of put_writes_insert / _upsert (a fragment); `{n}` is the write's
-- position, so the parameters of a row are idx{n}, channel{n}, type{n}, value{n}.
(%(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, %(idx{n})s::integer,
 %(channel{n})s::text, %(type{n})s::text, %(value{n})b::bytea, %(task_path)s)

-- name: part_put_writes
-- A put_writes call's rows as arrays, unnested (runs on Citus through the
-- coordinator: INSERT ... SELECT is pulled there).
INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                             type, value, task_path)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, u.idx, u.channel,
       u.type, u.value, %(task_path)s
FROM unnest(%(idx)b::integer[], %(channels)b::text[], %(types)b::text[], %(values)b::bytea[])
     AS u(idx, channel, type, value)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)

-- name: put_writes_upsert_arrays
-- put_writes_upsert for more than PUT_WRITES_ROWS writes.
{part_put_writes} DO UPDATE SET
    channel = EXCLUDED.channel, type = EXCLUDED.type, value = EXCLUDED.value,
    task_path = EXCLUDED.task_path;

-- name: put_writes_insert_arrays
-- put_writes_insert for more than PUT_WRITES_ROWS writes.
{part_put_writes} DO NOTHING;
