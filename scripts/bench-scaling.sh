#!/usr/bin/env bash
# Weak and strong scaling of data-parallel training on synthetic data, 1..N local ranks.
#
#   scripts/bench-scaling.sh [--ranks N] [--model NAME] [--steps S] [--warmup W]
#                            [--per-rank-batch b] [--global-batch B] [--mode weak|strong|both]
#                            [--repeats R] [--independent] [--torch] [--out DIR (default bench-results)]
#                            [--ddp PATH] [--python PATH] [--reduction fast|deterministic]
#                            [-- extra ddp bench steps options]
#
# weak:   every rank takes b samples per step, so the global batch is b·P (ideal: samples/s ∝ P).
# strong: the global batch B is fixed and split over P ranks (ideal: step time ∝ 1/P).
# Efficiency = samples/s at P / (P · samples/s at 1 rank), for both. With --repeats R the rank
# counts run in turn R times (1, 2, …, N, 1, 2, …), so a slow spell of a shared machine hits every
# rank count alike, and each rank count reports its median run (by samples/s). Ranks beyond the core count
# are run with --oversubscribe and marked "yes" in the oversubscribed column: they share cores, so
# their efficiency says nothing about a real cluster.
# --independent (weak mode): after each weak run on P ≤ cores ranks, P independent one-rank
# processes run at once with the same per-rank batch (no MPI, no communication, no waiting for each
# other), reported as mode "independent" with their summed samples/s: the efficiency that P
# processes reach on this machine with nothing to communicate (shared caches and memory
# bandwidth, a shared VM's uneven cores), i.e. the ceiling for weak scaling here.
# --torch (weak mode): after each weak run, PyTorch DDP over gloo on as many ranks, one thread each,
# the same per-rank batch and SGD (scripts/compare/torch_ddp.py; the Python of .venv-compare, made by
# scripts/bench-compare.sh --install, or --python), reported as mode "pytorch-ddp" with its
# efficiency against its own one-rank run; skipped with a one-line reason when torch cannot be imported.
#
# Writes DIR/scaling.csv (one row per run, with efficiency), prints a table, and when gnuplot is
# installed DIR/scaling.png (samples/s and efficiency against ranks, each series that has rows, with
# the ideal line: P x the series' one-rank samples/s, and efficiency 1). Figures are timings: run on
# an otherwise idle machine, or say that it was not.
set -euo pipefail
cd "$(dirname "$0")/.."

ranks=$(nproc) model=fmnist-cnn steps=20 warmup=3 per_rank=32 global=64 mode=both out=bench-results ddp=.build/release/ddp repeats=1
independent=0 torch=0 python=""
extra=() reduction=()
while (($#)); do
    case "$1" in
        --ranks) ranks=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --per-rank-batch) per_rank=$2; shift 2 ;;
        --global-batch) global=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --repeats) repeats=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --ddp) ddp=$2; shift 2 ;;
        --reduction) reduction=(--reduction "$2"); shift 2 ;;
        --) shift; extra=("$@"); break ;;
        --independent) independent=1; shift ;;
        --torch) torch=1; shift ;;
        --python) python=$2; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "bench-scaling: unknown option $1; hint: see --help" >&2; exit 2 ;;
    esac
done
case "$mode" in weak|strong|both) ;; *) echo "bench-scaling: --mode must be weak, strong or both, got $mode" >&2; exit 2 ;; esac
[[ -x "$ddp" ]] || { echo "bench-scaling: $ddp is missing; hint: swift build -c release" >&2; exit 1; }
(( ranks >= 1 )) || { echo "bench-scaling: --ranks must be at least 1, got $ranks" >&2; exit 2; }
(( repeats >= 1 )) || { echo "bench-scaling: --repeats must be at least 1, got $repeats" >&2; exit 2; }
if [[ $mode != weak ]] && (( global < ranks )); then
    echo "bench-scaling: --global-batch $global is smaller than --ranks $ranks" >&2; exit 2
fi

