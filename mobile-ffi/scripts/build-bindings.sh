#!/usr/bin/env bash
# Builds libmobile_ffi (debug) and generates its Kotlin, Swift and Python
# bindings with the workspace's uniffi-bindgen (same UniFFI version as the
# library, which bindings require).
#
#   mobile-ffi/scripts/build-bindings.sh [OUT_DIR]
#
# OUT_DIR defaults to mobile-ffi/bindings (git-ignored). The Python package
# there is runnable as is: the library is linked next to mobile_ffi.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="${1:-$root/mobile-ffi/bindings}"
target="${CARGO_TARGET_DIR:-$root/target}"

case "$(uname -s)" in
    Darwin) lib_name=libmobile_ffi.dylib ;;
    *) lib_name=libmobile_ffi.so ;;
esac

# Two builds, not one: built together, uniffi's `cli` feature would be
# unified into the library's build and rebuild it for nothing.
cargo build -p mobile-ffi --features tls,encryption
cargo build -p uniffi-bindgen
lib="$target/debug/$lib_name"
bindgen="$target/debug/uniffi-bindgen"

for language in kotlin swift python; do
    mkdir -p "$out/$language"
    "$bindgen" generate --library "$lib" --language "$language" --out-dir "$out/$language" --no-format
done
# A link, not a copy: the debug library is large.
ln -sf "$lib" "$out/python/$lib_name"
echo "bindings in $out (kotlin, swift, python)"
