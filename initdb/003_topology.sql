-- 003_topology.sql — what moving links between shards needs (shardurl reshard, docs/resharding.md).
--
-- Run on every shard after 002, like it: idempotent, one transaction. Rules: docs/schema.md.
--
--   url_table's replica identity is its url_id index: logical replication identifies a moved row
--             by its id (the shard-local `id` column is not replicated).
--   shardurl_meta.ring_version  the version of the ring this shard serves ('0': the config file's)
--   shardurl_batch(v)  opens every batch of statements an instance sends: makes the batch's commit
--             durable (synchronous_commit on, local to its transaction) and refuses the batch with
--             SQLSTATE SU001 when this shard serves a newer ring than the instance's `v`.
--   shardurl_move_marker  one row per (source, target) pair of a reshard, written on the source and
--             replicated with the moving rows: when the target shows a token written after some
--             moment on the source, everything the source committed before it has arrived.
--   shardurl_fence()   the trigger function a reshard puts on a source shard during its cutover:
--             refuses (SQLSTATE SU002) a write to a link that is moving to another shard, until
--             shardurl_meta.fence_until passes (so a reshard that dies mid-cutover does not block
--             writes for good) or for good once fence_until is 'infinity'.

BEGIN;
SET LOCAL search_path = public;
SET LOCAL client_min_messages = warning;

DO $identity$
BEGIN
    IF (SELECT relreplident FROM pg_class WHERE oid = 'url_table'::regclass) <> 'i' THEN
        ALTER TABLE url_table REPLICA IDENTITY USING INDEX url_table_url_id_key;
    END IF;
END
$identity$;

INSERT INTO shardurl_meta (key, value) VALUES ('ring_version', '0') ON CONFLICT (key) DO NOTHING;

CREATE TABLE IF NOT EXISTS shardurl_move_marker (
    pair  text        PRIMARY KEY,
    token text        NOT NULL,
    at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE OR REPLACE FUNCTION shardurl_batch(instance_version bigint) RETURNS void
LANGUAGE plpgsql AS $function$
DECLARE
    current_version bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    SELECT value::bigint INTO current_version FROM shardurl_meta WHERE key = 'ring_version';
    IF current_version > instance_version THEN
        RAISE EXCEPTION 'this shard serves ring version %, newer than %', current_version, instance_version
            USING ERRCODE = 'SU001';
    END IF;
END
$function$;

CREATE OR REPLACE FUNCTION shardurl_fence() RETURNS trigger
LANGUAGE plpgsql AS $function$
DECLARE
    fence_until timestamptz;
    moving text := CASE WHEN TG_OP = 'DELETE' THEN OLD.url_id ELSE NEW.url_id END;
BEGIN
    SELECT value::timestamptz INTO fence_until FROM shardurl_meta WHERE key = 'fence_until';
    IF fence_until IS NULL OR fence_until > clock_timestamp() THEN
        RAISE EXCEPTION 'link % is moving to another shard', moving USING ERRCODE = 'SU002';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$function$;

INSERT INTO shardurl_meta (key, value) VALUES ('schema_version', '3')
ON CONFLICT (key) DO UPDATE SET value = excluded.value
 WHERE shardurl_meta.value::int < excluded.value::int;

COMMIT;
