-- The write path of the savers: put (checkpoint, its chunks and blobs) and put_writes.
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: put_head
-- The common put, one statement and one round trip: a run's next checkpoint in
-- the root namespace (guard 'head', concurrency.py). The one-writer rule is a
-- compare-and-set on the thread row this upsert already writes: `head`
-- (migration 0010) must still be the parent, or already this checkpoint (a
-- retried put). ON CONFLICT DO UPDATE judges that on the row's latest
-- committed version once it holds the row's lock (taken even when the WHERE is
-- false, so garbage collection's lock_threads is respected either way): a
-- second writer waits for the first one's commit and compares with the head it
-- committed. The parent must also still exist, probed by primary key before any
-- row is proposed: `head` names it, but a row lost or deleted outside the
-- library leaves `head` as it was (the lost-checkpoint case of
-- tests/test_one_writer.py), and a thread deleted under a running run has no
-- row, so the INSERT arm would start it again on a parent that is gone. The
-- probe reads the statement's snapshot, which sees the parent: it committed
-- before its writer could read it.
-- When either test fails `t` returns no row and nothing is written (every later
-- CTE reads `t`): the statement returns no row and the saver runs
-- put_checkpoint instead, which raises the precise error, or writes when
-- `head` was only unknown or lagging (NULL). A thread with no row has no
-- checkpoint (rows go only with their thread: delete_thread,
-- pgcheckpoint_delete_threads), so the INSERT arm starts the head at this
-- checkpoint.
-- Measured (2026-12-01, PostgreSQL 15, load average 11-13 on 2 CPUs):
-- `python -m bench.put_variants --sync-off --calls 600`, median per call of
-- interleaved calls: this statement 0.170 ms, the same with no one-writer check
-- 0.166, put_checkpoint (the guard call every put made before 0010) 0.223.
-- Server time (EXPLAIN (ANALYZE, WAL), rolled back, 600 interleaved pairs, two
-- runs): execution 0.180 / 0.159 ms against put_checkpoint's 0.245 / 0.214;
-- planning (skipped once prepared) 0.02-0.05 ms more, the probe's subplan; WAL
-- the same, 1.2 KB (docs/benchmarks.md).
-- GREATEST keeps the newest id should a caller's ids not grow; like every
-- expression in DO UPDATE SET here it calls no function (tests/test_citus_lint.py).
WITH t AS (
    INSERT INTO {schema}.threads AS th (thread_id, updated_at, head)
    SELECT %(thread_id)s, pg_catalog.now(), %(checkpoint_id)s
    WHERE %(parent_checkpoint_id)s::text IS NULL
       OR EXISTS (SELECT FROM {schema}.checkpoints p
                  WHERE p.thread_id = %(thread_id)s AND p.checkpoint_ns = ''
                    AND p.checkpoint_id = %(parent_checkpoint_id)s)
    ON CONFLICT (thread_id) DO UPDATE
        SET updated_at = EXCLUDED.updated_at, head = GREATEST(th.head, EXCLUDED.head)
        WHERE th.head = %(parent_checkpoint_id)s OR th.head = EXCLUDED.head
    RETURNING th.thread_id
){put_chunks}{put_blobs}
{part_checkpoint_row}
FROM t
{part_checkpoint_upsert}
RETURNING true;

