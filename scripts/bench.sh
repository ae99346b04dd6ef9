#!/usr/bin/env bash
# The standard benchmark suite: builds release, then runs density (1k/5k/20k matches),
# arena bots (500/2,000/4,000 at 20 Hz in each wire mode, 4,000 idle), entities on SQLite and
# Postgres (reads and writes at 64 connections) and fanout to 1,000 subscribers, and the
# pinned comparison with the socket floor.
# Figures go to bench-results/<scenario>.json and one summary line each to stdout.
# Bots spread over 16 loopback source addresses (250 sockets each at 4,000 bots), so the
# server runs with its default per-address cap (256).
#
# Usage: scripts/bench.sh [SECTION]
#   no SECTION runs them all, in this order; SECTION runs only that one:
#   density   in-process density, 1k/5k/20k matches
#   arena     arena bots in json, msgpack, delta and delta2 modes at 500/2,000/4,000
#   idle      4,000 idle clients (the server's memory per client)
#   entities  entities on SQLite (mixed, read, write) and fanout to 1,000 subscribers
#   postgres  entities on Postgres (needs Postgres at 127.0.0.1:5432, database test)
#   pinned    at 1,200 and 2,400 clients: the socket floor (`pylon-floor run`), then pylon
#             with the server on CPU 0 and the bots on CPU 1, json and delta2 modes; writes
#             bench-results/pinned-{floor,json,delta2}-N.json and prints a line per mode
#             and count with pylon's server CPU beside the floor's and their ratio.
#             Needs 2 CPUs, taskset and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
sections="density arena idle entities postgres pinned"
only=${1:-}
if [[ -n $only && " $sections " != *" $only "* ]]; then
  echo "usage: $0 [$(echo "$sections" | tr ' ' '|')]" >&2
  exit 2
fi
cargo build --release -p pylon -p pylon-loadtest
out=bench-results
mkdir -p "$out"
LT=./target/release/pylon-loadtest
FLOOR=./target/release/pylon-floor
TOKEN=bench-admin-token-0123456789
export PYLON_LOADTEST_TOKEN=$TOKEN
SERVER_PREFIX=() # a command the server runs under (the pinned section: taskset -c 0)

start_server() { # port, extra env...
  local port=$1; shift
  local data; data=$(mktemp -d)
  # env and taskset exec what they run, so $! is the server's own pid.
  env "$@" PYLON_PORT="$port" PYLON_ADMIN_TOKEN=$TOKEN PYLON_LOG=warn PYLON_DB_PATH="$data/pylon.db" \
    PYLON_SESSION_DB="$data/sessions.db" \
    "${SERVER_PREFIX[@]}" ./target/release/pylon dev >/dev/null 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server on $port did not start" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER"; wait "$SERVER" || true; }

density() {
  for n in 1000 5000 20000; do
    $LT density --matches "$n" --players 8 --hz 20 --secs 30 | tee "$out/density-$n.txt"
  done
}

arena() {
  for mode in json msgpack delta delta2; do
    for bots in 500 2000 4000; do
      start_server 4600
      $LT arena --url http://127.0.0.1:4600 --bots "$bots" --players 8 --hz 20 --input-hz 20 --secs 30 \
        --mode "$mode" --source-ips 16 --server-pid "$SERVER" --json "$out/arena-$mode-$bots.json" 2>/dev/null
      stop_server
    done
  done
}

# Idle clients (connected, reading, sending nothing): the server's memory per client.
idle() {
  start_server 4600
  $LT arena --url http://127.0.0.1:4600 --bots 4000 --players 8 --hz 20 --input-hz 0 --secs 20 \
    --mode json --source-ips 16 --server-pid "$SERVER" --json "$out/arena-idle-4000.json" 2>/dev/null
  stop_server
}

entities() {
  start_server 4600
  for mix in mixed read write; do
    $LT entities --url http://127.0.0.1:4600 --concurrency 64 --mix "$mix" --secs 20 --server-pid "$SERVER" \
      --json "$out/entities-sqlite-$mix.json"
  done
  $LT fanout --url http://127.0.0.1:4600 --subscribers 1000 --writes-per-sec 20 --secs 20 --source-ips 8 \
    --server-pid "$SERVER" --json "$out/fanout-1000.json"
  stop_server
}

postgres() {
  local schema=pylon_bench_$$
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema"
  start_server 4600 DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$schema"
  for mix in mixed read write; do
    $LT entities --url http://127.0.0.1:4600 --concurrency 64 --mix "$mix" --secs 20 --server-pid "$SERVER" \
      --json "$out/entities-postgres-$mix.json"
  done
  stop_server
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE"
}

# pylon beside the socket floor, each server alone on CPU 0 and its clients on CPU 1.
pinned() {
  if (( $(nproc) < 2 )); then echo "pinned: needs 2 CPUs" >&2; exit 1; fi
  for n in 1200 2400; do
    $FLOOR run --clients "$n" --json "$out/pinned-floor-$n.json"
    for mode in json delta2; do
      SERVER_PREFIX=(taskset -c 0)
      start_server 4600
      SERVER_PREFIX=()
      taskset -c 1 $LT arena --url http://127.0.0.1:4600 --bots "$n" --players 8 --hz 20 --input-hz 20 \
        --secs 30 --mode "$mode" --source-ips 16 --server-pid "$SERVER" \
        --json "$out/pinned-$mode-$n.json" 2>/dev/null
      stop_server
      pinned_line "$mode" "$n"
    done
  done
}

# One line: pylon's server CPU in `mode` at `n` clients beside the floor's, and the ratio.
pinned_line() { # mode, n
  jq -rn --arg mode "$1" --arg n "$2" \
    --slurpfile ours "$out/pinned-$1-$2.json" --slurpfile floor "$out/pinned-floor-$2.json" '
    ($ours[0].figures) as $o | ($floor[0].figures) as $f
    | def pct(v): if v == null then "?" else (v * 10 | round / 10 | tostring) end;
    def int(v): if v == null then "?" else (v | round | tostring) end;
    "pinned mode=\($mode) clients=\($n) server_cpu_pct=\(pct($o.server_cpu_pct))"
    + " floor_cpu_pct=\(pct($f.server_cpu_pct))"
    + " ratio=\(if ($f.server_cpu_pct // 0) > 0 and $o.server_cpu_pct != null
                then ($o.server_cpu_pct / $f.server_cpu_pct * 100 | round / 100 | tostring)
                else "?" end)"
    + " server_sys_pct=\(pct($o.server_sys_pct)) floor_sys_pct=\(pct($f.server_sys_pct))"
    + " server_ctx_switches_s=\(int($o.server_ctx_switches_s))"
    + " floor_ctx_switches_s=\(int($f.server_ctx_switches_s))"'
}

for section in $sections; do
  if [[ -z $only || $only == "$section" ]]; then
    "$section"
  fi
done
