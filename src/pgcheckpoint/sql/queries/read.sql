-- The read path: get_tuple and list (read_checkpoints, assembled from the where_*
-- fragments: blocks whose name starts with where_ are fragments, never run alone),
-- and the DeltaChannel history walk.
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

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
    SELECT pg_catalog.array_agg(x.channel) AS channels, pg_catalog.array_agg(x.version) AS versions,
           pg_catalog.array_agg(x.type) AS types, pg_catalog.array_agg(x.value) AS vals,
           pg_catalog.array_agg(x.chunk_refs) AS refs
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
    SELECT pg_catalog.array_agg(y.hash) AS hashes, pg_catalog.array_agg(y.compressed) AS flags,
           pg_catalog.array_agg(y.data) AS datas
    FROM (
        -- pg_catalog.unnest(ARRAY(...)) rather than generate_series in the FROM list: the
        -- planner guessed 1,000 rows for the latter, the estimated cost of a
        -- page of 10 passed jit_above_cost, and JIT compilation added 15 ms
        -- to a 0.3 ms list(limit=10) (EXPLAIN ANALYZE).
        -- A chunk_refs value is a flat list of addresses, or a tree (a tag byte,
        -- its depth, its top nodes: chunking.py): nodes, stored under their
        -- address and the byte 'n', are expanded one level per step, each
        -- through a primary-key probe.
        {part_tree_walk}
    ) h(hash)
    -- A primary-key probe per chunk, for the same reason as the blobs above.
    CROSS JOIN LATERAL (
        SELECT y.hash, y.compressed, y.data
        FROM {schema}.chunks y
        WHERE y.thread_id = {thread} AND y.hash = h.hash
        LIMIT 1
    ) y
    -- Only when some value has chunk_refs: a condition on the outer row alone,
    -- so PostgreSQL gates the walk (a one-time filter) and never runs it for a
    -- checkpoint without chunked values. Ungated, the walk's hash tables (the
    -- recursive UNION's and the DISTINCT's), sized by the row estimates and not
    -- by the rows, were built and cleared for every row even when empty, and
    -- the estimates grow with the chunks table (no statistics: its size /
    -- 200 per thread). In the bench's state after the conversation and put
    -- sections (16,000 chunks), prepared, interleaved, on a loaded 2-core box:
    -- get_tuple of a 10-checkpoint thread 1.03 -> 0.75 ms, list(limit=10)
    -- 7.9 -> 2.9 ms; without the walk at all 0.23 / 1.36 ms (issue 16).
    WHERE pg_catalog.cardinality(pg_catalog.array_remove(b.refs, NULL)) > 0
) k ON true
LEFT JOIN LATERAL (
    SELECT pg_catalog.array_agg(x.task_id ORDER BY x.task_path, x.task_id, x.idx) AS task_ids,
           pg_catalog.array_agg(x.channel ORDER BY x.task_path, x.task_id, x.idx) AS channels,
           pg_catalog.array_agg(x.type ORDER BY x.task_path, x.task_id, x.idx) AS types,
           pg_catalog.array_agg(x.value ORDER BY x.task_path, x.task_id, x.idx) AS vals
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
           ARRAY(SELECT r FROM pg_catalog.unnest(w.remaining) AS r WHERE r <> ALL (w.channels))
    FROM walk w
    CROSS JOIN LATERAL (
        SELECT q.checkpoint_id, q.parent_checkpoint_id, q.channels, q.versions
        FROM {schema}.checkpoints q
        WHERE q.thread_id = %(thread_id)s AND q.checkpoint_ns = %(checkpoint_ns)s
          AND q.checkpoint_id = w.parent_checkpoint_id
        LIMIT 1  -- a primary key: at most one row; also stops the join being flattened
    ) p
    WHERE p.checkpoint_id < w.checkpoint_id
      AND EXISTS (SELECT 1 FROM pg_catalog.unnest(w.remaining) AS r WHERE r <> ALL (w.channels))
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

-- name: fetch_value_chunks
-- The chunks some blobs' chunk_refs name, through their reference trees
-- (expanded as in read_checkpoints: part_tree_walk).
SELECT y.hash, y.compressed, y.data
FROM (SELECT %(refs)s::bytea[]) AS b(refs)
CROSS JOIN LATERAL ({part_tree_walk}) h(hash)
JOIN {schema}.chunks y ON y.thread_id = %(thread_id)s AND y.hash = h.hash;

-- name: part_tree_walk
-- The distinct chunks (and chunk-reference nodes) that the chunk_refs values in
-- the array `b.refs` name. A chunk_refs value is a flat list of addresses, or a
-- tree (a tag byte, its depth, its top nodes: chunking.py): nodes, stored under
-- their address and the byte 'n', are expanded one level per step, each through
-- a primary-key probe on the thread `{thread}` (Queries fills it in). Shared by
-- read_checkpoints and fetch_value_chunks.
WITH RECURSIVE e(hash, depth) AS (
    SELECT substring(r.refs FROM g.i * 16 + 1 + pg_catalog.mod(pg_catalog.length(r.refs), 16) FOR 16),
           CASE WHEN pg_catalog.mod(pg_catalog.length(r.refs), 16) = 2
                THEN pg_catalog.get_byte(r.refs, 1) ELSE 0 END
    FROM pg_catalog.unnest(b.refs) AS r(refs),
         pg_catalog.unnest(ARRAY(SELECT pg_catalog.generate_series(
                                      0, pg_catalog.length(r.refs) / 16 - 1))) AS g(i)
    WHERE r.refs IS NOT NULL
  UNION
    SELECT substring(n.data FROM g.i * 16 + 1 FOR 16), e.depth - 1
    FROM e
    JOIN {schema}.chunks n
      ON n.thread_id = {thread} AND n.hash = e.hash || '\x6e'::bytea,
         pg_catalog.unnest(ARRAY(SELECT pg_catalog.generate_series(
                                      0, pg_catalog.length(n.data) / 16 - 1))) AS g(i)
    WHERE e.depth > 0
)
SELECT DISTINCT CASE WHEN e.depth > 0 THEN e.hash || '\x6e'::bytea ELSE e.hash END
FROM e

-- name: latest_id
SELECT checkpoint_id FROM {schema}.checkpoints
WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
ORDER BY checkpoint_id DESC
LIMIT 1;
