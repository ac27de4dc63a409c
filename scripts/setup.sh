#!/usr/bin/env bash
# Installs the system packages SwiftDDP needs, only those that are missing (Debian/Ubuntu).
#   libopenmpi-dev openmpi-bin  MPI headers, library and mpirun
#   zlib1g-dev libpng-dev       gzip'd IDX files, PNG image folders
#   dataset-fashion-mnist       the demo's dataset (/usr/share/datasets/fashion-mnist)
# Optional extras (benchmarks): gnuplot-nox for PNG plots, libopenblas-dev for the sgemm comparison,
# time (/usr/bin/time) for bench-compare's peak memory.
set -euo pipefail
want=(libopenmpi-dev openmpi-bin zlib1g-dev libpng-dev dataset-fashion-mnist)
if [[ "${1:-}" == "--bench" ]]; then want+=(gnuplot-nox libopenblas-dev time); fi
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
