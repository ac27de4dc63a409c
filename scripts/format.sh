#!/usr/bin/env bash
# Formats the project's Swift files with swift-format (the toolchain's `swift format`, configured by
# .swift-format at the top), or with --check reports every place that differs and fails, changing
# nothing: scripts/test.sh runs the check first. Generated code (Export/Generated) is left as its
# generator wrote it.
#
#   scripts/format.sh            format in place
#   scripts/format.sh --check    lint only (exit 1 on any finding)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! swift format --version > /dev/null 2>&1; then
    echo "format.sh: this Swift toolchain has no \`swift format\` (it ships with Swift 6); skipping" >&2
    exit 0
fi
mapfile -t files < <(find Package.swift Sources Tests Fuzz -name '*.swift' -not -path '*/Generated/*' | sort)
if [[ "${1:-}" == --check ]]; then
    swift format lint --strict --parallel "${files[@]}"
else
    swift format format --in-place --parallel "${files[@]}"
fi
