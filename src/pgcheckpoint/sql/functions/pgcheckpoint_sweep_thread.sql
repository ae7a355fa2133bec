-- pgcheckpoint: revision 1
-- The policies applied to one thread, the one place they are (the procedure
-- pgcheckpoint_sweep, and so the library's sweeper and pg_cron, come here
-- through pgcheckpoint_sweep_threads). The caller holds the thread's row lock
-- and has checked p_policy, the thread's own or the sweep's
-- (pgcheckpoint_policy_error):
--   * thread_ttl: the whole thread goes once threads.updated_at is older, unless
--     it has a pinned checkpoint or (keep_interrupted) the newest checkpoint of
--     one of its namespaces has '__interrupt__' writes (it waits for a human);
--   * keep_last / max_age: pgcheckpoint_trim with the policy's limits, keeping
--     pinned checkpoints (the walk prune(strategy="keep_latest") runs).
-- Orphan writes, unreferenced blobs and chunks and empty thread rows are left
-- to the caller, which removes them once for all the threads it swept
-- (pgcheckpoint_sweep_threads). Every statement filters on this one thread id
-- (a Citus shard each).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_thread(
    p_thread_id text, p_policy jsonb
) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_sweep_thread$
DECLARE
    v_now timestamptz := now();
    v_keep_last integer;
    v_min_created timestamptz;
    v_ttl_cutoff timestamptz;
BEGIN
    IF jsonb_typeof(p_policy -> 'keep_last') = 'number' THEN
        v_keep_last := (p_policy ->> 'keep_last')::numeric::integer;
    END IF;
    IF jsonb_typeof(p_policy -> 'max_age') = 'number' THEN
        v_min_created := v_now - make_interval(secs => (p_policy ->> 'max_age')::float8);
    END IF;
    IF jsonb_typeof(p_policy -> 'thread_ttl') = 'number' THEN
        v_ttl_cutoff := v_now - make_interval(secs => (p_policy ->> 'thread_ttl')::float8);
    END IF;

    IF v_ttl_cutoff IS NOT NULL
       AND EXISTS (SELECT 1 FROM {schema}.threads t
                   WHERE t.thread_id = p_thread_id AND t.updated_at < v_ttl_cutoff)
       AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c
                       WHERE c.thread_id = p_thread_id AND c.pinned)
       AND NOT (p_policy -> 'keep_interrupted' IS DISTINCT FROM 'false'::jsonb AND EXISTS (
           SELECT 1
           FROM (SELECT DISTINCT ON (c.checkpoint_ns) c.checkpoint_ns, c.checkpoint_id
                 FROM {schema}.checkpoints c WHERE c.thread_id = p_thread_id
                 ORDER BY c.checkpoint_ns, c.checkpoint_id DESC) h
           JOIN {schema}.writes x
             ON x.thread_id = p_thread_id AND x.checkpoint_ns = h.checkpoint_ns
            AND x.checkpoint_id = h.checkpoint_id AND x.channel = '__interrupt__'))
    THEN
        PERFORM {schema}.pgcheckpoint_delete_threads(ARRAY[p_thread_id]);
        RETURN;
    END IF;
    IF v_keep_last IS NOT NULL OR v_min_created IS NOT NULL THEN
        PERFORM {schema}.pgcheckpoint_trim(ARRAY[p_thread_id], ARRAY[v_keep_last],
                                           ARRAY[v_min_created], true);
    END IF;
END
$pgcheckpoint_sweep_thread$;
