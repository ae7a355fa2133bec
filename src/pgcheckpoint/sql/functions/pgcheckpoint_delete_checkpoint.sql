-- pgcheckpoint: revision 2
-- delete_checkpoint() in one call: the thread's row lock, then, when the
-- checkpoint exists and no checkpoint names it as parent (a leaf), the
-- checkpoint with its pending writes and the values nothing needs any more
-- (pgcheckpoint_gc_thread). Returns -1 when the checkpoint does not exist,
-- else the number of its children (nothing is deleted unless that is 0); the
-- caller turns a refusal into InvalidInputError. On Citus it is distributed by
-- p_thread_id with force_delegation (distribution.py): the call runs whole on
-- the thread's node.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_delete_checkpoint(
    p_thread_id text, p_checkpoint_ns text, p_checkpoint_id text
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_delete_checkpoint$
DECLARE
    v_children bigint;
BEGIN
    PERFORM 1 FROM {schema}.threads t WHERE t.thread_id = p_thread_id FOR UPDATE;
    -- Its callers may delete the newest root checkpoint: `head` (migration 0010)
    -- is cleared (NULL: not known), as pgcheckpoint_lock_threads does.
    UPDATE {schema}.threads t SET head = NULL
    WHERE t.thread_id = p_thread_id AND t.head IS NOT NULL;
    PERFORM 1 FROM {schema}.checkpoints c
    WHERE c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
      AND c.checkpoint_id = p_checkpoint_id;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    SELECT count(*) INTO v_children FROM {schema}.checkpoints c
    WHERE c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
      AND c.parent_checkpoint_id = p_checkpoint_id;
    IF v_children > 0 THEN
        RETURN v_children;
    END IF;
    DELETE FROM {schema}.writes w
    WHERE w.thread_id = p_thread_id AND w.checkpoint_ns = p_checkpoint_ns
      AND w.checkpoint_id = p_checkpoint_id;
    DELETE FROM {schema}.checkpoints c
    WHERE c.thread_id = p_thread_id AND c.checkpoint_ns = p_checkpoint_ns
      AND c.checkpoint_id = p_checkpoint_id;
    PERFORM {schema}.pgcheckpoint_gc_thread(p_thread_id);
    RETURN 0;
END
$pgcheckpoint_delete_checkpoint$;
