#!/usr/bin/env bash
# Property-based API tests: schemathesis (PyPI, pinned below) generates
# requests from the server's own OpenAPI document (/api/openapi.json) and
# checks every answer against it: no 5xx, only documented statuses, the
# documented content types, bodies that match their schemas.
#
# It runs against the real demo server (`server serve --demo`) on a free
# loopback port with a fresh data directory, as the demo's town supervisor
# (sup-town1), so reads return real rows and the supervision POSTs really
# write (into throwaway data). Bounded: a few examples per operation and a
# hard time limit.
#
#   server/tests/schemathesis/run.sh [extra schemathesis arguments]
#
# Needs python3 with venv and curl; builds target/debug/server first.
# SCHEMATHESIS_MAX_EXAMPLES (default 100) and SCHEMATHESIS_TIMEOUT (seconds,
# default 300) tune the bounds. SCHEMATHESIS_DATABASE_URL=postgres://… runs
# the demo on that (empty) PostgreSQL database instead of SQLite.
set -euo pipefail
cd "$(dirname "$0")/../../.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-100}
TIMEOUT=${SCHEMATHESIS_TIMEOUT:-300}
VENV=target/schemathesis-venv

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p server

workdir=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

# A free loopback port: bind port 0 and read back what the kernel chose.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"

# The environment variables win over any config file (server/src/config.rs);
# a developer's DATABASE_URL must not point the demo at a real database
# (only SCHEMATHESIS_DATABASE_URL does).
env -u DATABASE_URL -u JWT_SECRET -u VISIT_DIARY_CONFIG \
    ${SCHEMATHESIS_DATABASE_URL:+DATABASE_URL="$SCHEMATHESIS_DATABASE_URL"} \
    VISIT_DIARY_HOST=127.0.0.1 VISIT_DIARY_PORT="$port" VISIT_DIARY_DATA_DIR="$workdir/data" \
    RUST_LOG=warn \
    target/debug/server serve --demo >"$workdir/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 120); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the demo server did not start:" >&2
        cat "$workdir/server.log" >&2
        exit 1
    fi
    sleep 0.5
done
curl -fsS "$base/readyz" >/dev/null

token=$(curl -fsS -X POST "$base/api/v1/auth/login" \
    -H 'content-type: application/json' \
    -d '{"username":"sup-town1","password":"demo-pass","device_id":"schemathesis"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

# Excluded: POST /api/v1/auth/logout and POST /api/v1/me/password act on the
# login itself. Schemathesis cannot know the refresh token or the password,
# so they would only ever answer their refusals, but a run of refused
# password checks backs off the supervisor's logins for the rest of the run
# and a generated example that happened to hold the password would change it
# under the run. Everything else runs, the supervision POSTs included.
#
# One worker: with two, hypothesis parses source in two threads at once and
# CPython 3.11's ast module can fail with "AST constructor recursion depth
# mismatch" (python/cpython#106905), an error of the tool, not of the server.
#
# From the scratch directory, so that schemathesis' cache lands there.
root=$PWD
status=0
(cd "$workdir" && timeout --kill-after=10 "$TIMEOUT" \
    "$root/$VENV/bin/schemathesis" run "$base/api/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed 20261202 \
    --workers 1 \
    --request-timeout 30 \
    --exclude-path /api/v1/auth/logout \
    --exclude-path /api/v1/me/password \
    --suppress-health-check all \
    --no-color \
    "$@") || status=$?

if [ "$status" -ne 0 ]; then
    echo "schemathesis failed (exit $status); the server's log:" >&2
    tail -n 50 "$workdir/server.log" >&2
fi
exit "$status"
