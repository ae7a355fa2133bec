-- pgcheckpoint: revision 2
-- The one-writer check as releases before migration 0010 call it, from their
-- put_checkpoint statement: the check (pgcheckpoint_put_check, same arguments,
-- same refusals), then, for a root-namespace put, `threads.head` cleared
-- (NULL: not known). Those releases write checkpoints without moving `head`;
-- clearing it keeps the invariant put_head relies on (NULL or the newest root
-- checkpoint), so a process of this release never accepts a put on a head an
-- older process has already built on (docs/migrations.md, rolling upgrades).
-- This release never calls it. The statement that calls it has just upserted
-- the same row; a later command of a VOLATILE function sees and updates that
-- row version (tests/test_upgrades.py replays the old statement).
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_put_guard(
    p_thread_id text, p_checkpoint_ns text, p_parent text, p_checkpoint_id text, p_mode text
) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_put_guard$
BEGIN
    PERFORM {schema}.pgcheckpoint_put_check(p_thread_id, p_checkpoint_ns, p_parent,
                                            p_checkpoint_id, p_mode);
    IF p_checkpoint_ns = '' THEN
        UPDATE {schema}.threads t SET head = NULL
        WHERE t.thread_id = p_thread_id AND t.head IS NOT NULL;
    END IF;
    RETURN true;
END
$pgcheckpoint_put_guard$;
