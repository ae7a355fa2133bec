-- pgcheckpoint: revision 2
-- Writes of threads that never got a checkpoint (put_writes does not create
-- the thread row), older than p_orphan_grace: at most p_limit per call, chosen
-- and deleted by primary key (no ctid, which a distributed table does not
-- share across nodes). Returns the rows and bytes removed. The stored size is
-- measured while picking: Citus refuses pg_column_size (STABLE) in RETURNING.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_strays(
    p_orphan_grace interval, p_limit integer
) RETURNS TABLE (n bigint, bytes bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_strays$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx,
               coalesce(pg_column_size(w.value), 0) AS size
        FROM {schema}.writes w
        WHERE w.created_at < now() - p_orphan_grace
          AND NOT EXISTS (SELECT 1 FROM {schema}.threads t WHERE t.thread_id = w.thread_id)
        LIMIT p_limit
    ), d AS (
        DELETE FROM {schema}.writes x
        USING picked p
        WHERE x.thread_id = p.thread_id AND x.checkpoint_ns = p.checkpoint_ns
          AND x.checkpoint_id = p.checkpoint_id AND x.task_id = p.task_id AND x.idx = p.idx
          AND NOT EXISTS (SELECT 1 FROM {schema}.threads t WHERE t.thread_id = x.thread_id)
        RETURNING p.size AS bytes
    )
    SELECT count(*), coalesce(sum(d.bytes), 0)::bigint FROM d;
END
$pgcheckpoint_strays$;
