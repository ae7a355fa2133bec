-- pgcheckpoint: revision 2
-- The row locks of lock_threads (garbage collection, prune, delete_for_runs,
-- rollback), taken one thread at a time in thread id order, so two lockers of
-- overlapping sets cannot deadlock. Citus runs `FOR UPDATE` only in a
-- statement routed to one shard. Returns the ids locked (the threads that
-- have a row).
-- Every caller deletes or may delete checkpoints under these locks, so each
-- locked thread's `head` is cleared (NULL: not known; migration 0010): the
-- thread's next put_head finds it NULL and falls back to put_checkpoint, which
-- checks and sets it again. Done here rather than by each caller so that the
-- previous release's callers, which do not know the column, keep it safe too.
-- `head IS NOT NULL`: no new row version when it is already unknown.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_lock_threads(p_thread_ids text[])
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_lock_threads$
DECLARE
    v_thread text;
    v_found text;
BEGIN
    FOR v_thread IN
        SELECT DISTINCT u.id FROM unnest(p_thread_ids) AS u(id)
        WHERE u.id IS NOT NULL ORDER BY u.id
    LOOP
        SELECT t.thread_id INTO v_found FROM {schema}.threads t
        WHERE t.thread_id = v_thread FOR UPDATE;
        IF FOUND THEN
            UPDATE {schema}.threads t SET head = NULL
            WHERE t.thread_id = v_thread AND t.head IS NOT NULL;
            RETURN NEXT v_found;
        END IF;
    END LOOP;
END
$pgcheckpoint_lock_threads$;
