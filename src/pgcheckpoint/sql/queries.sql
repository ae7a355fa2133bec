-- Every statement pgcheckpoint runs at run time, by name. `{schema}` is replaced
-- by the quoted schema identifier (psycopg.sql.Identifier) when a saver is made;
-- everything else reaches PostgreSQL as a bound parameter, never as SQL text.
-- Blocks named `where_*` are fragments that `select_checkpoints` is assembled
-- from; the assembly only ever joins these fixed fragments with AND.

-- name: put_checkpoint
-- One statement, one round trip, atomic without BEGIN/COMMIT. The thread row
-- is upserted first (every later CTE reads from `t`), so a writer holds the
-- per-thread row lock before it relies on any chunk or blob already existing;
-- garbage collection takes the same lock (lock_threads) before it deletes.
WITH t AS (
    INSERT INTO {schema}.threads AS th (thread_id) VALUES (%(thread_id)s)
    ON CONFLICT (thread_id) DO UPDATE SET updated_at = now()
    RETURNING th.thread_id
), k AS (
    INSERT INTO {schema}.chunks (thread_id, hash, compressed, data)
    SELECT t.thread_id, u.hash, u.compressed, u.data
    FROM t, unnest(%(chunk_hashes)s::bytea[], %(chunk_compressed)s::boolean[],
                   %(chunk_data)s::bytea[]) AS u(hash, compressed, data)
    ON CONFLICT (thread_id, hash) DO NOTHING
), b AS (
    INSERT INTO {schema}.blobs (thread_id, checkpoint_ns, channel, version, type, value, chunk_refs)
    SELECT t.thread_id, %(checkpoint_ns)s, u.channel, u.version, u.type, u.value, u.chunk_refs
    FROM t, unnest(%(blob_channels)s::text[], %(blob_versions)s::text[], %(blob_types)s::text[],
                   %(blob_values)s::bytea[], %(blob_refs)s::bytea[])
         AS u(channel, version, type, value, chunk_refs)
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)
INSERT INTO {schema}.checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                                  type, checkpoint, metadata, created_at, channels, versions)
SELECT t.thread_id, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_checkpoint_id)s,
       %(type)s, %(checkpoint)s, %(metadata)s::jsonb, coalesce(%(created_at)s::timestamptz, now()),
       %(channels)s::text[], %(versions)s::text[]
FROM t
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_checkpoint_id = EXCLUDED.parent_checkpoint_id,
    type = EXCLUDED.type,
    checkpoint = EXCLUDED.checkpoint,
    metadata = EXCLUDED.metadata,
    channels = EXCLUDED.channels,
    versions = EXCLUDED.versions;

-- name: put_writes_upsert
-- Used when every write is a special channel (error, interrupt, resume...):
-- a retried task replaces its earlier outcome.
INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                             type, value, task_path)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, u.idx, u.channel,
       u.type, u.value, %(task_path)s
FROM unnest(%(idx)s::integer[], %(channels)s::text[], %(types)s::text[], %(values)s::bytea[])
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
FROM unnest(%(idx)s::integer[], %(channels)s::text[], %(types)s::text[], %(values)s::bytea[])
     AS u(idx, channel, type, value)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING;

