#!/usr/bin/python3
"""Cut the Fashion-MNIST slice committed in samples/FashionMnist/data/.

What it is
    Writes the first 6000 training images/labels and the first 2000 test images/labels
    of Fashion-MNIST as gzip'd IDX files in exactly the original format (magic numbers
    0x00000803 / 0x00000801, big-endian uint32 dimensions, uint8 data), so the sample
    runs on a fresh machine without the Debian package. Deterministic: plain prefixes,
    and the gzip header carries no file name and mtime 0, so reruns give identical bytes.

How to regenerate (Debian 12)
    sudo apt-get install dataset-fashion-mnist
    python3 samples/FashionMnist/data/make_slice.py      (from the repository root; needs only
                                                          the standard library)
    Source: /usr/share/datasets/fashion-mnist/*.gz (Debian package dataset-fashion-mnist).
"""
import gzip
import os
import struct
from collections import Counter

SRC = "/usr/share/datasets/fashion-mnist"
DST = os.path.dirname(os.path.abspath(__file__))
SLICES = {"train": 6000, "t10k": 2000}
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = list(struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]))
    return magic, dims, data[4 + 4 * ndim:]


def write_idx(path, magic, dims, payload):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(header + payload)


def main():
    for split, n in SLICES.items():
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{split}-{kind}-ubyte.gz"
            magic, dims, payload = read_idx(os.path.join(SRC, name))
            item = 1
            for d in dims[1:]:
                item *= d
            dims[0] = n
            write_idx(os.path.join(DST, name), magic, dims, payload[:n * item])
            print(f"{name}: magic 0x{magic:08x}, dims {dims}, "
                  f"{os.path.getsize(os.path.join(DST, name))} bytes")
            if kind.startswith("labels"):
                counts = Counter(payload[:n])
                print("  class counts: " + ", ".join(
                    f"{c} {CLASSES[c]}={counts[c]}" for c in range(10)))


if __name__ == "__main__":
    main()
