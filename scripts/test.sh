#!/usr/bin/env bash
# Runs the whole test suite: unit tests of NN and Dist, and end-to-end tests that run the built
# `ddp` under mpirun. Release build (the kernels are too slow unoptimized); -enable-testing lets
# the tests use @testable imports. The test build lives in .build-test, so it and the plain release
# build in .build (demo, benchmarks) do not rebuild each other.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
flags=(-c release -Xswiftc -enable-testing --scratch-path .build-test)
swift build "${flags[@]}"
# Only KernelsAVX512 may hold AVX-512 instructions: the binary must run on any x86-64-v3 CPU.
if [[ $(uname -m) == x86_64 ]]; then scripts/check-isa.sh .build-test/release/ddp; fi
# XCTest only: without this the empty Swift Testing run prints the last ("0 tests") line.
exec swift test "${flags[@]}" --disable-swift-testing "$@"
