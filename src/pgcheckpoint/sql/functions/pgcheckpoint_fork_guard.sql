-- pgcheckpoint: revision 1
-- The one-writer check of releases before migration 0006 (0003's rule: a
-- `loop` checkpoint one step after its parent). Unused since 0006 replaced it
-- with pgcheckpoint_put_guard; kept, with its signature, for processes of
-- those releases that may still run during a rolling upgrade
-- (docs/migrations.md). Refuses with SQLSTATE PGC01.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_fork_guard(
    p_thread_id text, p_checkpoint_ns text, p_parent text, p_checkpoint_id text, p_step integer
) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
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
                    AND p.metadata -> 'step' = pg_catalog.to_jsonb(p_step - 1))
    ORDER BY c.checkpoint_id DESC
    LIMIT 1;
    IF newer IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PGC01',
            MESSAGE = pg_catalog.format(
                'refusing to save checkpoint %s of thread %L%s: its parent %s is no longer '
                'the thread''s latest checkpoint (%s was saved after it by another writer). '
                'Two runs of this thread are running at once; nothing was written by this '
                'step. Reload the thread''s state and run again, or run one writer per '
                'thread (see docs/concurrency.md).',
                p_checkpoint_id, p_thread_id,
                CASE WHEN p_checkpoint_ns = '' THEN ''
                     ELSE pg_catalog.format(' (namespace %L)', p_checkpoint_ns) END,
                p_parent, newer);
    END IF;
    RETURN true;
END
$pgcheckpoint_guard$;
