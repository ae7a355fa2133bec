-- pgcheckpoint: compatible-with 4
-- pgcheckpoint_trim (migration 0005) walked the kept checkpoints' parent chains
-- in one recursive CTE over every thread of p_thread_ids (`thread_id = ANY`).
-- Citus plans a recursive CTE only when it is filtered on the distribution
-- column by equality ("recursive CTEs are only supported when they contain a
-- filter on the distribution column"), so prune and the sweep failed on a
-- distributed schema (docs/scaling.md). This version runs the same statements
-- once per thread, each reference to a per-thread table filtered by
-- `thread_id = v_thread`: on Citus every statement is routed to the one shard
-- that holds the thread. The signature, the rule of what is kept (0005's
-- comment) and the result are unchanged; only the order of work is per thread.
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

-- The row locks of lock_threads (garbage collection, prune, delete_for_runs,
-- rollback), taken one thread at a time in thread id order, the order every
-- caller used (so two lockers of overlapping sets cannot deadlock). Citus runs
-- `FOR UPDATE` only in a statement routed to one shard; `thread_id = ANY
-- (array)` over threads of several shards was refused ("could not run
-- distributed query with FOR UPDATE/SHARE commands"). Returns the ids locked
-- (the threads that have a row), as the statement did.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_lock_threads(p_thread_ids text[])
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_lock_threads$
DECLARE
    v_thread text;
    v_found text;
BEGIN
    FOR v_thread IN
        SELECT DISTINCT u.id FROM unnest(p_thread_ids) AS u(id)
        WHERE u.id IS NOT NULL ORDER BY u.id
    LOOP
        SELECT t.thread_id INTO v_found FROM {schema}.threads t
        WHERE t.thread_id = v_thread FOR UPDATE;
        IF FOUND THEN
            RETURN NEXT v_found;
        END IF;
    END LOOP;
END
$pgcheckpoint_lock_threads$;

-- Whole threads with everything they own (0004), and the per-table measure the
-- sweep reports (0004), as PL/pgSQL: Citus cannot plan a statement of an SQL
-- function that reads its parameters on distributed tables ("could not create
-- distributed plan ... Consider using PL/pgSQL functions instead"), and a
-- PL/pgSQL statement is planned with the parameters bound. Same rows, same
-- result.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_delete_threads(p_thread_ids text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_delete$
BEGIN
    DELETE FROM {schema}.checkpoints WHERE thread_id = ANY (p_thread_ids);
    DELETE FROM {schema}.blobs WHERE thread_id = ANY (p_thread_ids);
    DELETE FROM {schema}.chunks WHERE thread_id = ANY (p_thread_ids);
    DELETE FROM {schema}.writes WHERE thread_id = ANY (p_thread_ids);
    DELETE FROM {schema}.threads WHERE thread_id = ANY (p_thread_ids);
END
$pgcheckpoint_delete$;

CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_measure(p_thread_ids text[])
RETURNS TABLE (tbl text, n bigint, bytes bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_measure$
BEGIN
    RETURN QUERY
    SELECT 'threads'::text, count(*), 0::bigint
    FROM {schema}.threads t WHERE t.thread_id = ANY (p_thread_ids);
    RETURN QUERY
    SELECT 'checkpoints'::text, count(*),
           coalesce(sum(pg_column_size(c.checkpoint) + pg_column_size(c.metadata)
                        + pg_column_size(c.channels) + pg_column_size(c.versions)), 0)::bigint
    FROM {schema}.checkpoints c WHERE c.thread_id = ANY (p_thread_ids);
    RETURN QUERY
    SELECT 'blobs'::text, count(*),
           coalesce(sum(coalesce(pg_column_size(b.value), 0)
                        + coalesce(pg_column_size(b.chunk_refs), 0)), 0)::bigint
    FROM {schema}.blobs b WHERE b.thread_id = ANY (p_thread_ids);
    RETURN QUERY
    SELECT 'chunks'::text, count(*), coalesce(sum(pg_column_size(k.data)), 0)::bigint
    FROM {schema}.chunks k WHERE k.thread_id = ANY (p_thread_ids);
    RETURN QUERY
    SELECT 'writes'::text, count(*), coalesce(sum(coalesce(pg_column_size(x.value), 0)), 0)::bigint
    FROM {schema}.writes x WHERE x.thread_id = ANY (p_thread_ids);
END
$pgcheckpoint_measure$;
