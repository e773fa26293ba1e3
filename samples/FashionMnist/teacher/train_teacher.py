#!/usr/bin/python3
"""Train the Fashion-MNIST teacher CNN with real PyTorch and export it to ONNX.

What it is
    The "teacher" model for the FashionMnist sample: a small CNN trained on the FULL
    Fashion-MNIST training set (60,000 images) and exported at ONNX opset 17 with a
    dynamic batch axis. ModelCompression compresses this model during `dotnet build`.

    Architecture: Conv(1->32,3,pad1)-ReLU-MaxPool2 - Conv(32->64,3,pad1)-ReLU-MaxPool2
                  - Flatten - Linear(3136->128)-ReLU-Dropout(0.5) - Linear(128->10)
    Input  `input`  float32 [batch,1,28,28], pixels scaled to [0,1] (x/255, no mean/std).
    Output `logits` float32 [batch,10] (raw logits, no softmax).
    Training: Adam lr 1e-3, batch 128, 10 epochs, seed 0, 2 CPU threads.

How to regenerate (Debian 12; needs no pip/PyPI)
    sudo apt-get install python3-torch python3-onnx dataset-fashion-mnist
    /usr/bin/python3 samples/FashionMnist/teacher/train_teacher.py
    (run from the repository root; use Debian's own /usr/bin/python3, not a pyenv python).
    Writes samples/FashionMnist/teacher/teacher.onnx and copies it to
    tests/fixtures/pytorch/fashion_cnn_teacher.onnx (plus fashion_cnn_teacher.expected.json:
    PyTorch's logits for the first 2 test images), and prints the accuracies and timing
    that samples/FashionMnist/teacher/README.md records.
    Options: --epochs N (default 10), --threads N (default 2).
"""
import argparse
import gzip
import os
import shutil
import json
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SYSTEM_DATA = "/usr/share/datasets/fashion-mnist"
SLICE_DATA = os.path.join(REPO, "samples", "FashionMnist", "data")
OUT_ONNX = os.path.join(REPO, "samples", "FashionMnist", "teacher", "teacher.onnx")
FIXTURE_COPY = os.path.join(REPO, "tests", "fixtures", "pytorch", "fashion_cnn_teacher.onnx")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    assert magic >> 8 == 0x08, "expected unsigned byte IDX data"
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(folder, split):
    x = read_idx(os.path.join(folder, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(y.astype(np.int64))
    return x, y


class TeacherCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)

    x_train, y_train = load(SYSTEM_DATA, "train")
    x_test, y_test = load(SYSTEM_DATA, "t10k")
    print(f"torch {torch.__version__}; train {tuple(x_train.shape)}, test {tuple(x_test.shape)}")

    model = TeacherCnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total, n = 0.0, 0
        for i in range(0, len(x_train), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
        acc = accuracy(model, x_test, y_test)
        print(f"epoch {epoch + 1}: loss {total / n:.4f}, test acc {acc:.4f}, "
              f"elapsed {time.time() - t0:.0f}s", flush=True)
    train_s = time.time() - t0

    model.eval()
    acc_full = accuracy(model, x_test, y_test)
    print(f"training time {train_s:.0f}s")
    print(f"test accuracy, full 10k test set: {acc_full:.4f}")
    slice_images = os.path.join(SLICE_DATA, "t10k-images-idx3-ubyte.gz")
    if os.path.exists(slice_images):
        xs, ys = load(SLICE_DATA, "t10k")
        print(f"test accuracy, {len(xs)}-image slice in samples/FashionMnist/data: "
              f"{accuracy(model, xs, ys):.4f}")
    else:
        print(f"test accuracy, first 2000 test images: {accuracy(model, x_test[:2000], y_test[:2000]):.4f}")

    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(
        model, dummy, OUT_ONNX, opset_version=17,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    import onnx
    m = onnx.load(OUT_ONNX)
    onnx.checker.check_model(m)
    print("ops:", sorted({n.op_type for n in m.graph.node}))
    os.makedirs(os.path.dirname(FIXTURE_COPY), exist_ok=True)
    shutil.copyfile(OUT_ONNX, FIXTURE_COPY)
    print(f"wrote {OUT_ONNX} ({os.path.getsize(OUT_ONNX)} bytes) and {FIXTURE_COPY}")

    # Reference for the C# tests: PyTorch's logits for the first 2 test images.
    x2 = x_test[:2]
    with torch.no_grad():
        logits = model(x2)
    expected = FIXTURE_COPY.replace(".onnx", ".expected.json")
    with open(expected, "w") as f:
        json.dump({"model": os.path.basename(FIXTURE_COPY),
                   "note": "first 2 Fashion-MNIST test images, pixels / 255",
                   "inputs": [{"name": "input", "dtype": "float32", "shape": list(x2.shape),
                               "data": [float(v) for v in x2.numpy().reshape(-1)]}],
                   "outputs": [{"name": "logits", "dtype": "float32", "shape": list(logits.shape),
                                "data": [float(v) for v in logits.numpy().reshape(-1)]}]}, f)
        f.write("\n")
    # Check the exported graph against PyTorch with the fixtures' NumPy ONNX interpreter.
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(FIXTURE_COPY))
    from make_fixtures import run_numpy
    err = float(np.abs(run_numpy(m, {"input": x2.numpy()})[0] - logits.numpy()).max())
    print(f"wrote {expected}; max |onnx (numpy) - torch| = {err:.2e}")
    assert err < 1e-4


if __name__ == "__main__":
    main()
