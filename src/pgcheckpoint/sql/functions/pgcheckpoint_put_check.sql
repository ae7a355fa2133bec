-- pgcheckpoint: revision 1
-- The one-writer rule, exact both ways (concurrency.py, docs/concurrency.md).
-- put_checkpoint calls it after its upsert of the thread row has taken that
-- row's lock; put_head, the common put, checks `threads.head` instead and
-- leaves the work here to put_checkpoint, its fallback (migration 0010). The
-- text of pgcheckpoint_put_guard (migration 0006) under a new name, so that the
-- old name can keep `head` safe for the previous release's puts.
--
--   p_mode 'head'    the writer extends what it read as the namespace's latest
--                    checkpoint (or as an empty namespace, p_parent NULL): the
--                    newest checkpoint of (thread, namespace) other than the one
--                    being written must be p_parent (none when p_parent is
--                    NULL). A compare-and-set on the head.
--   p_mode 'exists'  the writer chose its parent (time travel, an addressed
--                    resume, a direct put): it may fork, but p_parent must exist.
--   p_mode NULL      no check (imports replay history as it was).
--
-- A VOLATILE PL/pgSQL function takes a new snapshot for each of its
-- statements under READ COMMITTED, so the lookups below see every checkpoint
-- committed by a writer that held the lock before us; two racing writers are
-- serialised by the lock and the second one sees the first one's checkpoint.
-- Each mode costs one index probe on the primary key (migration 0006 measured
-- it against 0003's guard). Refusals: SQLSTATE PGC01 (another writer moved the
-- head: ConcurrentUpdateError) and PGC02 (the parent does not exist:
-- MissingParentError).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_put_check(
    p_thread_id text, p_checkpoint_ns text, p_parent text, p_checkpoint_id text, p_mode text
) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_put_check$
DECLARE
    head text;
    where_ text := CASE WHEN p_checkpoint_ns = '' THEN ''
                        ELSE pg_catalog.format(' (namespace %L)', p_checkpoint_ns) END;
BEGIN
    IF p_mode IS NULL THEN
        RETURN true;
    END IF;
    IF p_mode = 'head' THEN
        SELECT c.checkpoint_id INTO head
        FROM {schema}.checkpoints c
        WHERE c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
          AND c.checkpoint_id <> p_checkpoint_id
        ORDER BY c.checkpoint_id DESC
        LIMIT 1;
        IF head IS NOT DISTINCT FROM p_parent THEN
            RETURN true;
        END IF;
        IF p_parent IS NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PGC01',
                MESSAGE = pg_catalog.format(
                    'refusing to save checkpoint %s of thread %L%s: it starts the thread, but '
                    'checkpoint %s was saved first by another writer. Two runs of this thread '
                    'are running at once; nothing was written. Reload the thread''s state and '
                    'run again, or run one writer per thread (see docs/concurrency.md).',
                    p_checkpoint_id, p_thread_id, where_, head);
        END IF;
        IF head > p_parent AND EXISTS (
            SELECT 1 FROM {schema}.checkpoints p
            WHERE p.thread_id = p_thread_id AND p.checkpoint_ns = p_checkpoint_ns
              AND p.checkpoint_id = p_parent)
        THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PGC01',
                MESSAGE = pg_catalog.format(
                    'refusing to save checkpoint %s of thread %L%s: its parent %s is no longer '
                    'the thread''s latest checkpoint (%s was saved after it by another writer). '
                    'Two runs of this thread are running at once; nothing was written. Reload '
                    'the thread''s state and run again, or run one writer per thread (see '
                    'docs/concurrency.md).',
                    p_checkpoint_id, p_thread_id, where_, p_parent, head);
        END IF;
    ELSIF p_mode = 'exists' THEN
        PERFORM 1 FROM {schema}.checkpoints p
        WHERE p.thread_id = p_thread_id AND p.checkpoint_ns = p_checkpoint_ns
          AND p.checkpoint_id = p_parent;
        IF FOUND THEN
            RETURN true;
        END IF;
    ELSE
        RAISE EXCEPTION 'pgcheckpoint_put_check: unknown mode %', p_mode;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'PGC02',
        MESSAGE = pg_catalog.format(
            'refusing to save checkpoint %s of thread %L%s: its parent %s does not exist '
            '(deleted, pruned, or lost by a failover). Saving it would build on state the '
            'database no longer has; nothing was written. Reload the thread''s state and run '
            'again (see docs/concurrency.md).',
            p_checkpoint_id, p_thread_id, where_, p_parent);
END
$pgcheckpoint_put_check$;
