#!/usr/bin/env bash
# API fuzzing: schemathesis against every service's own /openapi.json.
#
# Starts the whole system with the `pixpress` stack binary (debug build, the one
# `cargo test --workspace` already made; a throwaway PostgreSQL cluster and S3 store,
# the five services on their default ports 8080-8084, and ippeveprinter as `ipp-sim`
# behind ipp-gateway when it is installed), takes the admin token it prints,
# and runs schemathesis with every check, a fixed seed and a bounded number of test
# cases per operation against each service. Any 5xx, any response its document does
# not describe (status, content type, headers, body schema) or any other check failure
# fails the script. The stack is stopped by its PID on exit, whatever happens.
#
# The admin token is used for every service: it may act for any user, so generated
# requests get past "not your data" to the code behind it, and it is accepted on
# management-api's /lookup like a `service` token. Printer and download callbacks are
# Standard Webhooks–signed; a fuzzer cannot sign, so they answer 401 here and their
# other statuses are produced by tests/openapi_coverage.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

SCHEMATHESIS_VERSION=4.32.5
SEED=${SCHEMATHESIS_SEED:-20240901}
# Test cases per operation and phase: the four runs take about half a minute together.
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-100}

# Run as a module: no dependence on where pip put the script or on PATH shims.
schemathesis() { python3 -m schemathesis.cli "$@"; }
if [[ "$(schemathesis --version 2>/dev/null || true)" != *" $SCHEMATHESIS_VERSION" ]]; then
    echo "== installing schemathesis $SCHEMATHESIS_VERSION"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "schemathesis==$SCHEMATHESIS_VERSION"
fi

echo "== cargo build --workspace --bins (debug)"
cargo build --workspace --bins --locked

work=$(mktemp -d -t pixpress-schemathesis-XXXXXX)
stack_pid=
cleanup() {
    local status=$?
    if [[ -n "$stack_pid" ]]; then
        # SIGINT: the stack stops its services, then its PostgreSQL and S3.
        kill -INT "$stack_pid" 2>/dev/null || true
        wait "$stack_pid" 2>/dev/null || true
    fi
    if ((status != 0)) && [[ -f "$work/stack.log" ]]; then
        echo "---- last lines of the stack's log"
        tail -n 40 "$work/stack.log"
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting the stack"
# Its own PostgreSQL and S3, whatever the environment names.
env -u DATABASE_URL -u S3_ENDPOINT RUST_LOG=warn PRINTER_DELAY_MS=20 \
    "${CARGO_TARGET_DIR:-target}/debug/pixpress" --throwaway >"$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 300); do
    grep -q "ADMIN_TOKEN=" "$work/stack.log" && break
    kill -0 "$stack_pid" 2>/dev/null || { echo "the stack exited at start"; exit 1; }
    sleep 0.2
done
admin_token=$(sed -n 's/.*export ADMIN_TOKEN=\([^[:space:]]*\).*/\1/p' "$work/stack.log")
[[ -n "$admin_token" ]] || { echo "the stack printed no admin token"; exit 1; }
url_of() { awk -v name="$1" '$1 == name { print $2; exit }' "$work/stack.log"; }

# The services migrate and create their bucket in the background: wait until ready.
for name in print-service download-service management-api printer-sim ipp-gateway; do
    url=$(url_of "$name")
    for _ in $(seq 150); do
        curl -fsS -o /dev/null "$url/ready" 2>/dev/null && break
        sleep 0.2
    done
    curl -fsS -o /dev/null "$url/ready" || { echo "$name is not ready"; exit 1; }
done

# Ready images 1..7 of user 1: the document's example job (user 1, file 7) can then be
# printed, so schemathesis creates real jobs and follows their Location to the routes
# behind it (GET and cancel of a job that exists).
management_url=$(url_of management-api)
for i in $(seq 7); do
    curl -fsS -o /dev/null -H "Authorization: Bearer $admin_token" \
        -H "Content-Type: application/json" \
        -d "{\"url\": \"http://example.com/seed-$i.jpg\", \"ready\": true}" \
        "$management_url/users/1/images"
done

# schemathesis keeps a cache of failures in its working directory: keep it out of the tree.
cd "$work"
# Every check runs everywhere; these only widen what one check accepts on one operation
# each.
cat >print-service.toml <<'TOML'
[[operations]]
include-name = "POST /print/jobs"
# 422 is the documented answer to an Idempotency-Key that comes back with a different
# body (DESIGN.md §3). Whether a key was used before is state, not something the schema
# can express: once a generated job is created (user 1 may print files 1..7), a later
# valid body that reuses one of the few keys the fuzzer draws is rightly refused.
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
TOML
cat >download-service.toml <<'TOML'
[[operations]]
include-name = "POST /downloads"
# 400 is the documented answer to a `callback_url` that is not under download-service's
# MANAGEMENT_URL (results go only to the configured management-api): a deployment
# setting, not something the schema can express, so a generated URL is rightly refused.
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
TOML
cat >ipp-gateway.toml <<'TOML'
[[operations]]
include-name = "POST /printers/{name}/jobs"
# 404 is the documented answer to a printer name the gateway does not drive: which
# names it drives is a deployment setting (IPP_PRINTERS), not in the schema.
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "503"]
[[operations]]
include-name = "GET /printers/{name}/jobs/{correlation_id}"
# The same: a generated printer name or job is rightly unknown.
checks.positive_data_acceptance.expected-statuses = ["2xx", "404"]
TOML
failed=()
for name in print-service management-api download-service printer-sim ipp-gateway; do
    url=$(url_of "$name")
    echo "== schemathesis: $name ($url/openapi.json)"
    # One worker: hypothesis' regex generation is not thread-safe on this Python
    # (it has crashed with "AST constructor recursion depth mismatch").
    config=()
    [[ -f "$name.toml" ]] && config=(--config-file "$name.toml")
    status=0
    schemathesis "${config[@]}" run "$url/openapi.json" \
        --checks all \
        --seed "$SEED" \
        --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --request-timeout 10 \
        --no-color \
        --header "Authorization: Bearer $admin_token" \
        | tee "$work/$name.log" || status=$?
    # Test cases that errored (a connection reset, a schemathesis crash) leave the exit
    # status at 0 in some phases: they count as failures here.
    if ((status != 0)) || grep -qE '[0-9]+ errored' "$work/$name.log"; then
        failed+=("$name")
    fi
done

if ((${#failed[@]})); then
    echo "schemathesis found failures in: ${failed[*]}"
    exit 1
fi
echo "schemathesis: every service conforms to its OpenAPI document"
