"""A hand-written MNIST script, the yardstick for `learnloop fit mnist`: what a PyTorch user writes by hand.

A conv-BN-ReLU CNN, one-cycle SGD (bs 128, lr 0.4, Nesterov momentum 0.9, weight decay 5e-4), label smoothing
0.1, 2 threads; prints the test loss and accuracy after each epoch. No learnloop import.
Run: `python benchmarks/hand_mnist.py [PATH/mnist.npz] [EPOCHS]`.
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(2)
path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist.npz"
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
bs, lr = 128, 0.4

with np.load(path) as f:
    x, y = torch.from_numpy(f["x_train"]).float().div_(255).unsqueeze(1), torch.from_numpy(f["y_train"]).long()
    xt, yt = torch.from_numpy(f["x_test"]).float().div_(255).unsqueeze(1), torch.from_numpy(f["y_test"]).long()
mean, std = x.mean(), x.std()
x, xt = (x - mean) / std, (xt - mean) / std

torch.manual_seed(0)
layers, ni = [], 1
for nf in (16, 32, 64, 128):
    layers += [torch.nn.Conv2d(ni, nf, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(nf), torch.nn.ReLU()]
    ni = nf
model = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(ni, 10))
opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
steps = epochs * -(-len(x) // bs)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.25)

for epoch in range(epochs):
    model.train()
    for idx in torch.randperm(len(x)).split(bs):
        loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.1)
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(xt[i:i + 1000]) for i in range(0, len(xt), 1000)])
    acc = (out.argmax(1) == yt).float().mean().item()
    print(f"{epoch}  test_loss {F.cross_entropy(out, yt).item():.4f}  test_accuracy {acc:.4f}", flush=True)