-- name: select_checkpoints
-- The read path of get_tuple and list: one round trip returns the page of
-- checkpoint rows ('c', with their writes aggregated), each distinct blob they
-- reference once ('b'), and each distinct chunk once ('k'), so a list of many
-- checkpoints sharing unchanged channels moves and decodes every value once.
-- Every lookup is by primary key: the cost of reading the latest checkpoint
-- does not depend on how many checkpoints the thread has.
WITH c AS MATERIALIZED (
    SELECT row_number() OVER (ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC) AS ord,
           thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
           metadata, channels, versions
    FROM {schema}.checkpoints
    WHERE {where}
    ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC
    LIMIT %(limit)s
), bk AS (
    SELECT DISTINCT c.thread_id, c.checkpoint_ns, v.channel, v.version
    FROM c, unnest(c.channels, c.versions) AS v(channel, version)
    WHERE v.version IS NOT NULL
), bl AS MATERIALIZED (
    SELECT b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, b.value, b.chunk_refs
    FROM bk JOIN {schema}.blobs b
      ON b.thread_id = bk.thread_id AND b.checkpoint_ns = bk.checkpoint_ns
     AND b.channel = bk.channel AND b.version = bk.version
), kk AS (
    SELECT DISTINCT bl.thread_id, substring(bl.chunk_refs FROM g.i * 16 + 1 FOR 16) AS hash
    FROM bl, generate_series(0, length(bl.chunk_refs) / 16 - 1) AS g(i)
    WHERE bl.chunk_refs IS NOT NULL
)
SELECT 'c' AS kind, c.ord, c.thread_id, c.checkpoint_ns, c.checkpoint_id AS key,
       c.parent_checkpoint_id AS key2, c.type, c.checkpoint AS data, NULL::bytea AS refs,
       NULL::boolean AS flag, c.metadata, c.channels, c.versions,
       w.task_ids, w.channels AS w_channels, w.types AS w_types, w.vals AS w_values,
       w.paths AS w_paths
FROM c LEFT JOIN LATERAL (
    SELECT array_agg(x.task_id ORDER BY x.task_path, x.task_id, x.idx) AS task_ids,
           array_agg(x.channel ORDER BY x.task_path, x.task_id, x.idx) AS channels,
           array_agg(x.type ORDER BY x.task_path, x.task_id, x.idx) AS types,
           array_agg(x.value ORDER BY x.task_path, x.task_id, x.idx) AS vals,
           array_agg(x.task_path ORDER BY x.task_path, x.task_id, x.idx) AS paths
    FROM {schema}.writes x
    WHERE x.thread_id = c.thread_id AND x.checkpoint_ns = c.checkpoint_ns
      AND x.checkpoint_id = c.checkpoint_id
) w ON true
UNION ALL
SELECT 'b', NULL, bl.thread_id, bl.checkpoint_ns, bl.channel, bl.version, bl.type, bl.value,
       bl.chunk_refs, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM bl
UNION ALL
SELECT 'k', NULL, k.thread_id, NULL, NULL, NULL, NULL, k.data, k.hash, k.compressed,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM kk JOIN {schema}.chunks k ON k.thread_id = kk.thread_id AND k.hash = kk.hash;

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
    SELECT w.depth + 1, p.checkpoint_id, p.parent_checkpoint_id, p.channels, p.versions,
           ARRAY(SELECT r FROM unnest(w.remaining) AS r WHERE r <> ALL (w.channels))
    FROM walk w
    JOIN {schema}.checkpoints p
      ON p.thread_id = %(thread_id)s AND p.checkpoint_ns = %(checkpoint_ns)s
     AND p.checkpoint_id = w.parent_checkpoint_id AND p.checkpoint_id < w.checkpoint_id
    WHERE EXISTS (SELECT 1 FROM unnest(w.remaining) AS r WHERE r <> ALL (w.channels))
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
WITH a AS (DELETE FROM {schema}.checkpoints WHERE thread_id = ANY (%(thread_ids)s::text[])),
     b AS (DELETE FROM {schema}.blobs WHERE thread_id = ANY (%(thread_ids)s::text[])),
     c AS (DELETE FROM {schema}.chunks WHERE thread_id = ANY (%(thread_ids)s::text[])),
     d AS (DELETE FROM {schema}.writes WHERE thread_id = ANY (%(thread_ids)s::text[]))
DELETE FROM {schema}.threads WHERE thread_id = ANY (%(thread_ids)s::text[]);

