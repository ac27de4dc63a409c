#!/usr/bin/env bash
# Fuzzes the readers of outside bytes with libFuzzer (built with -sanitize=fuzzer,address).
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags]   build, then fuzz one target
#   scripts/fuzz.sh --smoke SECONDS                    every target for SECONDS each (the test suite's run),
#                                                      on a debug build (it compiles in less than half
#                                                      the time; a short run needs no speed)
#   scripts/fuzz.sh --build                            build only
#   scripts/fuzz.sh --list                             the targets
#
# Targets: safetensors checkpoint idx cifar png pnm model-yaml model-json normalize options
# (Fuzz/Sources/FuzzTargets.swift). Seeds are Fuzz/Corpus/TARGET (checked in; rewrite them with
# Fuzz/make-seeds.py); what the fuzzer adds goes to .build-fuzz/corpus/TARGET, and an input that
# crashes, leaks, hangs or allocates too much to .build-fuzz/findings/TARGET/ (turn each into a
# regression test, then delete it). Exit status: 0 when no target found anything.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(safetensors checkpoint idx cifar png pnm model-yaml model-json normalize options)
configuration=release
binary=.build-fuzz/$configuration/ddp-fuzz

build() {
    # DDP_FUZZ_SKIP_BUILD=1: run the binary already built (long campaigns while the sources change).
    [[ "${DDP_FUZZ_SKIP_BUILD:-}" == 1 && -x $binary ]] && return 0
    # The target exists in the manifest only with SWIFTDDP_FUZZ=1; its own scratch path keeps the
    # instrumented build apart from .build and .build-test.
    SWIFTDDP_FUZZ=1 swift build -c "$configuration" -Xswiftc -enable-testing -Xswiftc -sanitize=fuzzer,address \
        --scratch-path .build-fuzz --product ddp-fuzz >&2
}

# fuzz TARGET SECONDS [flags]: prints libFuzzer's last status line; non-zero on a finding.
fuzz() {
    local target=$1 seconds=$2; shift 2
    local corpus=.build-fuzz/corpus/$target findings=.build-fuzz/findings/$target
    mkdir -p "$corpus" "$findings"
    # -rss_limit_mb/-malloc_limit_mb: a reader that allocates 1 GiB for a few input bytes is a finding.
    DDP_FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
        "$binary" "$corpus" "Fuzz/Corpus/$target" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$findings/" "$@" > "$findings.log" 2>&1
    local status=$?
    local runs
    runs=$(grep -E '^stat::number_of_executed_units' "$findings.log" | awk '{print $2}' || true)
    echo "fuzz $target: ${runs:-?} executions (limit ${seconds}s), exit $status$( ((status)) && echo " — FINDING, see $findings.log and $findings/")"
    return $status
}

case "${1:-}" in
    --list) printf '%s\n' "${targets[@]}" ;;
    --build) build ;;
    --smoke)
        seconds=${2:-3}
        # Debug: the readers run unoptimized (with Swift's exclusivity checks on), which a few
        # seconds a target do not need to be fast, and the build takes far less time than -O.
        configuration=debug binary=.build-fuzz/debug/ddp-fuzz
        build
        failed=0
        for t in "${targets[@]}"; do fuzz "$t" "$seconds" || failed=1; done
        exit $failed ;;
    ""|-h|--help) sed -n 2,15p "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    *)
        target=$1 seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
        shift 2
        [[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz.sh: unknown target $target; known: ${targets[*]}" >&2; exit 2; }
        build
        set +e
        fuzz "$target" "$seconds" "$@"
        status=$?
        set -e
        tail -n 30 ".build-fuzz/findings/$target.log" | grep -E 'ERROR|SUMMARY|Fatal|#[0-9]+ +DONE' || true
        exit $status ;;
esac
