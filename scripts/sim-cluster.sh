#!/usr/bin/env bash
# Runs a `ddp` command across a simulated cluster on this one machine: N network-namespace "hosts",
# each with its own hostname (a UTS namespace), its own address on a private switch and loopback,
# started by the real `mpirun` over TCP, exactly as on separate machines (shared memory within a
# host, TCP between hosts). Needs root (namespaces, veth, tc). Everything it creates is torn down on
# exit, on Ctrl-C and on TERM.
#
#   scripts/sim-cluster.sh [options] -- SUBCOMMAND [ddp options...]
#   scripts/sim-cluster.sh [options] --exec COMMAND [args...]
#   e.g. scripts/sim-cluster.sh --hosts 2 --ranks-per-host 2 -- gradcheck --model tiny
#        scripts/sim-cluster.sh --hosts 3 --rate 1gbit -- bench allreduce --sizes 1M,16M
#        scripts/sim-cluster.sh --hosts 2 --exec sh -c 'cat $SIM_HOSTFILE; hostname'
#
# The first form starts `ddp SUBCOMMAND ...` on every rank through scripts/launch-cluster.sh (so
# that script runs as it would on a real cluster) from inside host 0. The second runs COMMAND
# inside host 0 with SIM_HOSTFILE, SIM_RANKS, SIM_NETWORK and OMPI_MCA_plm_rsh_agent set: an
# `mpirun --hostfile $SIM_HOSTFILE ...` there reaches the other hosts.
#
# Options:
#   --hosts N            namespace hosts (default 2), named node0 .. node<N-1>
#   --ranks-per-host R   ranks (slots) per host (default 1)
#   --rate RATE          shape every host's link, both directions, to RATE with tc tbf
#                        (e.g. 1gbit, 10gbit, 500mbit); default: unshaped veth links
#   --bind core|none     core: each rank pinned to its own core, numbered across all hosts, so that
#                        two hosts never share one (every host sees all of this machine's cores and
#                        Open MPI would pin each host's first rank to core 0); needs hosts x ranks
#                        <= cores. none: no binding. Default: core when the ranks fit, else none.
#   --link-down HOST:SECONDS   set HOST's link down SECONDS after the start (fault test)
#   --quiet              no set-up and traffic lines on stderr
# The run ends with one line per host with the bytes its link carried (stderr, "sim-cluster:").
# Environment: DDP (the binary, default .build/release/ddp), as for launch-cluster.sh; TCP_RETRIES2
# (default 5): retransmissions before a host's TCP gives up on a vanished peer (net.ipv4.tcp_retries2).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
hosts=2; per_host=1; rate=""; bind=""; link_down=""; quiet=0; mode=""
usage() { sed -n '2,32p' "$0" >&2; exit 2; }
while (($#)); do
    case $1 in
        --hosts) hosts=${2:?}; shift 2 ;;
        --ranks-per-host) per_host=${2:?}; shift 2 ;;
        --rate) rate=${2:?}; shift 2 ;;
        --bind) bind=${2:?}; shift 2 ;;
        --link-down) link_down=${2:?}; shift 2 ;;
        --quiet) quiet=1; shift ;;
        --) mode=ddp; shift; break ;;
        --exec) mode=exec; shift; break ;;
        -h|--help) usage ;;
        *) echo "sim-cluster: unknown option $1; hint: --help" >&2; exit 2 ;;
    esac
