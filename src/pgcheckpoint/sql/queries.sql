-- Every statement pgcheckpoint runs at run time, by name. `{schema}` is replaced
-- by the quoted schema identifier (psycopg.sql.Identifier) when a saver is made;
-- everything else reaches PostgreSQL as a bound parameter, never as SQL text.
-- Blocks named `where_*` are fragments that `read_checkpoints` is assembled
-- from; the assembly only ever joins these fixed fragments with AND.

-- name: put_checkpoint
-- One statement, one round trip, atomic without BEGIN/COMMIT. The thread row
-- is upserted first (every later CTE reads from `t`), so a writer holds the
-- per-thread row lock before it relies on any chunk or blob already existing;
-- garbage collection takes the same lock (lock_threads) before it deletes.
-- `g` then runs the one-writer-per-thread check (migration 0006) under that
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
    INSERT INTO {schema}.threads AS th (thread_id, updated_at) VALUES (%(thread_id)s, now())
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
       %(type)s, %(checkpoint)b, %(metadata)s::jsonb, coalesce(%(created_at)s::timestamptz, now()),
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

-- name: put_writes_upsert
-- Used when every write is a special channel (error, interrupt, resume...):
-- a retried task replaces its earlier outcome.
INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                             type, value, task_path)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, u.idx, u.channel,
       u.type, u.value, %(task_path)s
FROM unnest(%(idx)b::integer[], %(channels)b::text[], %(types)b::text[], %(values)b::bytea[])
     AS u(idx, channel, type, value)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = EXCLUDED.channel, type = EXCLUDED.type, value = EXCLUDED.value,
    task_path = EXCLUDED.task_path;

-- name: put_writes_insert
-- Regular writes are immutable once saved: a repeated call (a retry after an
-- in-doubt commit) changes nothing.
INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                             type, value, task_path)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, u.idx, u.channel,
       u.type, u.value, %(task_path)s
FROM unnest(%(idx)b::integer[], %(channels)b::text[], %(types)b::text[], %(values)b::bytea[])
     AS u(idx, channel, type, value)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING;

-- name: read_checkpoints
-- The read path of get_tuple and list: checkpoints (newest first) each with
-- its blobs, their chunks and its writes aggregated into arrays, one row per
-- checkpoint. `{where}` is made of the where_* fragments below, `{limit}` is
-- 1 for get_tuple and a parameter for list pages. A plain statement with
-- laterals: an earlier form (a window function and a three-branch UNION that
-- sent each shared blob once) was re-planned on every call, 0.27 ms of
-- planning for 0.09 ms of execution (bench profile). The LIMIT stops the
-- backward primary-key scan early, so the laterals run once per returned row,
-- whatever the thread's length. `{thread}` is the thread id parameter when the
-- read is of one thread, else c.thread_id: Citus routes a statement to one
-- shard only when every distributed table in it is filtered on thread_id by
-- the same constant, and the equality does not pass through the LIMITed
-- subquery (with c.thread_id: "plan should not reference subplan's variable").
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type,
       c.checkpoint, c.metadata, c.channels, c.versions,
       b.channels, b.versions, b.types, b.vals, b.refs,
       k.hashes, k.flags, k.datas,
       w.task_ids, w.channels, w.types, w.vals
