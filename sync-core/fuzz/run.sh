#!/usr/bin/env bash
# Fuzzes what a peer can send, for a bounded time: replays the regression
# inputs, then runs each target from the checked-in corpus. Fails on any
# crash (the input is left in sync-core/fuzz/artifacts/).
#
#   sync-core/fuzz/run.sh [seconds per target, default 60]
#
# FUZZ_SEED fixes libFuzzer's seed, so a run explores the same inputs each
# time (CI sets it: a check that passed keeps passing); unset, every run
# explores new ones, which is how to look for new crashes.
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain take them. No sanitizer: the code under test has no unsafe of
# its own, and panics (what this looks for) are caught without one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
seconds="${1:-60}"
seed="${FUZZ_SEED:-0}" # 0: libFuzzer picks one
export RUSTC_BOOTSTRAP=1
target_dir="${CARGO_TARGET_DIR:-$here/../../target}/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
fuzz() {
    local command="$1"
    shift
    cargo fuzz "$command" --sanitizer none --target-dir "$target_dir" "$@"
}

fuzz build
for target in protocol_message sync_payload; do
    for input in regressions/"$target"-*; do
        [ -e "$input" ] || continue
        echo "== $target: regression $(basename "$input")"
        fuzz run "$target" "$input"
    done
    # A scratch copy, so a run never rewrites the checked-in corpus.
    work="$(mktemp -d)"
    cp -r "corpus/$target/." "$work/"
    echo "== $target: ${seconds} s from $(ls "$work" | wc -l) corpus inputs"
    # The fuzzer's own status, not the filter's: `|| true` after the pipe
    # would reset PIPESTATUS and hide a crash.
    set +e
    fuzz run "$target" "$work" -- -max_total_time="$seconds" -seed="$seed" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)|panicked|ERROR|SUMMARY'
    status=${PIPESTATUS[0]}
    set -e
    rm -rf "$work"
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $target failed; see sync-core/fuzz/artifacts/$target" >&2
        exit "$status"
    fi
done
