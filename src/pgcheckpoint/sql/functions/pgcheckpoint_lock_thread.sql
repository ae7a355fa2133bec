-- pgcheckpoint: revision 2
-- The row lock of one thread (rollback), as pgcheckpoint_lock_threads takes it
-- for a list. A function of one thread: on Citus it is distributed by
-- p_thread_id with force_delegation (distribution.py), so a call is sent whole
-- to the thread's node even inside the caller's transaction. Returns whether
-- the thread has a row.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_lock_thread(p_thread_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_lock_thread$
BEGIN
    -- Its callers may delete the newest root checkpoint: `head` (migration
    -- 0010) is cleared (NULL: not known), as pgcheckpoint_lock_threads does;
    -- before the lock, so that FOUND is the lock's.
    UPDATE {schema}.threads t SET head = NULL
    WHERE t.thread_id = p_thread_id AND t.head IS NOT NULL;
    PERFORM 1 FROM {schema}.threads t WHERE t.thread_id = p_thread_id FOR UPDATE;
    RETURN FOUND;
END
$pgcheckpoint_lock_thread$;