if ((torch)); then
    if [[ $mode == strong ]]; then
        echo "bench-scaling: --torch runs in weak mode only; PyTorch DDP skipped" >&2; torch=0
    elif [[ $model != fmnist-cnn ]]; then
        echo "bench-scaling: --torch has fmnist-cnn only (scripts/compare/torch_ddp.py), not $model; PyTorch DDP skipped" >&2; torch=0
    else
        [[ -n $python ]] || { python=python3; [[ -x .venv-compare/bin/python ]] && python=.venv-compare/bin/python; }
        if ! reason=$("$python" -c 'import torch.distributed as d; assert d.is_gloo_available(), "no gloo backend"' 2>&1); then
            echo "bench-scaling: PyTorch DDP skipped: $(tail -n1 <<<"$reason"); hint: scripts/bench-compare.sh --install" >&2
            torch=0
        fi
    fi
fi

mkdir -p "$out"
raw="$out/scaling.raw.csv" csv="$out/scaling.csv"
rm -f "$raw"
cores=$(nproc)
mpirun_flags=()
[[ $(id -u) -eq 0 ]] && mpirun_flags+=(--allow-run-as-root)

modes=()
[[ $mode != strong ]] && modes+=(weak)
[[ $mode != weak ]] && modes+=(strong)
for m in "${modes[@]}"; do
    for ((r = 1; r <= repeats; r++)); do
        for ((p = 1; p <= ranks; p++)); do
            flags=("${mpirun_flags[@]}")
            (( p > cores )) && flags+=(--oversubscribe)
            if [[ $m == weak ]]; then batch=(--per-rank-batch "$per_rank"); else batch=(--batch-size "$global"); fi
            echo "bench-scaling: $m, $p rank(s), run $r of $repeats" >&2
            mpirun "${flags[@]}" -np "$p" "$ddp" bench steps --model "$model" --steps "$steps" --warmup "$warmup" \
                "${batch[@]}" --label "$m" --csv "$raw" "${reduction[@]}" "${extra[@]}" >&2
            if [[ $m == weak ]] && ((torch)); then
                echo "bench-scaling: PyTorch DDP (gloo), $p rank(s), run $r of $repeats" >&2
                "$python" scripts/compare/torch_ddp.py --ranks "$p" --per-rank-batch "$per_rank" --steps "$steps" \
                    --warmup "$warmup" --label pytorch-ddp --csv "$raw" >&2
            fi
            if [[ $m == weak ]] && (( independent && p > 1 && p <= cores )); then
                echo "bench-scaling: $p independent one-rank processes at once, run $r of $repeats" >&2
                parts=()
                for ((i = 0; i < p; i++)); do
                    parts+=("$out/independent.$i.csv")
                    rm -f "$out/independent.$i.csv"
                    "$ddp" bench steps --model "$model" --steps "$steps" --warmup "$warmup" --per-rank-batch "$per_rank" \
                        --label independent --csv "$out/independent.$i.csv" "${reduction[@]}" "${extra[@]}" >&2 &
                done
                wait
                # One row for the P processes: summed samples/s, the slowest step, the mean compute.
                awk -F, -v p="$p" 'FNR == 1 { next }
                    { n++; sps += $11; if ($12 > step) step = $12; compute += $13; fields = split($0, f, ",") }
                    END { f[3] = p; f[6] = f[6] * p; f[11] = sprintf("%.3f", sps); f[12] = sprintf("%.3f", step)
                          f[13] = sprintf("%.3f", compute / n); row = f[1]; for (i = 2; i <= fields; i++) row = row "," f[i]
                          print row }' "${parts[@]}" >> "$raw"
                rm -f "${parts[@]}"
            fi
        done
    done
done

# The median run of each (label, ranks) by samples/s (column 11; the lower middle one for an even
# count), in the order first run, then efficiency against the 1-rank median of the same label.
awk -F, 'NR == 1 { print; next }
         { key = $1 SUBSEP $3; if (!(key in n)) order[++keys] = key; rows[key, ++n[key]] = $0; speed[key, n[key]] = $11 }
         END { for (k = 1; k <= keys; k++) {
                   key = order[k]; count = n[key]
                   for (i = 1; i <= count; i++) idx[i] = i
                   for (i = 2; i <= count; i++) for (j = i; j > 1 && speed[key, idx[j-1]] > speed[key, idx[j]]; j--) {
                       t = idx[j]; idx[j] = idx[j-1]; idx[j-1] = t }
                   print rows[key, idx[int((count + 1) / 2)]] } }' "$raw" |
