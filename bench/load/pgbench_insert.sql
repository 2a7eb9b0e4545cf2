-- pgbench script: the database work of one POST /urls that creates a link, as a plain client
-- would do it: one single-row INSERT into the shard's url_table, its own transaction
-- (autocommit, synchronous_commit on), values unique per transaction (the client's number and a
-- random number below 10^12: a repeat is as unlikely as for the wrk side).
--   pgbench -n -M prepared -c64 -j2 -T10 -f bench/load/pgbench_insert.sql postgres
\set r random(1, 1000000000000)
INSERT INTO url_table (url, url_id)
VALUES ('https://bench.example/pgbench/' || :client_id::text || '/' || :r::text,
        'p' || :client_id::text || '.' || :r::text)
ON CONFLICT (url_id) DO NOTHING;
