-- pgcheckpoint: revision 2
-- Blobs of the given threads that no remaining checkpoint references, then
-- chunks no remaining blob references. Call it only while holding the threads'
-- row locks (lock_threads): writers take the same lock in put_checkpoint, so
-- nothing a writer relies on is judged unreferenced. One hashed difference per
-- table: probing the checkpoints once per blob (0004's form) waded through the
-- index entries of rows a prune had just deleted, 6.8 s for the 3,600 blobs of
-- a 3,000-checkpoint thread (migration 0005 has the measurement).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_gc(p_thread_ids text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_gc$
DECLARE
    v_thread text;
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
    -- A chunk_refs value is a flat list of 16-byte addresses, or a tree: a tag
    -- byte, its depth, its top nodes, each node a chunk (stored under its
    -- address and the byte 'n') listing the addresses of the level below
    -- (chunking.py); the nodes are followed level by level. One thread per
    -- statement: Citus routes a recursive query only when it names one thread.
    FOREACH v_thread IN ARRAY p_thread_ids LOOP
        DELETE FROM {schema}.chunks k
        USING (
            WITH RECURSIVE e(hash, depth) AS (
                SELECT substring(b.chunk_refs FROM g.i * 16 + 1 + mod(length(b.chunk_refs), 16) FOR 16),
                       CASE WHEN mod(length(b.chunk_refs), 16) = 2
                            THEN get_byte(b.chunk_refs, 1) ELSE 0 END
                FROM {schema}.blobs b, generate_series(0, length(b.chunk_refs) / 16 - 1) AS g(i)
                WHERE b.thread_id = v_thread AND b.chunk_refs IS NOT NULL
              UNION
                SELECT substring(n.data FROM g.i * 16 + 1 FOR 16), e.depth - 1
                FROM e
                JOIN {schema}.chunks n
                  ON n.thread_id = v_thread AND n.hash = e.hash || '\x6e'::bytea,
                     generate_series(0, length(n.data) / 16 - 1) AS g(i)
                WHERE e.depth > 0
            )
            SELECT x.hash
            FROM {schema}.chunks x
            WHERE x.thread_id = v_thread
            EXCEPT
            SELECT CASE WHEN e.depth > 0 THEN e.hash || '\x6e'::bytea ELSE e.hash END
            FROM e
        ) AS u
        WHERE k.thread_id = v_thread AND k.hash = u.hash;
    END LOOP;
END
$pgcheckpoint_gc$;
