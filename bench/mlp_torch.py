#!/usr/bin/env python3
"""PyTorch side of bench_mlp_fashion: an MLP 784-512-512-10 with ReLU, cross-entropy, SGD with
momentum 0.9, on batches of Fashion-MNIST-shaped rows (784 floats, 10 classes; throughput does
not depend on the pixel values). One thread. Prints "samples_per_sec <value>".
Usage: mlp_torch.py BATCH STEPS"""
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(1)
torch.manual_seed(0)
B, steps = int(sys.argv[1]), int(sys.argv[2])
model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                      nn.Linear(512, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
n = 60000
x_all = torch.rand(n, 784)
y_all = torch.randint(0, 10, (n,))


def step(i):
    lo = (i * B) % (n - B)
    x, y = x_all[lo:lo + B], y_all[lo:lo + B]
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


for i in range(max(3, steps // 10)):  # warm-up
    step(i)
t0 = time.perf_counter()
for i in range(steps):
    step(i)
dt = time.perf_counter() - t0
print("samples_per_sec %.1f" % (B * steps / dt))
