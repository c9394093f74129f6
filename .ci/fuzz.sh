#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), one after the
# other, in one process each (one core). For manual and nightly runs: it is not part of
# .ci/run. Installs cargo-fuzz when it is missing; builds with stable Rust and
# RUSTC_BOOTSTRAP=1, since cargo-fuzz needs nightly flags (fuzz/README.md).
#
#   .ci/fuzz.sh [SECONDS]
#
# New corpus entries go to fuzz/corpus/<target> (git-ignored) and crashes to
# fuzz/artifacts/<target>; the exit status is non-zero when any target found one.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_TERM_COLOR=never RUSTC_BOOTSTRAP=1

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: $0 [SECONDS]   (a positive whole number, default 60)" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# libFuzzer options per target. image_thumbnail's target uses a 16 MiB allocation limit,
# so any single allocation above it is a decoder ignoring the limits.
options_for() {
    case "$1" in
        webhook_verify) echo "-dict=dicts/webhook_verify.dict" ;;
        image_thumbnail) echo "-malloc_limit_mb=16 -rss_limit_mb=2048 -timeout=10" ;;
        job_state) echo "-dict=dicts/job_state.dict" ;;
    esac
}

cargo fuzz build
failed=()
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    corpora=("corpus/$target")
    [[ -d "seeds/$target" ]] && corpora+=("seeds/$target")
    echo "== $target: ${seconds}s"
    # shellcheck disable=SC2046 # the options are separate words on purpose
    if ! cargo fuzz run "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 $(options_for "$target"); then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "== findings in: ${failed[*]} (see fuzz/artifacts/ and fuzz/README.md)" >&2
    exit 1
fi
echo "== no findings"
