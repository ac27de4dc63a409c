#!/usr/bin/env bash
# Runs COMMAND against a throwaway one-node Slurm on this machine, then stops it and removes it.
#
#   scripts/slurm/local-slurm.sh [--cpus N] COMMAND [args...]
#   e.g. scripts/slurm/local-slurm.sh sbatch --wait --ntasks 2 examples/slurm/train.sbatch
#
# Starts munged (with a fresh key), slurmctld and slurmd from Debian's slurm-wlm packages
# (scripts/setup.sh --slurm installs them), all configured in a temporary folder, with this
# machine as the only node (N CPUs, default all) and one partition. COMMAND runs with SLURM_CONF
# pointing at that configuration, so sbatch, srun, squeue and scontrol talk to this Slurm only.
# Nothing is installed as a service and nothing outside the temporary folder is written; the
# daemons listen on loopback ports chosen from this script's pid. Exit status: COMMAND's, or 3
# when Slurm cannot be started (the line says why).
set -euo pipefail

cpus=$(nproc)
if [[ ${1:-} == --cpus ]]; then cpus=${2:?}; shift 2; fi
(($#)) || { sed -n '2,15p' "$0" >&2; exit 2; }
for tool in munged slurmctld slurmd sbatch scontrol; do
    command -v $tool >/dev/null || { echo "local-slurm: $tool not found; hint: scripts/setup.sh --slurm" >&2; exit 3; }
done
[[ $(id -u) -eq 0 ]] || { echo "local-slurm: needs root (slurmd starts jobs as their users); hint: run it with sudo" >&2; exit 3; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/ddp-slurm.XXXXXX")
chmod 755 "$dir"
pids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e  # remove everything even when one step fails
    # slurmd first (it ends its job steps), then the controller, then munge.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if ((status != 0)) && [[ -z ${LOCAL_SLURM_QUIET:-} ]]; then
        for log in "$dir"/slurmctld.log "$dir"/slurmd.log; do
            [[ -s $log ]] && { echo "--- last lines of $log" >&2; tail -n 15 "$log" >&2; }
        done
    fi
    rm -rf "$dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { echo "local-slurm: $*" >&2; exit 3; }

# munge: a key of our own and a socket in the folder (--force: it runs as root here).
mkdir -m 700 "$dir/munge"
dd if=/dev/urandom of="$dir/munge/key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/key"
munged --force --key-file "$dir/munge/key" --socket "$dir/munge/socket" --pid-file "$dir/munge/pid" \
    --log-file "$dir/munge/log" --seed-file "$dir/munge/seed" || fail "munged did not start (see $dir/munge/log)"
for _ in $(seq 50); do [[ -s $dir/munge/pid ]] && break; sleep 0.1; done
pids+=("$(cat "$dir/munge/pid")")

node=$(hostname -s)
port=$((20000 + ($$ % 5000) * 2))
mkdir -p "$dir/state" "$dir/spool"
cat > "$dir/slurm.conf" <<EOF
ClusterName=ddplocal
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
MinJobAge=300
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" -i || fail "slurmctld did not start"
for _ in $(seq 50); do [[ -s $dir/slurmctld.pid ]] && break; sleep 0.1; done
[[ -s $dir/slurmctld.pid ]] || fail "slurmctld wrote no pid file (see its log)"
pids+=("$(cat "$dir/slurmctld.pid")")
slurmd -f "$SLURM_CONF" -N "$node" || fail "slurmd did not start"
for _ in $(seq 50); do [[ -s $dir/slurmd.pid ]] && break; sleep 0.1; done
[[ -s $dir/slurmd.pid ]] || fail "slurmd wrote no pid file (see its log)"
pids+=("$(cat "$dir/slurmd.pid")")
# Ready when the node is idle.
for _ in $(seq 100); do
    state=$(scontrol show node "$node" 2>/dev/null | sed -n 's/.*State=\([A-Z+_]*\).*/\1/p' | head -1)
    [[ $state == IDLE* ]] && break
    sleep 0.2
done
[[ ${state:-} == IDLE* ]] || fail "node $node did not become idle (state ${state:-unknown})"
echo "local-slurm: slurmctld and slurmd up, node $node with $cpus CPUs, partition local" >&2

status=0
"$@" || status=$?
exit "$status"
