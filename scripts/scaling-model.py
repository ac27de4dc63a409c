#!/usr/bin/env python3
"""A scaling model of data-parallel training steps, calibrated on this machine and checked against
the simulated cluster (scripts/sim-cluster.sh).

    scripts/scaling-model.py measure [--out DIR] [--rates 1gbit,10gbit] [--hosts 2,3,4] ...
    scripts/scaling-model.py report DIR

`measure` runs the calibrations and the validation runs, saving what each command printed under
DIR (default /tmp/ddp-scaling-model), then reports. `report` reads DIR again (no runs) and prints:
the calibration, predicted vs measured step time per validation point with its error, and the
predicted step time and efficiency for 2..512 ranks at 1, 10, 25 and 100 Gbit/s; it writes
model.csv, validation.csv, predictions.csv and (with gnuplot) scaling-model.png into DIR.

The model (times per step, weak scaling: every rank takes B samples a step):
  compute     t_c = c * B                  c: seconds per sample of one rank's whole step (forward,
              backward, optimizer step), the median of `ddp bench steps` on 1 rank
  allreduce   t_ar = sum over buckets of 2(P-1) * alpha_b  +  2(P-1)/P * G * beta
              the ring that the reducer runs per bucket: 2(P-1) rounds, each paying a latency
              (each round moves a piece, 1/P of the bucket: alpha for a piece of 4 KB, alpha_big
              for one of 256 KB or more, the smallest piece of the fit's big sizes, and in between
              in proportion to the piece; big pieces start slower, as TCP restarts its window
              after the idle gap between rounds), and 2(P-1)/P of
              the G bytes on the wire (4 per gradient float, 2 with fp16) through each link.
              alpha from 4 KB on 2 hosts; alpha_big and beta by least squares over the sizes of
              1-16 MB on every host count (2, 3, 4: the rounds grow with P, the bytes hardly),
              all from `ddp bench allreduce` on the simulated hosts with links shaped to each rate.
              In a ring with a node's ranks consecutive only one hop per node crosses its link,
              so G per link does not grow with the ranks per node.
  fp16        t_x = gamma * floats          conversion both ways, on the rank's cores
  step        T = t_c + t_x + max(0, t_ar - h)   with overlap; h = 0 without
              h = eta * t_c: backward hides at most the communication that fits in the backward
              left when the first big bucket starts (a time, not a share of the allreduce: on a
              slow link the same few tens of ms are hidden of a much longer allreduce); eta from
              the 2-host fp32 run at the fastest rate, (t_c + t_ar - T) / t_c
  efficiency  t_c / T (1.0: communication costs nothing)
  --dense-factors (fast mode): each dense weight with a bucket of its own (fmnist-cnn's fc1, W
              floats) travels as its factors, w floats a sample: a ring allgather
              t_ag = (P-1) * (alpha_b + B * w * 4 * beta) replaces its share of the allreduce,
              and every rank forms the weight's gradient from all P*B samples after backward
              (backward copies its factors instead of forming its own part, and was measured no
              shorter for it): T = t_c + P * B * c_w + t_x' + max(0, t_ar' + t_ag - h), with t_ar'
              and t_x' over the other floats and c_w (seconds a sample) from a 2-rank
              `--dense-factors` run
This machine's cores: all simulated hosts share its N cores. A step waits for its slowest rank,
and the busiest core carries ceil(P/N) ranks (the scheduler does not move a rank off a shared core
within a step: 3 ranks on 2 cores run at half speed, not two thirds), so the validation predicts
compute as t_c * ceil(P/N), with t_c timed on one rank just before each point (other work on a
shared machine changes it from minute to minute). The kernel's TCP work for the veth links runs on
the same cores too; the fitted alpha_big and beta take in what that costs. The cluster predictions
assume one core per rank, the round latencies fitted at the fastest rate, and links at the nominal
rate times the efficiency that TCP reached over the shaped links (beta fitted at the lowest rate
against 8/rate).
"""
import argparse
import csv
import math
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "scripts", "sim-cluster.sh")
LARGE = os.path.join(ROOT, "examples", "four-conv-classifier.yaml")


