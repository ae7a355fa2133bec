-- pgcheckpoint: revision 1
-- pgcheckpoint_gc for one thread: its blobs that no remaining checkpoint
-- references, then its chunks no remaining blob references. The same two
-- hashed differences as pgcheckpoint_gc(text[]) (change them together), every
-- table filtered on `thread_id = p_thread_id`, so on Citus the whole call runs
-- on the thread's node (it is called from the delegated prune and
-- delete_checkpoint functions). Call it only while holding the thread's row
-- lock.
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
    DELETE FROM {schema}.chunks k
    USING (
        SELECT x.hash
        FROM {schema}.chunks x
        WHERE x.thread_id = p_thread_id
        EXCEPT
        SELECT substring(b.chunk_refs FROM g.i * 16 + 1 FOR 16)
        FROM {schema}.blobs b, generate_series(0, length(b.chunk_refs) / 16 - 1) AS g(i)
        WHERE b.thread_id = p_thread_id AND b.chunk_refs IS NOT NULL
    ) AS u
    WHERE k.thread_id = p_thread_id AND k.hash = u.hash;
END
$pgcheckpoint_gc_thread$;
