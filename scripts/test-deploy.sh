#!/usr/bin/env bash
# End-to-end test of the deploy shapes on this machine, on loopback only:
#
#  1. pylon serve (the release binary) runs with deploy/systemd/pylon.env.example
#     rendered into a temp dir (temp data dir, loopback ports, an admin token, the
#     example manifest), as an unprivileged user when this script runs as root, the way
#     pylon.service and the Docker image run it;
#  2. in front of it the real nginx single-region config (deploy/nginx/render.py), once
#     as plain HTTP (pylon-loadtest speaks only http:// and ws://) and once with TLS and a
#     self-signed certificate generated here;
#  3. through nginx, at the same time: pylon-loadtest arena bots (match creation over
#     the main port, shard sockets over nginx's shard port), and a client that checks
#     /health, a guest session, a match, a bot playing it over /shard, an entity insert
#     with the admin token, the insert arriving on /ws and on /events (unbuffered), and
#     a shard socket over TLS (wss);
#  4. the Dockerfile's HEALTHCHECK command against the server;
#  5. an online backup (deploy/systemd/pylon-backup, same env file), SIGTERM (graceful, exit 0, within
#     TimeoutStopSec), a restore into an empty data location as docs/DEPLOY.md says,
#     and the restored server answering with the inserted row and the old session;
#  6. the two-region nginx config: two servers (PYLON_REGION eu and us) behind one edge,
#     match routes and shard sockets of both regions routed by the id prefix.
#
# Needs: PYLON_BIN and PYLON_LOADTEST_BIN (default target/release/…), nginx, openssl,
# curl, python3 (installed with apt-get when missing and running as root).
# Exit 0 only when every check passed. KEEP_TMP=1 keeps the temp dir for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PYLON_BIN=${PYLON_BIN:-target/release/pylon}
PYLON_LOADTEST_BIN=${PYLON_LOADTEST_BIN:-target/release/pylon-loadtest}
SERVICE_USER=${PYLON_TEST_USER:-pylon-test}

say() { printf '== %s\n' "$*"; }
fail() {
  printf 'FAILED: %s\n' "$*" >&2
  exit 1
}

for bin in "$PYLON_BIN" "$PYLON_LOADTEST_BIN"; do
  [ -x "$bin" ] || fail "$bin is not an executable (set PYLON_BIN / PYLON_LOADTEST_BIN)"
done
PYLON_BIN=$(realpath "$PYLON_BIN")
PYLON_LOADTEST_BIN=$(realpath "$PYLON_LOADTEST_BIN")

# --- tools -------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${need[*]} and not root to install them"
  say "installing ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- temp dir, processes, cleanup ----------------------------------------------------------
tmp=$(mktemp -d /tmp/pylon-test-deploy.XXXXXX)
chmod 755 "$tmp"
pids=()
declare -A server_pids=()
ok=0