done
[[ -n $mode && $# -gt 0 ]] || usage
[[ $hosts =~ ^[0-9]+$ ]] && ((hosts >= 1 && hosts <= 200)) || { echo "sim-cluster: --hosts must be 1..200, got $hosts" >&2; exit 2; }
[[ $per_host =~ ^[0-9]+$ ]] && ((per_host >= 1)) || { echo "sim-cluster: --ranks-per-host must be positive, got $per_host" >&2; exit 2; }
[[ -z $rate || $rate =~ ^[0-9]+(\.[0-9]+)?([kmg]?bit)$ ]] || { echo "sim-cluster: --rate must look like 1gbit, 500mbit or 10gbit, got $rate" >&2; exit 2; }
ranks=$((hosts * per_host)); cores=$(nproc)
if [[ -z $bind ]]; then bind=none; ((ranks <= cores)) && bind=core; fi
[[ $bind == core || $bind == none ]] || { echo "sim-cluster: --bind must be core or none, got $bind" >&2; exit 2; }
if [[ $bind == core ]] && ((ranks > cores)); then
    echo "sim-cluster: --bind core needs at most $cores ranks (one core each), got $ranks; hint: --bind none" >&2; exit 2
fi
down_host=""; down_after=""
if [[ -n $link_down ]]; then
    [[ $link_down =~ ^node([0-9]+):([0-9]+(\.[0-9]+)?)$ ]] && ((BASH_REMATCH[1] < hosts)) \
        || { echo "sim-cluster: --link-down must be nodeK:SECONDS with K < $hosts, got $link_down" >&2; exit 2; }
    down_host=${BASH_REMATCH[1]}; down_after=${BASH_REMATCH[2]}
fi
if [[ $(id -u) -ne 0 ]]; then echo "sim-cluster: needs root (network namespaces, veth links, tc); hint: run it with sudo" >&2; exit 3; fi
for tool in ip tc unshare mpirun; do
    command -v $tool >/dev/null || { echo "sim-cluster: $tool not found; hint: scripts/setup.sh (iproute2, util-linux, openmpi-bin)" >&2; exit 3; }
done
say() { ((quiet)) || echo "sim-cluster: $*" >&2; }

# Names carry this script's pid, so two clusters never collide and leftovers of a killed run
# (whose pid is gone) can be recognized and removed.
tag="ddpsim$$"; switch="${tag}sw"; net="10.77.0"
for old in $(ip netns list | awk '{print $1}' | grep -E '^ddpsim[0-9]+' || true); do
    pid=${old#ddpsim}; pid=${pid%%[!0-9]*}
    if ! kill -0 "$pid" 2>/dev/null; then
        ip netns pids "$old" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$old" 2>/dev/null || true; rm -rf "/etc/netns/$old"
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ddp-sim.XXXXXX")
child=""; watcher=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e  # remove everything even when one step fails
    [[ -n $watcher ]] && kill "$watcher" 2>/dev/null
    [[ -n $child ]] && kill -TERM "$child" 2>/dev/null && sleep 0.5
    for ((i = 0; i < hosts; i++)); do
        ip netns pids "${tag}n$i" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
    for ((i = 0; i < hosts; i++)); do ip netns del "${tag}n$i" 2>/dev/null || true; rm -rf "/etc/netns/${tag}n$i"; done
    ip netns del "$switch" 2>/dev/null || true
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The switch: a bridge in a namespace of its own, so nothing of the cluster touches this machine's
# network namespace (no address, route or bridge appears there).
ip netns add "$switch"
ip -n "$switch" link add br0 type bridge
ip -n "$switch" link set br0 up
: > "$work/hosts"
for ((i = 0; i < hosts; i++)); do echo "$net.$((i + 1)) node$i" >> "$work/hosts"; done
# Shaping: tbf's bucket must hold at least one rate/HZ tick of bytes; one millisecond of the rate
# (at least 64 KB) keeps bursts short while letting GSO-sized packets through.
shape() { # namespace device
    local bits=${rate%bit} mult=1
    case $bits in *k) mult=1000; bits=${bits%k} ;; *m) mult=1000000; bits=${bits%m} ;; *g) mult=1000000000; bits=${bits%g} ;; esac
    local burst; burst=$(awk -v b="$bits" -v m="$mult" 'BEGIN { x = b * m / 8 / 1000; if (x < 65536) x = 65536; printf "%d", x }')
    ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$rate" burst "$burst" latency 100ms
}
for ((i = 0; i < hosts; i++)); do
    ns="${tag}n$i"
    ip netns add "$ns"
    # Files under /etc/netns/NAME replace /etc's inside `ip netns exec NAME`: the hosts resolve one
    # another by name and never ask a DNS server.
    mkdir -p "/etc/netns/$ns"
    cp "$work/hosts" "/etc/netns/$ns/hosts"; echo "127.0.0.1 localhost" >> "/etc/netns/$ns/hosts"
    : > "/etc/netns/$ns/resolv.conf"
    ip link add "${tag}h$i" netns "$ns" type veth peer name "p$i" netns "$switch"
    ip -n "$ns" link set "${tag}h$i" name eth0
    ip -n "$ns" addr add "$net.$((i + 1))/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    # A TCP connection to a host that vanished gives up after a few retransmissions (seconds), not
    # after Linux's default fifteen (about 15 minutes): when a host's link goes down, mpirun then
    # notices the lost daemon soon after the stall inspector has ended the ranks, and exits. The
    # setting belongs to the namespace; the machine's own TCP is untouched.
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_retries2="${TCP_RETRIES2:-5}"
    ip -n "$switch" link set "p$i" master br0 up
    if [[ -n $rate ]]; then shape "$ns" eth0; shape "$switch" "p$i"; fi
