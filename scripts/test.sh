#!/usr/bin/env bash
# Runs the whole test suite: unit tests of NN and Dist, and end-to-end tests that run the built
# `ddp` under mpirun. Release build (the kernels are too slow unoptimized); -enable-testing lets
# the tests use @testable imports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release -Xswiftc -enable-testing
exec swift test -c release -Xswiftc -enable-testing "$@"
