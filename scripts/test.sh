#!/usr/bin/env bash
# Runs the whole test suite: unit tests of NN and Dist, and end-to-end tests that run the built
# `ddp` under mpirun. Release build (the kernels are too slow unoptimized); -enable-testing lets
# the tests use @testable imports. The test build lives in .build-test, so it and the plain release
# build in .build (demo, benchmarks) do not rebuild each other. Before the tests, a short run of every fuzz
# target (scripts/fuzz.sh --smoke; DDP_SKIP_FUZZ=1 skips it).
#
#   scripts/test.sh [swift test options]                     e.g. --filter NNTests.GEMMTests
#   scripts/test.sh --sanitize address|thread [options]      the same under AddressSanitizer or
#                                                            ThreadSanitizer, in .build-test-<name>
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
# One build of the binary and the test bundle together (a plain build followed by `swift test`
# would compile every target a second time).
swift build "${flags[@]}" --build-tests
# Only KernelsAVX512 may hold AVX-512 instructions: the binary must run on any x86-64-v3 CPU.
scratch=${flags[-1]}
if [[ $(uname -m) == x86_64 ]]; then scripts/check-isa.sh "$scratch/release/ddp"; fi
# A short run of every fuzz target first, so that the test runner's summary is the last line.
if [[ -z $sanitize && $# -eq 0 && "${DDP_SKIP_FUZZ:-}" != 1 ]]; then
    scripts/fuzz.sh --smoke 2
fi
# XCTest only: without this the empty Swift Testing run prints the last ("0 tests") line.
status=0
swift test "${flags[@]}" --skip-build --disable-swift-testing "$@" || status=$?
if [[ -n $sanitize ]] && compgen -G "$reports/*" > /dev/null; then
    for f in "$reports"/*; do echo "== $f"; head -n 40 "$f"; done >&2
    echo "test.sh: $(ls "$reports" | wc -l) $sanitize sanitizer report(s) from processes the tests started, in $reports" >&2
    exit 1
fi
exit $status
