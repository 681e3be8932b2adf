#!/usr/bin/env bash
# Runs a cargo-fuzz target for a number of seconds, installing cargo-fuzz first
# if it is missing.
#
#   fuzz/run.sh [seconds] [target] [libFuzzer flags...]   default: 60 s of `decode`
#   e.g. fuzz/run.sh 300 decode -max_len=65600 -jobs=2
#
# New inputs go to fuzz/corpus-work/<target> (git-ignored); the committed seeds in
# fuzz/corpus/<target> are read, never written. A crash lands in
# fuzz/artifacts/<target>/, which core/tests/fuzz_corpus.rs replays on stable:
# fix the bug, then copy the input into fuzz/corpus/<target>/ as a regression seed.
#
# libFuzzer needs nightly compiler flags (-Zsanitizer); with only a stable
# toolchain, RUSTC_BOOTSTRAP=1 unlocks them. Set FUZZ_TOOLCHAIN=nightly to use a
# real nightly instead.
set -euo pipefail

secs="${1:-60}"
target="${2:-decode}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

toolchain=()
if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then
    toolchain=("+${FUZZ_TOOLCHAIN}")
else
    export RUSTC_BOOTSTRAP=1
fi

work="corpus-work/$target"
mkdir -p "$work" "artifacts/$target"

# Keep the build away from the main workspace's target dir (and its lock).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"

exec cargo "${toolchain[@]}" fuzz run "$target" "$work" "corpus/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 "${@:3}"