FROM (
    -- Limited first: a LIMIT inside a subquery keeps the laterals below from
    -- running for rows the LIMIT would drop (they did, for list pages whose
    -- order the index could not give directly).
    SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
           metadata, channels, versions
    FROM {schema}.checkpoints
    WHERE {where}
    ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC
    LIMIT {limit}
) c
LEFT JOIN LATERAL (
    SELECT array_agg(x.channel) AS channels, array_agg(x.version) AS versions,
           array_agg(x.type) AS types, array_agg(x.value) AS vals,
           array_agg(x.chunk_refs) AS refs
    FROM unnest(c.channels, c.versions) AS v(channel, version)
    -- One primary-key probe per value: as a plain join, PostgreSQL hashed all
    -- of the thread's blobs for every row (2.2 of 2.5 ms for a page of 10 on a
    -- 1,000-checkpoint thread, EXPLAIN ANALYZE), so reads grew with history.
    CROSS JOIN LATERAL (
        SELECT x.channel, x.version, x.type, x.value, x.chunk_refs
        FROM {schema}.blobs x
        WHERE x.thread_id = {thread} AND x.checkpoint_ns = c.checkpoint_ns
          AND x.channel = v.channel AND x.version = v.version
        LIMIT 1
    ) x
    WHERE v.version IS NOT NULL
) b ON true
LEFT JOIN LATERAL (
    SELECT array_agg(y.hash) AS hashes, array_agg(y.compressed) AS flags,
           array_agg(y.data) AS datas
    FROM (
        -- unnest(ARRAY(...)) rather than generate_series in the FROM list: the
        -- planner guessed 1,000 rows for the latter, the estimated cost of a
        -- page of 10 passed jit_above_cost, and JIT compilation added 15 ms
        -- to a 0.3 ms list(limit=10) (EXPLAIN ANALYZE).
        SELECT DISTINCT h.hash
        FROM unnest(b.refs) AS r(refs),
             unnest(ARRAY(SELECT substring(r.refs FROM g.i * 16 + 1 FOR 16)
                          FROM generate_series(0, length(r.refs) / 16 - 1) AS g(i))) AS h(hash)
        WHERE r.refs IS NOT NULL
    ) h
    -- A primary-key probe per chunk, for the same reason as the blobs above.
    CROSS JOIN LATERAL (
        SELECT y.hash, y.compressed, y.data
        FROM {schema}.chunks y
        WHERE y.thread_id = {thread} AND y.hash = h.hash
        LIMIT 1
    ) y
) k ON true
LEFT JOIN LATERAL (
    SELECT array_agg(x.task_id ORDER BY x.task_path, x.task_id, x.idx) AS task_ids,
           array_agg(x.channel ORDER BY x.task_path, x.task_id, x.idx) AS channels,
           array_agg(x.type ORDER BY x.task_path, x.task_id, x.idx) AS types,
           array_agg(x.value ORDER BY x.task_path, x.task_id, x.idx) AS vals
    FROM {schema}.writes x
    WHERE x.thread_id = {thread} AND x.checkpoint_ns = c.checkpoint_ns
      AND x.checkpoint_id = c.checkpoint_id
) w ON true
ORDER BY c.checkpoint_id DESC, c.thread_id DESC, c.checkpoint_ns DESC;

-- name: where_all
TRUE

-- name: where_thread
thread_id = %(thread_id)s

-- name: where_ns
checkpoint_ns = %(checkpoint_ns)s

-- name: where_id
checkpoint_id = %(checkpoint_id)s

-- name: where_filter
metadata @> %(filter)s::jsonb

-- name: where_filter_any
-- Encrypted metadata: the filter's blind-index tokens under each key id
-- (encryption.py); a row matches the containment of the key that sealed it.
metadata @> ANY (%(filters)s::jsonb[])

-- name: where_before
checkpoint_id < %(before)s

-- name: where_page_in_ns
checkpoint_id < %(page_id)s

-- name: where_page
(checkpoint_id, thread_id, checkpoint_ns) < (%(page_id)s, %(page_thread)s, %(page_ns)s)

-- name: delta_history
-- Walks the parent chain of one checkpoint for the channels asked, stopping
-- for each channel at the nearest ancestor that stores a value for it (its
-- seed). `remaining` is what still needs a seed when a row is visited. The
-- walk only moves to smaller checkpoint ids, so corrupt parent links cannot
-- loop; it has no depth limit, so a long thread is never silently truncated.
-- Returns the walk ('a'), the writes on the path ('w') and the seed blobs ('b').
WITH RECURSIVE walk AS (
    SELECT 1 AS depth, p.checkpoint_id, p.parent_checkpoint_id, p.channels, p.versions,
           %(channels)s::text[] AS remaining
    FROM {schema}.checkpoints t
    JOIN {schema}.checkpoints p
      ON p.thread_id = t.thread_id AND p.checkpoint_ns = t.checkpoint_ns
     AND p.checkpoint_id = t.parent_checkpoint_id AND p.checkpoint_id < t.checkpoint_id
    WHERE t.thread_id = %(thread_id)s AND t.checkpoint_ns = %(checkpoint_ns)s
      AND t.checkpoint_id = %(checkpoint_id)s
  UNION ALL
    -- LATERAL keeps the walk the outer side, so each step is one primary-key
    -- lookup; as a plain join the planner scanned the whole thread per step
    -- (quadratic: 6 s for 2,100 checkpoints, tests/test_saver_contract.py).
    SELECT w.depth + 1, p.checkpoint_id, p.parent_checkpoint_id, p.channels, p.versions,
           ARRAY(SELECT r FROM unnest(w.remaining) AS r WHERE r <> ALL (w.channels))
    FROM walk w
    CROSS JOIN LATERAL (
        SELECT q.checkpoint_id, q.parent_checkpoint_id, q.channels, q.versions
        FROM {schema}.checkpoints q
        WHERE q.thread_id = %(thread_id)s AND q.checkpoint_ns = %(checkpoint_ns)s
          AND q.checkpoint_id = w.parent_checkpoint_id
        LIMIT 1  -- a primary key: at most one row; also stops the join being flattened
    ) p
    WHERE p.checkpoint_id < w.checkpoint_id
      AND EXISTS (SELECT 1 FROM unnest(w.remaining) AS r WHERE r <> ALL (w.channels))
), walked AS MATERIALIZED (
    SELECT * FROM walk
)
SELECT 'a' AS kind, a.depth, a.checkpoint_id AS key, NULL::text AS key2, NULL::text AS type,
       NULL::bytea AS data, NULL::bytea AS refs, a.channels, a.versions, a.remaining,
       NULL::text AS task_id, NULL::text AS task_path, NULL::integer AS idx,
       CASE WHEN EXISTS (SELECT 1 FROM unnest(a.channels, a.versions) AS v(channel, version)
                         WHERE v.version IS NULL AND v.channel = ANY (a.remaining))
            THEN c.type END AS skeleton_type,
       CASE WHEN EXISTS (SELECT 1 FROM unnest(a.channels, a.versions) AS v(channel, version)
                         WHERE v.version IS NULL AND v.channel = ANY (a.remaining))
            THEN c.checkpoint END AS skeleton
