-- pgcheckpoint: revision 1
-- The sweep of the given threads as releases up to migration 0008 called it
-- (their sweeper paged through threads itself): kept, with its signature and
-- result, so that such a process keeps working during a rolling upgrade
-- (docs/migrations.md). The threads go through pgcheckpoint_sweep_threads in
-- thread id order; returns rows and bytes removed per table and
-- ('scanned', threads swept, 0), no rows when none was swept. A thread whose
-- policy is bad is skipped (this result has no row kind for it).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_batch(
    p_thread_ids text[], p_policy jsonb, p_orphan_grace interval
) RETURNS TABLE (tbl text, n bigint, bytes bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_batch$
DECLARE
    v_report jsonb;
    v_error text := {schema}.pgcheckpoint_policy_error(p_policy);
BEGIN
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('pgcheckpoint_sweep: bad policy: %s', v_error);
    END IF;
    v_report := {schema}.pgcheckpoint_sweep_threads(
        ARRAY(SELECT DISTINCT u.id FROM unnest(p_thread_ids) AS u(id)
              WHERE u.id IS NOT NULL ORDER BY u.id),
        p_policy, p_orphan_grace, '{}'::jsonb);
    IF coalesce((v_report ->> 'threads_scanned')::bigint, 0) = 0 THEN
        RETURN;
    END IF;
    -- Bytes per table are not kept apart in the report: they are summed on
    -- the checkpoints row, which is what a caller of this function adds up.
    RETURN QUERY
    SELECT k.tbl, coalesce((v_report ->> k.tbl)::bigint, 0),
           CASE WHEN k.tbl = 'checkpoints'
                THEN coalesce((v_report ->> 'bytes_freed')::bigint, 0) ELSE 0 END
    FROM unnest(ARRAY['threads', 'checkpoints', 'blobs', 'chunks', 'writes']) AS k(tbl)
    UNION ALL
    SELECT 'scanned', (v_report ->> 'threads_scanned')::bigint, 0::bigint;
END
$pgcheckpoint_batch$;
