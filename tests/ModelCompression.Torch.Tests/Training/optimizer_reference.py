# Reference values for ParameterOptimizerTests: PyTorch's own optimizers on a fixed problem.
# Run: /usr/bin/python3 optimizer_reference.py   (Debian python3-torch 1.13)
import torch
torch.set_default_dtype(torch.float64)
x = torch.tensor([0.5, -1.5, 2.0]); y = torch.tensor([1.0, 2.0, -1.0])
def run(make):
    w = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    opt = make([w])
    for _ in range(5):
        opt.zero_grad()
        loss = ((w * x - y) ** 2).sum()
        loss.backward()
        opt.step()
    return [round(v, 12) for v in w.tolist()]
print("adam", run(lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=0.01)))
print("adamw", run(lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1)))
print("sgd", run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01)))
print("sgd_plain", run(lambda p: torch.optim.SGD(p, lr=0.05)))
