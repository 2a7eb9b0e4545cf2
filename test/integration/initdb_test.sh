#!/usr/bin/env bash
# test/integration/initdb_test.sh — integration test of initdb/*.sql against a real PostgreSQL 15.
#
# Run from the repo root:  bash test/integration/initdb_test.sh
#
# Cases (each in its own throwaway database, dropped at the end):
#   a) empty database: initdb/ creates url_table with its constraints/indexes; running
#      initdb/ again changes nothing (pg_dump --schema-only and --data-only identical).
#   b) a tutorial-made url_table (varchar(5) url_id, no uniqueness) filled the tutorial's
#      way, with duplicate rows for a url_id, ids containing '+' and '/', NULL url_id/url:
#      initdb/ upgrades it in place (every url_id keeps its url exactly once, duplicates
#      folded to the lowest id, unservable rows moved to url_table_quarantine, url_id
#      varchar(64) NOT NULL UNIQUE), its schema equals the fresh one, a 2nd run is a no-op.
#
# Environment (all optional):
#   INITDB_TEST_PORT  port of the PostgreSQL server to use (127.0.0.1, user postgres, trust
#                     auth). If a server already listens there it is used as is and left
#                     running (only the test databases are created and dropped). If nothing
#                     listens there, the test starts a shard on it with scripts/cluster.
#                     Default: the first free port from 56532 upwards.
#   INITDB_TEST_DIR   cluster directory for the shard the test starts (kept afterwards;
#                     the shard is stopped). Default: a temp dir, removed at exit.
#   INITDB_TEST_KEEP  set to 1 to leave the started shard and temp files for debugging.
#   PG_BIN            PostgreSQL binaries (default /usr/lib/postgresql/15/bin).
#
# Needs: PostgreSQL 15 (Debian package postgresql-15); as root, scripts/cluster runs the
# server as the 'postgres' user. Last line of output: "N passed, N failed"; exit 1 on failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=$ROOT/scripts/cluster
SQL_DIR=$ROOT/initdb
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
HOST=127.0.0.1
PSQL=$PG_BIN/psql;       [[ -x $PSQL ]]    || PSQL=$(command -v psql || echo psql)
PG_DUMP=$PG_BIN/pg_dump; [[ -x $PG_DUMP ]] || PG_DUMP=$(command -v pg_dump || echo pg_dump)
export PGCONNECT_TIMEOUT=10
export PGOPTIONS="-c lock_timeout=30s -c statement_timeout=120s -c client_min_messages=warning"

PASS=0; FAIL=0
ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL - $*" >&2; }
check() {  # check "description" command...
  local desc=$1; shift
  if "$@"; then ok "$desc"; else bad "$desc"; fi
}
# check_eq "description" expected actual
check_eq() {
  if [[ $2 == "$3" ]]; then ok "$1"; else bad "$1: expected [$2], got [$3]"; fi
}

WORK=$(mktemp -d /tmp/initdb_test.work.XXXXXX)
OWN_DIR=""; CREATED_DIR=0; STARTED=0; PORT=""; DBS=(); CLEANED=0

