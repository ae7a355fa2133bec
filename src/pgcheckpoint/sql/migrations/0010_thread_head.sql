-- pgcheckpoint: compatible-with 8
-- The one-writer rule as a compare-and-set on the thread row the put already
-- upserts (issue 16; docs/concurrency.md, "How the check runs"): `head` holds
-- the id of the newest checkpoint of the thread's root namespace, or NULL when
-- that is not known. A put whose parent is `head` moves it in the same upsert
-- (put_head); any other put, or one that finds `head` NULL or different, takes
-- the checked statement (put_checkpoint, pgcheckpoint_put_check), which raises
-- the precise refusal or, when `head` only lagged, writes and sets it.
--
-- The invariant: `head` is NULL or the newest root checkpoint id. NULL is
-- always safe (it costs the next put one more round trip); so whatever this
-- release cannot keep exact sets NULL: the previous release's puts (through
-- pgcheckpoint_put_guard, whose new text clears it), lock_threads (garbage
-- collection, prune, delete_for_runs, rollback, delete_checkpoint, of either
-- release), imports and copy_thread.
--
-- Filled here from each thread's newest root checkpoint. ADD COLUMN takes the
-- table's ACCESS EXCLUSIVE lock for this transaction, so no put (every put
-- upserts the thread row first) can commit between the fill and the commit.
-- Releases from 0008 on keep working on this schema, as on 0009's (they never
-- name the column; their puts call pgcheckpoint_put_guard and their garbage
-- collection pgcheckpoint_lock_threads, whose new texts setup() applies right
-- after this migration): compatible-with 8, as 0009.
ALTER TABLE {schema}.threads ADD COLUMN head text;

UPDATE {schema}.threads t
SET head = (SELECT c.checkpoint_id FROM {schema}.checkpoints c
            WHERE c.thread_id = t.thread_id AND c.checkpoint_ns = ''
            ORDER BY c.checkpoint_id DESC LIMIT 1);
