-- pgcheckpoint: revision 1
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
    PERFORM 1 FROM {schema}.threads t WHERE t.thread_id = p_thread_id FOR UPDATE;
    RETURN FOUND;
END
$pgcheckpoint_lock_thread$;
