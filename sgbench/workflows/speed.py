"""`sgbench speed`: wall time of one guided sampling step per method, next to its analytic GFLOPs.

A benchmark, not a test: random weights (timing does not depend on them), one warm-up, the median
of a few rounds in which every timed function runs once in turn. The ratios to cfg are what matters
(the paper's claim: SG 0.5/0.9 costs 0.427 of a CFG step in FLOPs, about 0.39 with the shared prefix).
"""

from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch

from sgbench.utils.errors import SgbenchError
from sgbench.core.flops import forward_gflops, step_ops
from sgbench.core.guidance.base import GuidanceMethod, Models, run_branches
from sgbench.models.sit import ModelConfig, SiT


def _median_seconds(fns: Sequence, repeats: int, device: str) -> list[float]:
    """Median wall time of each function: one warm-up each, then `repeats` rounds that call them in
    turn, so that a slow drift of the machine (another job, clock changes) hits every function alike."""

    def once(fn) -> float:
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for fn in fns:
        once(fn)  # warm-up
    rounds = [[once(fn) for fn in fns] for _ in range(repeats)]
    return [statistics.median(r[k] for r in rounds) for k in range(len(fns))]


def _unshared_step(method: GuidanceMethod, models: Models, x: torch.Tensor, t: float, labels: torch.Tensor):
    """The same step with every branch as its own full forward (for timing only: token draws differ)."""
    outs = [run_branches(models, [b], x, t, step=0, labels=labels, indices=range(x.shape[0]), seed=0)[0]
            for b in method.branches(t)]
    return method.combine(*outs, x=x, t=t, state=method.new_state(x.shape[0])) if len(outs) == 2 else outs[0]


@torch.inference_mode()
def benchmark(
    config: ModelConfig,
    methods: Sequence[GuidanceMethod],
    *,
    batch: int = 2,
    repeats: int = 3,
    threads: int | None = None,
    device: str = "cpu",
    t: float = 0.5,
) -> dict:
    """Seconds per step of each method at time t, and of single forwards at gamma 0, 0.5, 0.9.

    The guide of ag / ag+sg is the main model itself (same architecture, so the same cost).
    """
    for option, value in (("--batch-size", batch), ("--repeats", repeats), ("--threads", threads)):
        if value is not None and value < 1:  # before the model is built; threads None: torch's default
            raise SgbenchError(f"Expected {option} >= 1 but got {value}")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SiT(config).to(device).eval()
    models = Models(main=model, guide=model)
    x = torch.randn(batch, config.in_channels, config.input_size, config.input_size, device=device)
    labels = torch.arange(batch, device=device) % config.num_classes
    rows, fns = [], []
    for m in methods:
        def step(m=m):
            return m.velocity(models, x, t, step=0, labels=labels, indices=range(batch), seed=0, state=m.new_state(batch))

        branches = m.branches(t)
        row = {
            "method": m.name,
            "label": " ".join([m.name, *(f"{k}={v}" for k, v in m.params.items() if k in ("gs", "gw", "guide_sparsity"))]),
            "gflops_no_sharing": step_ops(branches, config, shared_prefix=False).gflops("paper"),
            "gflops_shared_prefix": step_ops(branches, config, shared_prefix=True).gflops("paper"),
        }
        rows.append(row)
        fns.append(step)
        if row["gflops_shared_prefix"] < row["gflops_no_sharing"]:  # time it also with one forward per branch
            rows.append({**row, "label": row["label"] + " (no shared prefix)", "gflops_shared_prefix": row["gflops_no_sharing"]})
            fns.append(lambda m=m: _unshared_step(m, models, x, t, labels))
    t_batch = torch.full((batch,), t, device=device)
    forwards = []
    for gamma in (0.0, 0.5, 0.9):
        gens = None if gamma == 0 else [torch.Generator().manual_seed(i) for i in range(batch)]
        what = "dense" if gamma == 0 else f"route gamma {gamma:g}"
        forwards.append({"what": what, "gamma": gamma, "gflops": forward_gflops(config, gamma)})
        fns.append(lambda gamma=gamma, gens=gens: model(x, t_batch, labels, sparsity=gamma, generators=gens))
    seconds = _median_seconds(fns, repeats, device)
    for row, sec in zip(rows + forwards, seconds):
        row["seconds"] = sec
    cfg_row = next((row for row in rows if row["method"] == "cfg"), None)
    for row in rows:
        ok = cfg_row is not None
        row["time_vs_cfg"] = row["seconds"] / cfg_row["seconds"] if ok else None
        row["gflops_vs_cfg"] = row["gflops_no_sharing"] / cfg_row["gflops_no_sharing"] if ok else None
        row["shared_gflops_vs_cfg"] = row["gflops_shared_prefix"] / cfg_row["gflops_shared_prefix"] if ok else None
    # columns: gflops_shared_prefix is what the timed code executed; gflops_no_sharing one forward per branch
    return {"device": f"{device}, {torch.get_num_threads()} threads", "methods": rows, "forwards": forwards}
