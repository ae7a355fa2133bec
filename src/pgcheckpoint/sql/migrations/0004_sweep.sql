-- The retention sweep inside the database (issue 4), so that pg_cron (or any
-- SQL client) can run it with no Python: `CALL {schema}.pgcheckpoint_sweep(...)`.
-- The library's sweeper (sweeper.py) calls the same pgcheckpoint_sweep_batch
-- once per batch, so there is one implementation of the policies; the core's
-- garbage collection and multi-thread delete are functions here for the same
-- reason (queries.sql calls them).
--
-- A policy is the JSON of RetentionPolicy.to_json() (keep_last, max_age and
-- thread_ttl in seconds, keep_interrupted); a thread's own policy
-- (threads.retention) replaces the given one whole; a key that is missing or
-- null is no limit.

-- Whole threads, with everything they own.
CREATE FUNCTION {schema}.pgcheckpoint_delete_threads(p_thread_ids text[]) RETURNS void
LANGUAGE sql VOLATILE
AS $pgcheckpoint_delete$
WITH a AS (DELETE FROM {schema}.checkpoints WHERE thread_id = ANY (p_thread_ids)),
     b AS (DELETE FROM {schema}.blobs WHERE thread_id = ANY (p_thread_ids)),
     c AS (DELETE FROM {schema}.chunks WHERE thread_id = ANY (p_thread_ids)),
     d AS (DELETE FROM {schema}.writes WHERE thread_id = ANY (p_thread_ids))
DELETE FROM {schema}.threads WHERE thread_id = ANY (p_thread_ids);
$pgcheckpoint_delete$;

