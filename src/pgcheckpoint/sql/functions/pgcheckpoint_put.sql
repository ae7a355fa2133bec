-- pgcheckpoint: revision 3
-- put() on Citus: put_checkpoint (sql/queries/put.sql) as a function of one
-- thread, distributed by p_thread_id with force_delegation (distribution.py),
-- so the coordinator sends the call whole to the thread's node, where every
-- statement below runs on local shards: one hop, no two-phase commit. On
-- Citus, put_checkpoint's data-modifying CTEs became subplans through the
-- coordinator instead (docs/scaling.md). The saver calls it only when the
-- citus extension is installed (SaverCore.put_plan); on plain PostgreSQL
-- put_checkpoint stays one statement (a PL/pgSQL call would cost more).
--
-- KEEP IN STEP WITH put_checkpoint, put_chunks and put_blobs in
-- sql/queries/put.sql: the same rows, in the same order (thread row and its
-- lock first, then the one-writer check under that lock, chunks, blobs, the
-- checkpoint), the same conflict rules. A change to one is a change to both;
-- tests/test_saver_contract.py::test_put_function_writes_what_the_statement_does
-- compares their rows on plain PostgreSQL.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_put(
    p_thread_id text, p_checkpoint_ns text, p_checkpoint_id text,
    p_parent_checkpoint_id text, p_guard text, p_type text, p_checkpoint bytea,
    p_metadata jsonb, p_created_at timestamptz, p_channels text[], p_versions text[],
    p_chunk_hashes bytea[], p_chunk_compressed boolean[], p_chunk_data bytea[],
    p_blob_channels text[], p_blob_versions text[], p_blob_types text[],
    p_blob_values bytea[], p_blob_refs bytea[]
) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_put$
BEGIN
    -- put_checkpoint's `t`: the thread row, whose lock orders writers and gc,
    -- and its `head` kept as put_checkpoint keeps it (put_head, which reads it,
    -- is not used on Citus, but the rows stay the same as on one server).
    INSERT INTO {schema}.threads AS th (thread_id, updated_at, head)
    VALUES (p_thread_id, pg_catalog.now(),
            CASE WHEN p_checkpoint_ns = '' THEN p_checkpoint_id END)
    ON CONFLICT (thread_id) DO UPDATE SET
        updated_at = EXCLUDED.updated_at,
        head = CASE WHEN EXCLUDED.head IS NULL THEN th.head
                    WHEN p_guard = 'head' THEN GREATEST(p_parent_checkpoint_id, EXCLUDED.head)
                    WHEN th.head IS NULL THEN NULL
                    ELSE GREATEST(th.head, EXCLUDED.head) END;
    -- `g`: the one-writer check, under that lock (pgcheckpoint_put_check).
    PERFORM {schema}.pgcheckpoint_put_check(p_thread_id, p_checkpoint_ns,
                                           p_parent_checkpoint_id, p_checkpoint_id, p_guard);
    -- put_chunks.
    IF cardinality(p_chunk_hashes) > 0 THEN
        INSERT INTO {schema}.chunks (thread_id, hash, compressed, data)
        SELECT p_thread_id, u.hash, u.compressed, u.data
        FROM unnest(p_chunk_hashes, p_chunk_compressed, p_chunk_data)
             AS u(hash, compressed, data)
        ON CONFLICT (thread_id, hash) DO NOTHING;
    END IF;
    -- put_blobs.
    IF cardinality(p_blob_channels) > 0 THEN
        INSERT INTO {schema}.blobs (thread_id, checkpoint_ns, channel, version, type, value,
                                    chunk_refs)
        SELECT p_thread_id, p_checkpoint_ns, u.channel, u.version, u.type, u.value, u.chunk_refs
        FROM unnest(p_blob_channels, p_blob_versions, p_blob_types, p_blob_values, p_blob_refs)
             AS u(channel, version, type, value, chunk_refs)
        ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING;
    END IF;
    -- The checkpoint.
    INSERT INTO {schema}.checkpoints (thread_id, checkpoint_ns, checkpoint_id,
                                      parent_checkpoint_id, type, checkpoint, metadata,
                                      created_at, channels, versions)
    VALUES (p_thread_id, p_checkpoint_ns, p_checkpoint_id, p_parent_checkpoint_id, p_type,
            p_checkpoint, p_metadata, coalesce(p_created_at, pg_catalog.now()), p_channels,
            p_versions)
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
        parent_checkpoint_id = EXCLUDED.parent_checkpoint_id,
        type = EXCLUDED.type,
        checkpoint = EXCLUDED.checkpoint,
        metadata = EXCLUDED.metadata,
        channels = EXCLUDED.channels,
        versions = EXCLUDED.versions;
END
$pgcheckpoint_put$;
