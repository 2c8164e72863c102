# Sourced by run-python.sh and run-kotlin.sh: builds the server and the
# library's bindings, and sets `root`, `target`, `bindings` and SERVER_BIN.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

cargo build -p server
bindings="$root/mobile-ffi/bindings"
mobile-ffi/scripts/build-bindings.sh "$bindings"
export SERVER_BIN="$target/debug/server"
