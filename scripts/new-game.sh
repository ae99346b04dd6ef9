#!/usr/bin/env bash
# Starts a studio's own game server from the starter project (templates/game): copies it
# to DIR, names it NAME (package, binary, `version` output), and points its pylon
# dependency at this checkout. Then: cd DIR && cargo test && cargo run --release -- dev
#
#   scripts/new-game.sh NAME DIR
#
# NAME: a Rust package name (lowercase letters, digits, '-' or '_', starting with a
# letter). DIR must not exist yet.
set -euo pipefail

usage() { echo "usage: scripts/new-game.sh NAME DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
name=$1
dir=$2
if ! [[ $name =~ ^[a-z][a-z0-9_-]{0,63}$ ]]; then
  echo "new-game: NAME must be lowercase letters, digits, - or _, starting with a letter: $name" >&2
  exit 2
fi
if [ -e "$dir" ]; then
  echo "new-game: $dir already exists; choose a new directory" >&2
  exit 1
fi
# The pylon checkout (PYLON_CHECKOUT overrides where this script lives, for checks that
# run it from a scratch copy).
root=${PYLON_CHECKOUT:-$(cd "$(dirname "$0")/.." && pwd)}
template="$root/templates/game"

mkdir -p "$dir"
# Everything but build output and local data.
(cd "$template" && tar --exclude=./target --exclude=./.pylon -cf - .) | (cd "$dir" && tar -xf -)

# The name: package, binary, the test's binary path, README, `version` output.
find "$dir" -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.md' \) -print0 |
  xargs -0 sed -i "s/pylon-starter/$name/g"
# pylon from this checkout (a path dependency; switch to git or crates.io when published).
sed -i "s|^pylon = { path = \"../..\" }|pylon = { path = \"$root\" }|" "$dir/Cargo.toml"
sed -i "s|(../../README.md)|($root/README.md)|" "$dir/README.md"

echo "new-game: $name is in $dir"
echo "  cd $dir && cargo test && cargo run --release -- dev"