-- name: put_checkpoint
-- The checked put: every put put_head does not take (a subgraph namespace, a
-- fork, a put with no check, batches), and put_head's fallback when it wrote
-- nothing. One statement, one round trip, atomic without BEGIN/COMMIT. The thread row
-- is upserted first (every later CTE reads from `t`), so a writer holds the
-- per-thread row lock before it relies on any chunk or blob already existing;
-- garbage collection takes the same lock (lock_threads) before it deletes.
-- `g` then runs the one-writer-per-thread check (pgcheckpoint_put_check) under that
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
    -- `head` (put_head, migration 0010) stays NULL or the newest root checkpoint:
    -- a 'head' check that passes proves the parent was the newest (so the newer
    -- of parent and this checkpoint is); otherwise the newer of a known head and
    -- this checkpoint; a subgraph namespace leaves it. If the check raises,
    -- nothing of this statement stays.
    INSERT INTO {schema}.threads AS th (thread_id, updated_at, head)
    VALUES (%(thread_id)s, pg_catalog.now(),
            CASE WHEN %(checkpoint_ns)s = '' THEN %(checkpoint_id)s END)
    ON CONFLICT (thread_id) DO UPDATE SET
        updated_at = EXCLUDED.updated_at,
        head = CASE WHEN EXCLUDED.head IS NULL THEN th.head
                    WHEN %(guard)s::text = 'head'
                        THEN GREATEST(%(parent_checkpoint_id)s, EXCLUDED.head)
                    WHEN th.head IS NULL THEN NULL
                    ELSE GREATEST(th.head, EXCLUDED.head) END
    RETURNING th.thread_id
), g AS (
    SELECT {schema}.pgcheckpoint_put_check(t.thread_id, %(checkpoint_ns)s,
               %(parent_checkpoint_id)s, %(checkpoint_id)s, %(guard)s::text) AS ok
    FROM t
){put_chunks}{put_blobs}
{part_checkpoint_row}
FROM t, g
{part_checkpoint_upsert};

-- name: part_checkpoint_row
-- The checkpoint row of put_head and put_checkpoint (each adds its FROM).
INSERT INTO {schema}.checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                                  type, checkpoint, metadata, created_at, channels, versions)
SELECT t.thread_id, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_checkpoint_id)s,
       %(type)s, %(checkpoint)b, %(metadata)s::jsonb,
       coalesce(%(created_at)s::timestamptz, pg_catalog.now()),
       %(channels)b::text[], %(versions)b::text[]

-- name: part_checkpoint_upsert
-- A put repeated with the same checkpoint id replaces the row (put_head, put_checkpoint).
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_checkpoint_id = EXCLUDED.parent_checkpoint_id,
    type = EXCLUDED.type,
    checkpoint = EXCLUDED.checkpoint,
    metadata = EXCLUDED.metadata,
    channels = EXCLUDED.channels,
    versions = EXCLUDED.versions

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
-- PUT_WRITES_ROWS writes use the unnest form (put_writes_*_arrays), on Citus
-- inside pgcheckpoint_put_writes (put_writes_function).
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

-- name: put_writes_function
-- put_writes_*_arrays on Citus: pgcheckpoint_put_writes, distributed by its
-- thread id with force_delegation, runs whole on the thread's node (one hop);
-- `upsert` picks the conflict rule. Same array parameters as put_writes_*_arrays.
SELECT {schema}.pgcheckpoint_put_writes(
    %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, %(task_path)s,
    %(upsert)s::boolean, %(idx)b::integer[], %(channels)b::text[], %(types)b::text[],
    %(values)b::bytea[]);

-- name: part_put_writes
-- A put_writes call's rows as arrays, unnested (on Citus INSERT ... SELECT is
-- pulled to the coordinator: the saver calls put_writes_function there). KEEP IN
-- STEP WITH sql/functions/pgcheckpoint_put_writes.sql.
INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                             type, value, task_path)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, u.idx, u.channel,
       u.type, u.value, %(task_path)s
FROM unnest(%(idx)b::integer[], %(channels)b::text[], %(types)b::text[], %(values)b::bytea[])
     AS u(idx, channel, type, value)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)

-- name: put_writes_upsert_arrays
-- put_writes_upsert for more than PUT_WRITES_ROWS writes (not on Citus).
{part_put_writes} DO UPDATE SET
    channel = EXCLUDED.channel, type = EXCLUDED.type, value = EXCLUDED.value,
    task_path = EXCLUDED.task_path;

-- name: put_writes_insert_arrays
-- put_writes_insert for more than PUT_WRITES_ROWS writes (not on Citus).
{part_put_writes} DO NOTHING;
