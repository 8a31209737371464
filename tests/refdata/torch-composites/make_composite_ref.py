"""PyTorch references for SequentialLR and ChainedScheduler whose children set the lr
themselves (CyclicLR, OneCycleLR) or read it back (the closed forms at a milestone).

In torch 1.13 the children share the optimizer's param groups:
- the first scheduler built sets each group's `initial_lr` to the lr it finds (setdefault),
  and every later one takes `initial_lr` as its `base_lrs`;
- CyclicLR writes its `base_lr` into the group's lr before that, and its first step still
  reads the `base_lrs` it took (the group's `initial_lr`), so built after another scheduler
  its first lr is that `initial_lr`;
- OneCycleLR overwrites `initial_lr`, `max_lr` and `min_lr` (and the momenta) in the group and
  reads them back at every step, so the last one built speaks for all;
- SequentialLR resets the lr to the group's `initial_lr` when built.

Run with Debian's python3-torch 1.13, one thread, from the repository root:
    /usr/bin/python3 tests/refdata/torch-composites/make_composite_ref.py
It writes <case>.json and index.json beside itself, in the layout of ../torch-schedules:
SGD with two param groups (lr 0.1 and 0.05, momentum 0.9); lr[k][g] and momentum[k][g] after
k scheduler.step() calls (k = 0: right after construction, what the first optimizer step uses).
"""
import json
import os
import warnings

import torch
from torch.optim import lr_scheduler as L

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    "seq_cyclic_exponential": ("SequentialLR", {
        "schedulers": [{"cls": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2},
                       {"cls": "ExponentialLR", "gamma": 0.9}],
        "milestones": [4]}, 12),
    "seq_onecycle_cosine": ("SequentialLR", {
        "schedulers": [{"cls": "OneCycleLR", "max_lr": 1.0, "total_steps": 4},
                       {"cls": "CosineAnnealingLR", "T_max": 4}],
        "milestones": [4]}, 10),
    "seq_linear_onecycle": ("SequentialLR", {
        "schedulers": [{"cls": "LinearLR", "start_factor": 0.5, "total_iters": 2},
                       {"cls": "OneCycleLR", "max_lr": 1.0, "total_steps": 10}],
        "milestones": [3]}, 12),
    "seq_two_onecycle": ("SequentialLR", {
        "schedulers": [{"cls": "OneCycleLR", "max_lr": 0.5, "total_steps": 6,
                        "base_momentum": 0.7, "max_momentum": 0.8},
                       {"cls": "OneCycleLR", "max_lr": 1.0, "total_steps": 10, "pct_start": 0.5}],
        "milestones": [5]}, 14),
    "seq_exponential_cyclic": ("SequentialLR", {
        "schedulers": [{"cls": "ExponentialLR", "gamma": 0.5},
                       {"cls": "CyclicLR", "base_lr": 0.01, "max_lr": 0.2, "step_size_up": 3}],
        "milestones": [3]}, 12),
    "seq_cawr_after_cyclic": ("SequentialLR", {
        "schedulers": [{"cls": "CyclicLR", "base_lr": 0.02, "max_lr": 0.1, "step_size_up": 2,
                        "cycle_momentum": False},
                       {"cls": "CosineAnnealingWarmRestarts", "T_0": 3}],
        "milestones": [4]}, 12),
    "chained_exponential_cyclic": ("ChainedScheduler", {
        "schedulers": [{"cls": "ExponentialLR", "gamma": 0.9},
                       {"cls": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2}]},
        10),
    "chained_onecycle_step": ("ChainedScheduler", {
        "schedulers": [{"cls": "OneCycleLR", "max_lr": 0.4, "total_steps": 12},
                       {"cls": "StepLR", "step_size": 3, "gamma": 0.5}]}, 12),
}


def build(opt, child):
    args = {k: v for k, v in child.items() if k != "cls"}
    return getattr(L, child["cls"])(opt, **args)


def trace(kind, args, steps):
    p = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": [p[0]], "lr": 0.1}, {"params": [p[1]], "lr": 0.05}],
                          lr=0.1, momentum=0.9)
    children = [build(opt, c) for c in args["schedulers"]]
    if kind == "SequentialLR":
        s = L.SequentialLR(opt, children, milestones=args["milestones"])
    else:
        s = L.ChainedScheduler(children)
    lr = [[g["lr"] for g in opt.param_groups]]
    mom = [[g["momentum"] for g in opt.param_groups]]
    for _ in range(steps):
        opt.step()
        s.step()
        lr.append([g["lr"] for g in opt.param_groups])
        mom.append([g["momentum"] for g in opt.param_groups])
    return lr, mom


def main():
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cases = []
    for name, (kind, args, steps) in CASES.items():
        lr, mom = trace(kind, args, steps)
        doc = {"schema": "sched-trace-v1", "case": name, "scheduler": kind,
               "constructor_args": args, "generator": f"torch {torch.__version__}",
               "optimizer": {"cls": "SGD", "param_groups": [{"lr": 0.1, "momentum": 0.9},
                                                            {"lr": 0.05, "momentum": 0.9}]},
               "steps": steps, "lr": lr, "momentum": mom}
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        cases.append({"file": name + ".json", "scheduler": kind, "constructor_args": args,
                      "steps": steps})
    with open(os.path.join(HERE, "index.json"), "w") as f:
        json.dump({"torch_version": torch.__version__,
                   "optimizer": "SGD, group lrs [0.1, 0.05], momentum 0.9", "cases": cases},
                  f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
