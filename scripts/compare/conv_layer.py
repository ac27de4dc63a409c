"""fmnist-cnn's convolution layers alone in PyTorch, one thread, for bench-compare.sh --only layers.

Times the layers `ddp bench kernels` times in its "Conv2D layer" table, with the same shapes:

  conv1  1 -> 32 channels, 28x28, 5x5, stride 1, same padding (no input gradient: the first layer)
  conv2 32 -> 64 channels, 14x14, 5x5, stride 1, same padding

forward: the layer's output with its bias (no autograd graph kept: torch.no_grad);
backward: the weight, bias and (conv2) input gradients for a fixed output gradient, from one
forward pass kept alive (torch.autograd.grad with retain_graph, so only the backward is timed).
Each figure is the median of --repeats samples of at least 20 ms each, after two warm-up calls,
as `ddp bench kernels` samples its layers. Prints one JSON line per layer: layer, batch,
forward_s, backward_s and their GFLOP/s (2 x multiply-accumulates; backward counts the weight
gradient and, for conv2, the input gradient, as `ddp bench kernels` does). Figures are what this
run measured; nothing is remembered.
"""
import argparse
import json
import statistics
import time

LAYERS = [  # name, in-channels, out-channels, height/width, needs the input gradient
    ("conv1", 1, 32, 28, False),
    ("conv2", 32, 64, 14, True),
]


def median_seconds(body, repeats):
    body(); body()
    samples = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            body()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= 0.02:
                break
        samples.append(elapsed / calls)
    return statistics.median(samples)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    if a.batch <= 0 or a.repeats <= 0:
        p.error("--batch and --repeats must be positive")
    import torch
    from torch import nn
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    for name, c, k, hw, input_gradient in LAYERS:
        conv = nn.Conv2d(c, k, 5, padding=2)
        x = torch.rand(a.batch, c, hw, hw, requires_grad=input_gradient)
        with torch.no_grad():
            forward = median_seconds(lambda: conv(x), a.repeats)
        y = conv(x)
        gy = torch.rand_like(y)
        wanted = [conv.weight, conv.bias] + ([x] if input_gradient else [])
        backward = median_seconds(lambda: torch.autograd.grad(y, wanted, gy, retain_graph=True), a.repeats)
        product = 2.0 * a.batch * k * hw * hw * c * 25
        print(json.dumps({
            "framework": "torch", "version": torch.__version__, "layer": name, "batch": a.batch,
            "forward_s": forward, "backward_s": backward,
            "forward_gflops": product / forward / 1e9,
            "backward_gflops": product * (2 if input_gradient else 1) / backward / 1e9,
        }), flush=True)


if __name__ == "__main__":
    main()
