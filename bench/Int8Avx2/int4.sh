#!/bin/sh
# Runs the feed-forward models that `ModelCompression.Bench.Latency --int4 --save DIR` writes (a [2, 64, 256] ->
# 1024 -> 256 MatMul pair: float, dynamic int8 with target any, int4 MatMulNBits with blocks of 32 symmetric and 128
# asymmetric) natively and on an emulated AVX2-only CPU (QEMU user mode, -cpu Haswell), and compares the outputs:
# int4 computes in float32 (accuracy_level 1) and int8 target any cannot saturate, so both must agree across CPUs
# up to float rounding.
# Needs what run.sh needs (qemu-user, gcc, Debian's python3 with numpy, the restored Microsoft.ML.OnnxRuntime).
# Usage: bench/Int8Avx2/int4.sh DIR   (DIR: the --save folder)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$1
ORT=$(ls -d "${NUGET_PACKAGES:-$HOME/.nuget/packages}"/microsoft.ml.onnxruntime/* | sort -V | tail -1)
ln -sf "$ORT/runtimes/linux-x64/native/libonnxruntime.so" "$DIR/libonnxruntime.so.1"
gcc -O1 -o "$DIR/ortrun" "$HERE/ortrun.c" -I"$ORT/build/native/include" -L"$DIR" -l:libonnxruntime.so.1 -Wl,-rpath,"$DIR"
echo "ONNX Runtime $(basename "$ORT"); host CPU flags: $(grep -o -w 'avx2\|avx512[a-z_]*\|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
/usr/bin/python3 - "$DIR" <<'PY'
import subprocess, sys, os, numpy as np
d = sys.argv[1]
def run(cpu, model):
    out = os.path.join(d, "out.bin")
    cmd = ([] if cpu == "native" else ["qemu-x86_64", "-cpu", "Haswell"]) + [os.path.join(d, "ortrun"), os.path.join(d, model), os.path.join(d, "ffn.input.bin"), "f32", out, "2", "64", "256"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return np.fromfile(out, dtype=np.float32)
ref = run("native", "ffn.float.onnx")
scale = np.abs(ref).max()
print("\n| model | max abs(native - emulated AVX2) / output scale | max abs(float - q) / output scale, native | same, emulated AVX2 |\n|---|---:|---:|---:|")
for m in ("ffn.float.onnx", "ffn.int8.onnx", "ffn.int4-b32-sym.onnx", "ffn.int4-b128-asym.onnx"):
    native, emulated = run("native", m), run("haswell", m)
    print(f"| {m} | {np.abs(native - emulated).max() / scale:.2e} | {np.abs(native - ref).max() / scale:.4f} | {np.abs(emulated - ref).max() / scale:.4f} |")
PY
