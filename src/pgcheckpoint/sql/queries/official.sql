-- The official langgraph-checkpoint-postgres tables, read by the importer;
-- {schema} is the source schema there, not pgcheckpoint's.
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: official_thread_ids
-- The official langgraph-checkpoint-postgres tables, read by the importer;
-- {schema} is the source schema there.
SELECT DISTINCT thread_id FROM {schema}.checkpoints ORDER BY thread_id;

-- name: official_checkpoints
SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata
FROM {schema}.checkpoints
WHERE thread_id = %(thread_id)s
ORDER BY checkpoint_id, checkpoint_ns;

-- name: official_blobs
SELECT checkpoint_ns, channel, version, type, blob
FROM {schema}.checkpoint_blobs
WHERE thread_id = %(thread_id)s;

-- name: official_writes
SELECT checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
FROM {schema}.checkpoint_writes
WHERE thread_id = %(thread_id)s
ORDER BY checkpoint_ns, checkpoint_id, task_path, task_id, idx;
