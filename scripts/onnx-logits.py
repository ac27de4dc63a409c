#!/usr/bin/env python3
"""Runs an ONNX model exported by `ddp export` with ONNX Runtime on image files and prints one JSON
object per image: {"file": ..., "logits": [...], "probabilities": [...]}.

Images (binary PGM/PPM, or PNG when Pillow is installed) are prepared as `ddp predict` prepares
them without --resize: pixels / 255, channels first; the model itself applies the training
normalization. Usage: python scripts/onnx-logits.py model.onnx a.pgm b.pgm
"""
import json
import sys

import numpy as np
import onnxruntime


def read_pnm(path):
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; '#' comments allowed
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1
    magic, width, height = fields[0], int(fields[1]), int(fields[2])
    channels = {b"P5": 1, b"P6": 3}[magic]
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height * channels, offset=pos)
    return pixels.reshape(height, width, channels)


def read_image(path):
    if path.lower().endswith((".pgm", ".ppm", ".pnm")):
        return read_pnm(path)
    from PIL import Image  # PNG and others
    image = np.asarray(Image.open(path))
    return image[:, :, None] if image.ndim == 2 else image


def main():
    model, files = sys.argv[1], sys.argv[2:]
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape  # ['N', C, H, W]
    channels = shape[1]
    batch = []
    for path in files:
        image = read_image(path).astype(np.float32)
        if image.shape[2] != channels:  # gray <-> RGB, as ddp predict converts
            image = image.mean(axis=2, keepdims=True) if channels == 1 else np.repeat(image, 3, axis=2)
        batch.append(np.transpose(image, (2, 0, 1)) / np.float32(255))
    logits, probabilities = session.run(["logits", "probabilities"], {"input": np.stack(batch)})
    for path, z, p in zip(files, logits, probabilities):
        print(json.dumps({"file": path, "logits": [float(v) for v in z], "probabilities": [float(v) for v in p]}))


if __name__ == "__main__":
    main()
