#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (Fuzz/Corpus/TARGET/*): a few small valid files of
each format, so libFuzzer starts from inputs that reach deep into each reader. Rerun after changing
a format; the files are checked in."""
import gzip, json, os, struct, zlib

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")

def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

def safetensors(tensors, metadata):
    header = {"__metadata__": metadata}
    offset, blobs = 0, []
    for name, shape, values in tensors:
        blob = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)

spec = {"name": "seed", "input": [1, 8, 8], "loss": "softmax-cross-entropy",
        "layers": [{"type": "flatten"}, {"type": "dense", "units": 3, "bias": True}]}
record = {"globalBatch": 8, "accumulate": 1, "seed": "1", "trainingSamples": 64,
          "position": {"epoch": 1, "stepInEpoch": 0, "step": 8, "epochsWithoutImprovement": 0},
          "options": {"normalize": "0.5,0.25", "class_names": "[\"a\",\"b\",\"c\"]"}}
weights = [("1.dense.weight", [3, 64], [i / 100 for i in range(192)]), ("1.dense.bias", [3], [0.1, 0.2, 0.3])]
moments = [("optimizer.m." + n, s, [0.5] * len(v)) for n, s, v in weights]
meta = {"format": "swiftddp-training-1", "step": "8", "epoch": "1", "rng_state": "1",
        "model_spec": json.dumps(spec), "options": json.dumps(record), "optimizer": "adam(lr 0.001)",
        "optimizer_step": "8", "optimizer_buffers": "m"}
put("checkpoint", "dense.safetensors", safetensors(weights + moments, meta))
put("safetensors", "dense.safetensors", safetensors(weights, {"format": "x"}))
put("safetensors", "empty.safetensors", safetensors([], {}))

def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)
images = idx([3, 4, 4], range(48))
labels = idx([3], [0, 1, 2])
put("idx", "images-idx3", images)
put("idx", "labels-idx1", labels)
put("idx", "images-idx3.gz", gzip.compress(images, mtime=0))
put("idx", "labels-idx1.gz", gzip.compress(labels, mtime=0))

put("cifar", "two.bin", bytes([3]) + bytes(i % 256 for i in range(3072)) + bytes([9]) + bytes(3072))

def png(width, height, color_type, depth, rows, palette=None):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    if palette: out += chunk(b"PLTE", bytes(palette))
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
put("png", "gray.png", png(3, 2, 0, 8, [[0, 128, 255], [1, 2, 3]]))
put("png", "rgb.png", png(2, 2, 2, 8, [[255, 0, 0, 0, 255, 0], [0, 0, 255, 9, 9, 9]]))
put("png", "rgba.png", png(2, 1, 6, 8, [[255, 0, 0, 128, 0, 255, 0, 0]]))
put("png", "palette.png", png(2, 2, 3, 8, [[0, 1], [1, 0]], palette=[10, 20, 30, 200, 100, 50]))
put("png", "gray16.png", png(2, 1, 0, 16, [[1, 0, 255, 255]]))

put("pnm", "p5.pgm", b"P5\n3 2\n255\n" + bytes([0, 10, 20, 30, 40, 250]))
put("pnm", "p6.ppm", b"P6 2 1 255\n" + bytes([255, 0, 0, 0, 255, 0]))
put("pnm", "p2.pgm", "P2\n# comment\n2 2\n15\n0 5\n10 15\n")
put("pnm", "p3.ppm", "P3\n1 1\n65535\n65535 0 30000\n")
put("pnm", "p5-16.pgm", b"P5 2 1 1023\n" + bytes([3, 255, 0, 1]))

conv = "name: small\ninput: [1, 8, 8]\nlayers:\n  - {type: conv2d, filters: 4, kernel: 3, stride: 1, padding: same}\n" \
       "  - {type: batchnorm2d, momentum: 0.1}\n  - {type: relu}\n  - {type: maxpool2d, pool: 2}\n" \
       "  - {type: avgpool2d, pool: [2, 2], stride: 1, padding: valid}\n  - {type: dropout, rate: 0.2}\n" \
       "  - {type: flatten}\n  - {type: dense, units: classes}\n"
put("model-yaml", "conv.yaml", conv)
put("model-yaml", "binary.yaml", "classes: 2\nloss: binary-cross-entropy\nlayers:\n  - type: flatten\n  - type: dense\n    units: 1\n")
put("model-json", "dense.json", json.dumps(spec))
put("model-json", "conv.json", json.dumps({"input": [1, 8, 8], "classes": 3, "layers": [
    {"type": "conv2d", "filters": 2, "kernel": [3, 2], "stride": [1, 2], "padding": [1, 0, 1, 0]},
    {"type": "MaxPool2D", "pool": 2, "padding": 1}, {"type": "flatten"}, {"type": "dense", "units": "classes"}]}))

put("normalize", "one", "0.286,0.353")
put("normalize", "three", "0.49, 0.48, 0.45, 0.25, 0.24, 0.26")
put("options", "record.json", json.dumps(record))
put("options", "nested.json", json.dumps({"options": {"normalize": "0.1,0.2", "class_names": "[\"x\"]"}, "normalize": "1,2"}))
