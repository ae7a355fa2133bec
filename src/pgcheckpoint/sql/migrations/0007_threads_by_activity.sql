-- pgcheckpoint: no-transaction
-- pgcheckpoint: compatible-with 4
-- The thread list by last activity (thread_summaries: the inspector's threads
-- page, keyset-paged on (updated_at, thread_id COLLATE "C") descending) reads
-- only the rows of the page it shows with this index; without it every page
-- sorted the whole threads table (bench.inspector, 100,000 threads on a loaded
-- 2-CPU box: first page 243 ms without, 73 ms with; a page deep in the list
-- 103 ms without, 22 ms with). Built CONCURRENTLY so that agents keep writing
-- while it is made; IF NOT EXISTS for databases where users created it by hand
-- as docs/inspector.md said to before this migration existed.
CREATE INDEX CONCURRENTLY IF NOT EXISTS threads_updated_idx
    ON {schema}.threads (updated_at DESC, thread_id COLLATE "C" DESC);
