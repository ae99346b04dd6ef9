#!/usr/bin/env bash
# Validates the deploy shapes under deploy/ (and the Dockerfile) with the real tools
# where this machine has them or can install them (Debian packages, PyPI, npm), and says
# loudly what it could not check:
#
#   nginx       `nginx -t` of every shape (single-region, two-region, compose), with TLS
#               (a self-signed certificate made here) and as plain HTTP, upstreams on
#               loopback (deploy/nginx/render.py)
#   caddy       `caddy validate` of both Caddyfiles
#   systemd     `systemd-analyze verify` of the units and the timer, the sandbox's
#               exposure score, the timer's calendar; the env file's syntax and keys
#   docker      the Dockerfile's required instructions and its HEALTHCHECK's shell syntax
#               (no image is built: that needs a Docker engine)
#   compose     `docker-compose config` where installable, and a YAML check of services,
#               healthchecks, grace periods and mounted files
#   kubernetes  `kubectl kustomize` of the base and each overlay, a schema check of the
#               output (kubernetes-validate, from PyPI), and pylon's own requirements
#               (probes, ports, grace period, tick threads from the CPU limit, region)
#   terraform   `terraform fmt -check`; `terraform validate` only if the provider
#               registry is reachable
#   sst         TypeScript syntax of sst.config.ts (types need SST's generated platform)
#   fly         fly.toml parses and keeps the shutdown and port settings
#   scripts     bash -n / sh -n, shellcheck where installable, the renderer compiles
#   docs        every deploy/ path the docs name exists, every deploy/ file is documented
#
# Idempotent; run as root to let it install what is missing. Exit 1 on any failure;
# the last line counts passed, failed and skipped checks.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

passed=0
failed=0
skipped=0
tmp=$(mktemp -d /tmp/pylon-check-deploy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pylon-check-deploy

ok() {
  echo "ok: $*"
  passed=$((passed + 1))
}
bad() {
  echo "FAILED: $*"
  failed=$((failed + 1))
}
skip() {
  echo "SKIPPED: $1: $2"
  skipped=$((skipped + 1))
}
note() { echo "note: $*"; }

# check NAME COMMAND…: runs COMMAND; ok or FAILED with its output.
check() {
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then
    ok "$name"
  else
    bad "$name"
    printf '%s\n' "$out" | sed 's/^/    /' | tail -n 40
  fi
}

apt_updated=0
# apt_install PACKAGE…: installs Debian packages (without recommends) when running as root.
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

# have COMMAND PACKAGE: the command exists, or installing the package provides it.
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  apt_install "$2" && command -v "$1" >/dev/null 2>&1
}

pip_install() {
  python3 -m pip install -q --disable-pip-version-check "$@" >/dev/null 2>&1
}

py_has() { python3 -c "import $1" >/dev/null 2>&1; }

echo "== python3 and PyYAML (every YAML check below)"
if ! command -v python3 >/dev/null; then
  apt_install python3 python3-yaml || true
fi
py_has yaml || pip_install pyyaml || apt_install python3-yaml || true
if ! py_has yaml; then
  bad "PyYAML: neither pip nor apt-get could install it; the YAML checks cannot run"
fi

# --- nginx ---------------------------------------------------------------------------------
echo "== nginx"
if have nginx nginx && have openssl openssl; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tmp/tls.key" -out "$tmp/tls.crt" >/dev/null 2>&1
  port=31000
  for shape in single-region two-region compose; do
    case $shape in
      single-region) names="pylon pylon_shard" ;;
      two-region) names="pylon_local pylon_local_shard pylon_eu pylon_eu_shard pylon_us pylon_us_shard" ;;
      compose) names="pylon_local pylon_local_shard pylon_eu_1 pylon_eu_1_shard pylon_eu_2 pylon_eu_2_shard" ;;
    esac
    args=()
    for name in $names; do
      port=$((port + 1))
      args+=(--upstream "$name=127.0.0.1:$port")
    done
    for variant in tls plain; do
      out=$tmp/nginx-$shape-$variant
      if [ "$variant" = tls ]; then
        extra=(--port "80=18080" --port "443=18443" --port "4324=18446" --cert "$tmp/tls.crt" --key "$tmp/tls.key")
      else
        extra=(--plain --listen-host 127.0.0.1 --drop-port 80 --port "443=18443" --port "4324=18446")
      fi
      if python3 deploy/nginx/render.py --shape "$shape" --out "$out" "${args[@]}" "${extra[@]}" >"$tmp/render.log" 2>&1; then
        check "nginx -t: $shape ($variant)" nginx -t -p "$out" -c "$out/nginx.conf"
      else
        bad "rendering nginx $shape ($variant)"
        sed 's/^/    /' "$tmp/render.log"
      fi
    done
  done
