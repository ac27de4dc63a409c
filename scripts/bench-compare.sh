#!/usr/bin/env bash
# fmnist-cnn in SwiftDDP beside PyTorch and Keras/TensorFlow, run in the same sitting, in turn.
#
#   scripts/bench-compare.sh [--install] [--only one|two|layers] [--batches 16,64,256] [--pair-batches 32,64]
#                            [--layer-batch 64] [--ranks 2] [--rounds 3] [--steps 20] [--warmup 5]
#                            [--out DIR] [--ddp PATH] [--python PATH]
#
# One rank, one thread (--batches): each round runs, per batch size and in this order,
#   ddp bench throughput (Adam)            beside  PyTorch, one thread, Adam, fixed batch
#   ddp bench steps, one rank (SGD, m 0.9) beside  Keras on TensorFlow, intra/inter-op 1 thread,
#                                                  SGD m 0.9, model.fit on arrays
# Ranks x one thread (--pair-batches, per-rank batch): each round runs, per batch size, one rank
# and --ranks ranks of `ddp bench steps --np P` and of PyTorch DDP over gloo (SGD, m 0.9), in turn.
# Layers (--layer-batch): each round runs `ddp bench kernels` (its Conv2D layer table) and PyTorch's
# nn.Conv2d on the same shapes (scripts/compare/conv_layer.py), forward and backward, in turn.
# Without --only, all three sections run.
# Same model (conv 5x5x32 same, relu, maxpool 2, conv 5x5x64 same, relu, maxpool 2, dense 1024,
# relu, dropout 0.4, dense 10), synthetic 1x28x28 data of the same shape for all, --warmup untimed
# and --steps timed steps. The rounds (--rounds) alternate the programs, so a slow spell of a
# shared machine hits all alike; the tables give medians over the rounds and the per-round ratios.
# Peak RSS is the kernel's (/usr/bin/time %M: the largest process of the run, a rank for MPI/DDP).
#
# The Python side lives in a virtual environment in .venv-compare (ignored by git):
#   --install   creates it and installs torch and tensorflow-cpu from PyPI (about 7 GB: PyPI's torch
#               wheel pulls CUDA libraries even on a CPU-only machine), then runs the comparison.
# A framework that cannot be imported is skipped with a one-line reason.
# Writes DIR/runs.csv (every run) and prints the tables (scripts/compare/summarize.py). Quote figures
# with the CPU (`lscpu`: model name; avx2, avx512f, amx flags) and the machine's load.
set -euo pipefail
cd "$(dirname "$0")/.."

only=all batches=16,64,256 pair_batches=32,64 layer_batch=64 ranks=2 rounds=3 steps=20 warmup=5 out=bench-results/compare
ddp=.build/release/ddp python="" install=0
while (($#)); do
    case "$1" in
        --install) install=1; shift ;;
        --only) only=$2; shift 2 ;;
        --batches) batches=$2; shift 2 ;;
        --pair-batches) pair_batches=$2; shift 2 ;;
        --layer-batch) layer_batch=$2; shift 2 ;;
        --ranks) ranks=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --ddp) ddp=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "bench-compare: unknown option $1; hint: see --help" >&2; exit 2 ;;
    esac
done
case "$only" in one|two|layers|all) ;; *) echo "bench-compare: --only must be one, two or layers, got $only" >&2; exit 2 ;; esac
for n in "$rounds" "$steps" "$ranks" "$layer_batch"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench-compare: --rounds, --steps, --ranks and --layer-batch must be positive integers, got $n" >&2; exit 2; }
done
[[ $warmup =~ ^[1-9][0-9]*$ ]] && (( warmup >= 2 )) || {
    echo "bench-compare: --warmup must be at least 2 (bench throughput checks that the loss falls), got $warmup" >&2; exit 2; }