FROM walked a
JOIN {schema}.checkpoints c
  ON c.thread_id = %(thread_id)s AND c.checkpoint_ns = %(checkpoint_ns)s
 AND c.checkpoint_id = a.checkpoint_id
UNION ALL
SELECT 'w', a.depth, x.checkpoint_id, x.channel, x.type, x.value, NULL, NULL, NULL, NULL,
       x.task_id, x.task_path, x.idx, NULL, NULL
FROM walked a
JOIN {schema}.writes x
  ON x.thread_id = %(thread_id)s AND x.checkpoint_ns = %(checkpoint_ns)s
 AND x.checkpoint_id = a.checkpoint_id AND x.channel = ANY (a.remaining)
UNION ALL
SELECT 'b', a.depth, a.checkpoint_id, b.channel, b.type, b.value, b.chunk_refs, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL
FROM walked a
CROSS JOIN LATERAL unnest(a.channels, a.versions) AS v(channel, version)
JOIN {schema}.blobs b
  ON b.thread_id = %(thread_id)s AND b.checkpoint_ns = %(checkpoint_ns)s
 AND b.channel = v.channel AND b.version = v.version
WHERE v.channel = ANY (a.remaining);

-- name: fetch_chunks
SELECT hash, compressed, data FROM {schema}.chunks
WHERE thread_id = %(thread_id)s AND hash = ANY (%(hashes)s::bytea[]);

-- name: delete_thread
-- All of a thread in one atomic statement.
WITH a AS (DELETE FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s),
     b AS (DELETE FROM {schema}.blobs WHERE thread_id = %(thread_id)s),
     c AS (DELETE FROM {schema}.chunks WHERE thread_id = %(thread_id)s),
     d AS (DELETE FROM {schema}.writes WHERE thread_id = %(thread_id)s)
DELETE FROM {schema}.threads WHERE thread_id = %(thread_id)s;

-- name: delete_threads
-- Whole threads with everything they own (migration 0004, shared with the sweep).
SELECT {schema}.pgcheckpoint_delete_threads(%(thread_ids)s::text[]);

-- name: lock_threads
-- Garbage collection holds these row locks for its transaction; writers take
-- the same lock in put_checkpoint, so no chunk or blob is judged unreferenced
-- while a writer is relying on it.
-- One thread at a time in id order (pgcheckpoint_lock_threads, migration 0008):
-- Citus locks rows only in a statement routed to one shard.
SELECT {schema}.pgcheckpoint_lock_threads(%(thread_ids)s::text[]);

-- name: threads_of_runs
SELECT DISTINCT thread_id FROM {schema}.checkpoints
WHERE metadata ? 'run_id' AND metadata ->> 'run_id' = ANY (%(run_ids)s::text[]);

-- name: delete_runs
WITH gone AS (
    DELETE FROM {schema}.checkpoints
    WHERE metadata ? 'run_id' AND metadata ->> 'run_id' = ANY (%(run_ids)s::text[])
      AND thread_id = ANY (%(thread_ids)s::text[])
    RETURNING thread_id, checkpoint_ns, checkpoint_id
)
DELETE FROM {schema}.writes x USING gone
WHERE x.thread_id = gone.thread_id AND x.checkpoint_ns = gone.checkpoint_ns
  AND x.checkpoint_id = gone.checkpoint_id;

-- name: prune_keep_latest
-- pgcheckpoint_trim (migration 0006) with a limit of one checkpoint per
-- namespace and no pins: the newest checkpoint of each namespace that stays,
-- the ancestors its DeltaChannels need, the writes of what is kept; finished
-- subgraph calls go whole; no kept checkpoint names a deleted parent. Run only
-- under lock_threads.
SELECT {schema}.pgcheckpoint_trim(
    %(thread_ids)s::text[],
    array_fill(1, ARRAY[cardinality(%(thread_ids)s::text[])]),
    array_fill(NULL::timestamptz, ARRAY[cardinality(%(thread_ids)s::text[])]),
    false);

