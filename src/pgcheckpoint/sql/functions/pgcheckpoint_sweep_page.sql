-- pgcheckpoint: revision 1
-- One page of a sweep, in the caller's transaction: the next p_batch_size
-- threads after p_after (by thread id, read without a lock so the page
-- advances even when every thread on it is busy), each swept by
-- pgcheckpoint_sweep_thread and added to p_report. Returns the last thread id
-- read (NULL: no thread was left) and the report.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_page(
    p_after text, p_batch_size integer, p_policy jsonb, p_orphan_grace interval,
    p_report jsonb
) RETURNS TABLE (last_thread text, report jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_sweep_page$
DECLARE
    v_thread text;
    v_last text;
    v_report jsonb := coalesce(p_report, '{}'::jsonb);
    v_scanned boolean := false;
    v_row record;
BEGIN
    FOR v_thread IN
        SELECT t.thread_id FROM {schema}.threads t
        WHERE t.thread_id > p_after ORDER BY t.thread_id LIMIT p_batch_size
    LOOP
        v_last := v_thread;
        FOR v_row IN
            SELECT s.tbl, s.n, s.bytes
            FROM {schema}.pgcheckpoint_sweep_thread(v_thread, p_policy, p_orphan_grace) s
        LOOP
            v_report := {schema}.pgcheckpoint_sweep_tally(v_report, v_row.tbl, v_row.n,
                                                         v_row.bytes, v_thread);
            v_scanned := v_scanned OR v_row.tbl = 'scanned';
        END LOOP;
    END LOOP;
    IF v_scanned THEN
        v_report := {schema}.pgcheckpoint_sweep_tally(v_report, 'batches', 1, 0, NULL);
    END IF;
    RETURN QUERY SELECT v_last, v_report;
END
$pgcheckpoint_sweep_page$;