awk -F, 'NR == 1 { print $0 ",efficiency"; next }
         { if ($3 == 1) base[$1] = $11; b = ($1 in base) ? base[$1] : base["weak"]  # independent: vs one weak rank
           eff = (b > 0) ? $11 / ($3 * b) : 0  # pytorch-ddp: vs its own one rank
           printf "%s,%.3f\n", $0, eff }' > "$csv"
mv "$raw" "$out/scaling.runs.csv"

echo
printf "%-12s %-6s %-15s %-7s %-11s %-9s %-11s %-9s %-9s %-10s %-10s %s\n" \
    mode ranks oversubscribed batch samples/s step_ms compute_ms comm_ms blocked hidden_ms hidden_% efficiency
awk -F, 'NR > 1 { printf "%-12s %-6s %-15s %-7s %-11s %-9s %-11s %-9s %-9s %-10s %-10s %s\n",
                  $1, $3, $5, $6, $11, $12, $13, $14, $15, $16, $17, $NF }' "$csv"
echo "csv: $csv (every run: $out/scaling.runs.csv)"

if command -v gnuplot >/dev/null 2>&1; then
    # Only the series that have rows, each with its ideal line (P x its one-rank samples/s; the
    # independent processes against one weak rank, like their efficiency).
    # One file per series, so that rows of other series do not break its line.
    effcol=$(head -n1 "$csv" | tr ',' '\n' | grep -n '^efficiency$' | cut -d: -f1)
    speed_plots=() eff_plots=() style=0
    for m in weak strong independent pytorch-ddp; do
        grep -q "^$m," "$csv" || continue
        style=$((style + 1))
        series="$out/scaling.plot-$m.csv"
        grep "^$m," "$csv" > "$series"
        case $m in weak|strong) title="ddp $m" ;; pytorch-ddp) title="PyTorch DDP (gloo)" ;; *) title=$m ;; esac
        speed_plots+=("\"$series\" using 3:11 with linespoints linestyle $style title \"$title\"")
        eff_plots+=("\"$series\" using 3:$effcol with linespoints linestyle $style title \"$title\"")
        base=$(awk -F, -v m="$m" '$1 == m && $3 == 1 { print $11 }' "$csv")
        [[ $m == independent ]] && base=$(awk -F, '$1 == "weak" && $3 == 1 { print $11 }' "$csv")
        [[ $m == independent || -z $base ]] && continue
        speed_plots+=("$base * x with lines linestyle $style dashtype 2 title \"ideal ($title)\"")
    done
    eff_plots+=("1 with lines linecolor \"black\" dashtype 2 title \"ideal\"")
    join() { local IFS=$'\x1f'; local s="$*"; printf '%s' "${s//$'\x1f'/, }"; }
    gnuplot <<GNUPLOT
set terminal pngcairo size 1000,420 noenhanced
set output "$out/scaling.png"
set datafile separator ","
set multiplot layout 1,2 title "$model: data-parallel scaling on $cores cores (ranks > $cores oversubscribed)"
set xlabel "ranks"
set xrange [0.8:$ranks + 0.2]
set xtics 1
set grid
set key top left font ",9"
set style line 1 linecolor rgb "#1f77b4" linewidth 2 pointtype 7
set style line 2 linecolor rgb "#ff7f0e" linewidth 2 pointtype 7
set style line 3 linecolor rgb "#2ca02c" linewidth 2 pointtype 7
set style line 4 linecolor rgb "#d62728" linewidth 2 pointtype 7
set ylabel "samples/s"
set yrange [0:*]
plot $(join "${speed_plots[@]}")
set ylabel "efficiency vs 1 rank"
set key bottom left
set offsets 0, 0, 0.1, 0
plot $(join "${eff_plots[@]}")
unset multiplot
GNUPLOT
    rm -f "$out"/scaling.plot-*.csv
    echo "plot: $out/scaling.png"
else
    echo "plot: skipped (gnuplot is not installed; scripts/setup.sh --bench installs gnuplot-nox)"
fi