-- Blobs of the given threads that no remaining checkpoint references, then
-- chunks no remaining blob references. Call it only while holding the threads'
-- row locks (lock_threads): writers take the same lock in put_checkpoint, so
-- nothing a writer relies on is judged unreferenced.
CREATE FUNCTION {schema}.pgcheckpoint_gc(p_thread_ids text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $pgcheckpoint_gc$
BEGIN
    DELETE FROM {schema}.blobs b
    WHERE b.thread_id = ANY (p_thread_ids)
      AND NOT EXISTS (
          SELECT 1
          FROM {schema}.checkpoints c, unnest(c.channels, c.versions) AS v(channel, version)
          WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
            AND v.channel = b.channel AND v.version = b.version);
    DELETE FROM {schema}.chunks k
    WHERE k.thread_id = ANY (p_thread_ids)
      AND NOT EXISTS (
          SELECT 1
          FROM {schema}.blobs b, generate_series(0, length(b.chunk_refs) / 16 - 1) AS g(i)
          WHERE b.thread_id = k.thread_id AND b.chunk_refs IS NOT NULL
            AND substring(b.chunk_refs FROM g.i * 16 + 1 FOR 16) = k.hash);
END
$pgcheckpoint_gc$;

-- Rows and stored bytes (pg_column_size of the variable-size columns: what a
-- sweep frees) of the given threads, per table. A sweep batch measures before
-- and after; the difference is its report.
CREATE FUNCTION {schema}.pgcheckpoint_measure(p_thread_ids text[])
RETURNS TABLE (tbl text, n bigint, bytes bigint)
LANGUAGE sql STABLE
AS $pgcheckpoint_measure$
SELECT 'threads', count(*), 0::bigint
FROM {schema}.threads WHERE thread_id = ANY (p_thread_ids)
UNION ALL
SELECT 'checkpoints', count(*),
       coalesce(sum(pg_column_size(checkpoint) + pg_column_size(metadata)
                    + pg_column_size(channels) + pg_column_size(versions)), 0)::bigint
FROM {schema}.checkpoints WHERE thread_id = ANY (p_thread_ids)
UNION ALL
SELECT 'blobs', count(*),
       coalesce(sum(coalesce(pg_column_size(value), 0) + coalesce(pg_column_size(chunk_refs), 0)),
                0)::bigint
FROM {schema}.blobs WHERE thread_id = ANY (p_thread_ids)
UNION ALL
SELECT 'chunks', count(*), coalesce(sum(pg_column_size(data)), 0)::bigint
FROM {schema}.chunks WHERE thread_id = ANY (p_thread_ids)
UNION ALL
SELECT 'writes', count(*), coalesce(sum(coalesce(pg_column_size(value), 0)), 0)::bigint
FROM {schema}.writes WHERE thread_id = ANY (p_thread_ids);
$pgcheckpoint_measure$;

-- One batch of a sweep, in the caller's transaction. Locks the given threads
-- that are not pinned (FOR UPDATE SKIP LOCKED: the row lock put_checkpoint
-- takes, so a thread being written at this instant is left for the next
-- sweep), then, for each, under its policy:
--   * thread_ttl: the whole thread goes once threads.updated_at is older, unless
--     it has a pinned checkpoint or (keep_interrupted) the newest checkpoint of
--     one of its namespaces has '__interrupt__' writes (it waits for a human);
--   * keep_last / max_age: kept are the newest checkpoint of the root
--     namespace, the newest of each subgraph namespace that is not wholly older
--     than the kept root history (see `root` below), pinned checkpoints,
--     checkpoints within every limit, and each ancestor a
--     kept checkpoint's DeltaChannels need (the walk of prune_keep_latest,
--     from every kept checkpoint); the rest goes with its writes, and a kept
--     checkpoint whose parent went gets parent_checkpoint_id NULL;
--   * writes whose checkpoint does not exist, older than p_orphan_grace;
--   * blobs and chunks nothing references (pgcheckpoint_gc);
--   * thread rows left empty for longer than p_orphan_grace, unless they carry
--     settings (retention, pinned).
-- Returns one row per table: rows and bytes removed.
CREATE FUNCTION {schema}.pgcheckpoint_sweep_batch(
    p_thread_ids text[], p_policy jsonb, p_orphan_grace interval
) RETURNS TABLE (tbl text, n bigint, bytes bigint)
LANGUAGE plpgsql VOLATILE
AS $pgcheckpoint_batch$
DECLARE
    v_ids text[];
    v_keep_last integer[];
    v_min_created timestamptz[];
    v_ttl_cutoff timestamptz[];
    v_keep_interrupted boolean[];
    v_expired text[];
    v_alive text[];
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

    WITH RECURSIVE pol AS (
        SELECT u.thread_id, u.keep_last, u.min_created
        FROM unnest(v_ids, v_keep_last, v_min_created) AS u(thread_id, keep_last, min_created)
        WHERE u.thread_id = ANY (v_alive)
          AND (u.keep_last IS NOT NULL OR u.min_created IS NOT NULL)
    ), ranked AS (
        SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.channels,
               c.metadata, c.pinned, c.created_at, p.keep_last, p.min_created,
               row_number() OVER (PARTITION BY c.thread_id, c.checkpoint_ns
                                  ORDER BY c.checkpoint_id DESC) AS rn
        FROM pol p JOIN {schema}.checkpoints c ON c.thread_id = p.thread_id
    ), wanted AS (
        SELECT r.*,
               r.rn = 1 OR ((r.keep_last IS NULL OR r.rn <= r.keep_last)
                            AND (r.min_created IS NULL OR r.created_at >= r.min_created)) AS ok
        FROM ranked r
    ), root AS (
        -- The oldest root-namespace checkpoint the policy keeps. A subgraph's
        -- namespace (node:<task id>) is written while its parent step runs,
        -- after the root checkpoint whose task it is; a namespace wholly older
        -- than every kept root checkpoint belongs to a step no kept checkpoint
        -- can show or resume, so it goes (its newest checkpoint included).
        SELECT w.thread_id, min(w.checkpoint_id) AS oldest
        FROM wanted w WHERE w.checkpoint_ns = '' AND w.ok
        GROUP BY w.thread_id
    ), keep AS (
        SELECT w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.parent_checkpoint_id,
               CASE WHEN jsonb_typeof(w.metadata -> 'counters_since_delta_snapshot') = 'object'
                    THEN ARRAY(SELECT d
                               FROM jsonb_object_keys(w.metadata -> 'counters_since_delta_snapshot')
                                    AS d
                               WHERE d <> ALL (w.channels))
                    ELSE '{}'::text[] END AS remaining
        FROM wanted w LEFT JOIN root ON root.thread_id = w.thread_id
        WHERE w.pinned
           OR (w.ok AND (w.checkpoint_ns = '' OR root.oldest IS NULL
                         OR w.checkpoint_id > root.oldest))
      UNION
        SELECT p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id,
               ARRAY(SELECT d FROM unnest(k.remaining) AS d WHERE d <> ALL (p.channels))
        FROM keep k
        JOIN {schema}.checkpoints p
          ON p.thread_id = k.thread_id AND p.checkpoint_ns = k.checkpoint_ns
         AND p.checkpoint_id = k.parent_checkpoint_id AND p.checkpoint_id < k.checkpoint_id
        WHERE cardinality(k.remaining) > 0
    ), kept AS MATERIALIZED (
        SELECT DISTINCT thread_id, checkpoint_ns, checkpoint_id FROM keep
    ), gone AS (
        DELETE FROM {schema}.checkpoints c
        USING pol
        WHERE c.thread_id = pol.thread_id
          AND NOT EXISTS (SELECT 1 FROM kept k
                          WHERE k.thread_id = c.thread_id AND k.checkpoint_ns = c.checkpoint_ns
                            AND k.checkpoint_id = c.checkpoint_id)
        RETURNING c.thread_id, c.checkpoint_ns, c.checkpoint_id
    ), relinked AS (
        UPDATE {schema}.checkpoints c SET parent_checkpoint_id = NULL
        FROM gone g, kept k
        WHERE c.thread_id = g.thread_id AND c.checkpoint_ns = g.checkpoint_ns
          AND c.parent_checkpoint_id = g.checkpoint_id
          AND k.thread_id = c.thread_id AND k.checkpoint_ns = c.checkpoint_ns
          AND k.checkpoint_id = c.checkpoint_id
    )
    DELETE FROM {schema}.writes x USING gone
    WHERE x.thread_id = gone.thread_id AND x.checkpoint_ns = gone.checkpoint_ns
      AND x.checkpoint_id = gone.checkpoint_id;

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