def rate_bits(rate):
    m = re.fullmatch(r"([0-9.]+)([kmg]?)bit", rate)
    if not m:
        sys.exit(f"scaling-model: a rate must look like 1gbit or 500mbit, got {rate}")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]


def run(cmd, path, env=None):
    """Runs cmd, saves its stdout and stderr to path, and returns stdout; stops on failure."""
    print("scaling-model: " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    with open(path, "w") as f:
        f.write(r.stdout + "\n--- stderr\n" + r.stderr)
    if r.returncode != 0:
        sys.exit(f"scaling-model: failed ({r.returncode}), see {path}:\n{r.stderr[-2000:]}")
    return r.stdout


STEPS_RE = {
    "step": r"step ([0-9.]+) ms", "compute": r"compute ([0-9.]+) ms", "comm": r"comm ([0-9.]+) ms",
    "hidden": r"hidden ([0-9.]+) ms", "conversion": r"fp16 conversion ([0-9.]+) ms",
    "floats": r"(\d+) gradient floats", "buckets": r"in (\d+) bucket", "ranks": r", (\d+) ranks?",
    "batch": r"global batch (\d+)",
}
# Printed since the bucket sizes and medians were added (older outputs: the means alone).
MEDIAN_RE = {"median_step": r"median step ([0-9.]+) ms", "median_compute": r"median compute ([0-9.]+) ms"}
# Present only with --dense-factors (zero otherwise).
FACTOR_RE = {
    "factor_weights": r"as factors: (\d+) weight floats", "factor_width": r"(\d+) floats a sample",
    "factor_formed": r"formed in ([0-9.]+) ms", "factor_buckets": r"\((\d+) dense weights? as factors",
}


def parse_steps(path):
    """The figures of the `bench steps:` line in a saved output (times in seconds)."""
    text = open(path).read()
    line = next((l for l in text.splitlines() if l.startswith("bench steps:")), None)
    if line is None:
        sys.exit(f"scaling-model: no 'bench steps:' line in {path}")
    out = {}
    for key, pattern in STEPS_RE.items():
        m = re.search(pattern, line)
        if not m:
            sys.exit(f"scaling-model: no {key} in {path}: {line}")
        v = float(m.group(1))
        out[key] = v / 1000 if key in ("step", "compute", "comm", "hidden", "conversion") else int(v)
    for key, pattern in FACTOR_RE.items():
        m = re.search(pattern, line)
        v = float(m.group(1)) if m else 0.0
        out[key] = v / 1000 if key == "factor_formed" else int(v)
    # The step's figures as the model reads them: medians where printed (a step that other work on
    # the shared machine delayed moves a mean, not a median).
    for key, pattern in MEDIAN_RE.items():
        m = re.search(pattern, line)
        out[key] = float(m.group(1)) / 1000 if m else out[key[len("median_"):]]
    m = re.search(r"\(floats: ([0-9 ]+)\)", line)
    out["bucket_floats"] = [int(x) for x in m.group(1).split()] if m else [out["floats"] // out["buckets"]] * out["buckets"]
    return out


def measure(a):
    os.makedirs(a.out, exist_ok=True)
    ddp = os.path.abspath(a.ddp)
    env = dict(os.environ, DDP=ddp)
    steps = ["--steps", str(a.steps), "--warmup", "2"]
    fm = ["bench", "steps", "--model", "fmnist-cnn", "--per-rank-batch", str(a.per_rank_batch)] + steps
    # Compute: one rank, no launcher, nothing to reduce; then the fp16 conversion on 2 local ranks.
    run([ddp] + fm, f"{a.out}/compute-fmnist-cnn.txt")
    run([ddp] + fm + ["--np", "2", "--compression", "fp16"], f"{a.out}/conversion-fmnist-cnn.txt")
    # The dense factors: the weights' sizes, and the cost of forming their gradient per sample.
    run([ddp] + fm + ["--np", "2", "--dense-factors"], f"{a.out}/factors-fmnist-cnn.txt")
    if a.large:
        run([ddp, "bench", "steps", "--model", a.large, "--sample-shape", "3,64,64", "--classes", "1000",
             "--per-rank-batch", str(a.large_batch), "--steps", "2", "--warmup", "1"], f"{a.out}/compute-large.txt")
    # The links: the reducer's allreduce on 2 simulated hosts, and on every other host count of the
    # validation (a ring's rounds grow with the hosts: that separates a round's latency from the bytes).
    for rate in a.rates.split(","):
        for hosts in sorted({2} | {int(h) for h in a.hosts.split(",")}):
            name = f"allreduce-{rate}" + ("" if hosts == 2 else f"-{hosts}hosts")
            run([SIM, "--hosts", str(hosts), "--rate", rate, "--", "bench", "allreduce", "--sizes", "4K,1M,4M,16M",
                 "--repeats", "5", "--csv", f"{a.out}/{name}.csv"], f"{a.out}/{name}.txt", env)
    if a.skip_validation:
        return
    for rate in a.rates.split(","):
        for hosts in a.hosts.split(","):
            for comp in ("none", "fp16"):
                for factors in ((False, True) if a.dense_factors else (False,)):
                    tag = f"{rate}-{hosts}-{comp}{'-factors' if factors else ''}"
                    # The machine is shared: compute is timed again just before each point, on one rank.
                    run([ddp, "bench", "steps", "--model", "fmnist-cnn", "--per-rank-batch", str(a.per_rank_batch),
                         "--steps", "5", "--warmup", "1"], f"{a.out}/before-{tag}.txt")
                    run([SIM, "--hosts", hosts, "--rate", rate, "--"] + fm + ["--compression", comp]
                        + (["--dense-factors"] if factors else []), f"{a.out}/validate-{tag}.txt", env)


def fit_allreduce(d, rate):
    """The link at `rate` from the reducer's fp32 allreduce times on 2, 3, 4... simulated hosts:
    alpha_big and beta of t = k 2(P-1) alpha_big + 2(P-1)/P S beta by least squares over the sizes
    of 1 MB and more on every host count (k buckets; a ring runs 2(P-1) rounds a bucket); alpha, a
    round's latency for small buckets, from the smallest size on 2 hosts (2 rounds; its few bytes
    pass within the shaper's burst). A round that moves megabytes starts slower than a 4 KB one (TCP restarts its window
    after the idle gap between rounds), which only the host counts beyond 2 can tell from the bytes.
    beta no lower than the shaped rate allows; with 2 hosts alone, alpha_big = alpha."""
    pts = []
    for f in sorted(os.listdir(d)):
        m = re.fullmatch(rf"allreduce-{re.escape(rate)}(?:-(\d+)hosts)?\.csv", f)
        if m:
            p = int(m.group(1) or 2)
            pts += [(p, int(r["buckets"]), float(r["bytes"]), float(r["reducer_ms"]) / 1000) for r in csv.DictReader(open(f"{d}/{f}"))]
    small = min((x for x in pts if x[0] == 2), key=lambda x: x[2])
    alpha = small[3] / (2 * small[1])
    big = [x for x in pts if x[2] >= 1 << 20] or [max(pts, key=lambda x: x[2])]
    floor = 8 / rate_bits(rate)
    rows = [(2 * (p - 1) * k, 2 * (p - 1) / p * size, t) for p, k, size, t in big]
    suu = sum(u * u for u, v, t in rows); svv = sum(v * v for u, v, t in rows); suv = sum(u * v for u, v, t in rows)
    sut = sum(u * t for u, v, t in rows); svt = sum(v * t for u, v, t in rows)
    det = suu * svv - suv * suv
    if len({p for p, *_ in big}) > 1 and det > 0:
        # Least squares of t = u alpha_big + v beta.
        alpha_big, beta = (sut * svv - svt * suv) / det, (svt * suu - sut * suv) / det
        if beta < floor:
            beta = floor
            alpha_big = sum(u * (t - v * beta) for u, v, t in rows) / suu
        alpha_big = max(alpha_big, alpha)
    else:
        alpha_big = alpha
        beta = max(floor, sum(v * (t - u * alpha) for u, v, t in rows) / svv)
    return {"alpha": alpha, "alpha_big": alpha_big, "beta": beta, "hosts": sorted({p for p, *_ in pts})}


BIG_PIECE = 256 << 10  # bytes a round: the smallest piece of the fit's big sizes (1 MB over 4 hosts)


def round_latency(piece, net):
    """A ring round's latency for a piece of `piece` bytes: alpha_big from BIG_PIECE up, down to
    alpha in proportion below it (the window a round has to grow shrinks with its bytes)."""
    return net["alpha"] + (net["alpha_big"] - net["alpha"]) * min(1.0, piece / BIG_PIECE)


def allreduce_time(p, bucket_floats, net, fp16):
    """The reducer's ring allreduce of buckets of `bucket_floats` on p ranks: 2(p-1) rounds a bucket,
    each paying its latency, and 2(p-1)/p of the bytes through each link."""
    if p < 2:
        return 0.0
    width = 2 if fp16 else 4
    rounds = sum(2 * (p - 1) * round_latency(n * width / p, net) for n in bucket_floats)
    return rounds + 2 * (p - 1) / p * sum(bucket_floats) * width * net["beta"]


def step_time(compute, conversion, comm, hidden):
    """A step: compute, fp16 conversion, and the communication that backward did not hide (at most
    `hidden` seconds of it: the backward that is left when the first big bucket starts)."""
    return compute + conversion + max(0.0, comm - hidden)


def core_share(ranks, cores):
    """How many ranks the busiest core carries when `ranks` share `cores`: a step waits for its
    slowest rank, and the scheduler does not move a rank off a shared core within a step (3 ranks
    on 2 cores run at half speed, not two thirds)."""
    return max(1, math.ceil(ranks / cores))


def factor_terms(p, batch, m, fx, net, fp16, gamma):
    """With dense factors: (extra compute, fp16 conversion, communication) per step on p ranks, for a
    model m whose factored weights fx describes (weights W, w floats a sample, c_w a sample): the
    weight's gradient formed from all p B samples after backward (backward, which copies its
    factors instead of forming its own part, was measured no shorter), the other buckets'
    allreduce and a ring allgather of the factors, p-1 rounds of B w 4 bytes."""
    others = list(m["bucket_floats"])
    others.remove(fx["weights"])
    tar = allreduce_time(p, others, net, fp16)
    part = batch * fx["width"] * 4
    tag = (p - 1) * (round_latency(part, net) + part * net["beta"]) if p > 1 else 0.0
    return p * batch * fx["per_sample"], (gamma * sum(others) if fp16 else 0.0), tar + tag


def report(a):
    d = a.out
    rates = sorted({m.group(1) for m in (re.fullmatch(r"allreduce-(.+?)(?:-\d+hosts)?\.csv", f) for f in os.listdir(d)) if m},
                   key=rate_bits)
    if not rates:
        sys.exit(f"scaling-model: no allreduce-RATE.csv in {d}; hint: scripts/scaling-model.py measure --out {d}")
    fm = parse_steps(f"{d}/compute-fmnist-cnn.txt")
    conv = parse_steps(f"{d}/conversion-fmnist-cnn.txt")
    cores = os.cpu_count()
    per_sample = fm["median_step"] / fm["batch"]
    scale = 1.0
    if getattr(a, "per_sample_ms", None):
        # Another machine's (or an idle core's) compute: every model's compute scales alike.
        scale = a.per_sample_ms / 1000 / per_sample
    gamma = conv["conversion"] / conv["floats"]
    net = {r: fit_allreduce(d, r) for r in rates}
    low, high = rates[0], rates[-1]
    link_efficiency = (8 / rate_bits(low)) / net[low]["beta"]
    fx = None
    if os.path.exists(f"{d}/factors-fmnist-cnn.txt"):
        fl = parse_steps(f"{d}/factors-fmnist-cnn.txt")
        if fl["factor_buckets"] > 0:
            fx = {"weights": fl["factor_weights"], "width": fl["factor_width"], "per_sample": fl["factor_formed"] / fl["batch"]}
    models = [("fmnist-cnn", fm)]
    if os.path.exists(f"{d}/compute-large.txt"):
        large = parse_steps(f"{d}/compute-large.txt")
        models.append(("four-conv-classifier", large))

    print(f"calibration ({d}):")
    print(f"  fmnist-cnn: {per_sample * 1e3:.3f} ms per sample on one rank ({fm['median_step'] * 1e3:.1f} ms a step of {fm['batch']}), "
          f"{fm['floats']} gradient floats in {fm['buckets']} buckets; fp16 conversion {gamma * 1e9:.3f} ns per float")
    for name, m in models[1:]:
        print(f"  {name}: {m['median_step'] / m['batch'] * 1e3:.3f} ms per sample, {m['floats']} gradient floats in {m['buckets']} buckets")
    if fx:
        print(f"  dense factors: {fx['weights']} weight floats as {fx['width']} floats a sample; forming their gradient "
              f"{fx['per_sample'] * 1e6:.1f} us a sample (2 local ranks)")
    for r in rates:
        n = net[r]
        print(f"  link {r}: alpha {n['alpha'] * 1e6:.1f} us a round (4 KB), {n['alpha_big'] * 1e3:.2f} ms a round of a piece of "
              f"256 KB or more; beta {n['beta'] * 1e9:.3f} ns/byte = {8 / n['beta'] / 1e9:.3f} Gbit/s "
              f"({100 * (8 / rate_bits(r)) / n['beta']:.0f}% of the rate); fitted on {', '.join(map(str, n['hosts']))} hosts")

    # Validation: the time backward hides, from the 2-host fp32 run at the fastest link (where the
    # hidden part is large enough to see; at a slow link the allreduce dwarfs it).
    points = []
    for r in rates:
        for f in sorted(os.listdir(d)):
            m = re.fullmatch(rf"validate-{re.escape(r)}-(\d+)-(none|fp16)(-factors)?\.txt", f)
            if m and (fx or not m.group(3)):
                points.append((r, int(m.group(1)), m.group(2) + (m.group(3) or ""), parse_steps(f"{d}/{f}")))

    def one_rank(r, hosts, comp):
        """One rank's step (compute and update) timed just before a validation point."""
        before = f"{d}/before-{r}-{hosts}-{comp}.txt"
        return parse_steps(before)["median_step"] if os.path.exists(before) else fm["median_step"]

    eta = 0.0
    base = [p for p in points if p[0] == high and p[1] == 2 and p[2] == "none"]
    if base:
        meas = base[0][3]
        tc = one_rank(high, 2, "none")
        tar = allreduce_time(2, fm["bucket_floats"], net[high], False)
        eta = max(0.0, (tc + tar - meas["median_step"]) / tc)
        print(f"  overlap: backward hides up to {eta:.2f} x the step's compute of communication "
              f"(2 hosts, {high}, fp32: the calibration point)")
    rows = []
    if points:
        print(f"\nvalidation: fmnist-cnn, per-rank batch {fm['batch']}, 1 rank per host, hosts sharing this machine's {cores} cores;")
        print("  predicted: compute from one rank timed just before the point, x ceil(ranks/cores) (the busiest core's ranks);")
        print("  wire +f: --dense-factors (its allreduce column: the other buckets' allreduce and the factors' allgather)")
        print(f"{'link':8} {'hosts':>5} {'wire':7} {'compute':>9} {'allreduce':>10} {'predicted':>10} {'measured':>9} {'error':>7}")
        for r, hosts, comp, meas in points:
            fp16 = comp.startswith("fp16")
            share = core_share(hosts, cores)
            one = one_rank(r, hosts, comp)
            tc = one * share
            if comp.endswith("-factors"):
                extra, tx, tar = factor_terms(hosts, fm["batch"], fm, fx, net[r], fp16, gamma)
                tc += extra * share
            else:
                tar = allreduce_time(hosts, fm["bucket_floats"], net[r], fp16)
                tx = gamma * fm["floats"] if fp16 else 0.0
            pred = step_time(tc, tx, tar, eta * one * share)
            measured = meas["median_step"]
            err = (pred - measured) / measured
            calib = r == high and hosts == 2 and comp == "none"
            rows.append([r, hosts, comp, tc * 1e3, tar * 1e3, pred * 1e3, measured * 1e3, 100 * err,
                         "calibration" if calib else ""])
            wire = ("fp16" if fp16 else "fp32") + ("+f" if comp.endswith("-factors") else "")
            print(f"{r:8} {hosts:>5} {wire:7} {tc * 1e3:8.1f}ms {tar * 1e3:9.1f}ms {pred * 1e3:9.1f}ms "
                  f"{measured * 1e3:8.1f}ms {100 * err:+6.1f}%"
                  f"{'  (calibration point)' if calib else ''}")
        checked = [abs(x[7]) for x in rows if not x[8]]
        if checked:
            print(f"worst error over the {len(checked)} validation points {max(checked):.1f}%, "
                  f"{sum(c <= 15 for c in checked)} of {len(checked)} within 15%")
        with open(f"{d}/validation.csv", "w") as f:
            f.write("rate,hosts,compression,compute_ms,allreduce_ms,predicted_ms,measured_ms,error_pct,note\n")
            for x in rows:
                f.write(",".join(str(round(v, 3)) if isinstance(v, float) else str(v) for v in x) + "\n")

    # Predictions for clusters: one core per rank, links at the nominal rate x link efficiency.
    gbits = [1, 10, 25, 100]
    ranks = [2 ** i for i in range(1, 10)]
    pred_rows = []
    print(f"\npredictions: per-rank batch {fm['batch']}, one core per rank, ring allreduce, a round's latency as at {high} "
          f"({net[high]['alpha'] * 1e6:.1f} us; {net[high]['alpha_big'] * 1e3:.2f} ms for pieces of 256 KB or more), "
          f"links at {100 * link_efficiency:.0f}% of their rate; step ms / efficiency")
    for name, m in models:
        b = fm["batch"]
        tc = m["median_step"] / m["batch"] * b * scale
        variants = [("fp32, no overlap", False, False, False), ("fp32, overlap", False, True, False), ("fp16, overlap", True, True, False)]
        if fx and name == "fmnist-cnn":
            variants += [("fp32, dense factors", False, True, True), ("fp16, dense factors", True, True, True)]
        for variant, fp16, overlap, factors in variants:
            print(f"{name}, {variant} (compute {tc * 1e3:.1f} ms):")
            print(f"{'ranks':>6}" + "".join(f"{str(g) + ' Gbit/s':>18}" for g in gbits))
            for p in ranks:
                cells = []
                for g in gbits:
                    link = dict(net[high], beta=8 / (g * 1e9) / link_efficiency)
                    if factors:
                        extra, tx, tar = factor_terms(p, b, m, fx, link, fp16, gamma)
                        t = step_time(tc + extra * scale, tx, tar, eta * tc if overlap else 0.0)
                    else:
                        tar = allreduce_time(p, m["bucket_floats"], link, fp16)
                        tx = gamma * m["floats"] if fp16 else 0.0
                        t = step_time(tc, tx, tar, eta * tc if overlap else 0.0)
                    pred_rows.append([name, variant, p, g, tc * 1e3, tar * 1e3, t * 1e3, tc / t])
                    cells.append(f"{t * 1e3:10.1f} {100 * tc / t:5.1f}%")
                print(f"{p:>6}" + "".join(f"{c:>18}" for c in cells))
    with open(f"{d}/predictions.csv", "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")  # the variants' names hold commas
        out.writerow(["model", "variant", "ranks", "gbit_s", "compute_ms", "allreduce_ms", "step_ms", "efficiency"])
        for x in pred_rows:
            out.writerow([f"{v:.4f}" if isinstance(v, float) else str(v) for v in x])
    with open(f"{d}/model.csv", "w") as f:
        f.write("quantity,value\n")
        f.write(f"seconds_per_sample_fmnist_cnn,{per_sample}\nfp16_seconds_per_float,{gamma}\nhidden_compute_fraction,{eta}\n"
                f"link_efficiency,{link_efficiency}\n")
        for r in rates:
            f.write(f"alpha_{r},{net[r]['alpha']}\nalpha_big_{r},{net[r]['alpha_big']}\nbeta_{r},{net[r]['beta']}\n")
    plot(d, rows, pred_rows)


def plot(d, rows, pred_rows):
    if not shutil.which("gnuplot"):
        print("plot: skipped (gnuplot is not installed; scripts/setup.sh --bench installs gnuplot-nox)")
        return
    with open(f"{d}/plot-validation.dat", "w") as f:
        for r in sorted({x[0] for x in rows}, key=rate_bits):
            for comp in ("none", "fp16", "none-factors", "fp16-factors"):
                pts = [x for x in rows if x[0] == r and x[2] == comp]
                if pts:
                    f.write(f"# {r} {('fp32' if comp.startswith('none') else 'fp16') + (' factors' if comp.endswith('factors') else '')}\n")
                    for x in sorted(pts, key=lambda x: x[1]):
                        f.write(f"{x[1]} {x[5]:.3f} {x[6]:.3f}\n")
                    f.write("\n\n")
    blocks = []
    with open(f"{d}/plot-predictions.dat", "w") as f:
        for g in (1, 10, 25, 100):
            pts = [x for x in pred_rows if x[0] == "fmnist-cnn" and x[1] == "fp32, overlap" and x[3] == g]
            blocks.append(f"{g} Gbit/s")
            for x in pts:
                f.write(f"{x[2]} {100 * x[7]:.2f}\n")
            f.write("\n\n")
    series = []
    with open(f"{d}/plot-validation.dat") as f:
        series = [l[2:].strip() for l in f if l.startswith("# ")]
    vplots = ", ".join(f"'{d}/plot-validation.dat' index {i} using 1:3 with points pt 7 lc {i + 1} title '{s} measured', "
                       f"'' index {i} using 1:2 with lines dt 2 lc {i + 1} title '{s} predicted'" for i, s in enumerate(series))
    pplots = ", ".join(f"'{d}/plot-predictions.dat' index {i} using 1:2 with linespoints title '{s}'" for i, s in enumerate(blocks))
    script = f"""set terminal pngcairo size 1200,500
set output '{d}/scaling-model.png'
set multiplot layout 1,2
set title 'fmnist-cnn on the simulated cluster: step time'
set xlabel 'hosts (1 rank each)'; set ylabel 'ms per step'; set key top left; set xtics 1
plot {vplots if vplots else "1/0 title 'no validation runs'"}
set title 'fmnist-cnn predicted, fp32 with overlap, per-rank batch 64'
set xlabel 'ranks'; set ylabel 'efficiency %'; set logscale x 2; set xrange [2:512]; set xtics 2, 2, 512
set yrange [0:105]; set key bottom left
plot {pplots}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    print(f"plot: {d}/scaling-model.png" if r.returncode == 0 else f"plot: gnuplot failed: {r.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="run the calibrations and the validation runs, then report")
    m.add_argument("--out", default="/tmp/ddp-scaling-model")
    m.add_argument("--ddp", default=os.path.join(ROOT, ".build", "release", "ddp"))
    m.add_argument("--rates", default="1gbit,10gbit", help="link rates of the simulated cluster, lowest first")
    m.add_argument("--hosts", default="2,3,4")
    m.add_argument("--steps", type=int, default=10)
    m.add_argument("--per-rank-batch", type=int, default=64)
    m.add_argument("--large", default=LARGE, help="a larger model file to predict (empty: none)")
    m.add_argument("--large-batch", type=int, default=8, help="samples per step when timing the larger model")
    m.add_argument("--skip-validation", action="store_true")
    m.add_argument("--no-dense-factors", dest="dense_factors", action="store_false",
                   help="skip the --dense-factors validation runs")
    r = sub.add_parser("report", help="fit and print from a measured folder")
    r.add_argument("out")
    r.add_argument("--per-sample-ms", type=float,
                   help="fmnist-cnn's compute per sample for the cluster predictions (default: as calibrated here)")
    a = ap.parse_args()
    if a.command == "measure":
        for rate in a.rates.split(","):
            rate_bits(rate)
        measure(a)
    report(a)


if __name__ == "__main__":
    main()
