-- pgcheckpoint: revision 1
-- put_writes on Citus for more writes than PUT_WRITES_ROWS (_core.py):
-- put_writes_insert_arrays / put_writes_upsert_arrays (sql/queries/put.sql) as
-- a function of one thread, distributed by p_thread_id with force_delegation
-- (distribution.py), so the coordinator sends the call whole to the thread's
-- node, where the INSERT ... SELECT FROM unnest runs on the local shard; as a
-- statement sent to the coordinator, Citus pulls that INSERT ... SELECT to the
-- coordinator. The saver calls it only when the citus extension is installed
-- (SaverCore._put_writes_plan); on plain PostgreSQL the statements stay.
--
-- KEEP IN STEP WITH part_put_writes, put_writes_upsert_arrays and
-- put_writes_insert_arrays in sql/queries/put.sql: the same rows and conflict
-- rules (p_upsert: every write is a special channel, a retried task replaces
-- its earlier outcome; else a repeated call changes nothing).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_put_writes(
    p_thread_id text, p_checkpoint_ns text, p_checkpoint_id text, p_task_id text,
    p_task_path text, p_upsert boolean, p_idx integer[], p_channels text[], p_types text[],
    p_values bytea[]
) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_put_writes$
BEGIN
    IF p_upsert THEN
        INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
                                     channel, type, value, task_path)
        SELECT p_thread_id, p_checkpoint_ns, p_checkpoint_id, p_task_id, u.idx, u.channel,
               u.type, u.value, p_task_path
        FROM unnest(p_idx, p_channels, p_types, p_values) AS u(idx, channel, type, value)
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
            channel = EXCLUDED.channel, type = EXCLUDED.type, value = EXCLUDED.value,
            task_path = EXCLUDED.task_path;
    ELSE
        INSERT INTO {schema}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
                                     channel, type, value, task_path)
        SELECT p_thread_id, p_checkpoint_ns, p_checkpoint_id, p_task_id, u.idx, u.channel,
               u.type, u.value, p_task_path
        FROM unnest(p_idx, p_channels, p_types, p_values) AS u(idx, channel, type, value)
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING;
    END IF;
END
$pgcheckpoint_put_writes$;
