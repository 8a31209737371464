"""PyTorch references for optimizers whose momentum a scheduler cycles.

SGD and RMSprop with momentum 0 in their group, driven by CyclicLR or OneCycleLR with
cycle_momentum left at its default (true): the scheduler's constructor writes max_momentum
into the group and every step writes the cycled value, so torch 1.13 trains with momentum
although the optimizer was configured without it (SGD makes its buffer at the first step
whose momentum is non-zero; RMSprop when its state is created, if momentum > 0 then).

Run with Debian's python3-torch 1.13, one thread, from the repository root:
    /usr/bin/python3 tests/refdata/torch-optim-sched/make_optim_sched_ref.py
"sgd_late_momentum" has no scheduler: the momentum of each step is written into the group
by hand (LATE_MOMENTUM, 0 for the first five steps, then 0.9, 0 again, 0.8), with dampening
0.5, so SGD starts its buffer at step 6 with the undamped gradient and keeps it through the
steps at momentum 0. It stands for a multi-phase schedule whose later phase cycles momentum.

It writes one <case>.<dtype>.json beside itself. Each holds the job-spec blocks that
reproduce it (`optimizer`, `scheduler`), `n`, `steps`, `p0`, `grads[t-1]` (the gradient fed at
step t), `params[t-1]` (the parameters after step t), and `lr[t-1]`, `momentum[t-1]` (what
step t used). The formulas are those of ../torch-optim:
    p0[i] = (dtype)(0.5*sin(0.7*i + 0.3) + 0.01*(i - 32))
    g_t[i] = (dtype)(0.1*sin(0.37*i + 0.11*t) + 0.05*(double)p[i])   (p before step t)
"""
import json
import math
import os
import warnings

import torch

N, STEPS = 8, 20
HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    "sgd_cycliclr": (
        {"type": "SGD", "params": {"lr": 0.1}},
        {"type": "CyclicLR", "params": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 5}},
    ),
    "sgd_onecyclelr": (
        {"type": "SGD", "params": {"lr": 0.1}},
        {"type": "OneCycleLR", "params": {"max_lr": 0.1, "total_steps": 20}},
    ),
    "rmsprop_cycliclr": (
        {"type": "RMSprop", "params": {"lr": 0.01}},
        {"type": "CyclicLR", "params": {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 5}},
    ),
    "rmsprop_onecyclelr": (
        {"type": "RMSprop", "params": {"lr": 0.01}},
        {"type": "OneCycleLR", "params": {"max_lr": 0.01, "total_steps": 20}},
    ),
    "sgd_late_momentum": (
        {"type": "SGD", "params": {"lr": 0.1, "dampening": 0.5}},
        None,
    ),
}

LATE_MOMENTUM = [0.0] * 5 + [0.9] * 7 + [0.0] * 3 + [0.8] * 5


def run(opt_block, sched_block, dtype):
    p0 = [0.5 * math.sin(0.7 * i + 0.3) + 0.01 * (i - 32) for i in range(N)]
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64).to(dtype))
    opt_cls = getattr(torch.optim, opt_block["type"])
    opt = opt_cls([p], **opt_block["params"])
    sch = None
    if sched_block:
        sch_cls = getattr(torch.optim.lr_scheduler, sched_block["type"])
        sch = sch_cls(opt, **sched_block["params"])
    out = {"p0": [float(x) for x in p.detach()], "grads": [], "params": [], "lr": [],
           "momentum": []}
    for t in range(1, STEPS + 1):
        pd = p.detach().to(torch.float64)
        g = [0.1 * math.sin(0.37 * i + 0.11 * t) + 0.05 * float(pd[i]) for i in range(N)]
        p.grad = torch.tensor(g, dtype=torch.float64).to(dtype)
        group = opt.param_groups[0]
        if sch is None:
            group["momentum"] = LATE_MOMENTUM[t - 1]
        out["lr"].append(group["lr"])
        out["momentum"].append(group["momentum"])
        opt.step()
        if sch is not None:
            sch.step()
        out["grads"].append([float(x) for x in p.grad])
        out["params"].append([float(x) for x in p.detach()])
    return out


def main():
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    for name, (opt_block, sched_block) in CASES.items():
        for dtype, dname in ((torch.float32, "float32"), (torch.float64, "float64")):
            rec = {"case": name, "torch": torch.__version__, "dtype": dname,
                   "optimizer": opt_block, "scheduler": sched_block, "n": N, "steps": STEPS}
            rec.update(run(opt_block, sched_block, dtype))
            with open(os.path.join(HERE, "%s.%s.json" % (name, dname)), "w") as f:
                json.dump(rec, f, indent=1)
                f.write("\n")


if __name__ == "__main__":
    main()