-- name: lock_threads
-- Garbage collection holds these row locks for its transaction; writers take
-- the same lock in put_checkpoint, so no chunk or blob is judged unreferenced
-- while a writer is relying on it.
SELECT thread_id FROM {schema}.threads
WHERE thread_id = ANY (%(thread_ids)s::text[])
ORDER BY thread_id
FOR UPDATE;

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
-- Keeps, per namespace, the newest checkpoint and every ancestor its delta
-- channels (DeltaChannel, named in metadata.counters_since_delta_snapshot)
-- need to be rebuilt: the walk goes up the parent chain until each of them has
-- a stored value. Deletes every other checkpoint of the threads and their writes.
WITH RECURSIVE heads AS (
    SELECT DISTINCT ON (thread_id, checkpoint_ns)
           thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, channels,
           CASE WHEN jsonb_typeof(metadata -> 'counters_since_delta_snapshot') = 'object'
                THEN ARRAY(SELECT jsonb_object_keys(metadata -> 'counters_since_delta_snapshot'))
                ELSE '{}'::text[] END AS remaining
    FROM {schema}.checkpoints
    WHERE thread_id = ANY (%(thread_ids)s::text[])
    ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
), keep AS (
    SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
           ARRAY(SELECT r FROM unnest(remaining) AS r WHERE r <> ALL (channels)) AS remaining
    FROM heads
  UNION ALL
    SELECT p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
           ARRAY(SELECT r FROM unnest(k.remaining) AS r WHERE r <> ALL (p.channels))
    FROM keep k
    JOIN {schema}.checkpoints p
      ON p.thread_id = k.thread_id AND p.checkpoint_ns = k.checkpoint_ns
     AND p.checkpoint_id = k.parent_checkpoint_id AND p.checkpoint_id < k.checkpoint_id
    WHERE cardinality(k.remaining) > 0
), gone AS (
    DELETE FROM {schema}.checkpoints c
    WHERE c.thread_id = ANY (%(thread_ids)s::text[])
      AND NOT EXISTS (SELECT 1 FROM keep
                      WHERE keep.thread_id = c.thread_id AND keep.checkpoint_ns = c.checkpoint_ns
                        AND keep.checkpoint_id = c.checkpoint_id)
    RETURNING c.thread_id, c.checkpoint_ns, c.checkpoint_id
)
DELETE FROM {schema}.writes x USING gone
WHERE x.thread_id = gone.thread_id AND x.checkpoint_ns = gone.checkpoint_ns
  AND x.checkpoint_id = gone.checkpoint_id;

-- name: gc_blobs
-- Blobs of the given threads that no remaining checkpoint references. Run only
-- under lock_threads (see there).
WITH ref AS (
    SELECT DISTINCT c.thread_id, c.checkpoint_ns, v.channel, v.version
    FROM {schema}.checkpoints c, unnest(c.channels, c.versions) AS v(channel, version)
    WHERE c.thread_id = ANY (%(thread_ids)s::text[]) AND v.version IS NOT NULL
)
DELETE FROM {schema}.blobs b
WHERE b.thread_id = ANY (%(thread_ids)s::text[])
  AND NOT EXISTS (SELECT 1 FROM ref
                  WHERE ref.thread_id = b.thread_id AND ref.checkpoint_ns = b.checkpoint_ns
                    AND ref.channel = b.channel AND ref.version = b.version);

-- name: gc_chunks
-- Chunks of the given threads that no remaining blob references; run after
-- gc_blobs, under lock_threads.
WITH ref AS (
    SELECT DISTINCT b.thread_id, substring(b.chunk_refs FROM g.i * 16 + 1 FOR 16) AS hash
    FROM {schema}.blobs b, generate_series(0, length(b.chunk_refs) / 16 - 1) AS g(i)
    WHERE b.thread_id = ANY (%(thread_ids)s::text[]) AND b.chunk_refs IS NOT NULL
)
DELETE FROM {schema}.chunks k
WHERE k.thread_id = ANY (%(thread_ids)s::text[])
  AND NOT EXISTS (SELECT 1 FROM ref WHERE ref.thread_id = k.thread_id AND ref.hash = k.hash);

-- name: thread_exists
SELECT EXISTS (SELECT 1 FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s)
    OR EXISTS (SELECT 1 FROM {schema}.writes WHERE thread_id = %(thread_id)s);

-- name: copy_thread
-- Copies every checkpoint, blob, chunk and write, so the copy keeps the whole
-- parent chain that DeltaChannel reconstruction walks.
WITH t AS (
    INSERT INTO {schema}.threads (thread_id) VALUES (%(target)s)
    ON CONFLICT (thread_id) DO UPDATE SET updated_at = now()
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