-- name: gc
-- Blobs and chunks of the given threads that nothing references any more
-- (pgcheckpoint_gc: migration 0004, redefined set-based in 0005; shared with the
-- sweep). Run only under lock_threads.
SELECT {schema}.pgcheckpoint_gc(%(thread_ids)s::text[]);

-- name: thread_exists
SELECT EXISTS (SELECT 1 FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s)
    OR EXISTS (SELECT 1 FROM {schema}.writes WHERE thread_id = %(thread_id)s);

-- name: copy_thread
-- Copies every checkpoint, blob, chunk and write, so the copy keeps the whole
-- parent chain that DeltaChannel reconstruction walks.
WITH t AS (
    -- EXCLUDED rather than now() in DO UPDATE SET: Citus accepts only IMMUTABLE
    -- functions there (tests/test_citus_lint.py).
    INSERT INTO {schema}.threads (thread_id, updated_at) VALUES (%(target)s, now())
    ON CONFLICT (thread_id) DO UPDATE SET updated_at = EXCLUDED.updated_at
    RETURNING thread_id
), k AS (
    INSERT INTO {schema}.chunks (thread_id, hash, compressed, data)
    SELECT t.thread_id, s.hash, s.compressed, s.data
    FROM t, {schema}.chunks s WHERE s.thread_id = %(source)s
    ON CONFLICT DO NOTHING
), b AS (
    INSERT INTO {schema}.blobs (thread_id, checkpoint_ns, channel, version, type, value, chunk_refs)
    SELECT t.thread_id, s.checkpoint_ns, s.channel, s.version, s.type, s.value, s.chunk_refs
    FROM t, {schema}.blobs s WHERE s.thread_id = %(source)s
    ON CONFLICT DO NOTHING
), w AS (
    INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                                 type, value, task_path)
    SELECT t.thread_id, s.checkpoint_ns, s.checkpoint_id, s.task_id, s.idx, s.channel, s.type,
           s.value, s.task_path
    FROM t, {schema}.writes s WHERE s.thread_id = %(source)s
    ON CONFLICT DO NOTHING
)
INSERT INTO {schema}.checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                                  type, checkpoint, metadata, created_at, channels, versions)
SELECT t.thread_id, s.checkpoint_ns, s.checkpoint_id, s.parent_checkpoint_id, s.type,
       s.checkpoint, s.metadata, s.created_at, s.channels, s.versions
FROM t, {schema}.checkpoints s WHERE s.thread_id = %(source)s
ON CONFLICT DO NOTHING;

-- name: latest_id
SELECT checkpoint_id FROM {schema}.checkpoints
WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
ORDER BY checkpoint_id DESC
LIMIT 1;

-- ===== threads (issue 6: thread API, importers, transfer) =====================

-- name: threads_list
-- Threads newest first by their last checkpoint, with the metadata of their
-- latest checkpoint (root namespace first) for filtering. Keyset paging on
-- (last_at, thread_id) when after_at is given, OFFSET otherwise. Threads with
-- no checkpoint (only orphan writes) are not listed.
SELECT t.thread_id, s.n, s.first_at, s.last_at, m.metadata
FROM {schema}.threads t
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(c.created_at) AS first_at, max(c.created_at) AS last_at
    FROM {schema}.checkpoints c WHERE c.thread_id = t.thread_id
) s
CROSS JOIN LATERAL (
    SELECT c.metadata FROM {schema}.checkpoints c
    WHERE c.thread_id = t.thread_id
    ORDER BY (c.checkpoint_ns = '') DESC, c.checkpoint_id DESC
    LIMIT 1
) m
WHERE (%(filter)s::jsonb IS NULL OR m.metadata @> %(filter)s::jsonb)
  AND (%(after_at)s::timestamptz IS NULL
       OR (s.last_at, t.thread_id) < (%(after_at)s::timestamptz, %(after_id)s::text))
