#!/usr/bin/env bash
# The demo: installs what is missing, builds the release binary, and trains fmnist-cnn on
# Fashion-MNIST on 2 ranks (ddp train --np 2 re-executes itself under mpirun).
#
# Settings: Adam at 1e-3 with a cosine decay over 10 epochs, global batch 128 (64 per rank), the
# whole training set (no validation split), test set evaluated once at the end. Target test
# accuracy: 0.916 or more. Metrics (one JSON line per epoch, and a final one with the test figures)
# and checkpoints go to runs/demo; a stopped run continues with: scripts/demo.sh --resume runs/demo/checkpoints
# Speed: see the README (figures measured on a 2-core machine).
#
# Extra arguments are passed to `ddp train` and win over the defaults below, e.g.
#   scripts/demo.sh --epochs 2                 # a shorter run
#   scripts/demo.sh --np 4 --scale-lr          # 4 ranks (same global batch unless --batch-size)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release
data=/usr/share/datasets/fashion-mnist
if [[ ! -e "$data/train-images-idx3-ubyte.gz" && ! -e "$data/train-images-idx3-ubyte" ]]; then
    echo "demo: Fashion-MNIST is missing from $data; hint: apt-get install dataset-fashion-mnist (scripts/setup.sh does)" >&2
    exit 1
fi
mkdir -p runs/demo
exec .build/release/ddp train --np 2 \
    --data "$data" --model fmnist-cnn \
    --optimizer adam --lr 1e-3 --lr-schedule cosine \
    --batch-size 128 --epochs 10 \
    --metrics runs/demo/metrics.jsonl \
    --checkpoint-dir runs/demo/checkpoints --keep-last 3 \
    "$@"
