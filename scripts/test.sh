#!/usr/bin/env bash
# Runs the whole test suite: unit tests of NN and Dist, and end-to-end tests that run the built
# `ddp` under mpirun. Release build (the kernels are too slow unoptimized); -enable-testing lets
# the tests use @testable imports. The test build lives in .build-test, so it and the plain release
# build in .build (demo, benchmarks) do not rebuild each other. Beside the tests, a short run of every
# fuzz target (scripts/fuzz.sh --smoke; DDP_SKIP_FUZZ=1 skips it).
#
#   scripts/test.sh [swift test options]                     e.g. --filter NNTests.GEMMTests
#   scripts/test.sh --sanitize address|thread [options]      the same under AddressSanitizer or
#                                                            ThreadSanitizer, in .build-test-<name>
#
# The tests run in two `swift test` processes at once (most end-to-end tests wait on processes, so
# two of them share the cores well); the classes that must run alone (simulated cluster, Slurm,
# faults) take a lock that keeps the other process's end-to-end tests out meanwhile
# (Tests/launcherTests/ProcessTestLock.swift). DDP_TEST_WORKERS=1, a sanitizer or any swift test
# option runs them in one process. The last line gives each phase's time.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
sanitize=""
if [[ "${1:-}" == "--sanitize" ]]; then
    sanitize=${2:?usage: scripts/test.sh --sanitize address|thread}
    shift 2
    [[ $sanitize == address || $sanitize == thread ]] || { echo "test.sh: --sanitize takes address or thread, not $sanitize" >&2; exit 2; }
fi
# DDP_TEST_HOOKS compiles in the fault injection the fault tests use (a rank that hangs, is killed
# or gets a signal at a given step); the binary `swift build` makes has none of it.
flags=(-c release -Xswiftc -enable-testing -Xswiftc -DDDP_TEST_HOOKS --scratch-path .build-test)
if [[ -n $sanitize ]]; then
    flags=(-c release -Xswiftc -enable-testing -Xswiftc -DDDP_TEST_HOOKS -Xswiftc "-sanitize=$sanitize" --scratch-path ".build-test-$sanitize")
    # Sanitizer reports end the process with a non-zero status, so a finding fails the test that met
    # it. They also go to files: a rank or a ddp a test expects to fail would hide its report in a
    # non-zero status the test wanted, so any report file fails the run (below).
    reports=$PWD/.build-test-$sanitize/sanitizer-reports
    rm -rf "$reports"; mkdir -p "$reports"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:log_path=$reports/asan}
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan}
fi
# The formatter's check first (seconds): a Swift file that swift-format would change fails the run
# (scripts/format.sh formats them; .swift-format holds the configuration).
scripts/format.sh --check
workers=${DDP_TEST_WORKERS:-2}
[[ $workers == 1 || $workers == 2 ]] || { echo "test.sh: DDP_TEST_WORKERS must be 1 or 2, got $workers" >&2; exit 2; }
[[ -n $sanitize ]] && workers=1
phases=()
# One build of the binary and the test bundle together (a plain build followed by `swift test`
# would compile every target a second time).
started=$SECONDS
swift build "${flags[@]}" --build-tests
# Only KernelsAVX512 may hold AVX-512 instructions: the binary must run on any x86-64-v3 CPU.
scratch=${flags[-1]}
if [[ $(uname -m) == x86_64 ]]; then scripts/check-isa.sh "$scratch/release/ddp"; fi
phases+=("build $((SECONDS - started)) s")
# A short run of every fuzz target, beside the tests (which spend much of their time waiting on the
# processes they start, so its build fills cores they leave idle); its output comes before the test
# runner's, so that the runner's summary is the last line.
fuzz=""
if [[ -z $sanitize && $# -eq 0 && "${DDP_SKIP_FUZZ:-}" != 1 ]]; then
    fuzzLog=$scratch/fuzz-smoke.log fuzzStarted=$SECONDS
    scripts/fuzz.sh --smoke 1 > "$fuzzLog" 2>&1 &
    fuzz=$!
fi
# finishFuzz: waits for the fuzz run, prints its output and fails the run if it failed.
finishFuzz() {
    [[ -n $fuzz ]] || return 0
    local fuzzStatus=0
    wait "$fuzz" || fuzzStatus=$?
    cat "$fuzzLog"
    phases+=("fuzz smoke $((SECONDS - fuzzStarted)) s alongside")
    if ((fuzzStatus != 0)); then echo "test.sh: the fuzz smoke run failed (status $fuzzStatus)" >&2; status=1; fi
    fuzz=""
}
# XCTest only: without this the empty Swift Testing run prints the last ("0 tests") line.
status=0
started=$SECONDS
if ((workers == 1)) || (($# > 0)); then
    swift test "${flags[@]}" --skip-build --disable-swift-testing "$@" || status=$?
    phases+=("tests $((SECONDS - started)) s")
    finishFuzz
else
    # Two `swift test` processes side by side, each running its classes in order with all their
    # output (written to a file, printed when both end): one holds the end-to-end classes that run
    # alone (simulated cluster, Slurm, faults) with the heaviest others, the other everything else.
    # Each case of a class that runs alone waits for the other process's current case to end.
    # --ignore-lock: the tests build nothing, so the two may share the build folder SwiftPM locks.
    grouped='launcherTests\.(DDPProcessTests|EndToEndTests|FaultTests|SimulatedClusterTests|SlurmTests|BadInputTests)/'
    logs=$scratch/test-workers
    rm -rf "$logs"; mkdir -p "$logs"
    echo "test.sh: running the tests in 2 processes; their output follows when both end"
    swift test "${flags[@]}" --skip-build --disable-swift-testing --ignore-lock --filter "$grouped" > "$logs/grouped.log" 2>&1 &
    first=$!
    swift test "${flags[@]}" --skip-build --disable-swift-testing --ignore-lock --skip "$grouped" > "$logs/others.log" 2>&1 &
    second=$!
    wait $first || status=$?
    wait $second || status=$?
    testsEnded=$SECONDS
    finishFuzz
    cat "$logs/grouped.log" "$logs/others.log"
    phases+=("tests $((testsEnded - started)) s in 2 processes")
    phases+=("$(awk '$1 == "Test" && $2 == "Case" && $4 ~ /^(passed|skipped|failed)$/ { n[$4]++ }
                     END { printf "%d passed, %d skipped, %d failed", n["passed"], n["skipped"], n["failed"] }' "$logs"/*.log)")
fi
if [[ -n $sanitize ]] && compgen -G "$reports/*" > /dev/null; then
    for f in "$reports"/*; do echo "== $f"; head -n 40 "$f"; done >&2
    echo "test.sh: $(ls "$reports" | wc -l) $sanitize sanitizer report(s) from processes the tests started, in $reports" >&2
    exit 1
fi
joined=$(printf '%s; ' "${phases[@]}")
echo "test.sh: ${joined%; }; exit status $status"
exit $status