ORDER BY s.last_at DESC, t.thread_id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: thread_stats
SELECT
    (SELECT count(*) FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s),
    (SELECT count(DISTINCT checkpoint_ns) FROM {schema}.checkpoints
     WHERE thread_id = %(thread_id)s),
    (SELECT count(*) FROM {schema}.writes WHERE thread_id = %(thread_id)s),
    (SELECT count(*) FROM {schema}.blobs WHERE thread_id = %(thread_id)s),
    (SELECT count(*) FROM {schema}.chunks WHERE thread_id = %(thread_id)s),
    (SELECT coalesce(sum(octet_length(checkpoint)), 0) FROM {schema}.checkpoints
     WHERE thread_id = %(thread_id)s)
  + (SELECT coalesce(sum(octet_length(value)), 0) FROM {schema}.blobs
     WHERE thread_id = %(thread_id)s)
  + (SELECT coalesce(sum(octet_length(data)), 0) FROM {schema}.chunks
     WHERE thread_id = %(thread_id)s)
  + (SELECT coalesce(sum(octet_length(value)), 0) FROM {schema}.writes
     WHERE thread_id = %(thread_id)s),
    (SELECT min(created_at) FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s),
    (SELECT max(created_at) FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s),
    (SELECT checkpoint_id FROM {schema}.checkpoints
     WHERE thread_id = %(thread_id)s AND checkpoint_ns = ''
     ORDER BY checkpoint_id DESC LIMIT 1);

-- name: checkpoint_at_time
-- The checkpoint current at a moment: the newest created at or before it.
-- Walks the thread's primary-key range; threads of a few thousand checkpoints
-- answer in well under a millisecond, so no extra index is kept for it.
SELECT checkpoint_id FROM {schema}.checkpoints
WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
  AND created_at <= %(when)s::timestamptz
ORDER BY created_at DESC, checkpoint_id DESC
LIMIT 1;

-- name: list_versions
-- History without channel values: nothing is decoded, only small columns move.
-- next: the nodes whose tasks wrote at this checkpoint (what ran, or is paused at an
-- interrupt, from it); LangGraph names a node's task path "~__pregel_pull, <node>".
-- The writes are matched with the thread id parameter, not c.thread_id, so that
-- Citus sends the statement to the thread's shard alone (32 shards otherwise).
SELECT c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.created_at, c.metadata,
       w.writes, w.next
FROM {schema}.checkpoints c
CROSS JOIN LATERAL (
    SELECT count(*) AS writes,
           coalesce(array_agg(DISTINCT split_part(x.task_path, ', ', 2) ORDER BY
                              split_part(x.task_path, ', ', 2))
                    FILTER (WHERE starts_with(x.task_path, '~__pregel_pull, ')), '{}') AS next
    FROM {schema}.writes x
    WHERE x.thread_id = %(thread_id)s AND x.checkpoint_ns = c.checkpoint_ns
      AND x.checkpoint_id = c.checkpoint_id
) w
WHERE c.thread_id = %(thread_id)s
  AND (%(checkpoint_ns)s::text IS NULL OR c.checkpoint_ns = %(checkpoint_ns)s::text)
ORDER BY c.checkpoint_id DESC, c.checkpoint_ns DESC
LIMIT %(limit)s;

-- name: checkpoint_children
-- Whether a checkpoint exists, and how many checkpoints name it as parent.
SELECT EXISTS (SELECT 1 FROM {schema}.checkpoints
               WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
                 AND checkpoint_id = %(checkpoint_id)s),
       (SELECT count(*) FROM {schema}.checkpoints
        WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
          AND parent_checkpoint_id = %(checkpoint_id)s);

-- name: delete_checkpoint
-- One checkpoint and its pending writes; run under lock_threads, then gc_*.
WITH w AS (
    DELETE FROM {schema}.writes
    WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
      AND checkpoint_id = %(checkpoint_id)s
)
DELETE FROM {schema}.checkpoints
WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
  AND checkpoint_id = %(checkpoint_id)s;

-- name: import_lock_thread
-- An import takes the thread's row lock (as put_checkpoint and garbage
-- collection do) before it reads what the thread holds, so nothing it compares
-- changes under it. An existing row is left as it was.
INSERT INTO {schema}.threads AS th (thread_id) VALUES (%(thread_id)s)
ON CONFLICT (thread_id) DO UPDATE SET updated_at = th.updated_at
RETURNING th.thread_id;

-- name: export_snapshot
-- First statement of an export's per-thread transaction: every row of the
-- thread from one snapshot, so no checkpoint names a value the export missed.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;

-- name: rows_checkpoints
-- A thread's rows exactly as stored, nothing decoded: what export writes and
-- what an import compares its rows with (importers/rows.py).
SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata,
       created_at, channels, versions
FROM {schema}.checkpoints
WHERE thread_id = %(thread_id)s
ORDER BY checkpoint_id, checkpoint_ns;

-- name: rows_blobs
SELECT checkpoint_ns, channel, version, type, value, chunk_refs
FROM {schema}.blobs
WHERE thread_id = %(thread_id)s
ORDER BY checkpoint_ns, channel, version;

-- name: rows_writes
SELECT checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value, task_path
FROM {schema}.writes
WHERE thread_id = %(thread_id)s
ORDER BY checkpoint_ns, checkpoint_id, task_path, task_id, idx;