else
  skip "nginx -t" "nginx or openssl missing and not installable (apt-get install nginx openssl as root)"
fi

# --- caddy ---------------------------------------------------------------------------------
echo "== caddy"
if have caddy caddy; then
  for f in deploy/caddy/Caddyfile deploy/caddy/Caddyfile.regions; do
    check "caddy validate: $f" env HOME="$tmp/caddy" XDG_DATA_HOME="$tmp/caddy" XDG_CONFIG_HOME="$tmp/caddy" \
      caddy validate --config "$f" --adapter caddyfile
  done
else
  skip "caddy validate" "caddy missing and not installable (Debian package caddy)"
fi

# --- systemd -------------------------------------------------------------------------------
echo "== systemd"
units=(pylon.service pylon-backup.service pylon-backup.timer)
if have systemd-analyze systemd; then
  # verify wants every ExecStart= binary to exist: the units are copied with the install
  # paths replaced by this checkout's files (the pylon binary, or a stand-in when none is
  # built). verify does not resolve User=, so no `pylon` user is needed; systemd need not
  # be PID 1 for it.
  mkdir -p "$tmp/units"
  bin=${PYLON_BIN:-target/release/pylon}
  if [ -x "$bin" ]; then
    bin=$(realpath "$bin")
  else
    printf '#!/bin/sh\nexit 0\n' >"$tmp/pylon-stand-in"
    chmod 755 "$tmp/pylon-stand-in"
    bin=$tmp/pylon-stand-in
    note "no pylon binary at ${PYLON_BIN:-target/release/pylon}: verifying with a stand-in executable"
  fi
  for u in "${units[@]}"; do
    sed -e "s#/usr/local/bin/pylon#$bin#" \
      -e "s#/usr/local/lib/pylon/pylon-backup#$(pwd)/deploy/systemd/pylon-backup#" \
      "deploy/systemd/$u" >"$tmp/units/$u"
  done
  check "systemd-analyze verify: ${units[*]}" \
    bash -c "cd '$tmp/units' && out=\$(systemd-analyze verify ${units[*]/#/./} 2>&1); rc=\$?; echo \"\$out\"; [ \$rc = 0 ] && [ -z \"\$out\" ]"
  # --threshold is the exposure times ten (0-100).
  if out=$(systemd-analyze security --offline=yes --threshold=30 --no-pager "$tmp/units/pylon.service" 2>&1); then
    ok "systemd-analyze security: pylon.service $(printf '%s\n' "$out" | grep -o 'exposure level.*' | tail -n 1) (at most 3.0)"
  else
    bad "systemd-analyze security: pylon.service exposure above 3.0"
    printf '%s\n' "$out" | grep -E '✗|exposure' | sed 's/^/    /'
  fi
  calendar=$(sed -n 's/^OnCalendar=//p' deploy/systemd/pylon-backup.timer)
  check "systemd-analyze calendar: $calendar" systemd-analyze calendar "$calendar"
else
  skip "systemd-analyze verify" "systemd-analyze missing and not installable"
fi
check "sh -n deploy/systemd/pylon-backup" sh -n deploy/systemd/pylon-backup
check "deploy/systemd/pylon-backup is executable" test -x deploy/systemd/pylon-backup

check "pylon.env.example: KEY=value lines of known variables" python3 - <<'EOF'
import re, pathlib
known = set(re.findall(r"\b(?:PYLON_[A-Z_]+|DATABASE_URL)\b",
                       pathlib.Path("src/config.rs").read_text() + pathlib.Path("README.md").read_text()))
