#!/usr/bin/env bash
# Installs the system packages SwiftDDP needs, only those that are missing (Debian/Ubuntu).
#   libopenmpi-dev openmpi-bin  MPI headers, library and mpirun
#   zlib1g-dev libpng-dev       gzip'd IDX files, PNG image folders
#   dataset-fashion-mnist       the demo's dataset (/usr/share/datasets/fashion-mnist)
#   gnuplot-nox                 ddp plot's training curves, benchmark plots
# Optional extras:
#   --bench    libopenblas-dev (the sgemm comparison), time (/usr/bin/time: bench-compare's peak memory)
#   --protos   protobuf-compiler (scripts/generate-protos.sh)
#   --slurm    slurmctld slurmd slurm-client munge for the throwaway one-node Slurm test
#   --cluster  iproute2 util-linux for scripts/sim-cluster.sh (usually present)
# Python checks of exported files make their own virtual environments from PyPI (scripts/python-venv.sh).
set -euo pipefail
want=(libopenmpi-dev openmpi-bin zlib1g-dev libpng-dev dataset-fashion-mnist gnuplot-nox)
for option in "$@"; do
    case $option in
        --bench) want+=(libopenblas-dev time) ;;
        --protos) want+=(protobuf-compiler) ;;
        --slurm) want+=(slurmctld slurmd slurm-client munge) ;;
        --cluster) want+=(iproute2 util-linux) ;;
        *) echo "setup: unknown option $option (known: --bench --protos --slurm --cluster)" >&2; exit 2 ;;
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
