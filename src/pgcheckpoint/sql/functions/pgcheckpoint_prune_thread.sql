-- pgcheckpoint: revision 2
-- prune(strategy="keep_latest") of one thread, in one call: its row lock, the
-- keep-walk of pgcheckpoint_trim with a limit of one checkpoint per namespace
-- and no pins (what prune_keep_latest asks of it), then the values nothing
-- needs any more (pgcheckpoint_gc_thread). prune() calls it once per thread,
-- in thread id order, in one transaction, so two pruners of overlapping lists
-- lock in the same order. On Citus it is distributed by p_thread_id with
-- force_delegation (distribution.py): each call runs whole on the thread's
-- node, with every statement local to that node.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_prune_thread(p_thread_id text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_prune_thread$
BEGIN
    PERFORM 1 FROM {schema}.threads t WHERE t.thread_id = p_thread_id FOR UPDATE;
    -- Its callers may delete the newest root checkpoint: `head` (migration 0010)
    -- is cleared (NULL: not known), as pgcheckpoint_lock_threads does.
    UPDATE {schema}.threads t SET head = NULL
    WHERE t.thread_id = p_thread_id AND t.head IS NOT NULL;
    PERFORM {schema}.pgcheckpoint_trim(ARRAY[p_thread_id], ARRAY[1],
                                       ARRAY[NULL::timestamptz], false);
    PERFORM {schema}.pgcheckpoint_gc_thread(p_thread_id);
END
$pgcheckpoint_prune_thread$;
