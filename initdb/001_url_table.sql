-- 001_url_table.sql — shardurl shard schema: create url_table, or upgrade the tutorial's.
--
-- Run on every shard, in name order, by `psql -v ON_ERROR_STOP=1 ... -f` (scripts/cluster)
-- and once by the postgres image from /docker-entrypoint-initdb.d. Idempotent: a second run
-- changes nothing (every step checks the catalogs first and takes no lock when there is
-- nothing to do). One transaction: either the whole create/upgrade happens or none of it.
-- Rules and rationale: docs/schema.md.
--
-- Target schema (identical on a fresh shard and on an upgraded tutorial shard):
--   url_table(id bigserial PK, url text NOT NULL, url_id varchar(64) NOT NULL UNIQUE
--             CHECK (url_id <> ''), created_at timestamptz NOT NULL DEFAULT now())
--   url_table_quarantine: rows the upgrade could not serve (NULL/empty url_id, NULL url,
--             duplicates of a url_id), kept instead of being deleted.

BEGIN;
SET LOCAL search_path = public;
SET LOCAL client_min_messages = warning;

CREATE TABLE IF NOT EXISTS url_table_quarantine (
    id             bigint,                  -- the row's id in url_table
    url            text,
    url_id         text,
    reason         text        NOT NULL,    -- null_url_id | empty_url_id | null_url | duplicate_url_id
    kept_id        bigint,                  -- duplicate_url_id: id of the row that was kept
    quarantined_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS url_table (
    id         bigserial    PRIMARY KEY,
    url        text         NOT NULL,
    url_id     varchar(64)  NOT NULL,
    created_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT url_table_url_id_key UNIQUE (url_id),
    CONSTRAINT url_table_url_id_nonempty CHECK (url_id <> '')
);

-- Upgrade an existing (tutorial) url_table in place. No-op on the table created above.
DO $upgrade$
DECLARE
    tbl       constant regclass := 'url_table'::regclass;
    att_url   smallint;
    att_urlid smallint;
    id_type   text;
    seq       text;
    n_moved   bigint;
    clean     boolean;
BEGIN
    SELECT attnum INTO att_url   FROM pg_attribute WHERE attrelid = tbl AND attname = 'url'    AND NOT attisdropped;
    SELECT attnum INTO att_urlid FROM pg_attribute WHERE attrelid = tbl AND attname = 'url_id' AND NOT attisdropped;
    IF att_url IS NULL OR att_urlid IS NULL OR NOT EXISTS (
           SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'id' AND NOT attisdropped) THEN
        RAISE EXCEPTION 'url_table exists but lacks column id, url or url_id; refusing to guess how to upgrade it';
    END IF;

    -- The data is already clean iff url/url_id are NOT NULL and url_id has its unique and
    -- non-empty constraints; then nothing needs scanning or locking.
    SELECT (SELECT bool_and(attnotnull) FROM pg_attribute
             WHERE attrelid = tbl AND attnum IN (att_url, att_urlid))
       AND EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = tbl AND contype IN ('u', 'p') AND conkey = ARRAY[att_urlid])
       AND EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = tbl AND conname = 'url_table_url_id_nonempty')
      INTO clean;

    IF NOT clean THEN
        -- No concurrent writer may add new NULLs/duplicates while we fold.
        LOCK TABLE url_table IN ACCESS EXCLUSIVE MODE;

        -- 1. Rows that can't be served: no id to look up, or nothing to redirect to.
        --    Done before folding, so a url_id whose lowest row has a NULL url keeps
        --    serving its next (valid) row.
        WITH moved AS (
            DELETE FROM url_table
             WHERE url_id IS NULL OR url_id = '' OR url IS NULL
            RETURNING id, url, url_id
        )
        INSERT INTO url_table_quarantine (id, url, url_id, reason)
        SELECT id, url, url_id,
               CASE WHEN url_id IS NULL THEN 'null_url_id'
                    WHEN url_id = ''    THEN 'empty_url_id'
                    ELSE 'null_url' END
          FROM moved ORDER BY id;
        GET DIAGNOSTICS n_moved = ROW_COUNT;
        IF n_moved > 0 THEN
            RAISE WARNING 'url_table upgrade: moved % unservable row(s) (NULL/empty url_id or NULL url) to url_table_quarantine', n_moved;
        END IF;

        -- 2. Fold duplicate rows of one url_id into the one with the lowest id.
        WITH ranked AS (
            SELECT id, min(id) OVER (PARTITION BY url_id) AS kept_id FROM url_table
        ), moved AS (
            DELETE FROM url_table t USING ranked r
             WHERE t.id = r.id AND r.id <> r.kept_id
            RETURNING t.id, t.url, t.url_id, r.kept_id
        )
        INSERT INTO url_table_quarantine (id, url, url_id, reason, kept_id)
        SELECT id, url, url_id, 'duplicate_url_id', kept_id FROM moved ORDER BY id;
        GET DIAGNOSTICS n_moved = ROW_COUNT;
        IF n_moved > 0 THEN
            RAISE WARNING 'url_table upgrade: folded % duplicate row(s) into the lowest id of their url_id (copies in url_table_quarantine)', n_moved;
        END IF;
    END IF;

    -- 3. Column types: id bigint (and its sequence), url_id varchar(64).
    SELECT format_type(atttypid, atttypmod) INTO id_type
      FROM pg_attribute WHERE attrelid = tbl AND attname = 'id';
    IF id_type <> 'bigint' THEN
        ALTER TABLE url_table ALTER COLUMN id TYPE bigint;
    END IF;
    seq := pg_get_serial_sequence('url_table', 'id');
    IF seq IS NOT NULL AND (SELECT seqtypid <> 'bigint'::regtype FROM pg_sequence
                             WHERE seqrelid = seq::regclass) THEN
        EXECUTE format('ALTER SEQUENCE %s AS bigint', seq);
    END IF;
    IF (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = tbl AND attnum = att_urlid) <> 'character varying(64)' THEN
        ALTER TABLE url_table ALTER COLUMN url_id TYPE varchar(64);
    END IF;

    -- 4. NOT NULL.
    IF NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = tbl AND attnum = att_url) THEN
        ALTER TABLE url_table ALTER COLUMN url SET NOT NULL;
    END IF;
    IF NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = tbl AND attnum = att_urlid) THEN
        ALTER TABLE url_table ALTER COLUMN url_id SET NOT NULL;
    END IF;

    -- 5. created_at (legacy rows get the upgrade time: their real creation time is unknown).
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = tbl AND attname = 'created_at' AND NOT attisdropped) THEN
        ALTER TABLE url_table ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
    END IF;

    -- 6. Constraints on url_id.
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = tbl AND contype IN ('u', 'p') AND conkey = ARRAY[att_urlid]) THEN
        ALTER TABLE url_table ADD CONSTRAINT url_table_url_id_key UNIQUE (url_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = tbl AND conname = 'url_table_url_id_nonempty') THEN
        ALTER TABLE url_table ADD CONSTRAINT url_table_url_id_nonempty CHECK (url_id <> '');
    END IF;

END
$upgrade$;

COMMIT;
