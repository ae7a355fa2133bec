-- pgcheckpoint: revision 1
-- The given threads, in the order given, swept in the caller's transaction
-- and added to p_report (shared by a sweep's page and the older batch call):
--   1. each thread's row is locked on its own, FOR UPDATE SKIP LOCKED (the
--      lock put_checkpoint takes): a thread being written at this instant, a
--      pinned thread and one with no row are left for the next sweep;
--   2. its policy (threads.retention, SQL or JSON null: none; else p_policy)
--      is checked: one the sweep cannot apply skips the thread, counted in
--      bad_policy (pgcheckpoint_policy_error says why, in a NOTICE);
--   3. the locked threads are measured (pgcheckpoint_measure), each swept
--      (pgcheckpoint_sweep_thread: thread_ttl, keep_last, max_age), then, once
--      for all of them, their writes whose checkpoint does not exist (older
--      than p_orphan_grace), their unreferenced blobs and chunks
--      (pgcheckpoint_gc) and their rows left empty for longer than
--      p_orphan_grace unless they carry settings (retention, pinned); measured
--      again, the difference is what the report adds. Once per call, not per
--      thread: a sweep of 2,000 ten-checkpoint threads took 10.8 s with all of
--      it per thread, against 1.7 s for 0004's batch function
--      (docs/retention.md has the command).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_threads(
    p_thread_ids text[], p_policy jsonb, p_orphan_grace interval, p_report jsonb
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_sweep_threads$
DECLARE
    v_thread text;
    v_report jsonb := coalesce(p_report, '{}'::jsonb);
    v_pol jsonb;
    v_error text;
    v_ids text[] := '{}';
    v_pols jsonb[] := '{}';
    v_before_tbl text[];
    v_before_n bigint[];
    v_before_bytes bigint[];
    v_row record;
BEGIN
    FOREACH v_thread IN ARRAY coalesce(p_thread_ids, '{}') LOOP
        SELECT coalesce(nullif(t.retention, 'null'::jsonb), p_policy, '{}'::jsonb) INTO v_pol
        FROM {schema}.threads t
        WHERE t.thread_id = v_thread AND NOT t.pinned
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        v_error := {schema}.pgcheckpoint_policy_error(v_pol);
        IF v_error IS NULL THEN
            v_ids := v_ids || v_thread;
            v_pols := v_pols || v_pol;
        ELSE
            RAISE NOTICE 'pgcheckpoint_sweep: thread % skipped, its retention policy is invalid: %',
                quote_literal(left(v_thread, 200)), v_error;
            v_report := {schema}.pgcheckpoint_sweep_tally(v_report, 'bad_policy', 1, 0, v_thread);
        END IF;
    END LOOP;
    IF cardinality(v_ids) = 0 THEN
        RETURN v_report;
    END IF;

    SELECT array_agg(m.tbl), array_agg(m.n), array_agg(m.bytes)
    INTO v_before_tbl, v_before_n, v_before_bytes
    FROM {schema}.pgcheckpoint_measure(v_ids) m;
    FOR i IN 1 .. cardinality(v_ids) LOOP
        PERFORM {schema}.pgcheckpoint_sweep_thread(v_ids[i], v_pols[i]);
    END LOOP;
    -- Writes whose checkpoint does not exist, older than the grace period.
    DELETE FROM {schema}.writes x
    WHERE x.thread_id = ANY (v_ids) AND x.created_at < now() - p_orphan_grace
      AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c
                      WHERE c.thread_id = x.thread_id AND c.checkpoint_ns = x.checkpoint_ns
                        AND c.checkpoint_id = x.checkpoint_id);
    -- Every locked thread, not only those that just lost checkpoints: blobs or
    -- chunks left unreferenced by any earlier operation go too.
    PERFORM {schema}.pgcheckpoint_gc(v_ids);
    -- Thread rows empty for longer than the grace period, unless they carry
    -- settings (retention, pinned).
    DELETE FROM {schema}.threads t
    WHERE t.thread_id = ANY (v_ids) AND t.updated_at < now() - p_orphan_grace
      AND t.retention IS NULL AND NOT t.pinned
      AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c WHERE c.thread_id = t.thread_id)
      AND NOT EXISTS (SELECT 1 FROM {schema}.writes x WHERE x.thread_id = t.thread_id);
    FOR v_row IN
        SELECT b.tbl, greatest(b.n - coalesce(a.n, 0), 0) AS n,
               greatest(b.bytes - coalesce(a.bytes, 0), 0) AS bytes
        FROM unnest(v_before_tbl, v_before_n, v_before_bytes) AS b(tbl, n, bytes)
        LEFT JOIN {schema}.pgcheckpoint_measure(v_ids) a ON a.tbl = b.tbl
    LOOP
        v_report := {schema}.pgcheckpoint_sweep_tally(v_report, v_row.tbl, v_row.n, v_row.bytes,
                                                     NULL);
    END LOOP;
    v_report := {schema}.pgcheckpoint_sweep_tally(v_report, 'scanned', cardinality(v_ids), 0,
                                                 NULL);
    RETURN {schema}.pgcheckpoint_sweep_tally(v_report, 'batches', 1, 0, NULL);
END
$pgcheckpoint_sweep_threads$;