done
say "$hosts host(s) node0..node$((hosts - 1)) on $net.0/24${rate:+, every link shaped to $rate}, $per_host rank(s) each, binding: $bind"

# The remote agent Open MPI uses instead of ssh: `agent HOST COMMAND...` runs COMMAND in HOST's
# network namespace with HOST as its hostname, through a shell as ssh would.
{
    echo '#!/usr/bin/env bash'
    echo 'host=$1; shift'
    echo 'case $host in'
    for ((i = 0; i < hosts; i++)); do echo "  node$i|$net.$((i + 1))) ns=${tag}n$i; name=node$i ;;"; done
    echo '  *) echo "sim-cluster agent: unknown host $host" >&2; exit 255 ;;'
    echo 'esac'
    echo 'exec ip netns exec "$ns" unshare --uts -- sh -c '\''hostname "$0" && eval "$1"'\'' "$name" "$*"'
} > "$work/agent"
chmod +x "$work/agent"

for ((i = 0; i < hosts; i++)); do echo "node$i slots=$per_host"; done > "$work/hostfile"
if [[ $bind == core ]]; then
    # Rank r on core r: the cores are numbered across hosts, so no two hosts share one.
    for ((r = 0; r < ranks; r++)); do echo "rank $r=node$((r / per_host)) slot=$r"; done > "$work/rankfile"
fi

export SIM_HOSTFILE="$work/hostfile" SIM_RANKS=$ranks SIM_NETWORK="$net.0/24"
export OMPI_MCA_plm_rsh_agent="$work/agent"
export OMPI_MCA_plm_rsh_no_tree_spawn=1          # host 0 starts every daemon itself
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Each host sees all of this machine's cores and so never thinks itself oversubscribed; when the
# ranks outnumber the cores, tell Open MPI to yield while it waits instead of spinning on a core
# that another host's rank needs.
if ((ranks > cores)); then export OMPI_MCA_mpi_yield_when_idle=1; fi
if [[ $mode == ddp ]]; then
    export IFACE="$net.0/24"
    if [[ $bind == core ]]; then export RANKFILE="$work/rankfile"; else export BIND_TO=none; fi
    cmd=("$here/launch-cluster.sh" "$work/hostfile" "$ranks" "$@")
else
    cmd=("$@")
fi

bytes() { ip netns exec "$switch" cat "/sys/class/net/p$1/statistics/$2"; }
if [[ -n $down_host ]]; then
    ( sleep "$down_after"; ip -n "$switch" link set "p$down_host" down
      say "link of node$down_host set down after $down_after s" ) &
    watcher=$!
fi
# Host 0 is where the job starts (as a login node would): mpirun runs there, under its hostname.
ip netns exec "${tag}n0" unshare --uts -- sh -c 'hostname node0 && exec "$@"' sh "${cmd[@]}" &
child=$!
status=0; wait "$child" || status=$?
child=""
for ((i = 0; i < hosts; i++)); do
    # The switch port's rx is what the host sent, its tx what the host received.
    say "node$i ($net.$((i + 1))) sent $(bytes "$i" rx_bytes) bytes, received $(bytes "$i" tx_bytes) bytes over its link"
done
exit "$status"