cleanup() {
  [[ $CLEANED == 1 ]] && return 0
  CLEANED=1
  if [[ ${INITDB_TEST_KEEP:-0} == 1 ]]; then
    echo "# INITDB_TEST_KEEP=1: leaving shard ${PORT:-?} (dir ${OWN_DIR:-external}) and $WORK" >&2
    return 0
  fi
  if [[ $STARTED == 1 ]]; then
    "$CLUSTER" stop --dir "$OWN_DIR" >/dev/null 2>&1 || echo "# warning: could not stop shard in $OWN_DIR" >&2
    [[ $CREATED_DIR == 1 ]] && rm -rf -- "$OWN_DIR"
  elif [[ -n $PORT ]]; then
    local db
    for db in "${DBS[@]}"; do
      "$PSQL" -X -q -h "$HOST" -p "$PORT" -U postgres -d postgres \
        -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
    done
  fi
  rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

finish() {
  cleanup
  echo "$PASS passed, $FAIL failed"
  [[ $FAIL -eq 0 ]]
  exit $?
}
fatal() { bad "$*"; finish; }

port_busy() {
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
  fi
}

# ------------------------------------------------------------------ server
[[ -x $PG_BIN/postgres ]] || fatal "PostgreSQL 15 not found in $PG_BIN (install the Debian package postgresql-15)"
if [[ -n ${INITDB_TEST_PORT:-} ]]; then
  PORT=$INITDB_TEST_PORT
else
  for p in $(seq 56532 56599); do port_busy "$p" || { PORT=$p; break; }; done
  [[ -n $PORT ]] || fatal "no free port in 56532-56599"
fi

if port_busy "$PORT"; then
  echo "# using the server already listening on $HOST:$PORT"
else
  if [[ -n ${INITDB_TEST_DIR:-} ]]; then
    OWN_DIR=$INITDB_TEST_DIR
  else
    # The temp dir itself is the cluster dir: scripts/cluster chowns it to postgres.
    OWN_DIR=$(mktemp -d /tmp/initdb_test.cluster.XXXXXX); CREATED_DIR=1
  fi
  STARTED=1
  echo "# starting a throwaway shard: $CLUSTER start --dir $OWN_DIR --ports $PORT --no-sql"
  "$CLUSTER" start --dir "$OWN_DIR" --ports "$PORT" --no-sql >"$WORK/start.out" 2>&1 ||
    { cat "$WORK/start.out" >&2; fatal "scripts/cluster start failed"; }
  sed 's/^/# /' "$WORK/start.out"
  # The same start again must reuse the running shard.
  out=$("$CLUSTER" start --dir "$OWN_DIR" --ports "$PORT" --no-sql 2>&1)
  check "scripts/cluster start reuses its own running shard" grep -q "already running" <<<"$out"
  check_eq "scripts/cluster conninfo" \
    "$(printf '%s\thost=127.0.0.1 port=%s user=postgres dbname=postgres' "$PORT" "$PORT")" \
    "$("$CLUSTER" conninfo --dir "$OWN_DIR")"
fi

# ------------------------------------------------------------------ helpers
# q DB SQL — run SQL, print unaligned tuples-only result; fails the command on error.
q() { "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres -d "$1" -c "$2"; }
# sqlstate DB SQL — run one statement, print its SQLSTATE (00000 on success).
sqlstate() {
  printf '%s;\n\\echo SQLSTATE=:SQLSTATE\n' "$2" |
    "$PSQL" -X -A -t -q -v ON_ERROR_STOP=0 -h "$HOST" -p "$PORT" -U postgres -d "$1" 2>/dev/null |
    sed -n 's/^SQLSTATE=//p'
}
# apply_initdb DB — run initdb/*.sql in name order exactly like scripts/cluster does.
apply_initdb() {
  local f
  while IFS= read -r -d '' f; do
    timeout 300 "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres -d "$1" -f "$f" \
      >>"$WORK/$1.initdb.log" 2>&1 || { cat "$WORK/$1.initdb.log" >&2; return 1; }
  done < <(find "$SQL_DIR" -maxdepth 1 -type f -name '*.sql' -print0 | LC_ALL=C sort -z)
}
dump() {  # dump DB schema|data FILE  (minus the per-run random \restrict key of pg_dump >= 15.14)
  "$PG_DUMP" -h "$HOST" -p "$PORT" -U postgres -d "$1" --"$2"-only --no-owner |
    grep -v -E '^\\(un)?restrict ' >"$3"
}
new_db() {  # new_db PREFIX — creates PREFIX_<pid>, sets NEW_DB (not via $(...): DBS must stick)
  NEW_DB=$1_$$
  DBS+=("$NEW_DB")
  q postgres "DROP DATABASE IF EXISTS \"$NEW_DB\"" >/dev/null &&
    q postgres "CREATE DATABASE \"$NEW_DB\" TEMPLATE template0 ENCODING 'UTF8'" >/dev/null ||
    fatal "cannot create database $NEW_DB on $HOST:$PORT"
}
# Second run of initdb/ must change neither schema nor data.
check_second_run_noop() {
  local db=$1 label=$2
  dump "$db" schema "$WORK/$db.s1" && dump "$db" data "$WORK/$db.d1" || { bad "$label: pg_dump failed"; return; }
  check "$label: second run of initdb/ succeeds" apply_initdb "$db"
  dump "$db" schema "$WORK/$db.s2" && dump "$db" data "$WORK/$db.d2" || { bad "$label: pg_dump failed"; return; }
  check "$label: second run leaves the schema unchanged (pg_dump --schema-only)" diff -u "$WORK/$db.s1" "$WORK/$db.s2"
  check "$label: second run leaves all table contents unchanged (pg_dump --data-only)" diff -u "$WORK/$db.d1" "$WORK/$db.d2"
}
# Schema/constraint checks shared by both cases.
check_schema() {
  local db=$1 label=$2 long64 long65 bigurl
  check_eq "$label: url_table columns" \
    "id|bigint|NO url|text|NO url_id|character varying|64|NO created_at|timestamp with time zone|NO deleted_at|timestamp with time zone|YES" \
    "$(q "$db" "SELECT string_agg(concat_ws('|', column_name, data_type, character_maximum_length, is_nullable), ' ' ORDER BY ordinal_position)
                FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'url_table'")"
  check_eq "$label: primary key on id, unique on url_id" "PRIMARY KEY(id) UNIQUE(url_id)" \
    "$(q "$db" "SELECT string_agg(tc.constraint_type || '(' || k.column_name || ')', ' ' ORDER BY tc.constraint_type)
                FROM information_schema.table_constraints tc
                JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name)
               WHERE tc.table_schema = 'public' AND tc.table_name = 'url_table'
                 AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE')")"
  check_eq "$label: id sequence is bigint" "bigint" \
    "$(q "$db" "SELECT format_type(seqtypid, NULL) FROM pg_sequence WHERE seqrelid = pg_get_serial_sequence('url_table','id')::regclass")"
  # Nothing looks links up by URL: no index on url to keep up to date on every insert.
  check_eq "$label: no index on url" "url_table_pkey url_table_url_id_key" \
    "$(q "$db" "SELECT string_agg(indexname, ' ' ORDER BY indexname) FROM pg_indexes
                WHERE schemaname = 'public' AND tablename = 'url_table'")"
  check_eq "$label: shardurl_meta holds the schema version and ring version 0" "3 0" \
    "$(q "$db" "SELECT (SELECT value FROM shardurl_meta WHERE key = 'schema_version') || ' ' ||
                       (SELECT value FROM shardurl_meta WHERE key = 'ring_version')")"
  check_eq "$label: rows are identified by url_id for logical replication" "i" \
    "$(q "$db" "SELECT relreplident FROM pg_class WHERE oid = 'url_table'::regclass")"
  check_eq "$label: a batch routed by an older ring is refused with SU001" SU001 \
    "$(sqlstate "$db" "UPDATE shardurl_meta SET value = '2' WHERE key = 'ring_version';
                      SELECT shardurl_batch(1)")"
  check_eq "$label: a batch of the shard's ring or a newer one goes through" 00000 \
    "$(sqlstate "$db" "SELECT shardurl_batch(2); SELECT shardurl_batch(3);
                      UPDATE shardurl_meta SET value = '0' WHERE key = 'ring_version'")"
  check "$label: url_table_quarantine exists" \
    test "$(q "$db" "SELECT to_regclass('public.url_table_quarantine') IS NOT NULL")" = t

  long64=$(printf 'L%.0s' {1..64}); long65=${long64}L
  check_eq "$label: 64-char url_id accepted" 00000 \
    "$(sqlstate "$db" "INSERT INTO url_table (url, url_id) VALUES ('https://example.com/long64', '$long64')")"
  check_eq "$label: 65-char url_id rejected (22001)" 22001 \
    "$(sqlstate "$db" "INSERT INTO url_table (url, url_id) VALUES ('https://example.com/long65', '$long65')")"
  check_eq "$label: duplicate url_id rejected (23505)" 23505 \
    "$(sqlstate "$db" "INSERT INTO url_table (url, url_id) VALUES ('https://example.com/other', '$long64')")"
  check_eq "$label: INSERT ... ON CONFLICT (url_id) DO NOTHING inserts nothing" "" \
    "$(q "$db" "INSERT INTO url_table (url, url_id) VALUES ('https://example.com/other', '$long64')
                ON CONFLICT (url_id) DO NOTHING RETURNING id")"
  check_eq "$label: NULL url_id rejected (23502)" 23502 \
    "$(sqlstate "$db" "INSERT INTO url_table (url, url_id) VALUES ('https://example.com/n', NULL)")"
  check_eq "$label: NULL url rejected (23502)" 23502 \
    "$(sqlstate "$db" "INSERT INTO url_table (url, url_id) VALUES (NULL, 'nourl')")"
  check_eq "$label: empty url_id rejected (23514)" 23514 \
    "$(sqlstate "$db" "INSERT INTO url_table (url, url_id) VALUES ('https://example.com/e', '')")"
  # URLs far beyond the ~2.7 KB btree entry limit must be storable and findable.
  bigurl="https://example.com/big?q=$(head -c 6000 /dev/urandom | base64 -w0 | head -c 8000)"
  check_eq "$label: 8 KB url stored and found by url" "big8k" \
    "$(q "$db" "INSERT INTO url_table (url, url_id) VALUES ('$bigurl', 'big8k');
                SELECT url_id FROM url_table WHERE url = '$bigurl'")"
}

# ------------------------------------------------------------------ case a: empty database
echo "# case a: empty database"
new_db initdb_test_empty; DB_A=$NEW_DB
if check "a: initdb/ applies to an empty database" apply_initdb "$DB_A"; then
  check_schema "$DB_A" a
  check_second_run_noop "$DB_A" a
  dump "$DB_A" schema "$WORK/a.schema"
else
  fatal "a: initdb/ failed on an empty database (see above)"
fi

# ------------------------------------------------------------------ case b: tutorial shard
echo "# case b: tutorial-made url_table"
new_db initdb_test_tutorial; DB_B=$NEW_DB
# The tutorial's init_tables.sql, verbatim, then rows inserted the tutorial's way:
# url_id = base64(sha256(url))[0:5], "INSERT INTO url_table (URL, URL_ID) VALUES($1, $2)",
# no uniqueness, so POSTing a URL twice stored it twice.
q "$DB_B" "
CREATE TABLE URL_TABLE
(
id serial NOT NULL PRIMARY KEY,
URL text,
URL_ID varchar(5)
);
CREATE FUNCTION pg_temp.post(full_url text) RETURNS void LANGUAGE sql AS \$\$
  INSERT INTO url_table (URL, URL_ID)
  VALUES (full_url, substr(encode(sha256(convert_to(full_url, 'UTF8')), 'base64'), 1, 5))
\$\$;
SELECT pg_temp.post('https://www.postgresql.org/');
SELECT pg_temp.post('https://www.google.com/');
SELECT pg_temp.post('https://www.dev.to/');
SELECT pg_temp.post('https://www.postgresql.org/');                          -- posted twice
SELECT pg_temp.post('https://example.com/page/' || g) FROM generate_series(1, 300) g;
SELECT pg_temp.post('https://example.com/page/' || g) FROM generate_series(1, 300, 7) g; -- again
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/slash', 'ab/cd');
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/plus',  'x+y=z');
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/slash', 'ab/cd');   -- duplicate row
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/plus',  'x+y=z');   -- duplicate row
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/plus',  'x+y=z');   -- and again
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/first', 'colli');   -- 5-char prefix
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/second','colli');   -- collision
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/nullid', NULL);     -- NULL url_id
INSERT INTO url_table (URL, URL_ID) VALUES (NULL, 'nullu');                        -- NULL url only
INSERT INTO url_table (URL, URL_ID) VALUES (NULL, 'nul1s');                        -- NULL url first,
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/valid', 'nul1s');   -- then a valid one
INSERT INTO url_table (URL, URL_ID) VALUES ('https://a.example/empty', '');        -- empty url_id
INSERT INTO url_table (URL, URL_ID) VALUES ('javascript:alert(1)', 'jsxss');       -- never redirected
INSERT INTO url_table (URL, URL_ID) VALUES ('', 'empty');                           -- nor this
" >/dev/null || fatal "b: could not build the tutorial-shaped table"

ROWS_BEFORE=$(q "$DB_B" "SELECT count(*) FROM url_table")
MAXID_BEFORE=$(q "$DB_B" "SELECT max(id) FROM url_table")
check "b: fixture has generated url_ids containing '+' and '/'" test \
  "$(q "$DB_B" "SELECT count(*) FILTER (WHERE url_id LIKE '%+%') > 0 AND count(*) FILTER (WHERE url_id LIKE '%/%') > 0
                FROM url_table WHERE url LIKE 'https://example.com/page/%'")" = t
check "b: fixture has duplicate rows for one url_id" test \
  "$(q "$DB_B" "SELECT count(*) FROM (SELECT url_id FROM url_table GROUP BY url_id HAVING count(*) > 1) d")" -ge 40
# What the service must serve afterwards: each url_id with a url -> the url of its lowest-id row.
EXPECTED_SQL="SELECT url_id || E'\t' || url FROM (SELECT DISTINCT ON (url_id) url_id, url FROM url_table
               WHERE url_id IS NOT NULL AND url_id <> '' AND url IS NOT NULL ORDER BY url_id, id) s ORDER BY url_id"
