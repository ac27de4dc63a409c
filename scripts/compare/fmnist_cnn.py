"""fmnist-cnn training steps in PyTorch or Keras (TensorFlow), one thread, for bench-compare.sh.

The model is SwiftDDP's built-in `fmnist-cnn`: conv 5x5x32 same, relu, maxpool 2, conv 5x5x64 same,
relu, maxpool 2, flatten, dense 1024, relu, dropout 0.4, dense 10. The workload matches the ddp
benchmark it is compared with:

  torch (beside `ddp bench throughput`): one fixed synthetic batch (uniform [0,1) images, random
        labels); each step is forward, softmax cross-entropy, backward and an optimizer step;
        the median step's wall and CPU time.
  keras (beside `ddp bench steps`, which trains through the real data path): `model.fit` on
        arrays of (warmup + steps) batches of synthetic samples, one epoch, shuffled; samples/s
        from the wall and CPU time of the timed steps (the first timed batch's start to the last one's end).

Prints one JSON line: framework, version, batch, optimizer, samples_per_s and step_s (wall clock),
samples_per_s_cpu and cpu_step_s (the process's CPU time, all threads: on a shared machine it leaves
out other processes' time slices), cpu_per_wall (1.0: one busy core) and peak_rss_mb (this process,
getrusage). Figures are what this run measured; nothing is remembered.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", choices=["torch", "keras"], required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                   help="adam: lr 1e-4 (as ddp bench throughput); sgd: lr 0.01, momentum 0.9 (as ddp bench steps)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.batch <= 0 or a.steps <= 0 or a.warmup < 1:
        p.error("--batch and --steps must be positive and --warmup at least 1")
    return a


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # Linux reports KiB


def report(args, version, step_seconds, cpu_step_seconds, cpu_seconds, wall_seconds):
    print(json.dumps({
        "framework": args.framework, "version": version, "batch": args.batch, "optimizer": args.optimizer,
        "steps": args.steps,
        "samples_per_s": args.batch / step_seconds, "step_s": step_seconds,
        "samples_per_s_cpu": args.batch / cpu_step_seconds, "cpu_step_s": cpu_step_seconds,
        "cpu_per_wall": cpu_seconds / wall_seconds if wall_seconds > 0 else 0.0,
        "peak_rss_mb": peak_rss_mb(),
    }), flush=True)


def run_torch(args):
    import torch
    from torch import nn
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(), nn.Dropout(0.4), nn.Linear(1024, 10))
    model.train()
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    losses = [step() for _ in range(args.warmup)]
    if not all(map(lambda v: v == v and abs(v) != float("inf"), losses)):
        sys.exit(f"fmnist_cnn.py: non-finite loss in warm-up {losses}")
    walls, cpus = [], []
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(args.steps):
        t, c = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    report(args, torch.__version__, statistics.median(walls), statistics.median(cpus), cpu, wall)


def run_keras(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras = tf.keras
    keras.utils.set_random_seed(args.seed)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(64, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(1024, activation="relu"), L.Dropout(0.4), L.Dense(10)])
    if args.optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=1e-4)
    else:
        opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(args.seed)
    total = args.warmup + args.steps
    count = args.batch * total
    x = rng.random((count, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=(count,)).astype(np.int32)

    marks = {}

    class Marks(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == args.warmup:
                marks["wall"], marks["cpu"] = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            if batch == total - 1:
                marks["wall_end"], marks["cpu_end"] = time.perf_counter(), time.process_time()

    model.fit(x, y, batch_size=args.batch, epochs=1, shuffle=True, verbose=0, callbacks=[Marks()])
    wall, cpu = marks["wall_end"] - marks["wall"], marks["cpu_end"] - marks["cpu"]
    report(args, tf.__version__, wall / args.steps, cpu / args.steps, cpu, wall)


if __name__ == "__main__":
    a = parse()
    run_torch(a) if a.framework == "torch" else run_keras(a)