# Being added to the server now; a build without it ignores it.
known |= {"PYLON_TRUSTED_PROXIES"}
errors = []
for n, line in enumerate(pathlib.Path("deploy/systemd/pylon.env.example").read_text().splitlines(), 1):
    body = line[1:].strip() if line.startswith("#") else line
    m = re.match(r"^([A-Z_]+)=(.*)$", body)
    if line.startswith("#") and not m:
        continue
    if not m:
        if line.strip():
            errors.append(f"line {n}: not KEY=value: {line!r}")
        continue
    key, value = m.groups()
    if key not in known:
        errors.append(f"line {n}: {key} is not a pylon variable")
    if re.search(r"[\"' ]", value):
        errors.append(f"line {n}: quotes or spaces in the value (systemd and docker read them differently)")
if errors:
    raise SystemExit("\n".join(errors))
EOF

# --- Dockerfile -------------------------------------------------------------------------------
echo "== Dockerfile"
check "Dockerfile: stages, user, ports, volume, healthcheck, stop signal, env defaults" python3 - <<'EOF'
import re, pathlib
text = pathlib.Path("Dockerfile").read_text()
joined = text.replace("\\\n", " ")
lines = [l.strip() for l in joined.splitlines() if l.strip() and not l.strip().startswith("#")]
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)
froms = [l for l in lines if l.startswith("FROM ")]
need(len(froms) == 2 and froms[0].startswith("FROM rust:1.95-bookworm") and froms[1] == "FROM debian:bookworm-slim",
     f"two stages, rust:1.95-bookworm then debian:bookworm-slim: {froms}")
need(any("--mount=type=cache" in l and "cargo build --release" in l for l in lines), "cargo build with a cache mount")
user = [l for l in lines if l.startswith("USER ")]
need(user and not user[-1].split()[1].startswith(("root", "0")), f"a non-root USER: {user}")
need("EXPOSE 4321-4324" in lines, "EXPOSE 4321-4324")
need("VOLUME /var/lib/pylon" in lines, "VOLUME /var/lib/pylon")
need("STOPSIGNAL SIGTERM" in lines, "STOPSIGNAL SIGTERM")
hc = [l for l in lines if l.startswith("HEALTHCHECK ")]
need(hc and "/health" in hc[0], "a HEALTHCHECK on /health")
env = " ".join(l for l in lines if l.startswith("ENV "))
for pair in ("PYLON_DB_PATH=/var/lib/pylon/pylon.db", "PYLON_SESSION_DB=/var/lib/pylon/sessions.db", "PYLON_HOST=0.0.0.0"):
    need(pair in env, f"ENV {pair}")
example = pathlib.Path("deploy/systemd/pylon.env.example").read_text()
for key in ("PYLON_DB_PATH", "PYLON_SESSION_DB"):
    a = re.search(rf"{key}=(\S+)", env).group(1) if re.search(rf"{key}=(\S+)", env) else None
    b = re.search(rf"^{key}=(\S+)$", example, re.M)
    need(b and a == b.group(1), f"{key} is the same in the Dockerfile and pylon.env.example")
need("docker stop -t 45" in text and "stop_grace_period: 45s" in text, "the stop-timeout note (docker stop -t 45, stop_grace_period)")
ignore = pathlib.Path(".dockerignore").read_text().split()
for entry in ("target", ".git", "node_modules"):
    need(entry in ignore, f".dockerignore lists {entry}")
if errors:
    raise SystemExit("\n".join(errors))
