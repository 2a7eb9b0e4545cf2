#!/bin/bash
# The official postgres image's entrypoint contract, rewritten for Debian's postgresql-15:
#   - as root, it prepares PGDATA and the socket directory and runs itself again as postgres;
#   - an empty PGDATA is initialised once: initdb with POSTGRES_USER (default postgres) and
#     POSTGRES_PASSWORD, TCP connections from anywhere with POSTGRES_HOST_AUTH_METHOD (default
#     scram-sha-256), POSTGRES_DB created if it is not "postgres", then every file of
#     /docker-entrypoint-initdb.d in name order (*.sql and *.sql.gz through psql with
#     ON_ERROR_STOP, *.sh executed when executable and sourced otherwise) against a server that
#     listens on its Unix socket only;
#   - then the command runs: `postgres -c ...`, or `-c ...` alone (postgres is put in front).
set -Eeuo pipefail

[ "${1:0:1}" = - ] && set -- postgres "$@"
[ "$1" = postgres ] || exec "$@"

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 1777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

say() { echo "docker-entrypoint: $*" >&2; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    say "the database is uninitialized and POSTGRES_PASSWORD is not set:" \
        "set it (or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one)"
    exit 1
  fi
  say "initialising $PGDATA (user $user, database $db)"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as in the official image
  initdb --username="$user" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
         --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >&2
  printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

  # The first start: the Unix socket only, so nobody connects before the scripts are done.
  pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses='' -p ${PGPORT:-5432}" start >&2
  psql=(psql -v ON_ERROR_STOP=1 --username "$user" --no-password --no-psqlrc)
  if [ "$db" != postgres ]; then
    # From stdin: psql interpolates :"db" there, not in -c.
    "${psql[@]}" --dbname postgres --set db="$db" <<<'CREATE DATABASE :"db"' >&2
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then say "running $f"; "$f"
        else say "sourcing $f"; # shellcheck source=/dev/null
             . "$f"; fi ;;
      *.sql)    say "running $f"; "${psql[@]}" --dbname "$db" -f "$f" >&2 ;;
      *.sql.gz) say "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$db" >&2 ;;
      *)        say "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -w -m fast stop >&2
  say "initialisation complete; starting"
fi

exec "$@"
