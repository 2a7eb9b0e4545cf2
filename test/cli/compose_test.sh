#!/usr/bin/env bash
# compose.yaml is valid for docker-compose, has what a deployment needs, and the app's config in
# the image is one the real binary accepts.   Usage: compose_test.sh REPO SHARDURL_BINARY
set -uo pipefail
repo=$1 binary=$2
passed=0 failed=0
check() {
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi
}
cd "$repo"
rendered=$(docker-compose -f compose.yaml config 2>&1)
check "docker-compose config accepts compose.yaml" docker-compose -f compose.yaml config -q
for s in 5432 5433 5434; do
  check "shard-$s mounts initdb/" grep -q "initdb:/docker-entrypoint-initdb.d:ro" <<<"$rendered"
  check "shard-$s has a named volume" grep -q "shard-$s:/var/lib/postgresql/data" <<<"$rendered"
done
check "shards have health checks" grep -q "pg_isready" <<<"$rendered"
check "shards run with wal_level=logical (shardurl reshard)" grep -q "wal_level=logical" <<<"$rendered"
check "the app waits for healthy shards" grep -q "condition: service_healthy" <<<"$rendered"
check "the app is built from the repo's Containerfile" grep -q "dockerfile: server/container/Containerfile" <<<"$rendered"
check "the Containerfile exists" test -f server/container/Containerfile
check "shardurl is published on 127.0.0.1:5001" grep -q "127.0.0.1:5001:5001" <<<"$rendered"
check "shard-5433 is published on 127.0.0.1:5433" grep -q "127.0.0.1:5433:5432" <<<"$rendered"
moved=$(SHARDURL_HTTP_PORT=29001 SHARDURL_SHARD_5433_PORT=29433 docker-compose -f compose.yaml config 2>&1)
check "SHARDURL_HTTP_PORT moves shardurl's published port" grep -q "127.0.0.1:29001:5001" <<<"$moved"
check "SHARDURL_SHARD_5433_PORT moves shard-5433's" grep -q "127.0.0.1:29433:5432" <<<"$moved"
check "the app has a health check on /healthz" grep -q "5001/healthz" <<<"$rendered"
check "the build context leaves out build trees" grep -qx '\*' .dockerignore
check "the image's config is accepted by shardurl" \
  bash -c "printf 'k\n' | '$binary' ring --config server/container/shardurl.json | grep -q '^k	543[234]$'"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
