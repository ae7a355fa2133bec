-- The write path of the savers: put (checkpoint, its chunks and blobs) and put_writes.
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: put_head
-- The common put, one statement and one round trip: a run's next checkpoint in
-- the root namespace (guard 'head', concurrency.py) whose parent the thread
-- row names. The one-writer rule is a compare-and-set on the thread row the put
-- writes anyway: `head` (migration 0010) must still be the parent. A plain
-- UPDATE judges that on the row's latest committed version once it holds the
-- row's lock (READ COMMITTED re-checks the WHERE on the version a concurrent
-- writer committed, so a second writer compares with the head the first one
-- committed); garbage collection's lock_threads takes the same lock. The parent
-- must also still exist, probed by primary key: `head` names it, but a row lost
-- or deleted outside the library leaves `head` as it was (the lost-checkpoint
-- case of tests/test_one_writer.py). The probe reads the statement's snapshot,
-- which sees the parent: it committed before its writer could read it.
-- When a test fails, or the thread has no row (a thread deleted under a running
-- run), `t` returns no row and nothing is written (every later CTE reads `t`):
-- the statement returns no row and the saver runs put_checkpoint instead,
-- which raises the precise error, or writes when `head` was only unknown or
-- lagging (NULL), or replaces the row of a repeated put.
-- Storage (issue 16, target 4): per superstep of the ReAct conversation
-- (bench.conv_anatomy, pg_walinspect, 10 turns) the INSERT ... ON CONFLICT DO
-- UPDATE this replaces logged a tuple lock and a non-HOT update of the thread
-- row plus an entry in each of its two indexes (threads 217 B, threads_pkey
-- 92, threads_updated_idx 102 a superstep). Here:
--   * an UPDATE takes its row lock without a WAL record of its own;
--   * `updated_at` moves only when it is 10 s old (or ahead of the clock), so
--     the updates of a run's quick steps change no indexed column and are HOT
--     (no index entry); the thread list by activity and the idle TTL read it
--     to within those 10 s (docs/schema.md);
--   * the checkpoint row is a plain INSERT (part_checkpoint_row alone), not an
--     INSERT ... ON CONFLICT, whose speculative insertion logs a confirmation
--     record per row: this checkpoint cannot exist yet, its id is newer than
--     `head`, and `head` is the newest root checkpoint of the thread or NULL
--     (migration 0010's invariant), which the WHERE excludes. A repeated put
--     (same id) finds head = its own id and goes to put_checkpoint's upsert.
WITH t AS (
    UPDATE {schema}.threads AS th
    SET (updated_at, head) = (
        CASE WHEN th.updated_at > pg_catalog.now() - interval '10 seconds'
                  AND th.updated_at <= pg_catalog.now()
             THEN th.updated_at ELSE pg_catalog.now() END,
        %(checkpoint_id)s)
    WHERE th.thread_id = %(thread_id)s
      AND th.head = %(parent_checkpoint_id)s
      AND %(checkpoint_id)s::text > th.head
      AND EXISTS (SELECT FROM {schema}.checkpoints p
                  WHERE p.thread_id = %(thread_id)s AND p.checkpoint_ns = ''
                    AND p.checkpoint_id = %(parent_checkpoint_id)s)
    RETURNING th.thread_id
){put_chunks}{put_blobs}
{part_checkpoint_row}
FROM t
RETURNING true;

-- name: put_head_new
-- put_head for a thread's first checkpoint (no parent): the thread row is
-- created with `head` at this checkpoint. A thread with no row has no
-- checkpoint (rows go only with their thread: delete_thread,
-- pgcheckpoint_delete_threads), so the checkpoint row is a plain INSERT (see
-- put_head). When the row exists (a repeated put, or a second root on a thread
-- that has one) `t` is empty, nothing is written, and the saver runs
-- put_checkpoint, which checks and writes or refuses.
WITH t AS (
    INSERT INTO {schema}.threads AS th (thread_id, updated_at, head)
    VALUES (%(thread_id)s, pg_catalog.now(), %(checkpoint_id)s)
    ON CONFLICT (thread_id) DO NOTHING
    RETURNING th.thread_id
){put_chunks}{put_blobs}
{part_checkpoint_row}
FROM t
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
