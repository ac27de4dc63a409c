#!/usr/bin/env python3
"""Reads the TensorBoard event files under a folder with TensorBoard's own event reader and prints
one JSON object per scalar: {"run": "train", "tag": "epoch_loss", "step": 1, "value": 0.52}.

Usage: python scripts/tensorboard-scalars.py LOGDIR   (needs the tensorboard package)
"""
import json
import os
import sys

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader


def main():
    root = sys.argv[1]
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            if "tfevents" not in name:
                continue
            run = os.path.relpath(folder, root)
            for event in EventFileLoader(os.path.join(folder, name)).Load():
                if event.HasField("file_version"):
                    print(json.dumps({"run": run, "file_version": event.file_version}))
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        v = value.simple_value
                    elif value.HasField("tensor"):  # the loader may migrate scalars to tensors
                        import numpy as np
                        from tensorboard.util import tensor_util
                        v = float(np.asarray(tensor_util.make_ndarray(value.tensor)))
                    else:
                        continue
                    print(json.dumps({"run": run, "tag": value.tag, "step": event.step, "value": v}))


if __name__ == "__main__":
    main()
