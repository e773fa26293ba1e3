# Independent PyTorch run of the same setup as distill-64/256.compress.yaml: MLP 784-h-10 (nn.Linear defaults),
# Adam 1e-3, batch 128, 10 epochs, loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) (batchmean)
# + (1 - alpha) * CE, inputs scaled by 1/255, the full Fashion-MNIST set. The teacher's training-set logits are
# the ones our engine cached (ONNX Runtime on teacher.onnx), so both sides learn from the same targets.
# Usage: /usr/bin/python3 reference.py LOGITS.bin [seed] [hidden sizes, e.g. 64,256]
import gzip, sys, numpy as np, torch, torch.nn as nn, torch.nn.functional as F

def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)

root = "/usr/share/datasets/fashion-mnist/"
x = torch.tensor(idx(root + "train-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
y = torch.tensor(idx(root + "train-labels-idx1-ubyte.gz"), dtype=torch.long)
xt = torch.tensor(idx(root + "t10k-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
yt = torch.tensor(idx(root + "t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
teacher = torch.tensor(np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, 10))
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
torch.set_num_threads(2)

def run(hidden, alpha, temperature):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(10):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            rows = order[i:i + 128]
            s = model(x[rows])
            loss = (1 - alpha) * F.cross_entropy(s, y[rows])
            if alpha > 0:
                kl = F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(teacher[rows] / temperature, 1), reduction="batchmean", log_target=True)
                loss = loss + alpha * temperature ** 2 * kl
            opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        return (model(xt).argmax(1) == yt).float().mean().item()

teacher_train_accuracy = (teacher.argmax(1) == y).float().mean().item()
print(f"teacher accuracy on the training set (from the logits): {teacher_train_accuracy:.4f}")
sizes = [int(h) for h in sys.argv[3].split(",")] if len(sys.argv) > 3 else [64, 256]
for hidden, alpha in [(h, a) for h, a in ((64, 0.9), (256, 0.5)) if h in sizes]:
    print(f"784-{hidden}-10 labels only: {run(hidden, 0.0, 4):.4f}   distilled alpha {alpha} T 4: {run(hidden, alpha, 4):.4f}", flush=True)
