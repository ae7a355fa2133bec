-- pgcheckpoint: revision 3
-- Garbage collection of the given threads, one thread at a time with
-- pgcheckpoint_gc_thread (the one definition of what is unreferenced). Call it
-- only while holding the threads' row locks (lock_threads).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_gc(p_thread_ids text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_gc$
DECLARE
    v_thread text;
BEGIN
    FOREACH v_thread IN ARRAY p_thread_ids LOOP
        PERFORM {schema}.pgcheckpoint_gc_thread(v_thread);
    END LOOP;
END
$pgcheckpoint_gc$;
