-- Retention: the sweep (its work is the procedure pgcheckpoint_sweep,
-- sql/functions/), pg_cron, per-thread policies and pins.
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: sweep
-- A whole sweep (the procedure pgcheckpoint_sweep, sql/functions/): pages of
-- threads, each in its own transaction, then the stray writes; returns its
-- report (a JSON object: retention.SweepReport.from_report). It commits, so
-- it runs in autocommit mode (the plan is own_transactions).
CALL {schema}.pgcheckpoint_sweep(%(policy)s::jsonb, %(batch_size)s::integer,
                                 %(orphan_grace)s::interval, %(dry_run)s::boolean, NULL);

-- name: cron_installed
-- Whether pg_cron's functions are in this database (schedule_cleanup).
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'cron' AND p.proname = 'schedule');

-- name: cron_schedule
-- A pg_cron job (created, or replaced by name) that CALLs the sweep procedure
-- with the saver's policy; format() quotes the schema (%I) and the values (%L)
-- on the server, so the job's command is built from parameters only.
SELECT cron.schedule(%(name)s, %(schedule)s, c.command), c.command
FROM (SELECT pg_catalog.format('CALL %%I.pgcheckpoint_sweep(%%L::jsonb, %%s, %%L::interval)',
                    %(schema)s::text, %(policy)s::text, %(batch_size)s::integer,
                    %(orphan_grace)s::interval) AS command) c;

-- name: cron_unschedule
-- Removes the current user's pg_cron jobs of that name; a row per job removed.
SELECT cron.unschedule(j.jobid) FROM cron.job j
WHERE j.jobname = %(name)s AND j.username = current_user;

-- name: retention_set_thread
-- A thread's own policy (NULL = the saver's); creates the thread row if needed
-- so a policy can be set before the first run.
INSERT INTO {schema}.threads AS t (thread_id, retention)
VALUES (%(thread_id)s, %(retention)s::jsonb)
ON CONFLICT (thread_id) DO UPDATE SET retention = EXCLUDED.retention;

-- name: retention_get_thread
SELECT retention FROM {schema}.threads WHERE thread_id = %(thread_id)s;

-- name: retention_pin_thread
INSERT INTO {schema}.threads AS t (thread_id, pinned)
VALUES (%(thread_id)s, %(pinned)s)
ON CONFLICT (thread_id) DO UPDATE SET pinned = EXCLUDED.pinned;

-- name: retention_pin_checkpoint
UPDATE {schema}.checkpoints SET pinned = %(pinned)s
WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
  AND checkpoint_id = %(checkpoint_id)s
RETURNING checkpoint_id;