-- name: verify_checkpoints
-- An import's read-back before commit: digests instead of the bytes it just
-- sent (importers/common.py, _verify), so verifying does not move them twice.
SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
       pg_catalog.sha256(checkpoint), metadata, channels, versions
FROM {schema}.checkpoints
WHERE thread_id = %(thread_id)s AND checkpoint_id = ANY (%(checkpoint_ids)s::text[]);

-- name: verify_blobs
SELECT checkpoint_ns, channel, version, type, pg_catalog.sha256(value),
       pg_catalog.sha256(chunk_refs)
FROM {schema}.blobs
WHERE thread_id = %(thread_id)s AND version = ANY (%(versions)s::text[]);

-- name: verify_writes
SELECT checkpoint_ns, checkpoint_id, task_id, idx, channel, type, pg_catalog.sha256(value),
       task_path
FROM {schema}.writes
WHERE thread_id = %(thread_id)s AND checkpoint_id = ANY (%(checkpoint_ids)s::text[]);

-- name: rows_chunk_hashes
-- Which of these chunks the thread holds (an import checks every reference).
SELECT hash FROM {schema}.chunks
WHERE thread_id = %(thread_id)s AND hash = ANY (%(hashes)s::bytea[]);

-- name: import_checkpoint
-- A plain INSERT: the import has checked under the thread lock that the row is
-- absent, and a row that appeared anyway must fail the import, not be replaced.
INSERT INTO {schema}.checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                                  type, checkpoint, metadata, created_at, channels, versions)
VALUES (%(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_checkpoint_id)s,
        %(type)s, %(checkpoint)s, %(metadata)s::jsonb,
        coalesce(%(created_at)s::timestamptz, now()), %(channels)s::text[],
        %(versions)s::text[]);

-- name: import_blobs
INSERT INTO {schema}.blobs (thread_id, checkpoint_ns, channel, version, type, value, chunk_refs)
SELECT %(thread_id)s, u.checkpoint_ns, u.channel, u.version, u.type, u.value, u.chunk_refs
FROM unnest(%(namespaces)s::text[], %(channels)s::text[], %(versions)s::text[],
            %(types)s::text[], %(values)s::bytea[], %(refs)s::bytea[])
     AS u(checkpoint_ns, channel, version, type, value, chunk_refs);

-- name: import_chunks
-- Chunks are addressed by the digest of their content (checked before this
-- runs), so one already present is the same chunk.
INSERT INTO {schema}.chunks (thread_id, hash, compressed, data)
SELECT %(thread_id)s, u.hash, u.compressed, u.data
FROM unnest(%(hashes)s::bytea[], %(compressed)s::boolean[], %(datas)s::bytea[])
     AS u(hash, compressed, data)
ON CONFLICT (thread_id, hash) DO NOTHING;

-- name: import_writes
-- Writes keep their source idx and task_path; plain INSERT for the reason
-- given at import_checkpoint.
INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                             type, value, task_path)
SELECT %(thread_id)s, u.checkpoint_ns, u.checkpoint_id, u.task_id, u.idx, u.channel,
       u.type, u.value, u.task_path
FROM unnest(%(namespaces)s::text[], %(checkpoint_ids)s::text[], %(task_ids)s::text[],
            %(idx)s::integer[], %(channels)s::text[], %(types)s::text[], %(values)s::bytea[],
            %(task_paths)s::text[])
     AS u(checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value, task_path);

-- name: export_counts
-- Checkpoints per thread, for an export's total before it starts (NULL: every
-- thread). Reads the thread_id index only.
SELECT thread_id, count(*) FROM {schema}.checkpoints
WHERE %(thread_ids)s::text[] IS NULL OR thread_id = ANY (%(thread_ids)s::text[])
GROUP BY thread_id
ORDER BY thread_id;

-- name: retention_page
-- The sweeper's next page of threads (retention.py / sweeper.py). Read without
-- a lock, so the page advances even when every thread on it is busy.
SELECT thread_id FROM {schema}.threads
WHERE thread_id > %(after)s
ORDER BY thread_id
LIMIT %(limit)s;

-- name: sweep_lock
-- One sweeper per schema, whoever runs it (library, CLI, pg_cron): a session
-- advisory lock on the key of migration 0004.
SELECT pg_try_advisory_lock({schema}.pgcheckpoint_sweep_lock_key());

-- name: sweep_batch
-- One batch of a sweep (migration 0004 has the policies): rows and bytes
-- removed per table, and a 'scanned' row with the number of threads locked.
SELECT tbl, n, bytes
FROM {schema}.pgcheckpoint_sweep_batch(%(thread_ids)s::text[], %(policy)s::jsonb,
                                       %(orphan_grace)s::interval);

-- name: sweep_strays
-- Writes of threads that never got a checkpoint, older than the grace period;
-- at most %(limit)s per call.
SELECT n, bytes FROM {schema}.pgcheckpoint_sweep_strays(%(orphan_grace)s::interval, %(limit)s);

