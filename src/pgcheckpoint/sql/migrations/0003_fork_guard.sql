-- One writer per thread (concurrency.py, docs/concurrency.md), checked inside
-- put_checkpoint itself so that a put stays one autocommitted statement.
--
-- put_checkpoint calls this after its upsert of the thread row has taken that
-- row's lock. A VOLATILE PL/pgSQL function takes a new snapshot for each of
-- its statements under READ COMMITTED, so the lookup below sees every
-- checkpoint committed by a writer that held the lock before us, which a
-- check written in the statement itself (whose snapshot predates the lock
-- wait) would miss. Measured with the bench (put 1 KB): the earlier
-- BEGIN/put/check/COMMIT pipeline cost 0.95 ms a put against 0.68 ms without
-- a guard; this function adds a single index probe to the statement.
--
-- Guarded puts (a graph step, one step after its parent) fail with SQLSTATE
-- PGC01 when the namespace already holds a checkpoint newer than the parent
-- other than the one being written (a retried put of the same checkpoint
-- passes).
CREATE FUNCTION {schema}.pgcheckpoint_fork_guard(
    p_thread_id text, p_checkpoint_ns text, p_parent text, p_checkpoint_id text, p_step integer
) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $pgcheckpoint_guard$
DECLARE
    newer text;
BEGIN
    IF p_step IS NULL OR p_parent IS NULL THEN
        RETURN true;
    END IF;
    SELECT c.checkpoint_id INTO newer
    FROM {schema}.checkpoints c
    WHERE c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
      AND c.checkpoint_id > p_parent AND c.checkpoint_id <> p_checkpoint_id
      AND EXISTS (SELECT 1 FROM {schema}.checkpoints p
                  WHERE p.thread_id = p_thread_id AND p.checkpoint_ns = p_checkpoint_ns
                    AND p.checkpoint_id = p_parent
                    AND p.metadata -> 'step' = to_jsonb(p_step - 1))
    ORDER BY c.checkpoint_id DESC
    LIMIT 1;
    IF newer IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PGC01',
            MESSAGE = format(
                'refusing to save checkpoint %s of thread %L%s: its parent %s is no longer '
                'the thread''s latest checkpoint (%s was saved after it by another writer). '
                'Two runs of this thread are running at once; nothing was written by this '
                'step. Reload the thread''s state and run again, or run one writer per '
                'thread (see docs/concurrency.md).',
                p_checkpoint_id, p_thread_id,
                CASE WHEN p_checkpoint_ns = '' THEN ''
                     ELSE format(' (namespace %L)', p_checkpoint_ns) END,
                p_parent, newer);
    END IF;
    RETURN true;
END
$pgcheckpoint_guard$;
