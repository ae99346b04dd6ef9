#!/usr/bin/env python3
"""Render one of pylon's nginx shapes into a self-contained nginx prefix.

The configs in this directory are written for a host: /etc/nginx, ports 80, 443 and 4324,
real upstream addresses. This script copies one shape into OUT with other listen ports,
upstream addresses and certificate paths, so that it can run beside anything else:

    python3 deploy/nginx/render.py --shape single-region --out /tmp/ngx \\
        --listen-host 127.0.0.1 --port 443=18443 --port 4324=18446 --drop-port 80 \\
        --upstream pylon=127.0.0.1:4321 --upstream pylon_shard=127.0.0.1:4324 \\
        --cert /tmp/cert.pem --key /tmp/key.pem
    nginx -t -p /tmp/ngx -c /tmp/ngx/nginx.conf
    nginx -p /tmp/ngx -c /tmp/ngx/nginx.conf -g 'daemon off;'

--plain turns the TLS listeners into plain HTTP ones (for clients that speak only
http:// and ws://). scripts/check-deploy.sh and scripts/test-deploy.sh use this script.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SHAPES = {
    # shape: (site file, upstream file, name of the upstream file under pylon/)
    "single-region": ("single-region/site.conf", "single-region/upstreams.conf", "upstreams.conf"),
    "two-region": ("two-region/site.conf", "two-region/regions.conf", "regions.conf"),
    "compose": ("two-region/site.conf", "compose/regions.conf", "regions.conf"),
}
COMMON = ("common/proxy.conf", "common/stream.conf", "common/tls.conf")

LISTEN = re.compile(r"^(\s*)listen\s+(\[::\]:)?(\d+)(\s+ssl)?\s*;\s*$")


def fail(message: str) -> None:
    print(f"render.py: {message}", file=sys.stderr)
    sys.exit(2)


def server_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line indexes of every top-level `server { … }` block."""
    blocks, depth, start = [], 0, None
    for i, line in enumerate(lines):
        code = line.split("#", 1)[0]
        if depth == 0 and re.match(r"^\s*server\s*\{", code):
            start = i
        depth += code.count("{") - code.count("}")
        if depth == 0 and start is not None and "}" in code:
            blocks.append((start, i))
            start = None
    return blocks


def render_site(text: str, ports: dict[int, int], drop: set[int], host: str | None,
                plain: bool) -> str:
    lines = text.splitlines()
    # Drop whole server blocks that listen on a dropped port.
    for first, last in reversed(server_blocks(lines)):
        block_ports = {int(m.group(3)) for m in map(LISTEN.match, lines[first:last + 1]) if m}
        if block_ports & drop:
            del lines[first:last + 1]
    out = []
    for line in lines:
        m = LISTEN.match(line)
        if m:
            indent, v6, port, ssl = m.group(1), m.group(2), int(m.group(3)), m.group(4)
            if port not in ports:
                fail(f"listen port {port} has no --port {port}=N (or --drop-port {port})")
            if host and v6:
                continue  # one explicit address: the IPv6 wildcard line goes
            addr = f"{host}:{ports[port]}" if host else f"{v6 or ''}{ports[port]}"
            out.append(f"{indent}listen {addr}{'' if plain else (ssl or '')};")
            continue
        if plain and re.match(r"^\s*include\s+pylon/tls\.conf\s*;", line):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def render_upstreams(text: str, upstreams: dict[str, list[str]]) -> str:
    lines, out, current, seen = text.splitlines(), [], None, set()
    for line in lines:
        code = line.split("#", 1)[0]
        m = re.match(r"^\s*upstream\s+(\w+)\s*\{", code)
        if m:
            current = m.group(1)
            out.append(line)
            if current in upstreams:
                seen.add(current)
                out.extend(f"    server {addr};" for addr in upstreams[current])
            continue
        if current and "}" in code:
            current = None
        elif current in upstreams and re.match(r"^\s*server\s", code):
            continue  # replaced above
        out.append(line)
    missing = set(upstreams) - seen
    if missing:
        fail(f"no upstream named {', '.join(sorted(missing))} in this shape")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", required=True, choices=sorted(SHAPES))
    parser.add_argument("--out", required=True, type=Path, help="the nginx prefix to write")
    parser.add_argument("--listen-host", help="listen on this address only (drops [::] lines)")
    parser.add_argument("--port", action="append", default=[], metavar="FROM=TO",
                        help="listen on TO where the config says FROM")
    parser.add_argument("--drop-port", action="append", default=[], type=int, metavar="PORT",
                        help="leave out the server blocks that listen on PORT")
    parser.add_argument("--upstream", action="append", default=[], metavar="NAME=ADDR[,ADDR]",
                        help="replace the servers of upstream NAME")
    parser.add_argument("--plain", action="store_true", help="plain HTTP instead of TLS")
    parser.add_argument("--cert", help="certificate chain (PEM) for tls.conf")
    parser.add_argument("--key", help="private key (PEM) for tls.conf")
    args = parser.parse_args()

    ports = {}
    for spec in args.port:
        src, _, dst = spec.partition("=")
        if not (src.isdigit() and dst.isdigit()):
            fail(f"--port wants FROM=TO, got {spec!r}")
        ports[int(src)] = int(dst)
    upstreams = {}
    for spec in args.upstream:
        name, _, addrs = spec.partition("=")
        if not name or not addrs:
            fail(f"--upstream wants NAME=ADDR[,ADDR], got {spec!r}")
        upstreams[name] = [a for a in addrs.split(",") if a]

    site, ups, ups_name = SHAPES[args.shape]
    out: Path = args.out
    conf = out / "pylon"
    logs = out / "logs"
    conf.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)

    top = (HERE / "nginx.conf").read_text()
    top = top.replace("pid /run/nginx.pid;", f"pid {logs}/nginx.pid;")
    top = top.replace("/var/log/nginx/", f"{logs}/")
    (out / "nginx.conf").write_text(top)

    (conf / "site.conf").write_text(render_site(
        (HERE / site).read_text(), ports, set(args.drop_port), args.listen_host, args.plain))
    (conf / ups_name).write_text(render_upstreams((HERE / ups).read_text(), upstreams))
    for name in COMMON:
        shutil.copyfile(HERE / name, conf / Path(name).name)
    if args.cert or args.key:
        if not (args.cert and args.key):
            fail("--cert and --key go together")
        tls = (conf / "tls.conf").read_text()
        tls = tls.replace("/etc/nginx/tls/fullchain.pem", args.cert)
        tls = tls.replace("/etc/nginx/tls/privkey.pem", args.key)
        (conf / "tls.conf").write_text(tls)


if __name__ == "__main__":
    main()
