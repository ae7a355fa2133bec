-- Retention (issue 4): per-thread policy overrides, pins, and the age of writes.
-- Every column is added with a constant or STABLE default, so on PostgreSQL 11+
-- none of these statements rewrites its table (they take a brief ACCESS
-- EXCLUSIVE lock only). The sweeper itself needs no table: one sweeper per
-- schema at a time is enforced with a session advisory lock (see sweeper.py).

-- `retention`: the thread's own RetentionPolicy as JSON (RetentionPolicy.to_json),
-- NULL = the saver's policy. `pinned`: the sweeper never touches the thread.
ALTER TABLE {schema}.threads
    ADD COLUMN retention jsonb,
    ADD COLUMN pinned boolean NOT NULL DEFAULT false;

-- A pinned checkpoint is never removed by a policy (nor are the ancestors its
-- DeltaChannels need); delete_thread and prune still remove it, as asked.
ALTER TABLE {schema}.checkpoints
    ADD COLUMN pinned boolean NOT NULL DEFAULT false;

-- Writes can be saved before their checkpoint (durability="async") or for a
-- checkpoint that never commits (a crash): such orphans are removed once older
-- than the sweeper's grace period, which needs their age.
ALTER TABLE {schema}.writes
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