cleanup() {
  local pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    # Each was sent SIGTERM; pylon needs at most its grace period, nginx much less.
    for _ in $(seq 1 450); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$ok" != 1 ]; then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] || continue
      echo "--- last lines of $log"
      tail -n 25 "$log"
    done
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# wait_until DESCRIPTION SECONDS COMMAND…: polls COMMAND every 0.1 s until it succeeds.
wait_until() {
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${secs}s"
    sleep 0.1
  done
}

# --- the service user -----------------------------------------------------------------
if [ "$(id -u)" = 0 ]; then
  id "$SERVICE_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
  # setpriv execs the command (no PAM session, no extra process): the pid we start is the
  # server's own, so our SIGTERM reaches pylon exactly as systemd's would.
  RUN_AS=(setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_USER" --init-groups --)
  # The binary must be reachable by that user (a checkout under /root is not).
  if ! "${RUN_AS[@]}" test -x "$PYLON_BIN"; then
    install -D -m 0755 "$PYLON_BIN" "$tmp/bin/pylon"
    PYLON_BIN=$tmp/bin/pylon
  fi
  run_user=$SERVICE_USER
else
  RUN_AS=()
  run_user=$(id -un)
fi
say "pylon runs as $run_user: $PYLON_BIN ($("$PYLON_BIN" version))"

# A directory the service user owns, mode 0750 (what StateDirectory= creates).
service_dir() {
  install -d -m 0750 "$1"
  [ "$(id -u)" != 0 ] || chown "$SERVICE_USER:$SERVICE_USER" "$1"
}

# --- ports ------------------------------------------------------------------------------
# Free loopback ports: blocks of 4 for the servers (PYLON_PORT … +3), and for nginx's
# main and shard listeners N and N+3.
read -r P_MAIN P_EU P_US N_PLAIN N_TLS N_EDGE < <(python3 - <<'EOF'
import random, socket
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); return True
    except OSError:
        return False
    finally:
        s.close()
picked, used = [], set()
rng = random.Random()
while len(picked) < 6:
    base = rng.randrange(20000, 60000)
    block = range(base, base + 4)
    if used.isdisjoint(block) and all(free(p) for p in block):
        picked.append(base); used.update(block)
print(*picked)
EOF
)
say "ports: pylon $P_MAIN-$((P_MAIN + 3)), nginx plain $N_PLAIN/+3, tls $N_TLS/+3; two-region: eu $P_EU, us $P_US, edge $N_EDGE/+3"

# --- the env file -----------------------------------------------------------------------
admin_token=$(openssl rand -hex 24)
install -m 0644 examples/pylon.manifest.json "$tmp/pylon.manifest.json"

# render_env OUT KEY=VALUE…: deploy/systemd/pylon.env.example with those keys set (a
# commented-out `# KEY=` line is replaced too; a key not in the file is appended).
render_env() {
  local out=$1
  shift
  python3 - "$repo/deploy/systemd/pylon.env.example" "$out" "$@" <<'EOF'
import re, sys
src, out, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
lines = open(src).read().splitlines()
for pair in pairs:
    key = pair.split("=", 1)[0]
    pat = re.compile(rf"^#?\s*{re.escape(key)}=")
    hits = [i for i, l in enumerate(lines) if pat.match(l)]
    if hits:
        lines[hits[0]] = pair
    else:
        lines.append(pair)
open(out, "w").write("\n".join(lines) + "\n")
EOF
  chmod 0640 "$out"
  [ "$(id -u)" != 0 ] || chgrp "$SERVICE_USER" "$out"
}

# load_env FILE: ENV_ARGS=(KEY=VALUE…), the lines a systemd EnvironmentFile would set.
load_env() {
  ENV_ARGS=()
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in '' | '#'*) continue ;; esac
    ENV_ARGS+=("$line")
  done <"$1"
}

# pylon_cmd ENV_FILE ARGS…: pylon with exactly that environment, as the service user.
pylon_cmd() {
  local file=$1
  shift
  load_env "$file"
  "${RUN_AS[@]}" env -i PATH=/usr/bin:/bin "${ENV_ARGS[@]}" "$PYLON_BIN" "$@"
}

# start_server NAME ENV_FILE PORT: pylon serve in the background; waits for /readyz.
start_server() {
  local name=$1 file=$2 port=$3
  load_env "$file"
  "${RUN_AS[@]}" env -i PATH=/usr/bin:/bin "${ENV_ARGS[@]}" "$PYLON_BIN" serve >>"$tmp/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  server_pids[$name]=$pid
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited during start-up (see $name.log)"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name: /readyz not 200 within 60s"
    sleep 0.1
  done
}

# stop_server NAME: SIGTERM, then the exit code must be 0 within TimeoutStopSec.
stop_server() {
  local name=$1 pid
  pid=${server_pids[$name]}
  local stop_timeout
  stop_timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' deploy/systemd/pylon.service)
  local started=$SECONDS rc=0
  kill -TERM "$pid"
  local deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$name did not stop within TimeoutStopSec=${stop_timeout}s"
    sleep 0.1
  done
  wait "$pid" || rc=$?
  forget_pid "$pid"
  [ "$rc" = 0 ] || fail "$name exited with $rc after SIGTERM (want 0)"
  say "$name stopped on SIGTERM in $((SECONDS - started))s, exit 0 (TimeoutStopSec=${stop_timeout}s)"
}

