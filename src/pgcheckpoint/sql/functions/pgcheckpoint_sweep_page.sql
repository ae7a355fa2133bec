-- pgcheckpoint: revision 1
-- One page of a sweep, in the caller's transaction: the next p_batch_size
-- threads after p_after (by thread id, read without a lock so the page
-- advances even when every thread on it is busy), swept and added to p_report
-- by pgcheckpoint_sweep_threads. Returns the last thread id
-- read (NULL: no thread was left) and the report.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_page(
    p_after text, p_batch_size integer, p_policy jsonb, p_orphan_grace interval,
    p_report jsonb
) RETURNS TABLE (last_thread text, report jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_sweep_page$
DECLARE
    v_ids text[];
BEGIN
    v_ids := ARRAY(SELECT t.thread_id FROM {schema}.threads t
                   WHERE t.thread_id > p_after ORDER BY t.thread_id LIMIT p_batch_size);
    RETURN QUERY
    SELECT v_ids[cardinality(v_ids)],
           {schema}.pgcheckpoint_sweep_threads(v_ids, p_policy, p_orphan_grace, p_report);
END
$pgcheckpoint_sweep_page$;
