-- Storage reports, VACUUM permissions and the health probe.
-- `{schema}`, `-- name:` blocks and fragments: see _queries.py.

-- name: vacuum_permissions
-- Which of our tables exist, and whether the current role may VACUUM each: owner of
-- the table or of the database, superuser, or (PostgreSQL 17+) MAINTAIN.
SELECT c.relname::text,
       pg_catalog.pg_has_role(c.relowner, 'USAGE')
       OR pg_catalog.pg_has_role((SELECT d.datdba FROM pg_catalog.pg_database d
                       WHERE d.datname = pg_catalog.current_database()), 'USAGE')
       OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
       OR CASE WHEN pg_catalog.current_setting('server_version_num')::int >= 170000
               THEN pg_catalog.has_table_privilege(c.oid, 'MAINTAIN') ELSE false END
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s::text[]) AND c.relkind IN ('r', 'p');

-- name: storage_tables
-- Every table of the schema with its heap, TOAST (table and index) and index
-- bytes; total = pg_total_relation_size. reltuples is -1 for a table never
-- analyzed: the caller counts those rows exactly.
SELECT c.relname::text, c.reltuples::bigint,
       pg_catalog.pg_table_size(c.oid)
           - coalesce(pg_catalog.pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       coalesce(pg_catalog.pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       pg_catalog.pg_indexes_size(c.oid),
       pg_catalog.pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
ORDER BY pg_catalog.pg_total_relation_size(c.oid) DESC, c.relname;

-- name: storage_threads
-- The fattest threads by stored bytes (the measure of pgcheckpoint_measure).
WITH s AS (
    SELECT thread_id, pg_catalog.count(*) AS checkpoints,
           pg_catalog.sum(pg_catalog.pg_column_size(checkpoint)
               + pg_catalog.pg_column_size(metadata)
               + pg_catalog.pg_column_size(channels) + pg_catalog.pg_column_size(versions)) AS bytes
    FROM {schema}.checkpoints GROUP BY thread_id
    UNION ALL
    SELECT thread_id, 0, pg_catalog.sum(coalesce(pg_catalog.pg_column_size(value), 0)
                             + coalesce(pg_catalog.pg_column_size(chunk_refs), 0))
    FROM {schema}.blobs GROUP BY thread_id
    UNION ALL
    SELECT thread_id, 0, pg_catalog.sum(pg_catalog.pg_column_size(data))
    FROM {schema}.chunks GROUP BY thread_id
    UNION ALL
    SELECT thread_id, 0, pg_catalog.sum(coalesce(pg_catalog.pg_column_size(value), 0))
    FROM {schema}.writes GROUP BY thread_id
)
SELECT thread_id, pg_catalog.sum(checkpoints)::bigint, pg_catalog.sum(bytes)::bigint
FROM s GROUP BY thread_id
ORDER BY 3 DESC, 1
LIMIT %(limit)s;

-- name: storage_thread_count
SELECT pg_catalog.count(*) FROM {schema}.threads;

-- name: health_probe
-- health_check(): the server's identity and the settings that decide whether
-- an acknowledged checkpoint survives a crash. inet_server_port() differs
-- from the port the client dialled when a proxy or pooler sits in between.
SELECT pg_catalog.current_setting('server_version'),
    pg_catalog.current_setting('server_version_num')::int,
       pg_catalog.current_setting('fsync'), pg_catalog.current_setting('synchronous_commit'),
       pg_catalog.current_setting('full_page_writes'), pg_catalog.pg_is_in_recovery(),
           pg_catalog.inet_server_port(),
       pg_catalog.current_setting('synchronous_standby_names');

-- name: count_rows
-- A table's exact row count; {table} is one of our table names
-- (psycopg.sql.Identifier), for a table never analyzed.
SELECT pg_catalog.count(*) FROM {schema}.{table};

-- name: vacuum
-- VACUUM cannot run in a transaction block: optimize() runs in autocommit.
VACUUM (ANALYZE) {schema}.{table};

-- name: vacuum_full
VACUUM (FULL, ANALYZE) {schema}.{table};
