#!/usr/bin/env bash
# Installs the system packages SwiftDDP needs, only those that are missing (Debian/Ubuntu).
#   libopenmpi-dev openmpi-bin  MPI headers, library and mpirun
#   zlib1g-dev libpng-dev       gzip'd IDX files, PNG image folders
#   dataset-fashion-mnist       the demo's dataset (/usr/share/datasets/fashion-mnist)
#   gnuplot-nox                 ddp plot's training curves, benchmark plots
# Optional extras: --bench adds libopenblas-dev (the sgemm comparison); --protos adds
# protobuf-compiler (scripts/generate-protos.sh). Python checks of exported files make their own
# virtual environments from PyPI (scripts/python-venv.sh).
set -euo pipefail
want=(libopenmpi-dev openmpi-bin zlib1g-dev libpng-dev dataset-fashion-mnist gnuplot-nox)
for flag in "$@"; do
    case "$flag" in
        --bench) want+=(libopenblas-dev) ;;
        --protos) want+=(protobuf-compiler) ;;
    esac
done
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
