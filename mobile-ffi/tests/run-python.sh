#!/usr/bin/env bash
# Builds the server and the Python bindings, then runs the Python tests of
# mobile-ffi against a real `server serve --demo` (each test file starts its
# own). Exits non-zero on failure; the last line says "N passed, N failed".
set -euo pipefail
source "$(dirname "$0")/prepare.sh"

export BINDINGS_DIR="$bindings/python"
exec python3 "$root/mobile-ffi/tests/python/test_two_phones.py"
