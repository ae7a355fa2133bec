-- pgcheckpoint: revision 1
-- Whole threads with everything they own: delete_thread, delete_threads and
-- the sweep's thread_ttl. PL/pgSQL rather than SQL: Citus cannot plan a
-- statement of an SQL function that reads its parameters on distributed
-- tables, and a PL/pgSQL statement is planned with the parameters bound.
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
