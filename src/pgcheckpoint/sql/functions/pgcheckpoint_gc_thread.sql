-- pgcheckpoint: revision 2
-- Garbage collection of one thread: its blobs that no remaining checkpoint
-- references, then its chunks (and chunk-reference nodes) no remaining blob
-- references. The one definition of the collection: pgcheckpoint_gc(text[])
-- calls this once per thread. Every table is filtered on
-- `thread_id = p_thread_id`, so on Citus the whole call runs on the thread's
-- node (the delegated prune and delete_checkpoint functions call it there).
-- Call it only while holding the thread's row lock (lock_threads): writers
-- take the same lock in put_checkpoint, so nothing a writer relies on is
-- judged unreferenced. One hashed difference per table: probing the
-- checkpoints once per blob (0004's form) waded through the index entries of
-- rows a prune had just deleted, 6.8 s for the 3,600 blobs of a
-- 3,000-checkpoint thread (migration 0005 has the measurement).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_gc_thread(p_thread_id text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_gc_thread$
BEGIN
    DELETE FROM {schema}.blobs b
    USING (
        SELECT x.checkpoint_ns, x.channel, x.version
        FROM {schema}.blobs x
        WHERE x.thread_id = p_thread_id
        EXCEPT
        SELECT c.checkpoint_ns, v.channel, v.version
        FROM {schema}.checkpoints c, unnest(c.channels, c.versions) AS v(channel, version)
        WHERE c.thread_id = p_thread_id AND v.version IS NOT NULL
    ) AS u
    WHERE b.thread_id = p_thread_id AND b.checkpoint_ns = u.checkpoint_ns
      AND b.channel = u.channel AND b.version = u.version;
    -- A chunk_refs value is a flat list of 16-byte addresses, or a tree: a tag
    -- byte, its depth, its top nodes, each node a chunk (stored under its
    -- address and the byte 'n') listing the addresses of the level below
    -- (chunking.py); the nodes are followed level by level. Every statement
    -- names the one thread: Citus routes a recursive query only then.
    DELETE FROM {schema}.chunks k
    USING (
        WITH RECURSIVE e(hash, depth) AS (
            SELECT substring(b.chunk_refs FROM g.i * 16 + 1 + mod(length(b.chunk_refs), 16) FOR 16),
                   CASE WHEN mod(length(b.chunk_refs), 16) = 2
                        THEN get_byte(b.chunk_refs, 1) ELSE 0 END
            FROM {schema}.blobs b, generate_series(0, length(b.chunk_refs) / 16 - 1) AS g(i)
            WHERE b.thread_id = p_thread_id AND b.chunk_refs IS NOT NULL
          UNION
            SELECT substring(n.data FROM g.i * 16 + 1 FOR 16), e.depth - 1
            FROM e
            JOIN {schema}.chunks n
              ON n.thread_id = p_thread_id AND n.hash = e.hash || '\x6e'::bytea,
                 generate_series(0, length(n.data) / 16 - 1) AS g(i)
            WHERE e.depth > 0
        )
        SELECT x.hash
        FROM {schema}.chunks x
        WHERE x.thread_id = p_thread_id
        EXCEPT
        SELECT CASE WHEN e.depth > 0 THEN e.hash || '\x6e'::bytea ELSE e.hash END
        FROM e
    ) AS u
    WHERE k.thread_id = p_thread_id AND k.hash = u.hash;
END
$pgcheckpoint_gc_thread$;
