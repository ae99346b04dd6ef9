#!/usr/bin/env bash
# The standard benchmark suite: builds release, then runs density (1k/5k/20k matches),
# arena bots (500/2,000/4,000 at 20 Hz in each wire mode, 4,000 idle), entities on SQLite and
# Postgres (reads and writes at 64 connections) and fanout to 1,000 subscribers.
# Figures go to bench-results/<scenario>.json and one summary line each to stdout.
# Bots spread over 16 loopback source addresses (250 sockets each at 4,000 bots), so the
# server runs with its default per-address cap (256).
# Needs Postgres at 127.0.0.1:5432 (database test) for the Postgres entities run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p pylon -p pylon-loadtest
out=bench-results
mkdir -p "$out"
LT=./target/release/pylon-loadtest
TOKEN=bench-admin-token-0123456789
export PYLON_LOADTEST_TOKEN=$TOKEN

start_server() { # port, extra env...
  local port=$1; shift
  local data; data=$(mktemp -d)
  env "$@" PYLON_PORT="$port" PYLON_ADMIN_TOKEN=$TOKEN PYLON_LOG=warn PYLON_DB_PATH="$data/pylon.db" \
    PYLON_SESSION_DB="$data/sessions.db" \
    ./target/release/pylon dev >/dev/null 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server on $port did not start" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER"; wait "$SERVER" || true; }

for n in 1000 5000 20000; do
  $LT density --matches "$n" --players 8 --hz 20 --secs 30 | tee "$out/density-$n.txt"
done

for mode in json msgpack delta; do
  for bots in 500 2000 4000; do
    start_server 4600
    $LT arena --url http://127.0.0.1:4600 --bots "$bots" --players 8 --hz 20 --input-hz 20 --secs 30 \
      --mode "$mode" --source-ips 16 --server-pid "$SERVER" --json "$out/arena-$mode-$bots.json" 2>/dev/null
    stop_server
  done
done

# Idle clients (connected, reading, sending nothing): the server's memory per client.
start_server 4600
$LT arena --url http://127.0.0.1:4600 --bots 4000 --players 8 --hz 20 --input-hz 0 --secs 20 \
  --mode json --source-ips 16 --server-pid "$SERVER" --json "$out/arena-idle-4000.json" 2>/dev/null
stop_server

start_server 4600
for mix in mixed read write; do
  $LT entities --url http://127.0.0.1:4600 --concurrency 64 --mix "$mix" --secs 20 --server-pid "$SERVER" \
    --json "$out/entities-sqlite-$mix.json"
done
$LT fanout --url http://127.0.0.1:4600 --subscribers 1000 --writes-per-sec 20 --secs 20 --source-ips 8 \
  --server-pid "$SERVER" --json "$out/fanout-1000.json"
stop_server

schema=pylon_bench_$$
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema"
start_server 4600 DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$schema"
for mix in mixed read write; do
  $LT entities --url http://127.0.0.1:4600 --concurrency 64 --mix "$mix" --secs 20 --server-pid "$SERVER" \
    --json "$out/entities-postgres-$mix.json"
done
stop_server
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE"
