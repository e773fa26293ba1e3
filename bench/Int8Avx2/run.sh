#!/bin/sh
# Runs int8 models on an emulated AVX2-only CPU (QEMU's Haswell model: AVX2, no AVX-512, no VNNI), where ONNX
# Runtime picks its u8 x s8 kernels that add pairs of products into a saturating int16, and natively.
#   1. the one-node MatMulInteger(A uint8 [1, K] of 255s, B int8 [K, 1] of 127s) of the issue, K = 2, 4, 64;
#   2. the models ModelCompression.Bench.Latency --int8-targets --save writes (float, full-range int8 = target vnni,
#      target any) on their saved inputs: max |float - int8| / output scale and accuracy where there are labels.
# Needs: apt-get install qemu-user gcc; Debian's python3 with python3-onnx and numpy; the restored NuGet
# package Microsoft.ML.OnnxRuntime (its C API header and libonnxruntime.so).
# Usage: bench/Int8Avx2/run.sh [DIR] [ROWS]   (DIR: a scratch folder, default /tmp/int8-avx2; ROWS: inputs per
# model, default 300 of the 1000 saved: emulation runs a CNN on ~1 image per second)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DIR=${1:-/tmp/int8-avx2}
ROWS=${2:-300}
ORT=$(ls -d "${NUGET_PACKAGES:-$HOME/.nuget/packages}"/microsoft.ml.onnxruntime/* | sort -V | tail -1)
mkdir -p "$DIR"
ln -sf "$ORT/runtimes/linux-x64/native/libonnxruntime.so" "$DIR/libonnxruntime.so.1"
gcc -O1 -o "$DIR/ortrun" "$HERE/ortrun.c" -I"$ORT/build/native/include" -L"$DIR" -l:libonnxruntime.so.1 -Wl,-rpath,"$DIR"
echo "ONNX Runtime $(basename "$ORT"); host CPU flags: $(grep -o -w 'avx2\|avx512[a-z_]*\|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
dotnet run -c Release --project "$REPO/bench/ModelCompression.Bench.Latency" -- --int8-targets --repo "$REPO" --rounds 3 --save "$DIR/models" > "$DIR/int8-targets.md"
/usr/bin/python3 - "$DIR" "$ROWS" <<'PY'
import subprocess, sys, numpy as np, onnx, glob, os
from onnx import helper, TensorProto, numpy_helper
d, rows = sys.argv[1], int(sys.argv[2])
def run(cpu, model, inp, kind, dims):
    out = os.path.join(d, "out.bin")
    cmd = ([] if cpu == "native" else ["qemu-x86_64", "-cpu", "Haswell"]) + [os.path.join(d, "ortrun"), model, inp, kind, out] + [str(x) for x in dims]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return np.fromfile(out, dtype=np.int32 if kind == "u8" else np.float32)
print("\n| K | exact | native | emulated Haswell (AVX2) |\n|---:|---:|---:|---:|")
for k in (2, 4, 64):
    m = os.path.join(d, f"mmi{k}.onnx")
    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"], name="mm")], "one",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, k])], [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])],
        [numpy_helper.from_array(np.full((k, 1), 127, dtype=np.int8), "b")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), m)
    a = os.path.join(d, f"a{k}.bin"); np.full((1, k), 255, dtype=np.uint8).tofile(a)
    print(f"| {k} | {255 * 127 * k} | {run('native', m, a, 'u8', [1, k])[0]} | {run('haswell', m, a, 'u8', [1, k])[0]} |")
print(f"\n{rows} inputs per model (fewer if fewer were saved)\n\n| model | int8 weights | CPU | max abs(float - int8) / output scale | accuracy (float -> int8) |\n|---|---|---|---:|---|")
for dims_file in sorted(glob.glob(os.path.join(d, "models", "*.dims"))):
    stem = dims_file[:-5]
    dims = [int(x) for x in open(dims_file).read().split()]
    n = min(rows, dims[0])
    np.fromfile(stem + ".input.bin", dtype=np.float32)[: n * int(np.prod(dims[1:]))].tofile(stem + ".rows.bin")
    dims[0] = n
    labels = np.fromfile(stem + ".labels.bin", dtype=np.int64)[:n] if os.path.exists(stem + ".labels.bin") else None
    for cpu in ("native", "haswell"):
        ref = run(cpu, stem + ".float.onnx", stem + ".rows.bin", "f32", dims).reshape(dims[0], -1)
        for variant, what in (("full", "full range (target vnni)"), ("any", "target any")):
            out = run(cpu, f"{stem}.{variant}.onnx", stem + ".rows.bin", "f32", dims).reshape(dims[0], -1)
            err = np.abs(out - ref).max() / np.abs(ref).max()
            acc = "-" if labels is None else f"{(ref.argmax(1) == labels).mean():.4f} -> {(out.argmax(1) == labels).mean():.4f}"
            print(f"| {os.path.basename(stem)} | {what} | {'native' if cpu == 'native' else 'emulated Haswell (AVX2)'} | {err:.4f} | {acc} |")
PY
