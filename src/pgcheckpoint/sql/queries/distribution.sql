-- Distributing the schema on Citus (distribution.py). Object names are bound
-- parameters (regclass / regprocedure text), never SQL text; `-- name:`
-- blocks: see _queries.py.

-- name: has_citus
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus');

-- name: citus_table_state
-- Per table: its Citus kind ('h' hash-distributed, 'n' reference, NULL local)
-- and its distribution column. pg_dist_partition exists only with citus.
SELECT t.name, p.partmethod::text,
       CASE WHEN p.partmethod = 'h'
            THEN pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END,
       p.colocationid
FROM pg_catalog.unnest(%(tables)s::text[]) AS t(name)
LEFT JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = pg_catalog.to_regclass(t.name);

-- name: citus_function_state
-- Every function and procedure of the schema: its signature as regprocedure
-- text, whether its first argument carries a thread id, and what Citus knows
-- of it (registered at all; the index of its distribution argument; whether
-- its calls are delegated inside transactions too), and whether they should be
-- (its name is in %(delegated)s).
SELECT p.oid::pg_catalog.regprocedure::text,
       p.pronargs > 0 AND p.proargtypes[0] = 'pg_catalog.text'::pg_catalog.regtype
           AND (p.proargnames)[1] = %(thread_argument)s,
       o.objid IS NOT NULL,
       o.distribution_argument_index,
       o.colocationid,
       coalesce(o.force_delegation, false),
       p.proname = ANY (%(delegated)s::text[])
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_catalog.pg_dist_object o
       ON o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND o.objid = p.oid
WHERE n.nspname = %(schema)s
ORDER BY 1;

-- name: citus_distribute
SELECT pg_catalog.create_distributed_table(%(table)s::regclass, %(column)s,
                                           colocate_with => %(colocate_with)s);

-- name: citus_truncate_local
-- create_distributed_table copies existing rows into the shards and keeps the
-- local ones (Citus prints a NOTICE); they are unreachable once distributed.
SELECT pg_catalog.truncate_local_data_after_distributing_table(%(table)s::regclass);

-- name: citus_reference
SELECT pg_catalog.create_reference_table(%(table)s::regclass);

-- name: citus_route_function
-- force_delegation: a call is delegated inside an explicit transaction too
-- (the function then touches only rows of its thread); run again, it updates
-- an already distributed function.
SELECT pg_catalog.create_distributed_function(%(function)s::regprocedure, '$1',
                                              colocate_with => %(colocate_with)s,
                                              force_delegation => %(force_delegation)s);

-- name: citus_register_function
SELECT pg_catalog.create_distributed_function(%(function)s::regprocedure);
