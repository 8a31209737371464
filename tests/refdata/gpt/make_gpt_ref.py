#!/usr/bin/env python3
"""Reference trajectories of the `gpt` model (JOBSPEC.md, "Model gpt") from an independent
PyTorch implementation, for tests/unit/test_gpt_ref.c.

Made with Debian's python3-torch (1.13, CPU, one thread):
    /usr/bin/python3 tests/refdata/gpt/make_gpt_ref.py tests/refdata/gpt
Each case: a char-level vocabulary of an inline text, the explicit initial tensors (drawn
here from torch.Generator and written out whole, so the C side needs no generator of ours),
then `steps` AdamW steps (torch.optim.AdamW, lr 1e-3, betas (0.9, 0.99), eps 1e-8,
weight_decay 0.1 on 2-D tensors and 0 on 1-D ones as nanoGPT does, grad-norm clip 1.0) over
the text's non-overlapping windows in order, `batch` windows per step. Recorded: the loss of
every step (before its update) and every tensor after the last step.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

TEXT = ("To be, or not to be, that is the question:\n"
        "Whether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\n"
        "Or to take arms against a sea of troubles\n")


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + 1e-5) * w
    return y + b if b is not None else y


def gelu(x, kind):
    if kind == "erf":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(P, cfg, idx, targets):
    B, T = idx.shape
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hs = C // NH
    g = lambda name: P.get(name)
    x = P["transformer.wte.weight"][idx] + P["transformer.wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(L):
        h = f"transformer.h.{i}."
        a = layer_norm(x, g(h + "ln_1.weight"), g(h + "ln_1.bias"))
        qkv = a @ g(h + "attn.c_attn.weight").t()
        if g(h + "attn.c_attn.bias") is not None:
            qkv = qkv + g(h + "attn.c_attn.bias")
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        y = y @ g(h + "attn.c_proj.weight").t()
        if g(h + "attn.c_proj.bias") is not None:
            y = y + g(h + "attn.c_proj.bias")
        x = x + y
        m = layer_norm(x, g(h + "ln_2.weight"), g(h + "ln_2.bias"))
        m = m @ g(h + "mlp.c_fc.weight").t()
        if g(h + "mlp.c_fc.bias") is not None:
            m = m + g(h + "mlp.c_fc.bias")
        m = gelu(m, cfg["gelu"]) @ g(h + "mlp.c_proj.weight").t()
        if g(h + "mlp.c_proj.bias") is not None:
            m = m + g(h + "mlp.c_proj.bias")
        x = x + m
    x = layer_norm(x, P["transformer.ln_f.weight"], P.get("transformer.ln_f.bias"))
    logits = x @ P["transformer.wte.weight"].t()
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def tensor_shapes(cfg):
    V, T, C, L = cfg["vocab_size"], cfg["block_size"], cfg["n_embd"], cfg["n_layer"]
    out = [("transformer.wte.weight", (V, C)), ("transformer.wpe.weight", (T, C))]
    for i in range(L):
        h = f"transformer.h.{i}."
        for name, shape in [("ln_1.weight", (C,)), ("ln_1.bias", (C,)),
                            ("attn.c_attn.weight", (3 * C, C)), ("attn.c_attn.bias", (3 * C,)),
                            ("attn.c_proj.weight", (C, C)), ("attn.c_proj.bias", (C,)),
                            ("ln_2.weight", (C,)), ("ln_2.bias", (C,)),
                            ("mlp.c_fc.weight", (4 * C, C)), ("mlp.c_fc.bias", (4 * C,)),
                            ("mlp.c_proj.weight", (C, 4 * C)), ("mlp.c_proj.bias", (C,))]:
            if name.endswith(".bias") and not cfg["bias"]:
                continue
            out.append((h + name, shape))
    out.append(("transformer.ln_f.weight", (C,)))
    if cfg["bias"]:
        out.append(("transformer.ln_f.bias", (C,)))
    return out


def run(cfg, steps, batch, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vocab = sorted(set(TEXT))
    cfg["vocab_size"] = len(vocab)
    tokens = torch.tensor([vocab.index(c) for c in TEXT], dtype=torch.long)
    T = cfg["block_size"]
    K = (len(tokens) - 1) // T
    P = {}
    for name, shape in tensor_shapes(cfg):
        if len(shape) == 2:
            t = torch.randn(shape, generator=gen) * 0.2
        elif name.endswith(".weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            t = 0.1 * torch.randn(shape, generator=gen)
        P[name] = t.float().requires_grad_(True)
    init = {n: P[n].detach().tolist() for n in P}
    decay = [p for n, p in P.items() if p.dim() == 2]
    nodecay = [p for n, p in P.items() if p.dim() == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    losses = []
    for s in range(steps):
        rows = [(s * batch + r) % K for r in range(batch)]
        idx = torch.stack([tokens[k * T:k * T + T] for k in rows])
        tgt = torch.stack([tokens[k * T + 1:k * T + T + 1] for k in rows])
        opt.zero_grad()
        loss = forward(P, cfg, idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        losses.append(loss.item())
    return {"model": cfg, "text": TEXT, "steps": steps, "batch": batch, "init": init,
            "losses": losses, "final": {n: P[n].detach().tolist() for n in P}}


def main():
    torch.set_num_threads(1)
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    cases = {
        "gpt_bias_tanh": ({"block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16,
                           "bias": True, "gelu": "tanh"}, 6, 4, 1),
        "gpt_nobias_erf": ({"block_size": 8, "n_layer": 2, "n_head": 4, "n_embd": 16,
                            "bias": False, "gelu": "erf"}, 6, 3, 2),
    }
    for name, (cfg, steps, batch, seed) in cases.items():
        ref = run(dict(cfg), steps, batch, seed)
        ref["made_with"] = "tests/refdata/gpt/make_gpt_ref.py, torch " + torch.__version__
        with open(f"{out}/{name}.json", "w") as f:
            json.dump(ref, f)


if __name__ == "__main__":
    main()