-- name: cron_installed
-- Whether pg_cron's functions are in this database (schedule_cleanup).
SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'cron' AND p.proname = 'schedule');

-- name: cron_schedule
-- A pg_cron job (created, or replaced by name) that CALLs the sweep procedure
-- with the saver's policy; format() quotes the schema (%I) and the values (%L)
-- on the server, so the job's command is built from parameters only.
SELECT cron.schedule(%(name)s, %(schedule)s, c.command), c.command
FROM (SELECT format('CALL %%I.pgcheckpoint_sweep(%%L::jsonb, %%s, %%L::interval)',
                    %(schema)s::text, %(policy)s::text, %(batch_size)s::integer,
                    %(orphan_grace)s::interval) AS command) c;

-- name: cron_unschedule
-- Removes the current user's pg_cron jobs of that name; a row per job removed.
SELECT cron.unschedule(j.jobid) FROM cron.job j
WHERE j.jobname = %(name)s AND j.username = current_user;

-- name: retention_set_thread
-- A thread's own policy (NULL = the saver's); creates the thread row if needed
-- so a policy can be set before the first run.
INSERT INTO {schema}.threads AS t (thread_id, retention)
VALUES (%(thread_id)s, %(retention)s::jsonb)
ON CONFLICT (thread_id) DO UPDATE SET retention = EXCLUDED.retention;

-- name: retention_get_thread
SELECT retention, pinned FROM {schema}.threads WHERE thread_id = %(thread_id)s;

-- name: retention_pin_thread
INSERT INTO {schema}.threads AS t (thread_id, pinned)
VALUES (%(thread_id)s, %(pinned)s)
ON CONFLICT (thread_id) DO UPDATE SET pinned = EXCLUDED.pinned;

-- name: retention_pin_checkpoint
UPDATE {schema}.checkpoints SET pinned = %(pinned)s
WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
  AND checkpoint_id = %(checkpoint_id)s
RETURNING checkpoint_id;

-- name: vacuum_permissions
-- Which of our tables exist, and whether the current role may VACUUM each: owner of
-- the table or of the database, superuser, or (PostgreSQL 17+) MAINTAIN.
SELECT c.relname::text,
       pg_has_role(c.relowner, 'USAGE')
       OR pg_has_role((SELECT d.datdba FROM pg_catalog.pg_database d
                       WHERE d.datname = current_database()), 'USAGE')
       OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
       OR CASE WHEN current_setting('server_version_num')::int >= 170000
               THEN has_table_privilege(c.oid, 'MAINTAIN') ELSE false END
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s::text[]) AND c.relkind IN ('r', 'p');

-- name: storage_tables
-- Every table of the schema with its heap, TOAST (table and index) and index
-- bytes; total = pg_total_relation_size. reltuples is -1 for a table never
-- analyzed: the caller counts those rows exactly.
SELECT c.relname::text, c.reltuples::bigint,
       pg_table_size(c.oid) - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       pg_indexes_size(c.oid),
       pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
ORDER BY pg_total_relation_size(c.oid) DESC, c.relname;

-- name: storage_threads
-- The fattest threads by stored bytes (the measure of retention_measure).
WITH s AS (
    SELECT thread_id, count(*) AS checkpoints,
           sum(pg_column_size(checkpoint) + pg_column_size(metadata)
               + pg_column_size(channels) + pg_column_size(versions)) AS bytes
    FROM {schema}.checkpoints GROUP BY thread_id
    UNION ALL
    SELECT thread_id, 0, sum(coalesce(pg_column_size(value), 0)
                             + coalesce(pg_column_size(chunk_refs), 0))
    FROM {schema}.blobs GROUP BY thread_id
    UNION ALL
    SELECT thread_id, 0, sum(pg_column_size(data)) FROM {schema}.chunks GROUP BY thread_id
    UNION ALL
    SELECT thread_id, 0, sum(coalesce(pg_column_size(value), 0))
    FROM {schema}.writes GROUP BY thread_id
)
SELECT thread_id, sum(checkpoints)::bigint, sum(bytes)::bigint
FROM s GROUP BY thread_id
ORDER BY 3 DESC, 1
LIMIT %(limit)s;

-- name: storage_thread_count
SELECT count(*) FROM {schema}.threads;

-- name: health_probe
-- health_check(): the server's identity and the settings that decide whether
-- an acknowledged checkpoint survives a crash. inet_server_port() differs
-- from the port the client dialled when a proxy or pooler sits in between.
SELECT current_setting('server_version'), current_setting('server_version_num')::int,
       current_setting('fsync'), current_setting('synchronous_commit'),
       current_setting('full_page_writes'), pg_is_in_recovery(), inet_server_port(),
       current_setting('synchronous_standby_names');

