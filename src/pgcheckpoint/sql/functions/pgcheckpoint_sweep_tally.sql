-- pgcheckpoint: revision 1
-- Adds one row of pgcheckpoint_sweep_thread (table, rows, bytes) to a sweep's
-- report, the JSON object the procedure pgcheckpoint_sweep returns and the
-- library reads into a SweepReport (retention.py, SweepReport.from_report):
-- rows removed per table, bytes_freed, threads_scanned, bad_policy and the
-- first {report_thread_ids} ids of the threads skipped for it (bad_policy_threads).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_tally(
    p_report jsonb, p_tbl text, p_n bigint, p_bytes bigint, p_thread text
) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_sweep_tally$
DECLARE
    v_report jsonb := coalesce(p_report, '{}'::jsonb);
    v_key text := CASE p_tbl WHEN 'scanned' THEN 'threads_scanned' ELSE p_tbl END;
BEGIN
    v_report := jsonb_set(v_report, ARRAY[v_key],
                          to_jsonb(coalesce((v_report ->> v_key)::bigint, 0) + p_n));
    IF p_bytes <> 0 THEN
        v_report := jsonb_set(v_report, '{bytes_freed}',
                              to_jsonb(coalesce((v_report ->> 'bytes_freed')::bigint, 0)
                                       + p_bytes));
    END IF;
    IF p_tbl = 'bad_policy' AND p_thread IS NOT NULL
       AND jsonb_array_length(coalesce(v_report -> 'bad_policy_threads', '[]'))
           < {report_thread_ids} THEN
        v_report := jsonb_set(v_report, '{bad_policy_threads}',
                              coalesce(v_report -> 'bad_policy_threads', '[]')
                              || to_jsonb(p_thread));
    END IF;
    RETURN v_report;
END
$pgcheckpoint_sweep_tally$;