EOF
hc_cmd=$(python3 -c '
import json, re
t = open("Dockerfile").read().replace("\\\n", " ")
print(json.loads(re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", t, re.M).group(1))[2])' 2>/dev/null)
check "Dockerfile HEALTHCHECK: bash syntax" bash -n -c "$hc_cmd"
if docker info >/dev/null 2>&1; then
  skip "docker build" "a full release build of pylon; run 'docker build -t pylon .' by hand"
else
  skip "docker build" "no Docker engine on this machine (the image is untested here; scripts/test-deploy.sh runs its binary, user and environment)"
fi

# --- compose -------------------------------------------------------------------------------
echo "== compose"
check "deploy/compose.yml: services, healthchecks, grace periods, mounts" python3 - <<'EOF'
import os, yaml
path = "deploy/compose.yml"
doc = yaml.safe_load(open(path))
s = doc["services"]
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)
need(set(s) >= {"pylon-1", "pylon-2", "postgres", "redis", "nginx"}, f"services: {sorted(s)}")
need(str(s["postgres"].get("image", "")).startswith("postgres:16"), "Postgres 16")
need(str(s["redis"].get("image", "")).startswith("redis:7"), "Redis 7")
prefixes = set()
for name in ("pylon-1", "pylon-2"):
    svc, env = s[name], s[name].get("environment", {})
    # The match-id prefix: PYLON_REGION, or PYLON_REGION_PYLON_INSTANCE (docs/REGIONS.md).
    instance = env.get("PYLON_INSTANCE")
    prefix = f'{env.get("PYLON_REGION")}_{instance}' if instance else env.get("PYLON_REGION")
    need(str(env.get("DATABASE_URL", "")).startswith("postgres://"), f"{name}: DATABASE_URL")
    need(str(env.get("PYLON_CLUSTER_BUS", "")).startswith("redis://"), f"{name}: PYLON_CLUSTER_BUS")
    need(svc.get("stop_grace_period") == "45s", f"{name}: stop_grace_period 45s")
    need("healthcheck" in svc, f"{name}: healthcheck")
    prefixes.add(prefix)
need(len(prefixes) == 2, f"pylon-1 and pylon-2 have distinct match-id prefixes: {prefixes}")
for name in ("postgres", "redis", "nginx"):
    need("healthcheck" in s[name], f"{name}: healthcheck")
for vol in s["nginx"].get("volumes", []):
    src = vol.split(":")[0]
    if src.startswith("./"):
        need(os.path.exists(os.path.join("deploy", src)), f"nginx mounts a missing file {src}")
regions = open("deploy/nginx/compose/regions.conf").read()
for p in prefixes:
    need(f"~^{p}-" in regions, f"nginx/compose/regions.conf routes the prefix {p}")
if errors:
    raise SystemExit("\n".join(errors))
EOF
if have docker-compose docker-compose; then
  check "docker-compose config (compose file schema)" \
    env PYLON_ADMIN_TOKEN=check-only-token-0123456789 PYLON_TLS_DIR="$tmp" \
    docker-compose -f deploy/compose.yml config -q
else
  skip "docker-compose config" "docker-compose missing and not installable; the YAML check above is a parse, not a schema check"
fi

# --- Kubernetes ------------------------------------------------------------------------------
echo "== kubernetes"
k8s_rendered=()
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  for dir in deploy/k8s/base deploy/k8s/overlays/eu deploy/k8s/overlays/us; do
    out=$tmp/k8s-$(basename "$dir").yaml
    if kubectl kustomize "$dir" >"$out" 2>"$tmp/kustomize.err"; then
      ok "kubectl kustomize $dir"
      k8s_rendered+=("$out")
    else
      bad "kubectl kustomize $dir"
      sed 's/^/    /' "$tmp/kustomize.err"
    fi
  done
else
  # Debian's kubernetes-client is too old for this kustomization (it predates `labels` and
  # `patches`); without kubectl the references are checked and the base is used as is.
  skip "kubectl kustomize" "kubectl not installed (Debian's 1.20 client has a kustomize too old for these files); checking references with Python instead"
  check "kustomization references resolve (Python)" python3 - <<'EOF'
import os, yaml
errors = []
for d in ("deploy/k8s/base", "deploy/k8s/overlays/eu", "deploy/k8s/overlays/us"):
    k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(d, r))
        if not (os.path.isfile(p) or os.path.isfile(os.path.join(p, "kustomization.yaml"))):
            errors.append(f"{d}: resource {r} not found")
        elif os.path.isfile(p):
            list(yaml.safe_load_all(open(p)))
if errors:
    raise SystemExit("\n".join(errors))
EOF
  for f in deploy/k8s/base/*.yaml; do
    case $f in */kustomization.yaml) ;; *) k8s_rendered+=("$f") ;; esac
  done
fi
k8s_rendered+=(deploy/k8s/base/secret.example.yaml)

if py_has kubernetes_validate || pip_install kubernetes-validate; then
  check "kubernetes-validate --strict (schemas of Kubernetes 1.37): ${#k8s_rendered[@]} files" \
    python3 -m kubernetes_validate --strict --quiet "${k8s_rendered[@]}"