q "$DB_B" "$EXPECTED_SQL" >"$WORK/b.expected"
q "$DB_B" "SELECT id || E'\t' || coalesce(url, '<null>') || E'\t' || coalesce(url_id, '<null>') FROM url_table ORDER BY id" >"$WORK/b.before"

if check "b: initdb/ upgrades the tutorial table" apply_initdb "$DB_B"; then
  echo "# initdb output: $(tr '\n' ' ' <"$WORK/$DB_B.initdb.log")"
  q "$DB_B" "SELECT url_id || E'\t' || url FROM url_table ORDER BY url_id" >"$WORK/b.after"
  check "b: every url_id that had a url maps to that url exactly once (lowest id wins)" \
    diff -u "$WORK/b.expected" "$WORK/b.after"
  check_eq "b: no url_id appears twice" 0 \
    "$(q "$DB_B" "SELECT count(*) FROM (SELECT url_id FROM url_table GROUP BY url_id HAVING count(*) > 1) d")"
  check_eq "b: no row lost (url_table + url_table_quarantine = rows before)" "$ROWS_BEFORE" \
    "$(q "$DB_B" "SELECT (SELECT count(*) FROM url_table) + (SELECT count(*) FROM url_table_quarantine)")"
  # Every pre-upgrade row is still present somewhere, unchanged.
  q "$DB_B" "SELECT id || E'\t' || coalesce(url, '<null>') || E'\t' || coalesce(url_id, '<null>') FROM
             (SELECT id, url, url_id::text FROM url_table UNION ALL SELECT id, url, url_id FROM url_table_quarantine) u
             ORDER BY id" >"$WORK/b.union"
  check "b: url_table ∪ quarantine holds exactly the original rows" diff -u "$WORK/b.before" "$WORK/b.union"
  check_eq "b: 'ab/cd' serves its url once" "1|https://a.example/slash" \
    "$(q "$DB_B" "SELECT count(*) || '|' || max(url) FROM url_table WHERE url_id = 'ab/cd'")"
  check_eq "b: 'x+y=z' serves its url once" "1|https://a.example/plus" \
    "$(q "$DB_B" "SELECT count(*) || '|' || max(url) FROM url_table WHERE url_id = 'x+y=z'")"
  check_eq "b: colliding url_id keeps the lowest id's url" "https://a.example/first" \
    "$(q "$DB_B" "SELECT url FROM url_table WHERE url_id = 'colli'")"
  check_eq "b: url_id whose lowest row had a NULL url serves its valid row" "https://a.example/valid" \
    "$(q "$DB_B" "SELECT url FROM url_table WHERE url_id = 'nul1s'")"
  check_eq "b: kept rows are the lowest id of their url_id" 0 \
    "$(q "$DB_B" "SELECT count(*) FROM url_table_quarantine qq JOIN url_table t ON t.url_id = qq.url_id
                   WHERE qq.reason = 'duplicate_url_id' AND (qq.kept_id <> t.id OR qq.id < t.id)")"
  check_eq "b: quarantine reasons" \
    "duplicate_url_id:https://a.example/second empty_url_id:https://a.example/empty null_url:nul1s null_url:nullu null_url_id:https://a.example/nullid" \
    "$(q "$DB_B" "SELECT string_agg(reason || ':' || coalesce(url, url_id), ' ' ORDER BY reason, coalesce(url, url_id))
                  FROM url_table_quarantine WHERE reason <> 'duplicate_url_id' OR url_id = 'colli'")"
  check_eq "b: exact duplicate rows quarantined as duplicate_url_id" \
    "$(( ROWS_BEFORE - $(wc -l <"$WORK/b.expected") - 4 ))" \
    "$(q "$DB_B" "SELECT count(*) FROM url_table_quarantine WHERE reason = 'duplicate_url_id'")"
  check_eq "b: tutorial_ids counts the rows stored under their URL's tutorial id" 303 \
    "$(q "$DB_B" "SELECT value FROM shardurl_meta WHERE key = 'tutorial_ids'")"
  check "b: the upgrade reports rows it will never redirect to, by id" \
    grep -q "2 row(s) hold a URL that is never redirected to.*'jsxss'" "$WORK/$DB_B.initdb.log"
  check_eq "b: such rows stay in url_table" "javascript:alert(1)|" \
    "$(q "$DB_B" "SELECT string_agg(url, '|' ORDER BY url DESC) FROM url_table WHERE url_id IN ('jsxss', 'empty')")"
  check_schema "$DB_B" b
  check "b: new ids continue after the legacy ones" test \
    "$(q "$DB_B" "SELECT min(id) FROM url_table WHERE url_id = 'big8k'")" -gt "$MAXID_BEFORE"
  dump "$DB_B" schema "$WORK/b.schema"
  check "b: upgraded schema is identical to a fresh shard's (pg_dump --schema-only)" \
    diff -u "$WORK/a.schema" "$WORK/b.schema"
  check_second_run_noop "$DB_B" b
fi

finish
