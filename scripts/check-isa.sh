#!/usr/bin/env bash
# Checks that a release binary runs on any x86-64-v3 (AVX2) CPU: every function that holds an
# AVX-512 instruction (EVEX-encoded: zmm, opmask or the upper sixteen vector registers, embedded
# broadcasts) must belong to the KernelsAVX512 module, which runs only after KernelPath has seen
# AVX-512 in CPUID. A generic specialization that the AVX-512 module emitted under a name shared
# with other modules would be merged by the linker and reached from the AVX2 path; this finds it.
#
# usage: scripts/check-isa.sh [binary]   (default .build/release/ddp; needs objdump)
set -euo pipefail
binary=${1:-.build/release/ddp}
[[ -x $binary ]] || { echo "error: $binary not found; hint: swift build -c release" >&2; exit 2; }
objdump -d "$binary" | awk '
    /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); next }
    /^ *[0-9a-f]+:\t/ {
        n = split($0, f, "\t"); if (n < 3) next
        split(f[2], bytes, " "); i = 1
        while (bytes[i] ~ /^(66|67|f2|f3|2e|3e|26|36|64|65|f0)$/) i++
        # Operands only: the "# address <symbol>" comment objdump adds may name a string whose text
        # says zmm (the sanitizer builds name string literals after their contents).
        ops = f[3]; sub(/[ \t]*#.*$/, "", ops); sub(/[ \t]*<[^>]*>$/, "", ops)
        if (bytes[i] == "62" || ops ~ /zmm|%k[0-7]|[xy]mm(1[6-9]|2[0-9]|3[01])|\{1to/) evex[fn]++
    }
    END {
        bad = 0; good = 0
        for (fn in evex) {
            if (fn ~ /13KernelsAVX512/) { good++ } else { print "outside KernelsAVX512: " fn " (" evex[fn] " AVX-512 instructions)"; bad++ }
        }
        printf "functions with AVX-512 instructions: %d in KernelsAVX512, %d elsewhere\n", good, bad
        exit bad > 0 ? 1 : 0
    }'
