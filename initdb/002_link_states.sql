-- 002_link_states.sql — tombstones for deleted links, cluster metadata, and what the tutorial left.
--
-- Run on every shard after 001, like it: idempotent (a second run changes nothing and takes no
-- lock beyond a catalog check), one transaction. Rules and rationale: docs/schema.md.
--
--   url_table.deleted_at   NULL for a live link; the time of its deletion for a tombstone. A
--                          deleted id keeps its row, so it is never handed to another URL.
--   url_table_url_hash_idx dropped: nothing looks links up by URL (creates derive ids from it).
--   shardurl_meta          key/value facts about this shard that shardurl reads:
--                            schema_version  the newest initdb/ file applied ('2')
--                            tutorial_ids    how many rows the tutorial stored under its own
--                                            derived id (5 characters of standard base64 SHA-256),
--                                            counted once, by the first run of this file

BEGIN;
SET LOCAL search_path = public;
SET LOCAL client_min_messages = warning;

CREATE TABLE IF NOT EXISTS shardurl_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

ALTER TABLE url_table ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
DROP INDEX IF EXISTS url_table_url_hash_idx;

DO $tutorial$
DECLARE
    n_tutorial bigint;
    n_unsafe   bigint;
    sample     text;
BEGIN
    IF EXISTS (SELECT 1 FROM shardurl_meta WHERE key = 'tutorial_ids') THEN
        RETURN;  -- counted by an earlier run
    END IF;

    -- The tutorial's id of a URL is derivable from it: a create looks there first on shards
    -- where this count is not 0, so a URL the tutorial stored keeps its 5-character id.
    SELECT count(*) INTO n_tutorial FROM url_table
     WHERE length(url_id) = 5
       AND url_id = left(encode(sha256(convert_to(url, 'UTF8')), 'base64'), 5);
    INSERT INTO shardurl_meta (key, value) VALUES ('tutorial_ids', n_tutorial::text);
    IF n_tutorial > 0 THEN
        RAISE WARNING 'url_table upgrade: % row(s) hold the tutorial''s own id of their URL; a create of such a URL answers with that id', n_tutorial;
    END IF;

    -- Rows the tutorial stored without validation that shardurl will not redirect to: not an
    -- absolute http(s) URL with a host, or holding whitespace, control characters or a backslash.
    -- They stay: GET /urls/{id} shows them; GET /{id} answers 409 instead of redirecting. (The
    -- server checks every redirect with its full rules; this count is the quick version.)
    SELECT count(*), string_agg(quote_literal(url_id), ', ' ORDER BY id)
           FILTER (WHERE rn <= 10)
      INTO n_unsafe, sample
      FROM (SELECT id, url_id, row_number() OVER (ORDER BY id) AS rn FROM url_table
             WHERE url !~* '^https?://[^/?#@[:space:][:cntrl:]\\]+([/?#]|$)'
                OR url ~ '[[:space:][:cntrl:]\\]') AS unsafe;
    IF n_unsafe > 0 THEN
        RAISE WARNING 'url_table upgrade: % row(s) hold a URL that is never redirected to (empty, relative, javascript:, data:, mailto:, ...): they stay readable with GET /urls/{id}; first ids: %', n_unsafe, sample;
    END IF;
END
$tutorial$;

INSERT INTO shardurl_meta (key, value) VALUES ('schema_version', '2')
ON CONFLICT (key) DO UPDATE SET value = excluded.value
 WHERE shardurl_meta.value::int < excluded.value::int;

COMMIT;
