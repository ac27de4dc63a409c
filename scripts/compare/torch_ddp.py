"""fmnist-cnn data-parallel training steps in PyTorch DDP over gloo, one thread per rank, beside
`ddp bench steps` (scripts/bench-compare.sh and scripts/bench-scaling.sh --torch run it).

P processes on this machine (rank r pinned to core r mod the core count, as mpirun binds a rank to
a core), each with one intra-op and one inter-op thread, a DistributedDataParallel model with its
default buckets, SGD (lr 0.01, momentum 0.9, as `ddp bench steps`) and a fixed synthetic batch of
--per-rank-batch samples per rank. After --warmup untimed steps and a barrier, --steps steps are
timed to a last barrier; samples/s = P x per-rank batch x steps / the slowest rank's wall time.

Prints one JSON line (framework, version, ranks, per_rank_batch, samples_per_s, step_ms,
peak_rss_mb: the largest rank's getrusage peak) and with --csv appends a row in the columns of
`ddp bench steps --csv` (its own figures left empty where PyTorch has no counterpart).
"""
import argparse
import json
import os
import resource
import socket
import sys
import time

# The columns of `ddp bench steps --csv` (Sources/launcher/Commands/BenchSteps.swift).
CSV_HEADER = ("label,model,ranks,cores,oversubscribed,global_batch,per_rank_batch,steps,compression,bucket_mb,"
              "samples_per_s,step_ms,compute_ms,comm_ms,blocked_ms,hidden_ms,hidden_pct,conversion_ms,cpu_ms")


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--per-rank-batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--label", default="pytorch-ddp")
    p.add_argument("--csv", help="append one row (a header first when the file is new) in bench steps' columns")
    a = p.parse_args()
    if a.ranks < 1 or a.per_rank_batch < 1 or a.steps < 1 or a.warmup < 0:
        p.error("--ranks, --per-rank-batch and --steps must be positive, --warmup non-negative")
    return a


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, args, port, queue):
    import torch
    import torch.distributed as dist
    from torch import nn
    cores = os.cpu_count() or 1
    os.sched_setaffinity(0, {rank % cores})
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.ranks)
    torch.manual_seed(1)  # the same initial parameters everywhere (DDP broadcasts rank 0's anyway)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(), nn.Dropout(0.4), nn.Linear(1024, 10))
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.rand(args.per_rank_batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.per_rank_batch,), generator=g)
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        lossf(ddp(x), y).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    dist.barrier()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(args.steps):
        step()
    dist.barrier()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    figures = torch.tensor([wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6], dtype=torch.float64)
    gathered = [torch.zeros_like(figures) for _ in range(args.ranks)]
    dist.all_gather(gathered, figures)
    if rank == 0:
        queue.put(([float(t[0]) for t in gathered], [float(t[1]) for t in gathered], [float(t[2]) for t in gathered],
                   torch.__version__))
    dist.barrier()
    dist.destroy_process_group()


def main():
    args = parse()
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    import torch
    import torch.multiprocessing as mp
    import queue as queues
    ctx = mp.get_context("spawn")
    figures = ctx.Queue()
    workers = mp.spawn(worker, args=(args, free_port(), figures), nprocs=args.ranks, join=False)
    # Rank 0 sends the figures once every rank has measured. A worker that dies before that ends
    # the run with its error; one that aborts while gloo tears down afterwards (seen now and then
    # with PyTorch 2.15: "terminate called without an active exception") leaves valid figures.
    while True:
        try:
            walls, cpus, rss, version = figures.get(timeout=1)
            break
        except queues.Empty:
            if any(p.exitcode not in (None, 0) for p in workers.processes):
                workers.join()  # raises with the failed worker's error
                sys.exit("torch_ddp: a worker ended before sending its figures")
    try:
        while not workers.join():
            pass
    except mp.ProcessExitedException as error:
        print(f"torch_ddp: a worker ended badly after the measurement ({error}); its figures stand", file=sys.stderr)
    slowest = max(walls)
    cores = os.cpu_count() or 1
    result = {
        "framework": "pytorch-ddp", "version": version, "backend": "gloo", "ranks": args.ranks,
        "per_rank_batch": args.per_rank_batch, "steps": args.steps,
        "samples_per_s": args.ranks * args.per_rank_batch * args.steps / slowest,
        "step_ms": 1000 * slowest / args.steps, "cpu_ms": 1000 * sum(cpus) / len(cpus) / args.steps,
        "peak_rss_mb": max(rss),
    }
    print(json.dumps(result), flush=True)
    if args.csv:
        fresh = not os.path.exists(args.csv) or os.path.getsize(args.csv) == 0
        row = [args.label, "fmnist-cnn", str(args.ranks), str(cores), "yes" if args.ranks > cores else "no",
               str(args.ranks * args.per_rank_batch), f"{args.per_rank_batch:.2f}", str(args.steps), "none", "25.000",
               f"{result['samples_per_s']:.3f}", f"{result['step_ms']:.3f}", "", "", "", "", "", "", f"{result['cpu_ms']:.3f}"]
        with open(args.csv, "a") as f:
            if fresh:
                f.write(CSV_HEADER + "\n")
            f.write(",".join(row) + "\n")


if __name__ == "__main__":
    main()
