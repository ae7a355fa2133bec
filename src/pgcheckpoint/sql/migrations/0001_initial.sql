-- The initial pgcheckpoint schema. docs/schema.md gives the reason for every
-- table and index. Rules every table follows:
--  * every primary key and unique index starts with thread_id, and no sequence
--    or constraint spans threads, so the tables can be distributed by thread_id;
--  * column names follow langgraph-checkpoint-sqlite's, so its rows map one to one;
--  * values are stored as the serde's bytes (compressed on the client when large),
--    never as JSON, and with STORAGE EXTERNAL so PostgreSQL does not spend time
--    on pglz for bytes that are already compressed or incompressible.

-- One row per thread: the per-thread lock that writers and garbage collection
-- take (see queries.sql, put_checkpoint), and the cheap answer to "which threads
-- exist, and when were they last written".
CREATE TABLE {schema}.threads (
    thread_id text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per checkpoint. `checkpoint` holds the serde bytes of the checkpoint
-- without its large channel values; `channels`/`versions` list every key of
-- channel_values with the version whose blob holds it (NULL when the value is
-- small and kept inline in `checkpoint`), so a read finds its blobs by primary
-- key without parsing JSON.
CREATE TABLE {schema}.checkpoints (
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL DEFAULT '',
    checkpoint_id text NOT NULL,
    parent_checkpoint_id text,
    type text NOT NULL,
    checkpoint bytea NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    channels text[] NOT NULL DEFAULT '{}',
    versions text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
ALTER TABLE {schema}.checkpoints ALTER COLUMN checkpoint SET STORAGE EXTERNAL;

-- list() of a thread across all its namespaces, newest first (LangGraph's
-- history calls pass a namespace and use the primary key instead).
CREATE INDEX checkpoints_thread_id_idx ON {schema}.checkpoints (thread_id, checkpoint_id);

-- delete_for_runs(run_ids) looks checkpoints up by the run that wrote them.
CREATE INDEX checkpoints_run_id_idx ON {schema}.checkpoints ((metadata ->> 'run_id'))
    WHERE metadata ? 'run_id';

-- One row per (channel, version): a channel value is written once, when its
-- version changes, and shared by every checkpoint that still holds it. Small
-- values sit in `value`; large ones are split into content-defined chunks and
-- `chunk_refs` lists their 16-byte hashes in order.
CREATE TABLE {schema}.blobs (
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL DEFAULT '',
    channel text NOT NULL,
    version text NOT NULL,
    type text NOT NULL,
    value bytea,
    chunk_refs bytea,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);
ALTER TABLE {schema}.blobs ALTER COLUMN value SET STORAGE EXTERNAL;

-- Content-addressed pieces of large values, per thread. A growing list (the
-- usual `messages` channel) changes only its first and last chunks from one
-- step to the next, so storage grows with what changed, not with the state.
CREATE TABLE {schema}.chunks (
    thread_id text NOT NULL,
    hash bytea NOT NULL,
    compressed boolean NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (thread_id, hash)
);
ALTER TABLE {schema}.chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Pending writes of the tasks of a superstep. No foreign key to checkpoints:
-- LangGraph may save a superstep's writes before (durability="async") or
-- without (durability="exit") the checkpoint they belong to; see
-- tests/test_write_order.py.
CREATE TABLE {schema}.writes (
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL DEFAULT '',
    checkpoint_id text NOT NULL,
    task_id text NOT NULL,
    idx integer NOT NULL,
    channel text NOT NULL,
    type text NOT NULL,
    value bytea,
    task_path text NOT NULL DEFAULT '',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
ALTER TABLE {schema}.writes ALTER COLUMN value SET STORAGE EXTERNAL;