-- name: thread_summaries
-- One page of the inspector's thread list (issue 15), most recently written
-- first. The page is chosen from the threads table alone, ordered by
-- threads.updated_at (every put bumps it) and keyset-paged on
-- (updated_at, thread_id); only the threads of the page are then measured
-- (their counts, sizes and the pending interrupt or error of their head).
-- `prefix` narrows by thread id, `filter` matches the metadata of the latest
-- root checkpoint, `thread_id` asks for one thread. Thread ids are ordered
-- COLLATE "C": many threads share an updated_at (one transaction writes them),
-- and sorting 100,000 such ties by the database's collation took 590 ms where
-- byte order takes a tenth of it. With a filter, `ordered` is not cut to the
-- page (its LIMIT is NULL, i.e. none) and, being a subquery with a LIMIT, the
-- filter is not pushed into it: the filter runs on threads in order and stops
-- once the page is full, instead of on every thread before the sort.
-- Without an index on threads(updated_at), each page sorts the threads table:
-- ~40 ms per 100,000 threads (docs/inspector.md).
WITH ordered AS (
    SELECT t.thread_id, t.updated_at, t.pinned, t.retention
    FROM {schema}.threads t
    WHERE (%(thread_id)s::text IS NULL OR t.thread_id = %(thread_id)s::text)
      AND (%(prefix)s::text IS NULL OR starts_with(t.thread_id, %(prefix)s::text))
      AND (%(after_at)s::timestamptz IS NULL
           OR (t.updated_at, t.thread_id COLLATE "C")
              < (%(after_at)s::timestamptz, %(after_id)s::text COLLATE "C"))
    ORDER BY t.updated_at DESC, t.thread_id COLLATE "C" DESC
    LIMIT CASE WHEN %(filter)s::jsonb IS NULL THEN %(limit)s::bigint END
), page AS (
    SELECT o.thread_id, o.updated_at, o.pinned, o.retention
    FROM ordered o
    WHERE %(filter)s::jsonb IS NULL OR (
        SELECT c.metadata FROM {schema}.checkpoints c
        WHERE c.thread_id = o.thread_id AND c.checkpoint_ns = ''
        ORDER BY c.checkpoint_id DESC LIMIT 1) @> %(filter)s::jsonb
    LIMIT %(limit)s
)
SELECT p.thread_id, p.updated_at, p.pinned, p.retention, s.n, s.first_at, s.last_at,
       h.checkpoint_id, h.metadata, e.channel, e.type, e.value,
       (SELECT max(x.created_at) FROM {schema}.writes x WHERE x.thread_id = p.thread_id),
       (SELECT coalesce(sum(octet_length(c.checkpoint)), 0) FROM {schema}.checkpoints c
        WHERE c.thread_id = p.thread_id)
     + (SELECT coalesce(sum(octet_length(b.value)), 0) FROM {schema}.blobs b
        WHERE b.thread_id = p.thread_id)
     + (SELECT coalesce(sum(octet_length(k.data)), 0) FROM {schema}.chunks k
        WHERE k.thread_id = p.thread_id)
     + (SELECT coalesce(sum(octet_length(x.value)), 0) FROM {schema}.writes x
        WHERE x.thread_id = p.thread_id),
       now()
FROM page p
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(c.created_at) AS first_at, max(c.created_at) AS last_at
    FROM {schema}.checkpoints c WHERE c.thread_id = p.thread_id
) s
LEFT JOIN LATERAL (
    SELECT c.checkpoint_id, c.metadata FROM {schema}.checkpoints c
    WHERE c.thread_id = p.thread_id AND c.checkpoint_ns = ''
    ORDER BY c.checkpoint_id DESC LIMIT 1
) h ON true
LEFT JOIN LATERAL (
    SELECT x.channel, x.type, x.value FROM {schema}.writes x
    WHERE x.thread_id = p.thread_id AND x.checkpoint_ns = ''
      AND x.checkpoint_id = h.checkpoint_id AND x.channel IN ('__error__', '__interrupt__')
    ORDER BY (x.channel = '__error__') DESC, x.task_id, x.idx
    LIMIT 1
) e ON true
ORDER BY p.updated_at DESC, p.thread_id COLLATE "C" DESC;

-- name: thread_graph
-- The shape of one thread's history for the inspector's timeline: each
-- checkpoint's key, parent and time; no metadata, no state, no write count
-- (list_versions' per-row write count and JSON metadata made it 0.6 s on a
-- 10,000-checkpoint thread; this is a scan of the thread's primary-key range).
SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, created_at
FROM {schema}.checkpoints
WHERE thread_id = %(thread_id)s
ORDER BY checkpoint_ns, checkpoint_id DESC;