# start_nginx NAME RENDER_ARGS…: render a shape into $tmp/NAME and run nginx on it.
start_nginx() {
  local name=$1
  shift
  python3 deploy/nginx/render.py --out "$tmp/$name" "$@"
  nginx -t -q -p "$tmp/$name" -c "$tmp/$name/nginx.conf" 2>>"$tmp/$name.log" || fail "nginx -t for $name"
  nginx -p "$tmp/$name" -c "$tmp/$name/nginx.conf" -g 'daemon off;' >>"$tmp/$name.log" 2>&1 &
  pids+=("$!")
}

# --- the client (Python, standard library only) -------------------------------------------
cat >"$tmp/client.py" <<'EOF'
"""Checks pylon through a reverse proxy: HTTP API, /ws, /events, shard sockets.

Standard library only: a small RFC 6455 client (what browsers send: the token in the
`bearer.` subprotocol) and an SSE reader.
"""
import base64, hashlib, http.client as httpc, json, os, socket, ssl, sys, threading, time, urllib.parse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def check(cond, what):
    if not cond:
        raise SystemExit(f"client: FAILED: {what}")
    print(f"client: ok: {what}", flush=True)


def http(base, method, path, body=None, token=None, tls=None):
    u = urllib.parse.urlsplit(base)
    conn = (httpc.HTTPSConnection(u.hostname, u.port, context=tls, timeout=10) if u.scheme == "https"
            else httpc.HTTPConnection(u.hostname, u.port, timeout=10))
    headers = {"content-type": "application/json"} if body is not None else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, None if body is None else json.dumps(body), headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data.decode(errors="replace")
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), parsed


