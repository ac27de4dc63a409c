"""Prints bench-compare.sh's tables from its runs file (one row per program run).

Each cell is the median over the alternated rounds; a ratio is the median of the per-round ratios
(the two programs of a pair ran back to back in the same round), with its smallest and largest.
Only the standard library: it runs with the system's python3.
"""
import csv
import statistics
import sys
from collections import defaultdict


def load(path):
    runs = defaultdict(dict)  # (section, program, optimizer, ranks, batch) -> {round: row}
    for row in csv.DictReader(open(path)):
        key = (row["section"], row["program"], row["optimizer"], int(row["ranks"]), int(row["batch"]))
        runs[key][int(row["round"])] = row
    return runs


def num(row, field):
    try:
        return float(row[field])
    except (KeyError, ValueError, TypeError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cell(value, fmt="%.1f"):
    return "-" if value is None else fmt % value


def ratio(runs, a, b, field):
    """Median, min and max of a/b over the rounds both ran."""
    ra, rb = runs.get(a, {}), runs.get(b, {})
    values = [num(ra[r], field) / num(rb[r], field) for r in ra if r in rb and num(ra[r], field) and num(rb[r], field)]
    if not values:
        return "-"
    return "%.2fx (%.2f-%.2f)" % (statistics.median(values), min(values), max(values))


def value(runs, key, field):
    return median(num(row, field) for row in runs.get(key, {}).values())


def table(title, header, rows):
    print(title)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
    print()


def one_rank(runs):
    batches = sorted({k[4] for k in runs if k[0] == "one"})
    if not batches:
        return
    pairs = [(("one", "ddp", "adam", 1), ("one", "pytorch", "adam", 1), "ddp Adam", "PyTorch Adam", "ddp/PyTorch"),
             (("one", "ddp", "sgd", 1), ("one", "keras", "sgd", 1), "ddp SGD-m", "Keras SGD-m", "ddp/Keras")]
    for field, what in [("samples_per_s_cpu", "samples/s by the process's CPU time per step"),
                        ("samples_per_s_wall", "samples/s by wall-clock time per step")]:
        header, rows = ["batch"], []
        for _, _, x, y, r in pairs:
            header += [x, y, r]
        for b in batches:
            row = [b]
            for a, o, *_ in pairs:
                ka, ko = a + (b,), o + (b,)
                row += [cell(value(runs, ka, field)), cell(value(runs, ko, field)), ratio(runs, ka, ko, field)]
            rows.append(row)
        table(f"One rank, one thread: {what} (median of the rounds; ratio: median of per-round ratios, min-max)",
              header, rows)
    header = ["batch", "ddp Adam", "PyTorch Adam", "ddp SGD-m", "Keras SGD-m"]
    rows = [[b] + [cell(value(runs, p + (b,), "peak_rss_mb"), "%.0f MB") for p in (pairs[0][0], pairs[0][1], pairs[1][0], pairs[1][1])]
            for b in batches]
    table("Peak RSS of the process (median of the rounds)", header, rows)


def two_ranks(runs):
    batches = sorted({k[4] for k in runs if k[0] == "two"})
    ranks = sorted({k[3] for k in runs if k[0] == "two"})
    if not batches:
        return
    top = max(ranks)
    header, rows = ["per-rank batch"], []
    for p in ranks:
        header += [f"ddp {p}r", f"PyTorch DDP {p}r"]
    header += [f"ddp/PyTorch {top}r"]
    if 1 in ranks and top > 1:
        header += [f"ddp weak eff {top}r", f"PyTorch weak eff {top}r"]
    header += [f"ddp blocked ms {top}r", f"peak RSS ddp/PyTorch {top}r"]
    for b in batches:
        row = [b]
        for p in ranks:
            row += [cell(value(runs, ("two", "ddp", "sgd", p, b), "samples_per_s_wall")),
                    cell(value(runs, ("two", "pytorch-ddp", "sgd", p, b), "samples_per_s_wall"))]
        row.append(ratio(runs, ("two", "ddp", "sgd", top, b), ("two", "pytorch-ddp", "sgd", top, b), "samples_per_s_wall"))
        if 1 in ranks and top > 1:
            for prog in ("ddp", "pytorch-ddp"):
                one, many = runs.get(("two", prog, "sgd", 1, b), {}), runs.get(("two", prog, "sgd", top, b), {})
                effs = [num(many[r], "samples_per_s_wall") / (top * num(one[r], "samples_per_s_wall"))
                        for r in many if r in one and num(many[r], "samples_per_s_wall") and num(one[r], "samples_per_s_wall")]
                row.append("%.2f (%.2f-%.2f)" % (statistics.median(effs), min(effs), max(effs)) if effs else "-")
        row.append(cell(value(runs, ("two", "ddp", "sgd", top, b), "blocked_ms"), "%.2f"))
        row.append(cell(value(runs, ("two", "ddp", "sgd", top, b), "peak_rss_mb"), "%.0f") + " / "
                   + cell(value(runs, ("two", "pytorch-ddp", "sgd", top, b), "peak_rss_mb"), "%.0f MB"))
        rows.append(row)
    table("Ranks x one thread, SGD-m, samples/s by wall clock (global; median of the rounds; weak efficiency per round "
          "against the same round's one-rank run, median and min-max)", header, rows)


def conv_layers(path):
    """The Conv2D layer table: seconds per call of ddp and PyTorch, and PyTorch's time over ours."""
    times = defaultdict(dict)  # (program, layer, batch, pass) -> {round: seconds}
    for row in csv.DictReader(open(path)):
        for what in ("forward", "backward"):
            seconds = num(row, what + "_s")
            if seconds:
                times[(row["program"], row["layer"], int(row["batch"]), what)][int(row["round"])] = seconds
    keys = sorted({(k[1], k[2]) for k in times})
    if not keys:
        return
    header, rows = ["layer", "batch"], []
    for what in ("forward", "backward"):
        header += [f"ddp {what} ms", f"PyTorch {what} ms", "PyTorch/ddp"]
    for layer, batch in keys:
        row = [layer, batch]
        for what in ("forward", "backward"):
            ours, theirs = times.get(("ddp", layer, batch, what), {}), times.get(("pytorch", layer, batch, what), {})
            row += [cell(median(v * 1e3 for v in ours.values()), "%.2f"), cell(median(v * 1e3 for v in theirs.values()), "%.2f")]
            speedups = [theirs[r] / ours[r] for r in ours if r in theirs]
            row.append("%.2fx (%.2f-%.2f)" % (statistics.median(speedups), min(speedups), max(speedups)) if speedups else "-")
        rows.append(row)
    table("Conv2D layers alone, one thread: median time per call over the batch (backward: weight, bias and, for conv2, "
          "input gradients); PyTorch/ddp above 1.0x: ddp is faster (median of per-round ratios, min-max)", header, rows)


if __name__ == "__main__":
    r = load(sys.argv[1])
    one_rank(r)
    two_ranks(r)
    if len(sys.argv) > 2:
        conv_layers(sys.argv[2])
