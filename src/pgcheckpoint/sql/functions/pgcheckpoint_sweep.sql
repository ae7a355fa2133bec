-- pgcheckpoint: revision 1
-- The whole sweep: the one driver, whoever sweeps. The library's
-- cleanup_old_checkpoints() (sweeper.py), the CLI and pg_cron all CALL it:
--   CALL {schema}.pgcheckpoint_sweep('{"keep_last": 20, "thread_ttl": 7776000}');
-- Takes the schema's session advisory lock (another sweeper running: a
-- NOTICE, and a report with "skipped": true), then sweeps p_batch_size threads
-- per transaction (pgcheckpoint_sweep_page), committing after each page, then
-- the writes of threads that have no row, {stray_limit} per transaction. Every
-- path out, an error included, releases the lock. p_dry_run rolls every
-- transaction back and only reports. A thread whose stored policy is bad is
-- skipped and counted (bad_policy, bad_policy_threads); it never stops the
-- sweep. The report is returned in p_report (and raised as a NOTICE). It
-- commits, so it must be CALLed on its own, not inside a transaction block.
-- The defaults are retention.py's, filled in when this file is rendered.
--
-- A procedure that commits cannot carry a SET search_path clause, so this one
-- runs with the caller's search_path: every function and operator it uses is
-- named with its schema (pg_catalog or this one), and the work is done in the
-- functions it calls, which pin their search_path.
CREATE OR REPLACE PROCEDURE {schema}.pgcheckpoint_sweep(
    p_policy jsonb DEFAULT NULL,
    p_batch_size integer DEFAULT {default_batch_size},
    p_orphan_grace interval DEFAULT '{default_orphan_grace}',
    p_dry_run boolean DEFAULT false,
    INOUT p_report jsonb DEFAULT NULL
)
LANGUAGE plpgsql
AS $pgcheckpoint_sweep$
DECLARE
    v_key pg_catalog.int8 := {schema}.pgcheckpoint_sweep_lock_key();
    v_after pg_catalog.text := '';
    v_report pg_catalog.jsonb;
    v_n pg_catalog.int8;
    v_bytes pg_catalog.int8;
    v_error pg_catalog.text := {schema}.pgcheckpoint_policy_error(p_policy);
BEGIN
    IF p_batch_size IS NULL OR p_batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('pgcheckpoint_sweep: batch size must be >= 1, got %s',
                                        p_batch_size);
    END IF;
    IF p_orphan_grace IS NULL
       OR p_orphan_grace OPERATOR(pg_catalog.<) '0'::pg_catalog.interval THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('pgcheckpoint_sweep: orphan grace must be >= 0, got %s',
                                        p_orphan_grace);
    END IF;
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('pgcheckpoint_sweep: bad policy: %s', v_error);
    END IF;
    v_report := pg_catalog.jsonb_build_object(
        'dry_run', p_dry_run, 'skipped', false, 'threads_scanned', 0, 'batches', 0,
        'threads', 0, 'checkpoints', 0, 'blobs', 0, 'chunks', 0, 'writes', 0,
        'bytes_freed', 0, 'bad_policy', 0, 'bad_policy_threads', '[]'::pg_catalog.jsonb);
    IF NOT pg_catalog.pg_try_advisory_lock(v_key) THEN
        RAISE NOTICE 'pgcheckpoint_sweep: another sweep of this schema is running; skipped';
        p_report := v_report OPERATOR(pg_catalog.||) '{"skipped": true}'::pg_catalog.jsonb;
        RETURN;
    END IF;
    LOOP
        BEGIN
            SELECT s.last_thread, s.report INTO v_after, v_report
            FROM {schema}.pgcheckpoint_sweep_page(v_after, p_batch_size, p_policy,
                                                  p_orphan_grace, v_report) s;
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_catalog.pg_advisory_unlock(v_key);
            RAISE;
        END;
        IF p_dry_run THEN
            ROLLBACK;
        ELSE
            COMMIT;
        END IF;
        EXIT WHEN v_after IS NULL;
    END LOOP;
    LOOP
        BEGIN
            SELECT s.n, s.bytes INTO v_n, v_bytes
            FROM {schema}.pgcheckpoint_sweep_strays(p_orphan_grace, {stray_limit}) s;
            v_report := {schema}.pgcheckpoint_sweep_tally(v_report, 'writes', v_n, v_bytes,
                                                         NULL);
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_catalog.pg_advisory_unlock(v_key);
            RAISE;
        END;
        -- A dry run keeps one transaction: what it deleted stays invisible to
        -- its next statement, so the loop ends, and the ROLLBACK undoes it all.
        EXIT WHEN v_n OPERATOR(pg_catalog.<) {stray_limit}::pg_catalog.int8;
        IF NOT p_dry_run THEN
            COMMIT;
        END IF;
    END LOOP;
    IF p_dry_run THEN
        ROLLBACK;
    ELSE
        COMMIT;
    END IF;
    PERFORM pg_catalog.pg_advisory_unlock(v_key);
    p_report := v_report;
    RAISE NOTICE 'pgcheckpoint_sweep%: %',
        CASE WHEN p_dry_run THEN ' (dry run)' ELSE '' END, v_report;
END
$pgcheckpoint_sweep$;