class WebSocket:
    def __init__(self, url, token=None, tls=None, timeout=10):
        u = urllib.parse.urlsplit(url)
        port = u.port or (443 if u.scheme == "wss" else 80)
        sock = socket.create_connection((u.hostname, port), timeout)
        if u.scheme == "wss":
            sock = tls.wrap_socket(sock, server_hostname=u.hostname)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {u.path or '/'}{'?' + u.query if u.query else ''} HTTP/1.1",
                 f"Host: {u.hostname}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        self.protocol = None
        if token:
            self.protocol = "bearer." + urllib.parse.quote(token, safe="-_.!~*'()")
            lines.append(f"Sec-WebSocket-Protocol: {self.protocol}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit(f"client: FAILED: {url}: connection closed during the handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        status, *header_lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
        if " 101 " not in status + " ":
            raise SystemExit(f"client: FAILED: {url}: handshake answered {status!r}")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise SystemExit(f"client: FAILED: {url}: bad Sec-WebSocket-Accept")
        if self.protocol and headers.get("sec-websocket-protocol") != self.protocol:
            raise SystemExit(f"client: FAILED: {url}: subprotocol not echoed ({headers.get('sec-websocket-protocol')!r})")
        self.sock = sock

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("socket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, payload, opcode=1):
        if isinstance(payload, str):
            payload = payload.encode()
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def recv(self):
        """(opcode, payload) of the next data frame; ('close', code, reason) at the end."""
        message, first_opcode = b"", None
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._read(2), "big")
            elif n == 127:
                n = int.from_bytes(self._read(8), "big")
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 9:
                self.send(payload, opcode=10)
                continue
            if opcode == 10:
                continue
            if opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                return ("close", code, payload[2:].decode(errors="replace"))
            if opcode != 0:
                first_opcode = opcode
            message += payload
            if b0 & 0x80:
                return (first_opcode, message)

    def close(self):
        try:
            self.send(b"\x03\xe8", opcode=8)
            self.sock.close()
        except OSError:
            pass


def play(url, token, secs, tls=None):
    """Joins a match over `url`, sends arena inputs at 20/s for `secs`; checks frames and acks."""
    ws = WebSocket(url, token, tls)
    ws.sock.settimeout(5)
    frames, last_ack, seq, next_send = 0, 0, 0, time.monotonic()
    end = time.monotonic() + secs
    while time.monotonic() < end or last_ack < seq:
        if time.monotonic() > end + 5:
            break
        if time.monotonic() >= next_send and time.monotonic() < end:
            seq += 1
            ws.send(json.dumps({"input": {"dx": 1 if seq % 40 < 20 else -1, "dy": 0}, "client_seq": seq}))
            next_send += 0.05
        ws.sock.settimeout(max(0.01, min(next_send - time.monotonic(), 1.0)) if time.monotonic() < end else 1.0)
        try:
            frame = ws.recv()
        except socket.timeout:
            continue
        if frame[0] == "close":
            raise SystemExit(f"client: FAILED: {url}: closed {frame[1]} {frame[2]!r}")
        if frame[0] == 2 and len(frame[1]) > 8:
            frames += 1
            snapshot = json.loads(frame[1][8:])
            last_ack = max(last_ack, int(snapshot.get("ack") or 0))
    ws.close()
    return frames, seq, last_ack


class FeedReader(threading.Thread):
    """Collects change events from /ws (`kind` 'ws') or /events (`kind` 'sse')."""

    def __init__(self, kind, base, path, token, tls=None):
        super().__init__(daemon=True)
        self.kind, self.base, self.path, self.token, self.tls = kind, base, path, token, tls
        self.events, self.ready, self.error, self.headers = [], threading.Event(), None, {}
        self.arrived = {}

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the main thread
            self.error = f"{type(e).__name__}: {e}"
            self.ready.set()

    def _note(self, event):
        self.events.append(event)
        self.arrived.setdefault(event.get("row_id"), time.monotonic())

    def _run(self):
        if self.kind == "ws":
            u = urllib.parse.urlsplit(self.base)
            scheme = "wss" if u.scheme == "https" else "ws"
            ws = WebSocket(f"{scheme}://{u.netloc}{self.path}", self.token, self.tls)
            ws.sock.settimeout(30)
            self.ready.set()
            while True:
                frame = ws.recv()
                if frame[0] == "close":
                    return
                if frame[0] == 1:
                    self._note(json.loads(frame[1]))
        u = urllib.parse.urlsplit(self.base)
        conn = httpc.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("GET", self.path, headers={"authorization": f"Bearer {self.token}",
                                                "accept": "text/event-stream"})
        r = conn.getresponse()
        self.headers = dict((k.lower(), v) for k, v in r.getheaders())
        self.status = r.status
        self.ready.set()
        text = ""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                return
            text += chunk.decode()
            while "\n\n" in text:
                block, text = text.split("\n\n", 1)
                data = "\n".join(l[5:].lstrip() for l in block.split("\n") if l.startswith("data:"))
                if data:
                    self._note(json.loads(data))


def wait_for(pred, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def single(base, admin, region, tls_base, cafile, out):
    tls = ssl.create_default_context(cafile=cafile)
    st, _, health = http(base, "GET", "/health")
    check(st == 200 and health.get("status") == "ok", f"GET /health through nginx: {st} {health}")
    st, _, g = http(base, "POST", "/api/auth/guest")
    check(st == 200 and g.get("token"), "POST /api/auth/guest through nginx")
    guest, user = g["token"], g["user_id"]

    ws_feed = FeedReader("ws", base, "/ws?since=0", guest)
    sse_feed = FeedReader("sse", base, "/events?since=0", admin)
    ws_feed.start(); sse_feed.start()
    check(ws_feed.ready.wait(10) and not ws_feed.error, f"/ws upgraded through nginx {ws_feed.error or ''}")
    check(sse_feed.ready.wait(10) and not sse_feed.error, f"/events opened through nginx {sse_feed.error or ''}")
    check(sse_feed.status == 200 and sse_feed.headers.get("content-type", "").startswith("text/event-stream"),
          f"/events answers text/event-stream ({sse_feed.status} {sse_feed.headers.get('content-type')})")
    check(sse_feed.headers.get("x-accel-buffering") == "no", "/events passes nginx unbuffered (X-Accel-Buffering: no)")

    st, _, m = http(base, "POST", "/api/shards", {"game": "arena"}, guest)
    check(st in (200, 201) and m.get("id", "").startswith(region + "-"), f"POST /api/shards: {st} {m}")
    match = m["id"]
    st, _, info = http(base, "GET", f"/api/shards/{match}")
    check(st == 200 and info.get("id") == match, f"GET /api/shards/{match} through nginx")

    u = urllib.parse.urlsplit(base)
    frames, sent, acked = play(f"ws://{u.netloc}/shard?shard={match}&sid={user}", guest, 3)
    check(frames >= 30 and sent >= 50 and acked == sent,
          f"a bot played {match} over /shard: {frames} frames, {sent} inputs, last ack {acked}")

    name = f"e2e-{os.urandom(4).hex()}"
    row = {"displayName": name, "region": region, "createdAt": "2026-01-01T00:00:00Z", "level": 3, "xp": 42}
    written = time.monotonic()
    st, _, created = http(base, "POST", "/api/entities/Player", row, admin)
    check(st == 201 and created.get("id"), f"POST /api/entities/Player with the admin token: {st} {created}")
    row_id = created["id"]
    st, _, _ = http(base, "POST", "/api/entities/Player", dict(row, displayName=name + "x"), guest)
    check(st == 403, f"the same insert with a guest token is refused by policy ({st})")
    for feed, label in ((ws_feed, "/ws"), (sse_feed, "/events")):
        got = wait_for(lambda: row_id in feed.arrived, 10)
        check(got and not feed.error, f"{label} delivered the insert of {row_id} {feed.error or ''}")
        ev = next(e for e in feed.events if e.get("row_id") == row_id)
        check(ev.get("kind") == "insert" and ev.get("entity") == "Player" and ev["data"]["displayName"] == name,
              f"{label} event is the insert: {ev.get('kind')} {ev.get('entity')} seq {ev.get('seq')}")
        check(feed.arrived[row_id] - written < 3.0,
              f"{label} event arrived {feed.arrived[row_id] - written:.3f}s after the write (unbuffered)")

    # TLS: the same config with its certificate, a shard socket over wss on the shard port.
    st, _, health = http(tls_base, "GET", "/health", tls=tls)
    check(st == 200 and health.get("status") == "ok", "GET /health over TLS (https)")
    tu = urllib.parse.urlsplit(tls_base)
    st, _, g2 = http(tls_base, "POST", "/api/auth/guest", tls=tls)
    shard_port = tu.port + 3
    frames, sent, acked = play(f"wss://{tu.hostname}:{shard_port}/?shard={match}&sid={g2['user_id']}",
                               g2["token"], 2, tls)
    check(frames >= 20 and acked == sent,
          f"a bot played {match} over wss on the TLS shard port: {frames} frames, last ack {acked}/{sent}")

    json.dump({"row_id": row_id, "name": name, "guest": guest, "user": user, "match": match}, open(out, "w"))


def after_restore(base, admin, state):
    s = json.load(open(state))
    st, _, row = http(base, "GET", f"/api/entities/Player/{s['row_id']}", token=admin)
    check(st == 200 and row.get("displayName") == s["name"],
          f"the restored server answers with the inserted row {s['row_id']} ({st})")
    st, _, me = http(base, "GET", "/api/auth/me", token=s["guest"])
    check(st == 200 and me.get("user_id") == s["user"], f"the guest session survived the restore ({st})")


def regions(edge, eu_direct, us_direct):
    """Two regions behind one edge: ids route by prefix, whichever listener is used."""
    ids = {}
    for region, direct in (("eu", eu_direct), ("us", us_direct)):
        st, _, g = http(direct, "POST", "/api/auth/guest")
        st, _, m = http(direct, "POST", "/api/shards", {"game": "arena"}, g["token"])
        check(st in (200, 201) and m["id"].startswith(region + "-"), f"created {m.get('id')} on {region} directly")
        ids[region] = m["id"]
    st, _, _ = http(eu_direct, "GET", f"/api/shards/{ids['us']}")
    check(st == 404, f"the eu process alone does not know {ids['us']} ({st})")
    eu_up = urllib.parse.urlsplit(edge)
    for region, match in ids.items():
        st, _, info = http(edge, "GET", f"/api/shards/{match}")
        check(st == 200 and info.get("id") == match, f"edge routes GET /api/shards/{match} to {region}")
        # Sessions live in each region's own database here (no shared Postgres), so each
        # socket joins with a session of the match's region.
        direct = eu_direct if region == "eu" else us_direct
        st, _, g = http(direct, "POST", "/api/auth/guest")
        frames, sent, acked = play(f"ws://{eu_up.netloc}/shard?shard={match}&sid={g['user_id']}", g["token"], 1)
        check(frames >= 10 and acked == sent, f"edge routes /shard?shard={match} to {region} ({frames} frames)")
        st, _, g = http(direct, "POST", "/api/auth/guest")
        frames, sent, acked = play(f"ws://{eu_up.hostname}:{eu_up.port + 3}/?shard={match}&sid={g['user_id']}",
                                   g["token"], 1)
        check(frames >= 10 and acked == sent, f"edge routes the shard port for {match} to {region} ({frames} frames)")
    st, _, g = http(edge, "POST", "/api/auth/guest")
    st, _, m = http(edge, "POST", "/api/shards", {"game": "arena"}, g["token"])
    check(st in (200, 201) and isinstance(m, dict) and m.get("id", "").startswith("eu-"),
          f"a match created through the eu edge is local: {st} {m}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "single":
        single(*sys.argv[2:8])
    elif cmd == "after-restore":
        after_restore(*sys.argv[2:5])
    elif cmd == "regions":
        regions(*sys.argv[2:5])
EOF

# --- 1. the server with the unit's environment file -------------------------------------
say "rendering deploy/systemd/pylon.env.example"
data=$tmp/data
service_dir "$data"
env_file=$tmp/pylon.env
render_env "$env_file" \
  "PYLON_ADMIN_TOKEN=$admin_token" \
  PYLON_HOST=127.0.0.1 \
  "PYLON_PORT=$P_MAIN" \
  "PYLON_DB_PATH=$data/pylon.db" \
  "PYLON_SESSION_DB=$data/sessions.db" \
  "PYLON_MANIFEST=$tmp/pylon.manifest.json" \
  PYLON_LOG=warn
start_server server "$env_file" "$P_MAIN"
say "pylon serve is ready on 127.0.0.1:$P_MAIN (pid ${server_pids[server]})"
region=$(sed -n 's/^PYLON_REGION=//p' "$env_file")

# --- 2. nginx, plain and TLS ----------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
chmod 644 "$tmp/tls.key"
upstreams=(--upstream "pylon=127.0.0.1:$P_MAIN" --upstream "pylon_shard=127.0.0.1:$((P_MAIN + 3))")
start_nginx nginx-plain --shape single-region --plain --listen-host 127.0.0.1 --drop-port 80 \
  --port "443=$N_PLAIN" --port "4324=$((N_PLAIN + 3))" "${upstreams[@]}"
start_nginx nginx-tls --shape single-region --listen-host 127.0.0.1 \
  --port "80=$((N_TLS + 1))" --port "443=$N_TLS" --port "4324=$((N_TLS + 3))" \
  --cert "$tmp/tls.crt" --key "$tmp/tls.key" "${upstreams[@]}"
wait_until "nginx (plain) answering /health" 20 curl -fsS "http://127.0.0.1:$N_PLAIN/health"
wait_until "nginx (TLS) answering /health" 20 curl -fsS --cacert "$tmp/tls.crt" "https://localhost:$N_TLS/health"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((N_TLS + 1))/health")
[ "$code" = 308 ] || fail "port 80's server block should redirect to https (got $code)"
say "nginx: plain on $N_PLAIN (+3), TLS on $N_TLS (+3), http->https redirect on $((N_TLS + 1))"

# --- 3. bots and the client through nginx, at the same time ------------------------------
say "pylon-loadtest arena through nginx (API on $N_PLAIN, shard sockets on nginx's $((N_PLAIN + 3)))"
"$PYLON_LOADTEST_BIN" arena --url "http://127.0.0.1:$N_PLAIN" --bots 8 --secs 5 \
  --assert 'errors==0,disconnects==0,frames_per_client_s>=10' >"$tmp/loadtest.log" 2>&1 &
loadtest_pid=$!
pids+=("$loadtest_pid")
say "client: /health, /api, /shard, /ws, /events through nginx; wss on the TLS shard port"
python3 "$tmp/client.py" single "http://127.0.0.1:$N_PLAIN" "$admin_token" "$region" \
  "https://localhost:$N_TLS" "$tmp/tls.crt" "$tmp/state.json"
rc=0
wait "$loadtest_pid" || rc=$?
forget_pid "$loadtest_pid"
grep -v '^\[' "$tmp/loadtest.log" || true
[ "$rc" = 0 ] || fail "pylon-loadtest through nginx (exit $rc)"

# --- 4. the image's HEALTHCHECK command ----------------------------------------------------
health_cmd=$(python3 - <<'EOF'
import json, re
text = open("Dockerfile").read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
argv = json.loads(m.group(1))
assert argv[:2] == ["bash", "-c"], argv
print(argv[2])
EOF
)
PYLON_PORT=$P_MAIN bash -c "$health_cmd" || fail "the Dockerfile's HEALTHCHECK fails against a healthy server"
if PYLON_PORT=$((N_EDGE + 2)) bash -c "$health_cmd" 2>/dev/null; then
  fail "the Dockerfile's HEALTHCHECK passes on a port where nothing listens"
fi
say "the Dockerfile's HEALTHCHECK passes on a healthy server and fails on a closed port"

# --- 5. backup, graceful stop, restore ------------------------------------------------------
# The nightly job's own wrapper (pylon-backup.service runs it the same way: the service
# user, the env file, BACKUP_ROOT), while the server keeps serving.
backups=$tmp/backups
service_dir "$backups"
install -m 0755 deploy/systemd/pylon-backup "$tmp/pylon-backup"
load_env "$env_file"
"${RUN_AS[@]}" env -i PATH=/usr/bin:/bin "${ENV_ARGS[@]}" BACKUP_ROOT="$backups" BACKUP_KEEP_DAYS=14 \
  PYLON_BIN="$PYLON_BIN" "$tmp/pylon-backup" || fail "deploy/systemd/pylon-backup"
backup_dir=$(find "$backups" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ -n "$backup_dir" ] && [ -f "$backup_dir/backup.json" ] || fail "no backup.json under $backups"
say "online backup by deploy/systemd/pylon-backup: $backup_dir: $(cd "$backup_dir" && ls | tr '\n' ' ')"
stop_server server
# The drill in docs/DEPLOY.md: keep the old data aside, restore into an empty location.
mv "$data" "$tmp/data.before-restore"
service_dir "$data"
pylon_cmd "$env_file" restore "$backup_dir" || fail "pylon restore"
if pylon_cmd "$env_file" restore "$backup_dir" 2>"$tmp/restore-again.err"; then
  fail "a second restore over existing data should be refused"
fi
say "restore refuses a non-empty location: $(head -c 160 "$tmp/restore-again.err")"
start_server server "$env_file" "$P_MAIN"
python3 "$tmp/client.py" after-restore "http://127.0.0.1:$N_PLAIN" "$admin_token" "$tmp/state.json"
stop_server server

# --- 6. two regions behind one edge -------------------------------------------------------
say "two-region nginx: eu on $P_EU, us on $P_US, edge (local region eu) on $N_EDGE"
for r in eu us; do
  port_var=P_${r^^}
  service_dir "$tmp/data-$r"
  render_env "$tmp/pylon-$r.env" \
    "PYLON_ADMIN_TOKEN=$admin_token" PYLON_HOST=127.0.0.1 "PYLON_PORT=${!port_var}" \
    "PYLON_DB_PATH=$tmp/data-$r/pylon.db" "PYLON_SESSION_DB=$tmp/data-$r/sessions.db" \
    "PYLON_REGION=$r" PYLON_LOG=warn
  start_server "server_$r" "$tmp/pylon-$r.env" "${!port_var}"
done
start_nginx nginx-edge --shape two-region --plain --listen-host 127.0.0.1 --drop-port 80 \
  --port "443=$N_EDGE" --port "4324=$((N_EDGE + 3))" \
  --upstream "pylon_local=127.0.0.1:$P_EU" --upstream "pylon_local_shard=127.0.0.1:$((P_EU + 3))" \
  --upstream "pylon_eu=127.0.0.1:$P_EU" --upstream "pylon_eu_shard=127.0.0.1:$((P_EU + 3))" \
  --upstream "pylon_us=127.0.0.1:$P_US" --upstream "pylon_us_shard=127.0.0.1:$((P_US + 3))"
wait_until "the two-region edge answering /health" 20 curl -fsS "http://127.0.0.1:$N_EDGE/health"
python3 "$tmp/client.py" regions "http://127.0.0.1:$N_EDGE" "http://127.0.0.1:$P_EU" "http://127.0.0.1:$P_US"
stop_server server_eu
stop_server server_us

ok=1
say "test-deploy: all checks passed"
