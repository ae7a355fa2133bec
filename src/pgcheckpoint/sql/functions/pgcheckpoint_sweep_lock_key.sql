-- pgcheckpoint: revision 1
-- The advisory lock key of this schema's sweeper: one sweeper per schema at a
-- time, whoever runs it (the library, the CLI or pg_cron). The value is the
-- one migration 0004 computed, so a sweeper of an older release excludes a
-- newer one. current_schema() names the first schema of the search_path set
-- here, the one this function lives in; every call and operator names
-- pg_catalog, so nothing a role creates in that schema is run instead.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_sweep_lock_key() RETURNS bigint
LANGUAGE sql STABLE
SET search_path = {schema}, pg_catalog, pg_temp
AS $pgcheckpoint_key$
SELECT pg_catalog.hashtextextended(
    'pgcheckpoint.sweep:'::pg_catalog.text OPERATOR(pg_catalog.||) pg_catalog.current_schema(),
    0::pg_catalog.int8);
$pgcheckpoint_key$;