for list in "$batches" "$pair_batches"; do
    [[ $list =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "bench-compare: batch lists are positive integers separated by commas, got $list" >&2; exit 2; }
done
[[ -x "$ddp" ]] || { echo "bench-compare: $ddp is missing; hint: swift build -c release" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench-compare: /usr/bin/time is missing; hint: scripts/setup.sh --bench (Debian package time)" >&2; exit 1; }

venv=.venv-compare
if ((install)); then
    echo "bench-compare: installing torch and tensorflow-cpu into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet torch tensorflow-cpu
fi
if [[ -z $python ]]; then
    if [[ -x $venv/bin/python ]]; then python=$venv/bin/python; else python=python3; fi
fi

# Which frameworks this Python can run (one-line reason when not).
have_torch=0 have_keras=0
if reason=$("$python" -c 'import torch, torch.distributed as d; assert d.is_gloo_available(), "no gloo backend"; print(torch.__version__)' 2>&1); then
    have_torch=1; echo "bench-compare: PyTorch ${reason##*$'\n'} ($python)" >&2
else
    echo "bench-compare: PyTorch skipped: $(tail -n1 <<<"$reason"); hint: scripts/bench-compare.sh --install" >&2
fi
if reason=$(TF_CPP_MIN_LOG_LEVEL=3 "$python" -c 'import tensorflow as tf; print(tf.__version__)' 2>&1); then
    have_keras=1; echo "bench-compare: TensorFlow ${reason##*$'\n'} ($python)" >&2
else
    echo "bench-compare: Keras/TensorFlow skipped: $(tail -n1 <<<"$reason"); hint: scripts/bench-compare.sh --install" >&2
fi

mkdir -p "$out"
runs="$out/runs.csv" tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "section,round,program,optimizer,ranks,batch,samples_per_s_cpu,samples_per_s_wall,peak_rss_mb,blocked_ms" > "$runs"
layers="$out/layers.csv"
echo "round,program,layer,batch,forward_s,backward_s" > "$layers"
if [[ $only == layers ]] && ((!have_torch)); then
    echo "bench-compare: --only layers needs PyTorch; hint: scripts/bench-compare.sh --install" >&2; exit 1
fi
lscpu | sed -n 's/^Model name: *//p' | head -n1 | sed 's/^/bench-compare: CPU /' >&2
echo "bench-compare: load average $(cut -d' ' -f1-3 /proc/loadavg) at the start" >&2

# timed LOG CMD...: runs CMD with its peak RSS (KB) written to $tmp/rss; stdout to LOG.
timed() {
    local log=$1; shift
    /usr/bin/time -f '%M' -o "$tmp/rss" "$@" > "$log" 2> "$tmp/stderr" || {
        echo "bench-compare: failed: $*" >&2; tail -n 5 "$tmp/stderr" >&2; return 1; }
}
# other LOG CMD...: `timed` for the other program of a pair: a failed run is reported and left out
# of the tables (its round has no ratio), and the comparison goes on; a failed ddp run ends it.
other() { timed "$@" || { echo "bench-compare: that run is left out of the tables" >&2; return 1; }; }
rss_mb() { awk '/^[0-9]+$/ { kb = $1 } END { printf "%.1f", kb * 1024 / 1e6 }' "$tmp/rss"; }
# json FILE FIELD...: the fields of the last JSON line of FILE, comma-separated.
json() { python3 -c 'import json, sys; d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(",".join(str(d[k]) for k in sys.argv[2:]))' "$@"; }
# csvfield FILE NAME: column NAME of FILE's last row.
csvfield() { awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next } { v = $c } END { print v }' "$1"; }

py=scripts/compare
for ((r = 1; r <= rounds; r++)); do
    if [[ $only == one || $only == all ]]; then
        for b in ${batches//,/ }; do
            echo "bench-compare: round $r of $rounds, one rank, batch $b" >&2
            rm -f "$tmp/t.csv"
            timed "$tmp/out" "$ddp" bench throughput --batches "$b" --warmup "$warmup" --steps "$steps" --csv "$tmp/t.csv"
            echo "one,$r,ddp,adam,1,$b,$(csvfield "$tmp/t.csv" samples_per_second),$(awk -v b="$b" -v s="$(csvfield "$tmp/t.csv" wall_step_seconds)" 'BEGIN { print b / s }'),$(rss_mb)," >> "$runs"
            if ((have_torch)) && other "$tmp/out" "$python" "$py/fmnist_cnn.py" --framework torch --batch "$b" --optimizer adam --warmup "$warmup" --steps "$steps"; then
                echo "one,$r,pytorch,adam,1,$b,$(json "$tmp/out" samples_per_s_cpu samples_per_s),$(rss_mb)," >> "$runs"
            fi
            rm -f "$tmp/s.csv"
            timed "$tmp/out" "$ddp" bench steps --per-rank-batch "$b" --warmup "$warmup" --steps "$steps" --csv "$tmp/s.csv"
            echo "one,$r,ddp,sgd,1,$b,$(awk -v b="$b" -v c="$(csvfield "$tmp/s.csv" cpu_ms)" 'BEGIN { print 1000 * b / c }'),$(csvfield "$tmp/s.csv" samples_per_s),$(rss_mb)," >> "$runs"
            if ((have_keras)) && other "$tmp/out" "$python" "$py/fmnist_cnn.py" --framework keras --batch "$b" --optimizer sgd --warmup "$warmup" --steps "$steps"; then
                echo "one,$r,keras,sgd,1,$b,$(json "$tmp/out" samples_per_s_cpu samples_per_s),$(rss_mb)," >> "$runs"
            fi
        done
    fi
    if [[ $only == two || $only == all ]]; then
        for b in ${pair_batches//,/ }; do
            for p in 1 "$ranks"; do
                echo "bench-compare: round $r of $rounds, $p rank(s) x 1 thread, per-rank batch $b" >&2
                rm -f "$tmp/s.csv"
                np=(); if (( p > 1 )); then np=(--np "$p"); fi
                timed "$tmp/out" "$ddp" bench steps "${np[@]}" --per-rank-batch "$b" --warmup "$warmup" --steps "$steps" --csv "$tmp/s.csv"
                echo "two,$r,ddp,sgd,$p,$b,,$(csvfield "$tmp/s.csv" samples_per_s),$(rss_mb),$(csvfield "$tmp/s.csv" blocked_ms)" >> "$runs"
                if ((have_torch)) && other "$tmp/out" "$python" "$py/torch_ddp.py" --ranks "$p" --per-rank-batch "$b" --warmup "$warmup" --steps "$steps"; then
                    echo "two,$r,pytorch-ddp,sgd,$p,$b,,$(json "$tmp/out" samples_per_s),$(rss_mb)," >> "$runs"
                fi
                if (( ranks == 1 )); then break; fi
            done
        done
    fi
    if [[ $only == layers || $only == all ]] && ((have_torch)); then
        echo "bench-compare: round $r of $rounds, conv layers, batch $layer_batch" >&2
        rm -f "$tmp/k.csv"
        timed "$tmp/out" "$ddp" bench kernels --batch "$layer_batch" --no-openblas --csv "$tmp/k.csv"
        awk -F, -v r="$r" -v b="$layer_batch" '$1 == "conv2d-forward" { f[$2] = $8 } $1 == "conv2d-backward" { k[$2] = $8 }
            END { for (l in f) print r ",ddp," l "," b "," f[l] "," k[l] }' "$tmp/k.csv" >> "$layers"
        if other "$tmp/out" "$python" "$py/conv_layer.py" --batch "$layer_batch"; then
            python3 -c 'import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(",".join([sys.argv[2], "pytorch", d["layer"], str(d["batch"]), repr(d["forward_s"]), repr(d["backward_s"])]))' "$tmp/out" "$r" >> "$layers"
        fi
    fi
done

echo "bench-compare: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end" >&2
echo
python3 "$py/summarize.py" "$runs" "$layers"
echo "every run: $runs, $layers"
