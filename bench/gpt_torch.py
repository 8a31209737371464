#!/usr/bin/env python3
"""PyTorch side of bench_gpt: nanoGPT's shakespeare_char recipe model (4 layers, 4 heads, 128
wide, block 64, batch 12, no biases, exact GELU as nn.GELU, tied output layer), AdamW lr 1e-3
betas (0.9, 0.99) weight decay 0.1 on 2-D tensors, clip 1.0, random windows of the corpus.
One thread. Prints "ms_per_iter <value>". Usage: gpt_torch.py CORPUS ITERS"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm(nn.Module):
    """LayerNorm without bias (torch 1.13's nn.LayerNorm always has one)."""

    def __init__(self, C):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.ln_1 = LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C, bias=False)
        self.c_proj = nn.Linear(C, C, bias=False)
        self.ln_2 = LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C, bias=False)
        self.m_proj = nn.Linear(4 * C, C, bias=False)
        self.NH = NH

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        hs = C // self.NH
        q = q.view(B, T, self.NH, hs).transpose(1, 2)
        k = k.view(B, T, self.NH, hs).transpose(1, 2)
        v = v.view(B, T, self.NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / hs ** 0.5)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.m_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, V, T, L, NH, C):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block(C, NH) for _ in range(L)])
        self.ln_f = LayerNorm(C)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    torch.set_num_threads(1)
    torch.manual_seed(1337)
    text = open(sys.argv[1], encoding="utf-8").read()
    iters = int(sys.argv[2])
    vocab = sorted(set(text))
    data = torch.tensor([ord(c) for c in text], dtype=torch.long)
    lut = torch.zeros(max(ord(c) for c in vocab) + 1, dtype=torch.long)
    for i, c in enumerate(vocab):
        lut[ord(c)] = i
    data = lut[data]
    B, T = 12, 64
    m = GPT(len(vocab), T, 4, 4, 128)
    decay = [p for p in m.parameters() if p.dim() >= 2]
    nodecay = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": nodecay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))

    def step():
        ix = torch.randint(len(data) - T - 1, (B,))
        x = torch.stack([data[i:i + T] for i in ix])
        y = torch.stack([data[i + 1:i + T + 1] for i in ix])
        loss = m(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    print("ms_per_iter %.3f" % (1000 * (time.perf_counter() - t0) / iters))


if __name__ == "__main__":
    main()
