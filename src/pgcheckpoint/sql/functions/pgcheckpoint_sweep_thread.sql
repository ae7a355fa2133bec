-- pgcheckpoint: revision 1
-- The sweep of one thread, in the caller's transaction: the one place the
-- retention policies are applied (the procedure pgcheckpoint_sweep, and so
-- the library's sweeper and pg_cron, call it for every thread). It locks the
-- thread's row FOR UPDATE SKIP LOCKED (the lock put_checkpoint takes): a
-- thread being written at this instant, a pinned thread and a thread with no
-- row return no rows and wait for the next sweep. Otherwise, under the
-- thread's own policy (threads.retention, SQL or JSON null: none) or else p_policy:
--   * a policy the sweep cannot apply (pgcheckpoint_policy_error) skips the
--     thread: one row ('bad_policy', 1, 0), nothing removed;
--   * thread_ttl: the whole thread goes once threads.updated_at is older, unless
--     it has a pinned checkpoint or (keep_interrupted) the newest checkpoint of
--     one of its namespaces has '__interrupt__' writes (it waits for a human);
--   * keep_last / max_age: pgcheckpoint_trim with the policy's limits, keeping
--     pinned checkpoints (the same walk prune(strategy="keep_latest") runs);
--   * writes whose checkpoint does not exist, older than p_orphan_grace;
--   * blobs and chunks nothing references (pgcheckpoint_gc);
--   * the thread row, once empty for longer than p_orphan_grace, unless it
--     carries settings (retention, pinned).
-- Returns rows and bytes removed per table, and ('scanned', 1, 0).
-- Every statement filters on this one thread id (a Citus shard each).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_thread(
    p_thread_id text, p_policy jsonb, p_orphan_grace interval
) RETURNS TABLE (tbl text, n bigint, bytes bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_sweep_thread$
DECLARE
    v_now timestamptz := now();
    v_pol jsonb;
    v_updated timestamptz;
    v_keep_last integer;
    v_min_created timestamptz;
    v_ttl_cutoff timestamptz;
    v_keep_interrupted boolean;
    v_error text;
    v_before_tbl text[];
    v_before_n bigint[];
    v_before_bytes bigint[];
BEGIN
    SELECT coalesce(nullif(t.retention, 'null'::jsonb), p_policy, '{}'::jsonb), t.updated_at
    INTO v_pol, v_updated
    FROM {schema}.threads t
    WHERE t.thread_id = p_thread_id AND NOT t.pinned
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_error := {schema}.pgcheckpoint_policy_error(v_pol);
    IF v_error IS NOT NULL THEN
        RAISE NOTICE 'pgcheckpoint_sweep: thread % skipped, its retention policy is invalid: %',
            quote_literal(left(p_thread_id, 200)), v_error;
        RETURN QUERY SELECT 'bad_policy'::text, 1::bigint, 0::bigint;
        RETURN;
    END IF;
    IF jsonb_typeof(v_pol -> 'keep_last') = 'number' THEN
        v_keep_last := (v_pol ->> 'keep_last')::numeric::integer;
    END IF;
    IF jsonb_typeof(v_pol -> 'max_age') = 'number' THEN
        v_min_created := v_now - make_interval(secs => (v_pol ->> 'max_age')::float8);
    END IF;
    IF jsonb_typeof(v_pol -> 'thread_ttl') = 'number' THEN
        v_ttl_cutoff := v_now - make_interval(secs => (v_pol ->> 'thread_ttl')::float8);
    END IF;
    v_keep_interrupted := v_pol -> 'keep_interrupted' IS DISTINCT FROM 'false'::jsonb;

    SELECT array_agg(m.tbl), array_agg(m.n), array_agg(m.bytes)
    INTO v_before_tbl, v_before_n, v_before_bytes
    FROM {schema}.pgcheckpoint_measure(ARRAY[p_thread_id]) m;

    IF v_ttl_cutoff IS NOT NULL AND v_updated < v_ttl_cutoff
       AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c
                       WHERE c.thread_id = p_thread_id AND c.pinned)
       AND NOT (v_keep_interrupted AND EXISTS (
           SELECT 1
           FROM (SELECT DISTINCT ON (c.checkpoint_ns) c.checkpoint_ns, c.checkpoint_id
                 FROM {schema}.checkpoints c WHERE c.thread_id = p_thread_id
                 ORDER BY c.checkpoint_ns, c.checkpoint_id DESC) h
           JOIN {schema}.writes x
             ON x.thread_id = p_thread_id AND x.checkpoint_ns = h.checkpoint_ns
            AND x.checkpoint_id = h.checkpoint_id AND x.channel = '__interrupt__'))
    THEN
        PERFORM {schema}.pgcheckpoint_delete_threads(ARRAY[p_thread_id]);
    ELSE
        IF v_keep_last IS NOT NULL OR v_min_created IS NOT NULL THEN
            PERFORM {schema}.pgcheckpoint_trim(ARRAY[p_thread_id], ARRAY[v_keep_last],
                                               ARRAY[v_min_created], true);
        END IF;
        DELETE FROM {schema}.writes x
        WHERE x.thread_id = p_thread_id AND x.created_at < v_now - p_orphan_grace
          AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c
                          WHERE c.thread_id = p_thread_id AND c.checkpoint_ns = x.checkpoint_ns
                            AND c.checkpoint_id = x.checkpoint_id);
        -- Not only after a trim: blobs or chunks left unreferenced by any
        -- earlier operation go too.
        PERFORM {schema}.pgcheckpoint_gc(ARRAY[p_thread_id]);
        DELETE FROM {schema}.threads t
        WHERE t.thread_id = p_thread_id AND t.updated_at < v_now - p_orphan_grace
          AND t.retention IS NULL AND NOT t.pinned
          AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c WHERE c.thread_id = p_thread_id)
          AND NOT EXISTS (SELECT 1 FROM {schema}.writes x WHERE x.thread_id = p_thread_id);
    END IF;

    RETURN QUERY
    SELECT b.tbl, greatest(b.n - coalesce(a.n, 0), 0), greatest(b.bytes - coalesce(a.bytes, 0), 0)
    FROM unnest(v_before_tbl, v_before_n, v_before_bytes) AS b(tbl, n, bytes)
    LEFT JOIN {schema}.pgcheckpoint_measure(ARRAY[p_thread_id]) a ON a.tbl = b.tbl
    UNION ALL
    SELECT 'scanned'::text, 1::bigint, 0::bigint;
END
$pgcheckpoint_sweep_thread$;
