-- pgcheckpoint: compatible-with 4
-- One rule for what a thread's history keeps (issue 10), shared by
-- prune(strategy="keep_latest") and the retention sweep: pgcheckpoint_trim.
-- Both used to carry their own copy of it, and both differed from the
-- contract's reference prune (langgraph-checkpoint-postgres): a kept checkpoint
-- could still name a parent that was deleted, prune kept the namespaces of
-- finished subgraph calls, and the sweep deleted a `checkpointer=True`
-- subgraph's namespace, the subgraph's memory, once it was older than the kept
-- root history.
--
-- pgcheckpoint_sweep_batch is redefined here only to call pgcheckpoint_trim;
-- everything else in it is as 0004 wrote it.

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
CREATE FUNCTION {schema}.pgcheckpoint_trim(
    p_thread_ids text[], p_keep_last integer[], p_min_created timestamptz[],
    p_keep_pinned boolean
) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_trim$
BEGIN
    WITH RECURSIVE pol AS (
        SELECT u.thread_id, u.keep_last, u.min_created
        FROM unnest(p_thread_ids, p_keep_last, p_min_created)
             AS u(thread_id, keep_last, min_created)
        WHERE u.thread_id IS NOT NULL
    ), ranked AS (
        SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.channels,
               c.metadata, c.pinned AND p_keep_pinned AS held,
               strpos(c.checkpoint_ns, ':') > 0 AS is_call,
               row_number() OVER (PARTITION BY c.thread_id, c.checkpoint_ns
                                  ORDER BY c.checkpoint_id DESC) AS rn,
               c.created_at, p.keep_last, p.min_created
        FROM pol p JOIN {schema}.checkpoints c ON c.thread_id = p.thread_id
    ), wanted AS MATERIALIZED (
        SELECT r.thread_id, r.checkpoint_ns, r.checkpoint_id, r.parent_checkpoint_id,
               r.channels, r.metadata, r.held, r.is_call, r.rn,
               r.rn = 1 OR ((r.keep_last IS NULL OR r.rn <= r.keep_last)
                            AND (r.min_created IS NULL OR r.created_at >= r.min_created)) AS ok
        FROM ranked r
    ), roots AS (
        SELECT w.thread_id, w.checkpoint_id FROM wanted w
        WHERE w.checkpoint_ns = '' AND (w.ok OR w.held)
    ), oldest AS (
        SELECT r.thread_id, min(r.checkpoint_id) AS oldest FROM roots r GROUP BY r.thread_id
    ), calls AS (
        -- The subgraph calls that stay, by their newest checkpoint.
        SELECT w.thread_id, w.checkpoint_ns
        FROM wanted w LEFT JOIN oldest o ON o.thread_id = w.thread_id
        WHERE w.is_call AND w.rn = 1
          AND (EXISTS (SELECT 1 FROM roots r
                       WHERE r.thread_id = w.thread_id
                         AND r.checkpoint_id = w.metadata -> 'parents' ->> '')
               OR (NOT EXISTS (SELECT 1 FROM {schema}.checkpoints s
                               WHERE s.thread_id = w.thread_id AND s.checkpoint_ns = ''
                                 AND s.checkpoint_id = w.metadata -> 'parents' ->> '')
                   AND (o.oldest IS NULL OR w.checkpoint_id > o.oldest)))
    ), keep AS (
        SELECT w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.parent_checkpoint_id,
               CASE WHEN jsonb_typeof(w.metadata -> 'counters_since_delta_snapshot') = 'object'
                    THEN ARRAY(SELECT d
                               FROM jsonb_object_keys(w.metadata -> 'counters_since_delta_snapshot')
                                    AS d
                               WHERE d <> ALL (w.channels))
                    ELSE '{}'::text[] END AS remaining
        FROM wanted w
        WHERE w.held
           OR (w.ok AND (NOT w.is_call
                         OR EXISTS (SELECT 1 FROM calls k
                                    WHERE k.thread_id = w.thread_id
                                      AND k.checkpoint_ns = w.checkpoint_ns)))
      UNION
        SELECT p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
               ARRAY(SELECT d FROM unnest(k.remaining) AS d WHERE d <> ALL (p.channels))
        FROM keep k
        JOIN {schema}.checkpoints p
          ON p.thread_id = k.thread_id AND p.checkpoint_ns = k.checkpoint_ns
         AND p.checkpoint_id = k.parent_checkpoint_id AND p.checkpoint_id < k.checkpoint_id
        WHERE cardinality(k.remaining) > 0
    ), kept AS MATERIALIZED (
        SELECT DISTINCT k.thread_id, k.checkpoint_ns, k.checkpoint_id FROM keep k
    ), gone AS (
        DELETE FROM {schema}.checkpoints c
        USING pol
        WHERE c.thread_id = pol.thread_id
          AND NOT EXISTS (SELECT 1 FROM kept k
                          WHERE k.thread_id = c.thread_id AND k.checkpoint_ns = c.checkpoint_ns
                            AND k.checkpoint_id = c.checkpoint_id)
        RETURNING c.thread_id, c.checkpoint_ns, c.checkpoint_id
    ), dropped AS (
        -- Call namespaces that lost every checkpoint: their writes go whole.
        SELECT DISTINCT g.thread_id, g.checkpoint_ns FROM gone g
        WHERE strpos(g.checkpoint_ns, ':') > 0
          AND NOT EXISTS (SELECT 1 FROM kept k
                          WHERE k.thread_id = g.thread_id AND k.checkpoint_ns = g.checkpoint_ns)
    )
    DELETE FROM {schema}.writes x
    WHERE x.thread_id = ANY (p_thread_ids)
      AND (EXISTS (SELECT 1 FROM gone g
                   WHERE g.thread_id = x.thread_id AND g.checkpoint_ns = x.checkpoint_ns
                     AND g.checkpoint_id = x.checkpoint_id)
           OR EXISTS (SELECT 1 FROM dropped d
                      WHERE d.thread_id = x.thread_id AND d.checkpoint_ns = x.checkpoint_ns));

    -- A later statement of a VOLATILE function sees the deletes above.
    UPDATE {schema}.checkpoints c SET parent_checkpoint_id = NULL
    WHERE c.thread_id = ANY (p_thread_ids) AND c.parent_checkpoint_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints p
                      WHERE p.thread_id = c.thread_id AND p.checkpoint_ns = c.checkpoint_ns
                        AND p.checkpoint_id = c.parent_checkpoint_id);
