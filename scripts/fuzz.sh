#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time each; fails on a crash, a panic, a leak of
# memory past the limit or an input that takes too long.
#
#   scripts/fuzz.sh [seconds per target, default 20] [target ...]
#
# cargo-fuzz on the stable toolchain: `-s none` builds with libFuzzer's coverage instrumentation
# (stable -C flags) and without a sanitizer, which would need nightly's -Zsanitizer. The code
# under test forbids `unsafe`, so AddressSanitizer would find little that a panic does not;
# debug assertions and overflow checks stay on.
#
# Each run starts from the committed corpus (fuzz/corpus/TARGET, read-only here) and writes what
# it finds to a temporary corpus, so the work tree stays clean. A crashing input is kept in
# fuzz/artifacts/TARGET/; replay it with `cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(envelope key_escape cache_control vary)
fi

# The version is pinned so that CI installs the same tool every time (about 3 minutes, once per
# machine: cargo keeps it in ~/.cargo/bin).
CARGO_FUZZ_VERSION="0.13.2"
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# Builds go beside the main workspace's (CARGO_TARGET_DIR when set): they are separate by
# target triple and flags, and a clean clone then reuses them.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"

# The fuzz crate is a workspace of its own, which `cargo fmt --all` does not reach.
cargo fmt --manifest-path fuzz/Cargo.toml --check

echo "==> building the fuzz targets"
cargo fuzz build -s none --target-dir "$target_dir"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
    echo "==> fuzzing $target for ${seconds}s"
    mkdir -p "$work/$target" "fuzz/artifacts/$target"
    # -rss_limit_mb: a decoder that allocates on the word of its input must be caught, not
    # swapped; -timeout: one input may not take more than 10 s.
    if ! cargo fuzz run -s none --target-dir "$target_dir" "$target" \
        "$work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$work/$target.log" 2>&1; then
        tail -n 60 "$work/$target.log"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|Done )' "$work/$target.log" || true
done
echo "fuzzing: ${#targets[@]} targets passed, ${seconds}s each"
