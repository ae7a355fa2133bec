-- pgcheckpoint: revision 1
-- The given threads, in the order given, each swept by
-- pgcheckpoint_sweep_thread in the caller's transaction, its rows added to
-- p_report (pgcheckpoint_sweep_tally), and 'batches' counted once when any
-- thread was swept. Shared by a sweep's page and the older batch call.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_threads(
    p_thread_ids text[], p_policy jsonb, p_orphan_grace interval, p_report jsonb
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_sweep_threads$
DECLARE
    v_thread text;
    v_report jsonb := coalesce(p_report, '{}'::jsonb);
    v_scanned boolean := false;
    v_row record;
BEGIN
    FOREACH v_thread IN ARRAY coalesce(p_thread_ids, '{}') LOOP
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
    RETURN v_report;
END
$pgcheckpoint_sweep_threads$;