-- Writes of threads that never got a checkpoint (put_writes does not create
-- the thread row), older than p_orphan_grace: at most p_limit per call.
CREATE FUNCTION {schema}.pgcheckpoint_sweep_strays(p_orphan_grace interval, p_limit integer)
RETURNS TABLE (n bigint, bytes bigint)
LANGUAGE sql VOLATILE
AS $pgcheckpoint_strays$
WITH d AS (
    DELETE FROM {schema}.writes x
    WHERE x.ctid IN (
        SELECT w.ctid FROM {schema}.writes w
        WHERE w.created_at < now() - p_orphan_grace
          AND NOT EXISTS (SELECT 1 FROM {schema}.threads t WHERE t.thread_id = w.thread_id)
        LIMIT p_limit)
      AND NOT EXISTS (SELECT 1 FROM {schema}.threads t WHERE t.thread_id = x.thread_id)
    RETURNING coalesce(pg_column_size(x.value), 0) AS bytes
)
SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM d;
$pgcheckpoint_strays$;

-- The advisory lock key of this schema's sweeper: one sweeper per schema at a
-- time, whoever runs it (the library, the CLI or pg_cron). search_path is set
-- so that current_schema() names the schema this function lives in.
CREATE FUNCTION {schema}.pgcheckpoint_sweep_lock_key() RETURNS bigint
LANGUAGE sql STABLE
SET search_path = {schema}
AS $pgcheckpoint_key$
SELECT hashtextextended('pgcheckpoint.sweep:' || current_schema(), 0);
$pgcheckpoint_key$;

