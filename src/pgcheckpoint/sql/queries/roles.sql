-- The least-privilege roles (roles.py, docs/security.md) and health_check's
-- security probe. `{schema}`, `-- name:` blocks and fragments: see _queries.py.
-- The role statements are composed with psycopg.sql (roles.py): {schema},
-- {owner}, {runtime}, {readonly}, {role}, {table}, {routine} and {db} are
-- Identifiers, {rights} a list of fixed keywords of roles.py, {verifier} a
-- Literal; no name is formatted into the text.

-- name: roles_state_me
SELECT current_user, current_database(),
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user);

-- name: roles_state_roles
SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%(names)s);

-- name: roles_state_schema
SELECT pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace
WHERE nspname = %(schema)s;

-- name: roles_state_tables
SELECT c.relname, pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s);

-- name: roles_state_routines
-- Our routines are all named pgcheckpoint_*; names are unique (ALTER/GRANT
-- ... ROUTINE without an argument list relies on that, and a second routine of
-- the same name would be a planted overload: GRANT then fails).
SELECT p.proname, pg_catalog.pg_get_userbyid(p.proowner) FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s AND p.proname LIKE 'pgcheckpoint\_%%' ORDER BY 1;

-- name: roles_state_member
SELECT pg_catalog.pg_has_role(current_user, %(role)s, 'MEMBER');

-- name: role_create
CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;

-- name: role_admin_member_of_owner
-- ALTER DEFAULT PRIVILEGES FOR ROLE and ALTER ... OWNER TO need it.
GRANT {owner} TO CURRENT_USER;

-- name: role_connect
GRANT CONNECT ON DATABASE {db} TO {owner}, {runtime}, {readonly};

-- name: role_create_schema
CREATE SCHEMA {schema} AUTHORIZATION {owner};

-- name: role_owner_schema
-- An existing schema (public, say) is not taken over: the owner may create in
-- it and owns pgcheckpoint's objects only.
GRANT USAGE, CREATE ON SCHEMA {schema} TO {owner};

-- name: role_own_table
ALTER TABLE {schema}.{table} OWNER TO {owner};

-- name: role_own_routine
ALTER ROUTINE {schema}.{routine} OWNER TO {owner};

-- name: role_usage
GRANT USAGE ON SCHEMA {schema} TO {role};

-- name: role_migrations_read
-- setup() by the runtime role reads the migrations table (and does nothing more).
GRANT SELECT ON {schema}.{table} TO {runtime}, {readonly};

-- name: role_migrations_no_write
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {schema}.{table} FROM {runtime};

-- name: role_runtime_table
GRANT {rights} ON {schema}.{table} TO {runtime};

-- name: role_readonly_table
GRANT SELECT ON {schema}.{table} TO {readonly};

-- name: role_execute
GRANT EXECUTE ON ROUTINE {schema}.{routine} TO {runtime};

-- name: role_default_runtime_tables
-- Every table and function the owner creates later gets the same rights, so a
-- new migration run by the owner needs no new grant.
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}
GRANT {rights} ON TABLES TO {runtime};

-- name: role_default_runtime_sequences
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}
GRANT USAGE, SELECT ON SEQUENCES TO {runtime};

-- name: role_default_runtime_routines
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}
GRANT EXECUTE ON ROUTINES TO {runtime};

-- name: role_default_readonly_tables
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}
GRANT SELECT ON TABLES TO {readonly};

-- name: role_password
-- {verifier}: the SCRAM verifier computed on the client, never the password.
ALTER ROLE {role} PASSWORD {verifier};

-- name: security_probe
-- health_check's: the current role, whether it is a superuser, whether it has
-- the rights of the owner of pgcheckpoint's checkpoints table, whether it may
-- CREATE in the schema (and so plant a table or function there), and the TLS
-- state of this connection as the server sees it (pg_stat_ssl: one row per
-- backend, readable for one's own backend by any role).
SELECT current_user, r.rolsuper,
       (SELECT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')
        FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(%(table)s)),
       (SELECT pg_catalog.has_schema_privilege(n.oid, 'CREATE')
        FROM pg_catalog.pg_namespace n WHERE n.nspname = %(schema)s),
       s.ssl, s.version, s.cipher, s.bits
FROM pg_catalog.pg_roles r
LEFT JOIN pg_catalog.pg_stat_ssl s ON s.pid = pg_catalog.pg_backend_pid()
WHERE r.rolname = current_user;