else
  skip "Kubernetes schema check" "kubernetes-validate not installable from PyPI; only the YAML parse and the key checks below ran (a parse, not a schema check)"
fi

check "Kubernetes manifests: pylon's requirements" python3 - "${k8s_rendered[@]}" <<'EOF'
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)
for d in docs:
    need(d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"),
         f"apiVersion, kind, metadata.name: {str(d)[:80]}")
for d in (d for d in docs if d["kind"] == "Deployment"):
    name = d["metadata"]["name"]
    spec = d["spec"]["template"]["spec"]
    c = spec["containers"][0]
    need(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", f"{name}: readiness /readyz")
    need(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health", f"{name}: liveness /health")
    need("preStop" in c.get("lifecycle", {}), f"{name}: preStop")
    need(spec.get("terminationGracePeriodSeconds", 30) >= 45, f"{name}: terminationGracePeriodSeconds >= 45")
    need(sorted(p["containerPort"] for p in c["ports"]) == [4321, 4322, 4323, 4324], f"{name}: four ports")
    tick = [e for e in c.get("env", []) if e["name"] == "PYLON_TICK_THREADS"]
    need(tick and tick[0]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu",
         f"{name}: PYLON_TICK_THREADS from limits.cpu")
    need("limits" in c.get("resources", {}) and "requests" in c["resources"], f"{name}: requests and limits")
    need(d["spec"].get("replicas", 1) == 1, f"{name}: one replica (a match lives in one process)")
for d in (d for d in docs if d["kind"] == "Service"):
    need(sorted(p["port"] for p in d["spec"]["ports"]) == [4321, 4322, 4323, 4324], f"service {d['metadata']['name']}: four ports")
for d in (d for d in docs if d["kind"] == "Ingress"):
    a = d["metadata"].get("annotations", {})
    for k in ("proxy-read-timeout", "proxy-send-timeout"):
        need(int(a.get(f"nginx.ingress.kubernetes.io/{k}", 0)) >= 3600, f"ingress: {k} >= 3600")
need(any(d["kind"] == "PodDisruptionBudget" for d in docs), "a PodDisruptionBudget")
need(any(d["kind"] == "ConfigMap" for d in docs) and any(d["kind"] == "Secret" for d in docs), "a ConfigMap and a Secret")
# Overlays: PYLON_REGION is the overlay's region and every name carries it.
for d in docs:
    ns = d["metadata"].get("namespace", "")
    if ns.startswith("pylon-"):
        region = ns[len("pylon-"):]
        need(d["metadata"]["name"].endswith("-" + region), f"{d['kind']} {d['metadata']['name']}: name ends with -{region}")
        if d["kind"] == "ConfigMap":
            need(d["data"].get("PYLON_REGION") == region, f"{ns}: PYLON_REGION={d['data'].get('PYLON_REGION')}")
if errors:
    raise SystemExit("\n".join(errors))
EOF

# --- Terraform -------------------------------------------------------------------------------
echo "== terraform"
if command -v terraform >/dev/null 2>&1; then
  check "terraform fmt -check -recursive deploy/terraform" terraform fmt -check -recursive deploy/terraform
  cp -r deploy/terraform "$tmp/terraform"
  if (cd "$tmp/terraform" && timeout 60 terraform init -backend=false -input=false -no-color >"$tmp/tf-init.log" 2>&1); then
    check "terraform validate" bash -c "cd '$tmp/terraform' && terraform validate -no-color"
  else
    skip "terraform validate" "terraform init cannot download the aws and random providers (the provider registry is unreachable from this machine): $(grep -m1 -o 'lookup [^ ]*\|Failed to query[^.]*' "$tmp/tf-init.log" || echo 'see terraform init')"
  fi
else
  # Terraform is not a Debian package; python-hcl2 (PyPI) at least parses the files.
  if py_has hcl2 || pip_install python-hcl2; then
    check "HCL parse of deploy/terraform/*.tf (python-hcl2; terraform itself not installed)" python3 - <<'EOF'
import glob, hcl2
for f in sorted(glob.glob("deploy/terraform/*.tf")):
    with open(f) as fh:
        hcl2.load(fh)
EOF
  else
    skip "terraform fmt/validate" "terraform not installed (not a Debian package) and python-hcl2 not installable"
  fi
  skip "terraform validate" "terraform not installed (not a Debian package)"
fi

# --- SST ---------------------------------------------------------------------------------------
echo "== sst"
ts_dir=$cache/typescript
if [ ! -f "$ts_dir/node_modules/typescript/package.json" ] && command -v npm >/dev/null 2>&1; then
  mkdir -p "$ts_dir"
  npm install --prefix "$ts_dir" --no-audit --no-fund --silent typescript@5 >/dev/null 2>&1 || true
fi
if command -v node >/dev/null 2>&1 && [ -f "$ts_dir/node_modules/typescript/package.json" ]; then
  check "sst.config.ts: TypeScript syntax" node -e '
    const ts = require(process.argv[1]);
    const file = "deploy/sst/sst.config.ts";
    const src = require("fs").readFileSync(file, "utf8");
    const out = ts.transpileModule(src, { fileName: file, reportDiagnostics: true,
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } });
    const diags = out.diagnostics || [];
    for (const d of diags) console.log(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    process.exit(diags.length ? 1 : 0);' "$ts_dir/node_modules/typescript"
else
  skip "sst.config.ts syntax" "node or the typescript package (npm) unavailable"
fi
skip "sst.config.ts types" "needs SST's generated platform types (sst install downloads providers); deploy/sst is untested here"

# --- Fly.io ----------------------------------------------------------------------------------
echo "== fly"
check "deploy/fly/fly.toml: parses; port, kill signal and timeout, health check" python3 - <<'EOF'
import tomllib
c = tomllib.load(open("deploy/fly/fly.toml", "rb"))
errors = []
if c.get("kill_signal") != "SIGTERM": errors.append("kill_signal SIGTERM")
if int(str(c.get("kill_timeout", "0")).rstrip("s")) < 45: errors.append("kill_timeout >= 45s")
h = c.get("http_service", {})
if h.get("internal_port") != 4321: errors.append("http_service.internal_port 4321")
if h.get("auto_stop_machines") not in ("off", False): errors.append("auto_stop_machines off")
if not any(ch.get("path") == "/readyz" for ch in h.get("checks", [])): errors.append("a /readyz check")
if errors:
    raise SystemExit("\n".join(errors))
EOF

# --- scripts -----------------------------------------------------------------------------------
echo "== scripts"
for s in scripts/check-deploy.sh scripts/test-deploy.sh; do
  check "bash -n $s" bash -n "$s"
done
check "deploy/nginx/render.py parses" python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' deploy/nginx/render.py
if have shellcheck shellcheck; then
  check "shellcheck (warnings and errors)" shellcheck -S warning scripts/check-deploy.sh scripts/test-deploy.sh deploy/systemd/pylon-backup
else
  skip "shellcheck" "shellcheck missing and not installable (Debian package shellcheck)"
fi

# --- docs -------------------------------------------------------------------------------------
echo "== docs"
check "docs/DEPLOY.md and deploy/README.md name existing files, and every deploy/ file is documented" python3 - <<'EOF'
import os, re, subprocess
docs = {p: open(p).read() for p in ("docs/DEPLOY.md", "deploy/README.md")}
errors = []
for p, text in docs.items():
    for ref in sorted(set(re.findall(r"\b((?:deploy|scripts)/[A-Za-z0-9_./-]*[A-Za-z0-9_])", text))):
        if not os.path.exists(ref):
            errors.append(f"{p} names {ref}, which does not exist")
files = subprocess.run(["git", "ls-files", "deploy"], capture_output=True, text=True).stdout.split()
files += [f for f in subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "deploy"],
                                    capture_output=True, text=True).stdout.split()]
for f in sorted(set(files)):
    if f == "deploy/README.md":
        continue
    if not re.search(rf"{re.escape(f)}\b|{re.escape(os.path.dirname(f))}(?![\w/.-])", docs["docs/DEPLOY.md"]):
        errors.append(f"docs/DEPLOY.md does not mention {f}")
if errors:
    raise SystemExit("\n".join(errors))
EOF

echo
echo "check-deploy: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
