-- pgcheckpoint: revision 1
-- Rows and stored bytes (pg_column_size of the variable-size columns: what a
-- sweep frees) of the given threads, per table. The sweep measures a thread
-- before and after; the difference is its report.
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
