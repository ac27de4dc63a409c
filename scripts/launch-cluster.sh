#!/usr/bin/env bash
# Launches a `ddp` command (train by default) across several machines with Open MPI.
#
#   scripts/launch-cluster.sh HOSTFILE RANKS [SUBCOMMAND] [ddp options...]
#   e.g. scripts/launch-cluster.sh hosts.txt 8 --model tiny --epochs 5 --batch-size 256
#        scripts/launch-cluster.sh hosts.txt 8 gradcheck --model tiny
# SUBCOMMAND is a ddp subcommand (train when the options start at once, as in the first example).
#
# HOSTFILE lists one machine per line with how many ranks it takes (one per core, or one per
# socket when the kernels are multi-threaded):
#     node1 slots=4
#     node2 slots=4
# Requirements on every node: the same `ddp` binary at the same path (build once on a shared file
# system, or copy .build/release/ddp), the same data at the same path (--data), Open MPI of the same
# version, and password-less ssh from this machine (Open MPI starts its daemons over ssh).
#
# Environment knobs:
#   DDP        path to the ddp binary           (default: .build/release/ddp, made absolute)
#   IFACE      network interface(s) for MPI's TCP traffic, e.g. eth0 or 10.0.0.0/24; set it
#              when nodes have several interfaces (docker0, virbr0...) or Open MPI may try one
#              that does not route between nodes and hang at start-up
#   MAP_BY     rank placement: core (default), socket, node (round-robin across nodes)
#   BIND_TO    what a rank is pinned to: core (default), socket, none
#   RANKFILE   an Open MPI rankfile giving each rank its node and core (replaces MAP_BY, BIND_TO)
#   MAX_RESTARTS=K  (train only, with --checkpoint-dir) relaunch a failed job from its newest
#              complete checkpoint, up to K times: `ddp train --np RANKS --max-restarts K` then
#              starts and watches mpirun itself, with this script's mpirun arguments
#              (--mpirun-arg). The checkpoint folder (and --metrics) must be readable here, where the
#              script runs: on a shared file system, or on this machine when it hosts rank 0.
#   DRY_RUN=1  print the command instead of running it
set -euo pipefail

if (($# < 2)); then
    sed -n '2,30p' "$0" >&2
    exit 2
fi
hostfile=$1; ranks=$2; shift 2
subcommand=train
if (($#)) && [[ $1 != -* ]]; then subcommand=$1; shift; fi
[[ -r $hostfile ]] || { echo "launch-cluster: cannot read hostfile $hostfile" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "launch-cluster: mpirun not found; hint: apt-get install openmpi-bin on every node" >&2; exit 2; }
ddp=$(realpath "${DDP:-.build/release/ddp}")
[[ -x $ddp ]] || { echo "launch-cluster: $ddp is not executable; hint: swift build -c release" >&2; exit 2; }

restarts=${MAX_RESTARTS:-0}
[[ $restarts =~ ^[0-9]+$ ]] || { echo "launch-cluster: MAX_RESTARTS must be 0 or more, got $restarts" >&2; exit 2; }
if ((restarts)) && [[ $subcommand != train ]]; then
    echo "launch-cluster: MAX_RESTARTS restarts train jobs only, not $subcommand" >&2; exit 2
fi

args=(
    --hostfile "$hostfile"               # the machines and their slots
    --report-bindings                     # print where each rank landed (to stderr), to check the above
    -x PATH                               # export the environment the binary needs to every rank
    -x OMP_NUM_THREADS=1                  # one thread per rank: ranks already fill the cores
)
if [[ -n ${LD_LIBRARY_PATH:-} ]]; then args+=(-x LD_LIBRARY_PATH); fi
if [[ -n ${RANKFILE:-} ]]; then
    args+=(--rankfile "$RANKFILE")        # each rank's node and core, as the file says
else
    args+=(--map-by "${MAP_BY:-core}"     # place consecutive ranks on consecutive cores ...
           --bind-to "${BIND_TO:-core}")  # ... and pin each rank to its core (no migration, stable timings)
fi
if [[ -n ${IFACE:-} ]]; then
    # Restrict both the byte transfer layer and the run-time's out-of-band channel to one network.
    args+=(--mca btl_tcp_if_include "$IFACE" --mca oob_tcp_if_include "$IFACE")
fi
# Shared memory within a node, TCP between nodes; no InfiniBand probing on Ethernet clusters.
args+=(--mca btl self,vader,tcp)
if [[ $(id -u) -eq 0 ]]; then args+=(--allow-run-as-root); fi

if ((restarts)); then
    # The same supervisor as `ddp train --np N --max-restarts K` on one machine (JobSupervisor):
    # it runs this mpirun line as its child, and again from the newest checkpoint after a failure.
    cmd=("$ddp" train --np "$ranks" --max-restarts "$restarts")
    for a in "${args[@]}"; do cmd+=("--mpirun-arg=$a"); done
    cmd+=("$@")
else
    cmd=(mpirun "${args[@]}" -np "$ranks" "$ddp" "$subcommand" "$@")   # -np: total ranks over all machines
fi
if [[ ${DRY_RUN:-0} == 1 ]]; then printf '%q ' "${cmd[@]}"; echo; exit 0; fi
exec "${cmd[@]}"
