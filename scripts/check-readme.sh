#!/usr/bin/env bash
# Runs the README's commands as written: the shell blocks of its "Run it" lines (the
# server, started in the background until it answers /health), "Your own game" (the
# starter copied next to a scratch link to this checkout, its tests run) and
# "Connecting a client" (against that server). Exits non-zero when any block fails.
# The test-suite line is CI's own test step and is not run again here.
#
# CARGO_TARGET_DIR defaults to this checkout's target/, so the starter reuses what the
# workspace already compiled.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
scratch=$(mktemp -d)
server=""
cleanup() {
  # The server block runs in its own session (setsid, below): signal the whole group, so
  # cargo and the pylon it started stop too, and keep the script's own exit status (a
  # signalled server's 143 is expected here, not a failure).
  local status=$?
  if [ -n "$server" ]; then
    kill -TERM -- -"$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$scratch"
  exit "$status"
}
trap cleanup EXIT

# Every ```sh block, with the section it is in ("top" before the first "## ").
blocks() {
  python3 - "$root/README.md" "$scratch/blocks" <<'PY'
import os, sys
text = open(sys.argv[1]).read().split("\n")
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
section, inside, lines, n = "top", False, [], 0
for line in text:
    if not inside and line.startswith("## "):
        section = line[3:].strip()
    elif not inside and line.strip() in ("```sh", "```bash"):
        inside, lines = True, []
    elif inside and line.strip() == "```":
        inside = False
        n += 1
        name = section.lower().replace(" ", "-")
        with open(f"{out}/{n:02d}-{name}.sh", "w") as f:
            f.write("\n".join(lines) + "\n")
    elif inside:
        lines.append(line)
PY
}
blocks
ls "$scratch/blocks"

run_block() { # file, working dir (PYLON_CHECKOUT passes through the environment)
  echo "== README block $(basename "$1")"
  sed 's/^/   | /' "$1"
  (cd "$2" && bash -euo pipefail "$1")
}

for block in "$scratch"/blocks/*; do
  case "$(basename "$block")" in
    *-top.sh)
      if grep -q -- '-- dev' "$block"; then
        # The blocks talk to localhost:4321: it must be this server that answers there.
        if curl -fsS localhost:4321/health > /dev/null 2>&1; then
          echo "check-readme: something already answers on localhost:4321; stop it first"
          exit 1
        fi
        echo "== README block $(basename "$block") (the server, in the background)"
        sed 's/^/   | /' "$block"
        data=$(mktemp -d -p "$scratch")
        (cd "$root" && PYLON_DB_PATH="$data/pylon.db" PYLON_SESSION_DB="$data/sessions.db" \
           PYLON_LOG=warn exec setsid bash -euo pipefail "$block") > "$scratch/server.out" 2>&1 &
        server=$!
        for _ in $(seq 1 600); do
          curl -fsS localhost:4321/health > /dev/null 2>&1 && break
          kill -0 "$server" 2>/dev/null || { cat "$scratch/server.out"; echo "the server exited"; exit 1; }
          sleep 0.5
        done
        curl -fsS localhost:4321/health > /dev/null || { echo "the server never answered"; exit 1; }
      else
        echo "== README block $(basename "$block"): the test suite, CI's own test step"
      fi
      ;;
    *-your-own-game.sh)
      # Run where "../my-game" lands in the scratch directory: a stand-in checkout whose
      # scripts/new-game.sh is this one (told where the real checkout is).
      mkdir -p "$scratch/w/pylon/scripts"
      ln -s "$root/scripts/new-game.sh" "$scratch/w/pylon/scripts/new-game.sh"
      PYLON_CHECKOUT=$root run_block "$block" "$scratch/w/pylon"
      test -f "$scratch/w/my-game/Cargo.toml" || { echo "the starter was not created"; exit 1; }
      ;;
    *-connecting-a-client.sh)
      [ -n "$server" ] || { echo "no server started for $(basename "$block")"; exit 1; }
      run_block "$block" "$root"
      ;;
    *) ;;
  esac
done
echo "check-readme: every README command block ran"
