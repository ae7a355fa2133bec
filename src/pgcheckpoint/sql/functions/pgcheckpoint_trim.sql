-- pgcheckpoint: revision 1
-- Trims the history of the given threads; the caller holds their row locks
-- (lock_threads, or the sweep's FOR UPDATE SKIP LOCKED). Per thread, with
-- p_keep_last[i] / p_min_created[i] as its limits (NULL: no limit), kept are:
--   * in each namespace, its newest checkpoint (the one get_tuple loads) and the
--     checkpoints within every limit; p_keep_pinned also keeps pinned ones;
--   * but a subgraph call's namespace (it has "<node>:<task id>" in it; a
--     `checkpointer=True` subgraph's namespace has no task id and is kept like
--     the root's) only while the call belongs to a root checkpoint that is kept:
--     metadata.parents[''] of its newest checkpoint names one. A call whose root
--     checkpoint is not saved (a run saving in the background, or metadata with
--     no parents) stays if it is newer than the oldest kept root checkpoint.
--     So an interrupted subgraph, whose root is the head, stays; the namespaces
--     of finished calls go whole, with their writes;
--   * each ancestor a kept checkpoint's DeltaChannels need to be rebuilt: up the
--     parent chain until each channel named in counters_since_delta_snapshot
--     has a stored value.
-- Every other checkpoint goes with its writes. The writes of the kept ones stay
-- (a pending interrupt, the writes of tasks that finished before a failure),
-- and so do writes of checkpoints not saved yet. Last, a checkpoint of these
-- threads whose parent_checkpoint_id names no existing checkpoint gets NULL:
-- its history starts there, and no parent_config points at nothing.
-- Per thread: each statement filters every per-thread table on
-- `thread_id = v_thread`, so on Citus it is routed to the one shard that holds
-- the thread (a recursive CTE over `thread_id = ANY` could not be planned).
-- A thread id given twice is trimmed twice, once with each of its limits.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_trim(
    p_thread_ids text[], p_keep_last integer[], p_min_created timestamptz[],
    p_keep_pinned boolean
) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_trim$
DECLARE
    v_thread text;
    v_keep_last integer;
    v_min_created timestamptz;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_thread_ids), 0) LOOP
        v_thread := p_thread_ids[i];
        CONTINUE WHEN v_thread IS NULL;
        v_keep_last := p_keep_last[i];
        v_min_created := p_min_created[i];

        WITH RECURSIVE ranked AS (
            SELECT c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.channels,
                   c.metadata, c.pinned AND p_keep_pinned AS held,
                   strpos(c.checkpoint_ns, ':') > 0 AS is_call,
                   row_number() OVER (PARTITION BY c.checkpoint_ns
                                      ORDER BY c.checkpoint_id DESC) AS rn,
                   c.created_at
            FROM {schema}.checkpoints c
            WHERE c.thread_id = v_thread
        ), wanted AS MATERIALIZED (
            SELECT r.checkpoint_ns, r.checkpoint_id, r.parent_checkpoint_id,
                   r.channels, r.metadata, r.held, r.is_call, r.rn,
                   r.rn = 1 OR ((v_keep_last IS NULL OR r.rn <= v_keep_last)
                                AND (v_min_created IS NULL OR r.created_at >= v_min_created))
                       AS ok
            FROM ranked r
        ), roots AS (
            SELECT w.checkpoint_id FROM wanted w
            WHERE w.checkpoint_ns = '' AND (w.ok OR w.held)
        ), calls AS (
            -- The subgraph calls that stay, by their newest checkpoint.
            SELECT w.checkpoint_ns
            FROM wanted w
            WHERE w.is_call AND w.rn = 1
              AND (EXISTS (SELECT 1 FROM roots r
                           WHERE r.checkpoint_id = w.metadata -> 'parents' ->> '')
                   OR (NOT EXISTS (SELECT 1 FROM {schema}.checkpoints s
                                   WHERE s.thread_id = v_thread AND s.checkpoint_ns = ''
                                     AND s.checkpoint_id = w.metadata -> 'parents' ->> '')
                       AND (NOT EXISTS (SELECT 1 FROM roots)
                            OR w.checkpoint_id > (SELECT min(r.checkpoint_id) FROM roots r))))
        ), keep AS (
            SELECT w.checkpoint_ns, w.checkpoint_id, w.parent_checkpoint_id,
                   CASE WHEN jsonb_typeof(w.metadata -> 'counters_since_delta_snapshot')
                             = 'object'
                        THEN ARRAY(SELECT d
                                   FROM jsonb_object_keys(
                                            w.metadata -> 'counters_since_delta_snapshot') AS d
                                   WHERE d <> ALL (w.channels))
                        ELSE '{}'::text[] END AS remaining
            FROM wanted w
            WHERE w.held
               OR (w.ok AND (NOT w.is_call
                             OR EXISTS (SELECT 1 FROM calls k
                                        WHERE k.checkpoint_ns = w.checkpoint_ns)))
          UNION
            SELECT p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
                   ARRAY(SELECT d FROM unnest(k.remaining) AS d WHERE d <> ALL (p.channels))
            FROM keep k
            JOIN {schema}.checkpoints p
              ON p.thread_id = v_thread AND p.checkpoint_ns = k.checkpoint_ns
             AND p.checkpoint_id = k.parent_checkpoint_id AND p.checkpoint_id < k.checkpoint_id
            WHERE cardinality(k.remaining) > 0
        ), kept AS MATERIALIZED (
            SELECT DISTINCT k.checkpoint_ns, k.checkpoint_id FROM keep k
        ), gone AS (
            DELETE FROM {schema}.checkpoints c
            WHERE c.thread_id = v_thread
              AND NOT EXISTS (SELECT 1 FROM kept k
                              WHERE k.checkpoint_ns = c.checkpoint_ns
                                AND k.checkpoint_id = c.checkpoint_id)
            RETURNING c.checkpoint_ns, c.checkpoint_id
        ), dropped AS (
            -- Call namespaces that lost every checkpoint: their writes go whole.
            SELECT DISTINCT g.checkpoint_ns FROM gone g
            WHERE strpos(g.checkpoint_ns, ':') > 0
              AND NOT EXISTS (SELECT 1 FROM kept k WHERE k.checkpoint_ns = g.checkpoint_ns)
        )
        DELETE FROM {schema}.writes x
        WHERE x.thread_id = v_thread
          AND (EXISTS (SELECT 1 FROM gone g
                       WHERE g.checkpoint_ns = x.checkpoint_ns
                         AND g.checkpoint_id = x.checkpoint_id)
               OR EXISTS (SELECT 1 FROM dropped d WHERE d.checkpoint_ns = x.checkpoint_ns));

        -- A later statement of a VOLATILE function sees the deletes above.
        UPDATE {schema}.checkpoints c SET parent_checkpoint_id = NULL
        WHERE c.thread_id = v_thread AND c.parent_checkpoint_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints p
                          WHERE p.thread_id = v_thread AND p.checkpoint_ns = c.checkpoint_ns
                            AND p.checkpoint_id = c.parent_checkpoint_id);
    END LOOP;
END
$pgcheckpoint_trim$;