-- A whole sweep for pg_cron or psql (the library pages through threads itself
-- with pgcheckpoint_sweep_batch, the same loop):
--   CALL {schema}.pgcheckpoint_sweep('{"keep_last": 20, "thread_ttl": 7776000}');
-- Takes the sweeper's session advisory lock (another sweeper running: a
-- NOTICE and nothing done), then sweeps p_batch_size threads per transaction,
-- committing after each, so no lock is held for long. p_dry_run rolls every
-- batch back and only reports. The totals are raised as a NOTICE (rows and
-- bytes removed per table). It commits, so it must be CALLed on its own, not
-- inside an explicit transaction.
CREATE PROCEDURE {schema}.pgcheckpoint_sweep(
    p_policy jsonb DEFAULT NULL,
    p_batch_size integer DEFAULT 100,
    p_orphan_grace interval DEFAULT '1 hour',
    p_dry_run boolean DEFAULT false
)
LANGUAGE plpgsql
AS $pgcheckpoint_sweep$
DECLARE
    v_key bigint := {schema}.pgcheckpoint_sweep_lock_key();
    v_after text := '';
    v_page text[];
    v_totals jsonb := '{}';
    v_row record;
    v_strays record;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('pgcheckpoint_sweep: batch size must be >= 1, got %s', p_batch_size);
    END IF;
    IF p_orphan_grace IS NULL OR p_orphan_grace < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('pgcheckpoint_sweep: orphan grace must be >= 0, got %s',
                             p_orphan_grace);
    END IF;
    IF p_policy IS NOT NULL AND jsonb_typeof(p_policy) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('pgcheckpoint_sweep: policy must be a JSON object, got %s', p_policy);
    END IF;
    IF NOT pg_try_advisory_lock(v_key) THEN
        RAISE NOTICE 'pgcheckpoint_sweep: another sweep of this schema is running; skipped';
        RETURN;
    END IF;
    LOOP
        BEGIN
            v_page := ARRAY(SELECT t.thread_id FROM {schema}.threads t
                            WHERE t.thread_id > v_after ORDER BY t.thread_id
                            LIMIT p_batch_size);
            EXIT WHEN cardinality(v_page) = 0;
            v_after := v_page[cardinality(v_page)];
            FOR v_row IN
                SELECT * FROM {schema}.pgcheckpoint_sweep_batch(v_page, p_policy, p_orphan_grace)
            LOOP
                v_totals := jsonb_set(v_totals, ARRAY[v_row.tbl],
                                      to_jsonb(coalesce((v_totals ->> v_row.tbl)::bigint, 0)
                                               + v_row.n));
                v_totals := jsonb_set(v_totals, '{bytes_freed}',
                                      to_jsonb(coalesce((v_totals ->> 'bytes_freed')::bigint, 0)
                                               + v_row.bytes));
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_advisory_unlock(v_key);
            RAISE;
        END;
        IF p_dry_run THEN
            ROLLBACK;
        ELSE
            COMMIT;
        END IF;
    END LOOP;
    LOOP
        SELECT * INTO v_strays FROM {schema}.pgcheckpoint_sweep_strays(p_orphan_grace, 10000);
        v_totals := jsonb_set(v_totals, '{stray_writes}',
                              to_jsonb(coalesce((v_totals ->> 'stray_writes')::bigint, 0)
                                       + v_strays.n));
        EXIT WHEN v_strays.n < 10000;
        IF NOT p_dry_run THEN
            COMMIT;
        END IF;
    END LOOP;
    IF p_dry_run THEN
        ROLLBACK;
    ELSE
        COMMIT;
    END IF;
    PERFORM pg_advisory_unlock(v_key);
    RAISE NOTICE 'pgcheckpoint_sweep%: %', CASE WHEN p_dry_run THEN ' (dry run)' ELSE '' END,
        v_totals;
END
$pgcheckpoint_sweep$;
