-- Export, import and their verification (transfer.py, importers/).
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: import_lock_thread
-- An import takes the thread's row lock (as put_checkpoint and garbage
-- collection do) before it reads what the thread holds, so nothing it compares
-- changes under it. An existing row keeps its updated_at; its `head` is
-- cleared (NULL: not known, migration 0010), as the import may add checkpoints
-- newer than it.
INSERT INTO {schema}.threads AS th (thread_id) VALUES (%(thread_id)s)
ON CONFLICT (thread_id) DO UPDATE SET updated_at = th.updated_at, head = NULL
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
        coalesce(%(created_at)s::timestamptz, pg_catalog.now()), %(channels)s::text[],
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
SELECT thread_id, pg_catalog.count(*) FROM {schema}.checkpoints
WHERE %(thread_ids)s::text[] IS NULL OR thread_id = ANY (%(thread_ids)s::text[])
GROUP BY thread_id
ORDER BY thread_id;
