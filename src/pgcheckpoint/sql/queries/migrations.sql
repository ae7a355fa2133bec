-- The migration runner's statements (migrations.py, routines.py). `{schema}`
-- is the quoted schema; `-- name:` blocks: see _queries.py.

-- name: migrations_applied
SELECT version, checksum FROM {schema}.pgcheckpoint_migrations;

-- name: relation_exists
SELECT pg_catalog.to_regclass(%(table)s) IS NOT NULL;

-- name: schema_exists
-- CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the
-- schema exists, which the owner role (docs/security.md) does not have.
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s);

-- name: migrations_compat_column
-- Tables made before compatibility was recorded.
ALTER TABLE {schema}.pgcheckpoint_migrations ADD COLUMN IF NOT EXISTS compatible_with integer;

-- name: may_migrate
-- Whether this role has the rights of the owner of the migrations table (a
-- superuser always has).
SELECT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE'), current_user
FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(%(table)s);

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS {schema}.pgcheckpoint_migrations (
    version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT pg_catalog.now(), compatible_with integer);

-- name: migration_record
INSERT INTO {schema}.pgcheckpoint_migrations (version, name, checksum, compatible_with)
VALUES (%(version)s, %(name)s, %(checksum)s, %(compatible_with)s);

-- name: migrations_newer
-- Newer migrations (this release's successors always have the column).
SELECT version, name, compatible_with FROM {schema}.pgcheckpoint_migrations
WHERE version > %(latest)s ORDER BY version;

-- name: migrations_details
SELECT version, name, checksum, applied_at FROM {schema}.pgcheckpoint_migrations;

-- name: migrations_has_compat
SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid =
    pg_catalog.to_regclass(%(table)s) AND attname = 'compatible_with' AND NOT attisdropped);

-- name: migrate_lock
SELECT pg_catalog.pg_advisory_lock(%(key)s);

-- name: unlock_all
SELECT pg_catalog.pg_advisory_unlock_all();

-- name: begin
BEGIN;

-- name: commit
COMMIT;

-- name: rollback
ROLLBACK;

-- name: routines_state
-- The schema's functions and procedures with the comment setup() leaves on
-- each (routines.py: "pgcheckpoint revision N sha256 HEX").
SELECT p.proname::text, pg_catalog.obj_description(p.oid, 'pg_proc')
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s;

-- name: routine_comment
-- {routine} is the routine's name (psycopg.sql.Identifier), unique in the
-- schema; the comment is a literal of digits, hex and spaces (routines.py).
COMMENT ON ROUTINE {schema}.{routine} IS {comment};

-- name: routines_overloaded
-- Names with more than one routine in the schema: a function file whose
-- arguments changed made a second one beside the old (routines.py refuses it).
SELECT p.proname::text,
       pg_catalog.string_agg(pg_catalog.pg_get_function_identity_arguments(p.oid), ' | ')
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s
GROUP BY p.proname HAVING pg_catalog.count(*) > 1;
