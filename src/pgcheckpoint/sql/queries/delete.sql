-- Removing history: whole threads, runs, prune and garbage collection, and copy_thread.
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: delete_thread
-- All of a thread in one atomic statement.
WITH a AS (DELETE FROM {schema}.checkpoints WHERE thread_id = %(thread_id)s),
     b AS (DELETE FROM {schema}.blobs WHERE thread_id = %(thread_id)s),
     c AS (DELETE FROM {schema}.chunks WHERE thread_id = %(thread_id)s),
     d AS (DELETE FROM {schema}.writes WHERE thread_id = %(thread_id)s)
DELETE FROM {schema}.threads WHERE thread_id = %(thread_id)s;

-- name: delete_threads
-- Whole threads with everything they own (pgcheckpoint_delete_threads, shared
-- with the sweep).
SELECT {schema}.pgcheckpoint_delete_threads(%(thread_ids)s::text[]);

-- name: lock_thread
-- lock_threads for one thread (rollback; pgcheckpoint_lock_thread): on Citus
-- the call is delegated to the thread's node, inside the transaction too.
SELECT {schema}.pgcheckpoint_lock_thread(%(thread_id)s);

-- name: lock_threads
-- Garbage collection holds these row locks for its transaction; writers take
-- the same lock in put_checkpoint, so no chunk or blob is judged unreferenced
-- while a writer is relying on it.
-- One thread at a time in id order (pgcheckpoint_lock_threads):
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

-- name: prune_thread
-- prune(strategy="keep_latest") of one thread: its lock, pgcheckpoint_trim's
-- walk with a limit of one checkpoint per namespace and no pins, then its gc
-- (pgcheckpoint_prune_thread). prune() runs one per thread, in id order, in
-- one transaction; on Citus each call is delegated to the thread's node.
SELECT {schema}.pgcheckpoint_prune_thread(%(thread_id)s);

-- name: gc
-- Blobs and chunks of the given threads that nothing references any more
-- (pgcheckpoint_gc, shared with the sweep). Run only under lock_threads.
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
    -- `head` cleared (NULL: not known, migration 0010): the copied checkpoints
    -- may be newer than the target's; its next put checks and sets it.
    INSERT INTO {schema}.threads (thread_id, updated_at) VALUES (%(target)s, pg_catalog.now())
    ON CONFLICT (thread_id) DO UPDATE SET updated_at = EXCLUDED.updated_at, head = NULL
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

-- name: delete_checkpoint
-- One leaf checkpoint and its pending writes, under the thread's lock, then the
-- values nothing needs any more (pgcheckpoint_delete_checkpoint): -1 when the
-- checkpoint does not exist, else its number of children (nothing deleted
-- unless 0). On Citus the call is delegated to the thread's node.
SELECT {schema}.pgcheckpoint_delete_checkpoint(%(thread_id)s, %(checkpoint_ns)s,
                                               %(checkpoint_id)s);
