-- The thread API and the inspector (threads.py, inspector/).
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: part_checkpoint_span
-- A thread's checkpoint count and the time of its first and last checkpoint;
-- the statement adds the WHERE naming the thread.
SELECT pg_catalog.count(*) AS n, pg_catalog.min(c.created_at) AS first_at,
       pg_catalog.max(c.created_at) AS last_at
FROM {schema}.checkpoints c

-- name: threads_list
-- Threads newest first by their last checkpoint, with the metadata of their
-- latest checkpoint (root namespace first) for filtering. Keyset paging on
-- (last_at, thread_id) when after_at is given, OFFSET otherwise. Threads with
-- no checkpoint (only orphan writes) are not listed. The latest checkpoint's
-- key and parent come along: sealed metadata is bound to them (encryption.py).
-- `filters` holds one containment per key id (where_filter_any).
SELECT t.thread_id, s.n, s.first_at, s.last_at, m.metadata,
       m.checkpoint_ns, m.checkpoint_id, m.parent_checkpoint_id
FROM {schema}.threads t
CROSS JOIN LATERAL ({part_checkpoint_span} WHERE c.thread_id = t.thread_id) s
CROSS JOIN LATERAL (
    SELECT c.metadata, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id
    FROM {schema}.checkpoints c
    WHERE c.thread_id = t.thread_id
    ORDER BY (c.checkpoint_ns = '') DESC, c.checkpoint_id DESC
    LIMIT 1
) m
WHERE (%(filters)s::jsonb[] IS NULL OR m.metadata @> ANY (%(filters)s::jsonb[]))
  AND (%(after_at)s::timestamptz IS NULL
       OR (s.last_at, t.thread_id) < (%(after_at)s::timestamptz, %(after_id)s::text))
ORDER BY s.last_at DESC, t.thread_id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: thread_stats
SELECT
    (SELECT pg_catalog.count(*) FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s),
    (SELECT pg_catalog.count(DISTINCT checkpoint_ns) FROM {schema}.checkpoints
     WHERE thread_id = %(thread_id)s),
    (SELECT pg_catalog.count(*) FROM {schema}.writes WHERE thread_id = %(thread_id)s),
    (SELECT pg_catalog.count(*) FROM {schema}.blobs WHERE thread_id = %(thread_id)s),
    (SELECT pg_catalog.count(*) FROM {schema}.chunks WHERE thread_id = %(thread_id)s),
    (SELECT coalesce(pg_catalog.sum(octet_length(checkpoint)), 0) FROM {schema}.checkpoints
     WHERE thread_id = %(thread_id)s)
  + (SELECT coalesce(pg_catalog.sum(octet_length(value)), 0) FROM {schema}.blobs
     WHERE thread_id = %(thread_id)s)
  + (SELECT coalesce(pg_catalog.sum(octet_length(data)), 0) FROM {schema}.chunks
     WHERE thread_id = %(thread_id)s)
  + (SELECT coalesce(pg_catalog.sum(octet_length(value)), 0) FROM {schema}.writes
     WHERE thread_id = %(thread_id)s),
    (SELECT pg_catalog.min(created_at) FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s),
    (SELECT pg_catalog.max(created_at) FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s),
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
    SELECT pg_catalog.count(*) AS writes,
           coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.split_part(x.task_path, ', ', 2)
                                         ORDER BY
                              pg_catalog.split_part(x.task_path, ', ', 2))
                    FILTER (WHERE pg_catalog.starts_with(x.task_path, '~__pregel_pull, ')),
                    '{}') AS next
    FROM {schema}.writes x
    WHERE x.thread_id = %(thread_id)s AND x.checkpoint_ns = c.checkpoint_ns
      AND x.checkpoint_id = c.checkpoint_id
) w
WHERE c.thread_id = %(thread_id)s
  AND (%(checkpoint_ns)s::text IS NULL OR c.checkpoint_ns = %(checkpoint_ns)s::text)
ORDER BY c.checkpoint_id DESC, c.checkpoint_ns DESC
LIMIT %(limit)s;

-- name: thread_summaries
-- One page of the inspector's thread list (issue 15), most recently written
-- first. The page is chosen from the threads table alone, ordered by
-- threads.updated_at (every put bumps it) and keyset-paged on
-- (updated_at, thread_id); only the threads of the page are then measured
-- (their counts, sizes and the pending interrupt or error of their head).
-- `prefix` narrows by thread id, `filters` (one containment per key id, as
-- where_filter_any) match the metadata of the latest root checkpoint,
-- `thread_id` asks for one thread. Thread ids are ordered
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
      AND (%(prefix)s::text IS NULL OR pg_catalog.starts_with(t.thread_id, %(prefix)s::text))
      AND (%(after_at)s::timestamptz IS NULL
           OR (t.updated_at, t.thread_id COLLATE "C")
              < (%(after_at)s::timestamptz, %(after_id)s::text COLLATE "C"))
    ORDER BY t.updated_at DESC, t.thread_id COLLATE "C" DESC
    LIMIT CASE WHEN %(filters)s::jsonb[] IS NULL THEN %(limit)s::bigint END
), page AS (
    SELECT o.thread_id, o.updated_at, o.pinned, o.retention
    FROM ordered o
    WHERE %(filters)s::jsonb[] IS NULL OR (
        SELECT c.metadata FROM {schema}.checkpoints c
        WHERE c.thread_id = o.thread_id AND c.checkpoint_ns = ''
        ORDER BY c.checkpoint_id DESC LIMIT 1) @> ANY (%(filters)s::jsonb[])
    LIMIT %(limit)s
)
SELECT p.thread_id, p.updated_at, p.pinned, p.retention, s.n, s.first_at, s.last_at,
       h.checkpoint_id, h.parent_checkpoint_id, h.metadata, e.task_id, e.channel, e.type,
       e.value,
       (SELECT pg_catalog.max(x.created_at) FROM {schema}.writes x WHERE x.thread_id = p.thread_id),
       (SELECT coalesce(pg_catalog.sum(octet_length(c.checkpoint)), 0) FROM {schema}.checkpoints c
        WHERE c.thread_id = p.thread_id)
     + (SELECT coalesce(pg_catalog.sum(octet_length(b.value)), 0) FROM {schema}.blobs b
        WHERE b.thread_id = p.thread_id)
     + (SELECT coalesce(pg_catalog.sum(octet_length(k.data)), 0) FROM {schema}.chunks k
        WHERE k.thread_id = p.thread_id)
     + (SELECT coalesce(pg_catalog.sum(octet_length(x.value)), 0) FROM {schema}.writes x
        WHERE x.thread_id = p.thread_id),
       pg_catalog.now()
FROM page p
CROSS JOIN LATERAL ({part_checkpoint_span} WHERE c.thread_id = p.thread_id) s
LEFT JOIN LATERAL (
    SELECT c.checkpoint_id, c.parent_checkpoint_id, c.metadata FROM {schema}.checkpoints c
    WHERE c.thread_id = p.thread_id AND c.checkpoint_ns = ''
    ORDER BY c.checkpoint_id DESC LIMIT 1
) h ON true
LEFT JOIN LATERAL (
    SELECT x.task_id, x.channel, x.type, x.value FROM {schema}.writes x
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