END
$pgcheckpoint_trim$;

-- Blobs of the given threads that no remaining checkpoint references, then
-- chunks no remaining blob references; the caller holds the threads' row locks
-- (lock_threads), as for 0004's version. Redefined set-based: 0004 probed the
-- checkpoints once per blob and the blobs once per chunk, and right after a
-- prune those probes wade through the index entries of the rows just deleted
-- (still there until VACUUM): pruning a 3,000-checkpoint thread (300 turns of
-- tests/_history.py's memory_graph) spent 6.8 s deleting its 3,600 blobs and
-- 3.4 s its 900 chunks. One hashed difference per table does it in
-- milliseconds.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_gc(p_thread_ids text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_gc$
BEGIN
    DELETE FROM {schema}.blobs b
    USING (
        SELECT x.thread_id, x.checkpoint_ns, x.channel, x.version
        FROM {schema}.blobs x
        WHERE x.thread_id = ANY (p_thread_ids)
        EXCEPT
        SELECT c.thread_id, c.checkpoint_ns, v.channel, v.version
        FROM {schema}.checkpoints c, unnest(c.channels, c.versions) AS v(channel, version)
        WHERE c.thread_id = ANY (p_thread_ids) AND v.version IS NOT NULL
    ) AS u
    WHERE b.thread_id = u.thread_id AND b.checkpoint_ns = u.checkpoint_ns
      AND b.channel = u.channel AND b.version = u.version;
    DELETE FROM {schema}.chunks k
    USING (
        SELECT x.thread_id, x.hash
        FROM {schema}.chunks x
        WHERE x.thread_id = ANY (p_thread_ids)
        EXCEPT
        SELECT b.thread_id, substring(b.chunk_refs FROM g.i * 16 + 1 FOR 16)
        FROM {schema}.blobs b, generate_series(0, length(b.chunk_refs) / 16 - 1) AS g(i)
        WHERE b.thread_id = ANY (p_thread_ids) AND b.chunk_refs IS NOT NULL
    ) AS u
    WHERE k.thread_id = u.thread_id AND k.hash = u.hash;
END
$pgcheckpoint_gc$;

-- One batch of a sweep, in the caller's transaction. Locks the given threads
-- that are not pinned (FOR UPDATE SKIP LOCKED: the row lock put_checkpoint
-- takes, so a thread being written at this instant is left for the next
-- sweep), then, for each, under its policy:
--   * thread_ttl: the whole thread goes once threads.updated_at is older, unless
--     it has a pinned checkpoint or (keep_interrupted) the newest checkpoint of
--     one of its namespaces has '__interrupt__' writes (it waits for a human);
--   * keep_last / max_age: pgcheckpoint_trim (above) with the policy's limits,
--     keeping pinned checkpoints;
--   * writes whose checkpoint does not exist, older than p_orphan_grace;
--   * blobs and chunks nothing references (pgcheckpoint_gc);
--   * thread rows left empty for longer than p_orphan_grace, unless they carry
--     settings (retention, pinned).
-- Returns one row per table: rows and bytes removed.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_batch(
    p_thread_ids text[], p_policy jsonb, p_orphan_grace interval
) RETURNS TABLE (tbl text, n bigint, bytes bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_batch$
DECLARE
    v_ids text[];
    v_keep_last integer[];
    v_min_created timestamptz[];
    v_ttl_cutoff timestamptz[];
    v_keep_interrupted boolean[];
    v_expired text[];
    v_alive text[];
    v_trim_ids text[];
    v_trim_keep_last integer[];
    v_trim_min_created timestamptz[];
    v_before_tbl text[];
    v_before_n bigint[];
    v_before_bytes bigint[];
BEGIN
    IF p_policy IS NOT NULL AND jsonb_typeof(p_policy) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('pgcheckpoint_sweep: policy must be a JSON object, got %s', p_policy);
    END IF;
    SELECT coalesce(array_agg(l.thread_id ORDER BY l.thread_id), '{}'),
           array_agg(CASE WHEN jsonb_typeof(l.pol -> 'keep_last') = 'number'
                          THEN (l.pol ->> 'keep_last')::numeric::integer END
                     ORDER BY l.thread_id),
           array_agg(CASE WHEN jsonb_typeof(l.pol -> 'max_age') = 'number'
                          THEN now() - make_interval(secs => (l.pol ->> 'max_age')::float8) END
                     ORDER BY l.thread_id),
           array_agg(CASE WHEN jsonb_typeof(l.pol -> 'thread_ttl') = 'number'
                          THEN now() - make_interval(secs => (l.pol ->> 'thread_ttl')::float8) END
                     ORDER BY l.thread_id),
           array_agg(l.pol -> 'keep_interrupted' IS DISTINCT FROM 'false'::jsonb
                     ORDER BY l.thread_id)
    INTO v_ids, v_keep_last, v_min_created, v_ttl_cutoff, v_keep_interrupted
    FROM (SELECT t.thread_id, coalesce(t.retention, p_policy, '{}'::jsonb) AS pol
          FROM {schema}.threads t
          WHERE t.thread_id = ANY (p_thread_ids) AND NOT t.pinned
          ORDER BY t.thread_id
          FOR UPDATE SKIP LOCKED) l;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;

    SELECT array_agg(m.tbl), array_agg(m.n), array_agg(m.bytes)
    INTO v_before_tbl, v_before_n, v_before_bytes
    FROM {schema}.pgcheckpoint_measure(v_ids) m;

    SELECT coalesce(array_agg(t.thread_id ORDER BY t.thread_id), '{}') INTO v_expired
    FROM unnest(v_ids, v_ttl_cutoff, v_keep_interrupted) AS u(thread_id, cutoff, keep_interrupted)
    JOIN {schema}.threads t ON t.thread_id = u.thread_id
    WHERE u.cutoff IS NOT NULL AND t.updated_at < u.cutoff
      AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c
                      WHERE c.thread_id = t.thread_id AND c.pinned)
      AND NOT (u.keep_interrupted AND EXISTS (
          SELECT 1
          FROM (SELECT DISTINCT ON (c.checkpoint_ns) c.checkpoint_ns, c.checkpoint_id
                FROM {schema}.checkpoints c WHERE c.thread_id = t.thread_id
                ORDER BY c.checkpoint_ns, c.checkpoint_id DESC) h
          JOIN {schema}.writes x
            ON x.thread_id = t.thread_id AND x.checkpoint_ns = h.checkpoint_ns
           AND x.checkpoint_id = h.checkpoint_id AND x.channel = '__interrupt__'));
    IF cardinality(v_expired) > 0 THEN
        PERFORM {schema}.pgcheckpoint_delete_threads(v_expired);
    END IF;
    v_alive := ARRAY(SELECT i FROM unnest(v_ids) AS i WHERE i <> ALL (v_expired) ORDER BY i);

    SELECT array_agg(u.thread_id), array_agg(u.keep_last), array_agg(u.min_created)
    INTO v_trim_ids, v_trim_keep_last, v_trim_min_created
    FROM unnest(v_ids, v_keep_last, v_min_created) AS u(thread_id, keep_last, min_created)
    WHERE u.thread_id = ANY (v_alive)
      AND (u.keep_last IS NOT NULL OR u.min_created IS NOT NULL);
    IF cardinality(v_trim_ids) > 0 THEN
        PERFORM {schema}.pgcheckpoint_trim(v_trim_ids, v_trim_keep_last, v_trim_min_created,
                                           true);
    END IF;

    IF cardinality(v_alive) > 0 THEN
        DELETE FROM {schema}.writes x
        WHERE x.thread_id = ANY (v_alive) AND x.created_at < now() - p_orphan_grace
          AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c
                          WHERE c.thread_id = x.thread_id AND c.checkpoint_ns = x.checkpoint_ns
                            AND c.checkpoint_id = x.checkpoint_id);
        -- Every locked thread, not only those that just lost checkpoints: blobs
        -- or chunks left unreferenced by any earlier operation go too.
        PERFORM {schema}.pgcheckpoint_gc(v_alive);
        DELETE FROM {schema}.threads t
        WHERE t.thread_id = ANY (v_alive) AND t.updated_at < now() - p_orphan_grace
          AND t.retention IS NULL AND NOT t.pinned
          AND NOT EXISTS (SELECT 1 FROM {schema}.checkpoints c WHERE c.thread_id = t.thread_id)
          AND NOT EXISTS (SELECT 1 FROM {schema}.writes x WHERE x.thread_id = t.thread_id);
    END IF;

    RETURN QUERY
    SELECT b.tbl, greatest(b.n - coalesce(a.n, 0), 0), greatest(b.bytes - coalesce(a.bytes, 0), 0)
    FROM unnest(v_before_tbl, v_before_n, v_before_bytes) AS b(tbl, n, bytes)
    LEFT JOIN {schema}.pgcheckpoint_measure(v_ids) a ON a.tbl = b.tbl
    UNION ALL
    SELECT 'scanned', cardinality(v_ids)::bigint, 0::bigint;
END
$pgcheckpoint_batch$;
